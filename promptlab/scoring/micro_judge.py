"""The ``micro-judge`` scorer: how far a micro-world picture shows what its caption names, read by the judge.

CLIP scores a picture by an embedding's guess; in the micro-world the truth can be read off the
pixels (``promptlab.micro.world.judge``), so this scorer says exactly which attributes agree::

    score = 100 * (sum over the attributes the caption names of their agreement) / (how many it names)

The attributes are those ``caption_attributes`` finds in the caption: shape, colour, background,
size and position (a light term is not judged and does not count). The shape, background, size
and position agree 1 or 0: the judge read the named value, or it did not. The colour agrees by
``color_match``: how surely the shape reads as the named colour, from 0 to 1, so that a colour
that arrives gradually (a LoRA's strength, a term's weight) scores gradually. The score runs from
0 to 100 like CLIPScore: 100 when the judge reads every named attribute (and the colour surely),
0 when it reads none; a picture without a shape agrees only on its background. A caption that
names nothing the judge reads is refused, not scored 0.

    >>> from promptlab.micro.world import Scene, draw
    >>> picture = draw(Scene("circle", "teal", "black", "large", "center"))
    >>> round(judge_score(picture, "a teal circle on a black background").value)
    100
    >>> wrong = judge_score(picture, "a red square on a black background")
    >>> {name: round(value, 2) for name, value in wrong.agreed.items()}, round(wrong.value)
    ({'shape': 0.0, 'color': 0.0, 'background': 1.0}, 33)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from promptlab.errors import ScoringError
from promptlab.micro.world import caption_attributes, color_match, judge
from promptlab.scoring.checks import check_inputs, check_pairs
from promptlab.scoring.clip import DEFAULT_BATCH_SIZE, ImageScores, Score, ScorerInfo
from promptlab.scoring.spec import ScorerSpec

if TYPE_CHECKING:
    from PIL.Image import Image

#: The attributes the judge reads, in the order ``judge_score`` reports them.
JUDGED: tuple[str, ...] = ("shape", "color", "background", "size", "position")


@dataclass(frozen=True)
class JudgeScore:
    """One picture against one caption: the score and, per named attribute, how far it agreed."""

    #: 0..100: the mean of ``agreed``'s values, times 100.
    value: float
    #: The attributes the caption names (light left out), by name.
    named: dict[str, str]
    #: Per named attribute, its agreement: 1 or 0, and the colour's ``color_match`` between.
    agreed: dict[str, float]


def judge_score(image: Image, caption: str) -> JudgeScore:
    """How far ``image`` shows what ``caption`` names, as the micro-world judge reads it (module docstring)."""
    named = {name: value for name, value in caption_attributes(caption).items() if name in JUDGED}
    if not named:
        raise ScoringError(
            f"scorer 'micro-judge': caption {caption!r} names no shape, colour, background, size or position "
            "the micro-world judge reads; write it like 'a red circle on a black background, small, left', "
            "or score with a CLIP scorer (micro-clip)"
        )
    judgement = judge(image)
    agreed = {
        name: color_match(image, value) if name == "color" else float(getattr(judgement, name) == value)
        for name, value in named.items()
    }
    return JudgeScore(100 * sum(agreed.values()) / len(agreed), named, agreed)


class MicroJudgeScorer:
    """Scores micro-world pictures against captions with the pixel judge (no model, no device work)."""

    reads_text: ClassVar[bool] = True
    within_prompt: ClassVar[bool] = False

    def __init__(self, spec: ScorerSpec, device: str, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.spec = spec
        self.device = device
        self.batch_size = batch_size
        # The judge has no weights and no context: it reads every word of any caption.
        self.info = ScorerInfo(spec.name, spec.model, None, None, device, 0)

    def score(self, images: Sequence[Image], texts: Sequence[str], batch_size: int | None = None) -> list[Score]:
        """Each image's judge score against its text (one text per image), each in 0..100."""
        check_inputs(images, texts, batch_size)
        i = self.info
        return [Score(judge_score(image, text).value, text, i.scorer, i.model, None, None) for image, text in zip(images, texts)]

    def score_pairs(
        self, images: Sequence[Image], intents: Sequence[str], prompts: Sequence[str], batch_size: int | None = None
    ) -> list[ImageScores]:
        """Each image against its intent (rank by this) and its own plain-text prompt."""
        check_pairs(images, intents, prompts)
        return [
            ImageScores(a, b)
            for a, b in zip(self.score(images, intents, batch_size), self.score(images, prompts, batch_size))
        ]
