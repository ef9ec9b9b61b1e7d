"""CLIP scores: how well each image matches a text, with open_clip.

The ``clip`` scorer computes CLIPScore (Hessel et al. 2021, "CLIPScore: A Reference-free
Evaluation Metric for Image Captioning", EMNLP; also torchmetrics' ``CLIPScore``)::

    score = 100 * max(cos(E_image, E_text), 0)

with both embeddings L2-normalised. Two deliberate differences from torchmetrics: the clamp
at 0 is applied per image, as in the paper (torchmetrics clamps the batch mean), and texts
past CLIP's 77-token context are cut by open_clip's own tokenizer, which keeps the end token
(torchmetrics slices the token ids, dropping the end token CLIP pools at, which lowers the
scores of long prompts). The text is the prompt as the encoder saw it: plain text, weight
syntax already removed by the caller (``Prompt.to_plain()``).

The ``micro-judge`` scorer (``scoring.micro_judge``) is no CLIP model: it reads micro-world
pictures with the pixel judge and scores, also from 0 to 100, the share of the attributes a
caption names that the picture shows.

The default model is ViT-L/14 with OpenAI's weights, the CLIPScore standard, loaded as
``ViT-L-14-quickgelu`` because those weights were trained with QuickGELU (plain ``ViT-L-14``
only warns about the mismatch and gives different embeddings). Stronger alternatives:
``ViT-H-14:laion2b_s32b_b79k`` and ``ViT-bigG-14:laion2b_s39b_b160k``. A scorer spec is one of:

- ``"clip"``: the default model, ``ViT-L-14-quickgelu:openai``;
- ``"NAME:PRETRAINED_TAG"``: an open_clip model and one of its tags
  (``open_clip.list_pretrained_tags_by_model(NAME)``). A bare ``"NAME"`` is refused: the tag
  picks the weights, and open_clip's order of tags is no promise;
- ``"NAME:/path/to/weights.safetensors"`` (or ``.bin``, ``.pt``, ``.pth``): a local checkpoint
  for an open_clip architecture or a built-in one; scores record the file's sha256;
- ``"/path/to/weights.safetensors"`` alone: a file whose safetensors metadata names its model,
  as the built-ins' files do;
- a built-in model (``BUILTIN_CLIP_MODELS``): ``"micro-clip"``, trained on micro-world scenes
  and shipped with promptlab (``promptlab.micro``), or ``"tiny-clip"``, random weights for fast
  tests, written once to a file under ``cache_dir() / "tiny-clip"``. Both load like any local
  file, so their sha256 identifies them;
- ``"micro-judge"``: the micro-world's judge (``JUDGE_SPECS``);
- a published scorer (``PUBLISHED``): ``"aesthetic"`` (LAION aesthetic predictor, ``scoring.aesthetic``),
  ``"pickscore"`` (``scoring.pickscore``), ``"hps-v2"`` / ``"hps-v2.1"`` (also ``"hps"``,
  ``scoring.hps``), ``"imagereward"`` (``scoring.imagereward``); or a local copy of its weights,
  ``"aesthetic:/path/to/head.safetensors"``.

Every scorer follows the ``Scorer`` protocol (``scoring.base``); ``scorer_traits(name)`` says,
without loading weights, whether a scorer reads the text and whether its values only compare
images of the same prompt.

Each image gets two scores when variants are compared: against the **intent** (what the user
wants to see) and against its **own prompt**. Rank variants by the intent score: ranking by
their own prompts moves the target with every added word. The own-prompt score shows
whether the added words show up in the image.

    >>> from PIL import Image
    >>> scorer = load_scorer("tiny-clip")
    >>> [score] = scorer.score([Image.new("RGB", (64, 64), "red")], ["a red circle"])
    >>> 0 <= score.value <= 100, score.scorer
    (True, 'tiny-clip')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.device import choose_device, release_memory
from promptlab.errors import ScoringError
from promptlab.model_cache import ModelCache
from promptlab.scoring.aesthetic import AestheticScorer, aesthetic_head, load_aesthetic
from promptlab.scoring.base import Scorer, ScorerTraits, scorer_traits
from promptlab.scoring.builtin_clip import (
    BUILTIN_CLIP_MODELS,
    METADATA_MODEL,
    TINY_CLIP_CONFIG,
    BuiltinClip,
    builtin_clip_weights,
    register_builtin_clip,
    write_builtin_clip,
)
from promptlab.scoring.clip import (
    DEFAULT_BATCH_SIZE,
    TEXT_CACHE_SIZE,
    ClipScorer,
    ImageScores,
    Score,
    ScorerInfo,
    TermSuggestion,
    load_clip,
    seed_diversity,
    suggest_terms,
)
from promptlab.scoring.hps import HpsScorer, load_hps
from promptlab.scoring.imagereward import ImageRewardScorer, load_imagereward
from promptlab.scoring.micro_judge import JudgeScore, MicroJudgeScorer, judge_score
from promptlab.scoring.pickscore import PickScoreScorer, load_pickscore
from promptlab.scoring.published import PUBLISHED, HubFile, PublishedScorer, missing_from_cache, missing_message
from promptlab.scoring.spec import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    DEFAULT_SPEC,
    JUDGE_SPECS,
    WEIGHT_SUFFIXES,
    ScorerSpec,
    file_model,
    parse_scorer_spec,
)

if TYPE_CHECKING:
    from PIL.Image import Image


__all__ = [
    "aesthetic_head",
    "AestheticScorer",
    "BUILTIN_CLIP_MODELS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "DEFAULT_SPEC",
    "METADATA_MODEL",
    "SCORERS",
    "TEXT_CACHE_SIZE",
    "TINY_CLIP_CONFIG",
    "WEIGHT_SUFFIXES",
    "builtin_clip_weights",
    "BuiltinClip",
    "clear_scorers",
    "ClipScorer",
    "file_model",
    "FileScore",
    "HpsScorer",
    "HubFile",
    "ImageRewardScorer",
    "ImageScores",
    "JUDGE_SPECS",
    "judge_score",
    "JudgeScore",
    "load_aesthetic",
    "load_hps",
    "load_imagereward",
    "load_pickscore",
    "load_scorer",
    "loaded_scorers",
    "MicroJudgeScorer",
    "missing_from_cache",
    "missing_message",
    "open_image",
    "parse_scorer_spec",
    "PickScoreScorer",
    "PUBLISHED",
    "PublishedScorer",
    "register_builtin_clip",
    "Score",
    "score_files",
    "Scorer",
    "ScorerInfo",
    "ScorerSpec",
    "scorer_traits",
    "ScorerTraits",
    "seed_diversity",
    "suggest_terms",
    "TermSuggestion",
    "write_builtin_clip",
]


@dataclass(frozen=True)
class FileScore:
    """One image file's score, as ``promptlab score`` shows it."""

    image: str
    prompt: str
    scorer: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "prompt": self.prompt, "scorer": self.scorer, "value": self.value}


#: Scorer classes by kind (``ScorerSpec.kind``); each follows the ``Scorer`` protocol. ``_LOADERS``
#: builds each kind's from its spec (weights from the hub cache or a local file).
SCORERS: dict[str, type[Scorer]] = {
    "clip": ClipScorer,
    "micro-judge": MicroJudgeScorer,
    "aesthetic": AestheticScorer,
    "pickscore": PickScoreScorer,
    "hps": HpsScorer,
    "imagereward": ImageRewardScorer,
}


def _evicted(key: tuple[ScorerSpec, str]) -> None:
    release_memory(key[1])


#: Loaded scorers by (spec, device), least recently used first; bounded like the pipelines
#: (``promptlab.model_cache``), so scoring with many CLIP models holds only the last few.
_SCORERS: ModelCache[tuple[ScorerSpec, str], Scorer] = ModelCache("scorers", on_evict=_evicted)


_LOADERS: dict[str, Callable[[ScorerSpec, str], Scorer]] = {
    "clip": lambda spec, device: ClipScorer(spec, load_clip(spec.model, spec.pretrained, device), device),
    "micro-judge": MicroJudgeScorer,
    "aesthetic": load_aesthetic,
    "pickscore": load_pickscore,
    "hps": load_hps,
    "imagereward": load_imagereward,
}


def _load(spec: ScorerSpec, device: str) -> Scorer:
    return _LOADERS[spec.kind](spec, device)


def load_scorer(spec: str = DEFAULT_SPEC, *, device: str | None = None) -> Scorer:
    """The scorer for ``spec`` on ``device`` (default: cuda, else mps, else cpu); the last few loaded are kept."""
    parsed, chosen = parse_scorer_spec(spec), choose_device(device)
    return _SCORERS.get_or_load((parsed, chosen), lambda: _load(parsed, chosen))


def loaded_scorers() -> list[tuple[ScorerSpec, str]]:
    """The scorers held in memory now, least recently used first: (spec, device)."""
    return list(_SCORERS.keys())


def clear_scorers() -> None:
    """Forget every loaded scorer and give the accelerator's memory back."""
    _SCORERS.clear()


def open_image(path: Path | str) -> Image:
    """An image file as RGB; ScoringError names a file Pillow cannot read."""
    import warnings

    from PIL import Image as PILImage

    try:
        with warnings.catch_warnings():
            # Past Pillow's pixel limit an image is refused before it is decoded (Pillow only warns up to twice it).
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            opened = PILImage.open(path)
        with opened:
            return opened.convert("RGB")
    except (OSError, ValueError, PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as error:
        raise ScoringError(f"cannot read image {path}: {error}") from error


def score_files(
    paths: Sequence[Path | str], prompts: Sequence[str], scorer: Scorer, batch_size: int | None = None
) -> list[FileScore]:
    """Score image files against texts (one per file), reading one batch of files at a time."""
    if len(paths) != len(prompts):
        raise ScoringError(
            f"score_files: {len(paths)} images but {len(prompts)} prompts; give one prompt per image"
        )
    size = scorer.batch_size if batch_size is None else batch_size
    if size < 1:
        raise ScoringError(f"batch_size {size}: expected at least 1")
    results = []
    for start in range(0, len(paths), size):
        chunk = paths[start : start + size]
        images = [open_image(path) for path in chunk]
        scores = scorer.score(images, prompts[start : start + size], batch_size=size)
        results += [FileScore(str(p), s.text, s.scorer, s.value) for p, s in zip(chunk, scores)]
    return results
