"""What every scorer offers (``Scorer``), and what a stored scorer name means without loading it (``scorer_traits``).

Two traits decide how a scorer's values may be compared:

- ``reads_text``: False for a scorer that scores the image alone (the aesthetic predictor); its
  ``Score.text`` is "" and its intent and prompt scores are one value.
- ``within_prompt``: True for a scorer whose values only compare images scored against the same
  text (PickScore, HPS): variants are then compared paired within one seed and prompt.

    >>> scorer_traits("pickscore").within_prompt, scorer_traits("aesthetic").reads_text
    (True, False)
    >>> scorer_traits("ViT-H-14:laion2b_s32b_b79k").measures == scorer_traits("clip").measures
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from promptlab.scoring.published import FAMILIES, published
from promptlab.scoring.spec import JUDGE_SPECS

if TYPE_CHECKING:
    from PIL.Image import Image

    from promptlab.scoring.clip import ImageScores, Score
    from promptlab.scoring.spec import ScorerSpec


@runtime_checkable
class Scorer(Protocol):
    """A loaded scorer: scores PIL images against texts, one text per image."""

    #: Whether the score depends on the text (False: ``Score.text`` is "" and both pair scores agree).
    reads_text: ClassVar[bool]
    #: Whether values only compare images scored against the same text (analyse paired within a prompt).
    within_prompt: ClassVar[bool]
    spec: ScorerSpec
    batch_size: int

    def score(self, images: Sequence[Image], texts: Sequence[str], batch_size: int | None = None) -> list[Score]:
        """Each image's score against its text."""
        ...

    def score_pairs(
        self, images: Sequence[Image], intents: Sequence[str], prompts: Sequence[str], batch_size: int | None = None
    ) -> list[ImageScores]:
        """Each image against its intent (rank by this) and its own prompt."""
        ...


@dataclass(frozen=True)
class ScorerTraits:
    """What a scorer's values mean, known from its name alone (no weights loaded)."""

    name: str
    reads_text: bool
    within_prompt: bool
    #: What it measures, in one line.
    measures: str


_CLIP_MEASURES = "how well the image shows the words (CLIPScore, 0-100); not how good it looks"
_JUDGE_MEASURES = "the share of the caption's shape, colour, background, size and position the micro-world judge reads (0-100)"


def scorer_traits(spec: str) -> ScorerTraits:
    """The traits of the scorer a (stored) spec names; unknown names and open_clip ``NAME:TAG`` are CLIP."""
    name = spec.strip()
    if name in JUDGE_SPECS:
        return ScorerTraits(name, True, False, _JUDGE_MEASURES)
    family = name.partition(":")[0] if ":" in name and name.partition(":")[0] in FAMILIES else name
    found = published(family)
    if found is not None:
        return ScorerTraits(name, found.reads_text, found.within_prompt, found.measures)
    return ScorerTraits(name, True, False, _CLIP_MEASURES)
