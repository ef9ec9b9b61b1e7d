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
  file, so their sha256 identifies them.

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

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from promptlab.builtin import builtin_clip_dir
from promptlab.device import choose_device, release_memory
from promptlab.errors import ScoringError
from promptlab.hashing import file_sha256
from promptlab.model_cache import ModelCache
from promptlab.scoring.builtin_clip import (
    BUILTIN_CLIP_MODELS,
    METADATA_MODEL,
    TINY_CLIP_CONFIG,
    BuiltinClip,
    builtin_clip_weights,
    register_builtin_clip,
    write_builtin_clip,
)

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

__all__ = [
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
    "ImageScores",
    "load_scorer",
    "loaded_scorers",
    "open_image",
    "parse_scorer_spec",
    "register_builtin_clip",
    "Score",
    "score_files",
    "ScorerInfo",
    "ScorerSpec",
    "seed_diversity",
    "suggest_terms",
    "TermSuggestion",
    "write_builtin_clip",
]

DEFAULT_SPEC = "clip"
DEFAULT_MODEL = "ViT-L-14-quickgelu"
DEFAULT_PRETRAINED = "openai"
DEFAULT_BATCH_SIZE = 32
#: Text embeddings kept per scorer (least recently used ones go first).
TEXT_CACHE_SIZE = 4096
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class ScorerSpec:
    """A parsed scorer spec: the name its scores are stored under and what open_clip loads."""

    #: Stored as ``Score.scorer``: the spec in a canonical form (weights files as absolute paths).
    name: str
    #: An open_clip model name or a built-in's name.
    model: str
    #: A pretrained tag, an absolute weights file, or None for a built-in's own weights.
    pretrained: str | None
    #: The key of the scorer class in ``SCORERS``.
    kind: str = "clip"


@dataclass(frozen=True)
class ScorerInfo:
    """Exactly which model a scorer runs: open_clip name, pretrained tag or file, file hash."""

    scorer: str
    model: str
    pretrained: str | None
    weights_sha256: str | None
    device: str
    context_length: int


@dataclass(frozen=True)
class Score:
    """One image's score against one text, and the model that made it."""

    value: float
    text: str
    scorer: str
    model: str
    pretrained: str | None
    weights_sha256: str | None


@dataclass(frozen=True)
class ImageScores:
    """An image's score against the intent (for ranking) and against its own prompt."""

    intent: Score
    prompt: Score


class TermSuggestion(NamedTuple):
    """A vocabulary term and its CLIP text similarity to a prompt."""

    term: str
    similarity: float


@dataclass(frozen=True)
class FileScore:
    """One image file's score, as ``promptlab score`` shows it."""

    image: str
    prompt: str
    scorer: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "prompt": self.prompt, "scorer": self.scorer, "value": self.value}


def _spec_forms() -> str:
    builtins = ", ".join(f"'{name}'" for name in BUILTIN_CLIP_MODELS)
    return (
        "valid forms: 'clip' (ViT-L-14-quickgelu, OpenAI weights), 'NAME:PRETRAINED_TAG' "
        "(e.g. 'ViT-H-14:laion2b_s32b_b79k'), 'NAME:/path/to/weights.safetensors', "
        f"'/path/to/weights.safetensors' (a file that names its model), or a built-in: {builtins}"
    )


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(WEIGHT_SUFFIXES) or "/" in text or os.sep in text or text.startswith("~")


def _weights_file(spec: str, text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise ScoringError(f"scorer {spec!r}: weights file {path} does not exist")
    return path.resolve()


def file_model(path: Path) -> str | None:
    """The model a weights file names in its safetensors metadata, or None."""
    if path.suffix != ".safetensors":
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as error:  # noqa: BLE001 - safetensors raises its own untyped errors on bad headers
        raise ScoringError(f"cannot read weights file {path} as safetensors: {error}") from error
    return metadata.get(METADATA_MODEL)


def _activations(name: str, tag: str) -> tuple[bool, bool]:
    """Whether the tag's weights were trained with QuickGELU, and whether model ``name`` uses it."""
    import open_clip

    trained = bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))
    return trained, bool((open_clip.get_model_config(name) or {}).get("quick_gelu", False))


def _same_activation(name: str, tag: str) -> bool:
    trained, built = _activations(name, tag)
    return trained == built


def _check_quick_gelu(spec: str, name: str, tag: str) -> None:
    trained, built = _activations(name, tag)
    if trained == built:
        return
    import open_clip

    twin = f"{name}-quickgelu" if trained else name.removesuffix("-quickgelu")
    fix = f"use '{twin}:{tag}'" if twin in open_clip.list_models() else "give a local file for a matching model"
    act = {True: "QuickGELU", False: "GELU"}
    raise ScoringError(
        f"scorer {spec!r}: the {tag!r} weights were trained with {act[trained]} but {name} uses "
        f"{act[built]}, which gives wrong embeddings (open_clip only warns); {fix}"
    )


def parse_scorer_spec(spec: str) -> ScorerSpec:
    """Read a scorer spec (forms in the module docstring); ScoringError names a bad one."""
    import open_clip

    text = spec.strip()
    if not text:
        raise ScoringError(f"scorer spec is empty; {_spec_forms()}")
    if text == DEFAULT_SPEC:
        return ScorerSpec(DEFAULT_SPEC, DEFAULT_MODEL, DEFAULT_PRETRAINED)
    if text in BUILTIN_CLIP_MODELS:
        return ScorerSpec(text, text, None)
    name, sep, pretrained = text.partition(":")
    builtin = name in BUILTIN_CLIP_MODELS
    known = builtin or name in open_clip.list_models()
    if not known and _looks_like_path(text):
        path = _weights_file(spec, text)
        model = file_model(path)
        if model is None or not (model in BUILTIN_CLIP_MODELS or model in open_clip.list_models()):
            raise ScoringError(
                f"scorer {spec!r}: {path} does not name a known model in its safetensors metadata "
                f"({METADATA_MODEL}={model!r}); give the model too: 'NAME:{path}' with NAME from "
                "open_clip.list_models()"
            )
        return ScorerSpec(f"{model}:{path}", model, str(path))
    if not known:
        raise ScoringError(
            f"scorer {spec!r}: {name!r} is not an open_clip model (open_clip.list_models()) "
            f"nor a built-in; {_spec_forms()}"
        )
    tags = [tag for tag in open_clip.list_pretrained_tags_by_model(name) if _same_activation(name, tag)]
    if sep and not pretrained:
        raise ScoringError(f"scorer {spec!r}: nothing after ':'; {_spec_forms()}")
    if not pretrained:
        choices = f"'{name}:TAG' with one of its tags ({', '.join(tags)}) or " if tags else ""
        raise ScoringError(
            f"scorer {spec!r}: name {name}'s weights too: {choices}a local file, '{name}:/path/to/weights.safetensors'"
        )
    if _looks_like_path(pretrained):
        path = _weights_file(spec, pretrained)
        return ScorerSpec(f"{name}:{path}", name, str(path))
    if builtin:
        raise ScoringError(
            f"scorer {spec!r}: built-in {name} has no pretrained tags; use '{name}' or '{name}:/path/to/weights.safetensors'"
        )
    if pretrained not in open_clip.list_pretrained_tags_by_model(name):
        raise ScoringError(
            f"scorer {spec!r}: {name} has no pretrained tag {pretrained!r}; its tags: {', '.join(tags) or 'none'} "
            f"(or give a local file, '{name}:/path/to/weights.safetensors')"
        )
    _check_quick_gelu(spec, name, pretrained)
    return ScorerSpec(f"{name}:{pretrained}", name, pretrained)


@dataclass(frozen=True)
class _LoadedClip:
    model: Any
    preprocess: Any
    tokenizer: Any
    weights_sha256: str | None


def _load_clip(model_name: str, pretrained: str | None, device: str) -> _LoadedClip:
    """An open_clip model with its weights on ``device`` (``load_scorer`` keeps the last few loaded)."""
    import open_clip

    if model_name in BUILTIN_CLIP_MODELS:
        # The built-in's architecture, registered with open_clip, loads its own file or another.
        register_builtin_clip(model_name, builtin_clip_dir(model_name))
        pretrained = pretrained or str(builtin_clip_weights(model_name))
    is_file = Path(pretrained).is_file() if pretrained else False
    sha = file_sha256(Path(pretrained)) if pretrained and is_file else None
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained, device=device)
    except Exception as error:  # noqa: BLE001 - hub, network and checkpoint failures come in many types
        detail = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if is_file:
            raise ScoringError(
                f"cannot load weights file {pretrained} into open_clip model {model_name}: {detail}"
            ) from error
        hub = open_clip.get_pretrained_cfg(model_name, pretrained or "").get("hf_hub", "the Hugging Face hub")
        raise ScoringError(
            f"cannot load CLIP model {model_name} with pretrained weights {pretrained!r} ({hub}): {detail}. "
            "Offline? Download the weights once on a machine with network (open_clip caches them under "
            f"HF_HOME; HF_HUB_OFFLINE=1 skips the network), or point at a local file: "
            f"'{model_name}:/path/to/open_clip_model.safetensors'"
        ) from error
    model.eval()
    return _LoadedClip(model, preprocess, open_clip.get_tokenizer(model_name), sha)


class ClipScorer:
    """CLIPScore with one open_clip model: batched images, cached text embeddings."""

    def __init__(
        self, spec: ScorerSpec, loaded: _LoadedClip, device: str, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        self.spec = spec
        self.model = loaded.model
        self.preprocess = loaded.preprocess
        self.tokenizer = loaded.tokenizer
        self.device = device
        self.batch_size = batch_size
        self.info = ScorerInfo(
            spec.name, spec.model, spec.pretrained, loaded.weights_sha256, device, loaded.tokenizer.context_length
        )
        self._texts: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def _check_images(self, images: Sequence[Image], batch_size: int) -> None:
        from PIL.Image import Image as PILImage

        if batch_size < 1:
            raise ScoringError(f"batch_size {batch_size}: expected at least 1")
        for index, image in enumerate(images):
            if not isinstance(image, PILImage):
                raise ScoringError(f"image {index}: expected a PIL image, got {type(image).__name__}")

    def embed_images(self, images: Sequence[Image], batch_size: int | None = None) -> torch.Tensor:
        """L2-normalised image embeddings, preprocessed and encoded in batches on the model's device."""
        import torch

        size = self.batch_size if batch_size is None else batch_size
        self._check_images(images, size)
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), size):
                chunk = images[start : start + size]
                pixels = torch.stack([self.preprocess(im) for im in chunk]).to(self.device)
                features = self.model.encode_image(pixels).float()
                out.append(features / features.norm(dim=-1, keepdim=True))
        return torch.cat(out) if out else torch.empty(0, 0)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings; each distinct text is encoded once (LRU cache)."""
        import torch

        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ScoringError(f"text {index}: expected a string, got {type(text).__name__}")
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._texts))
            with torch.inference_mode():
                for start in range(0, len(missing), self.batch_size):
                    chunk = missing[start : start + self.batch_size]
                    # open_clip's tokenizer cuts at the context length and keeps the end token there
                    # (torchmetrics slices token ids instead, losing the token CLIP pools at).
                    tokens = self.tokenizer(chunk).to(self.device)
                    features = self.model.encode_text(tokens).float()
                    for text, row in zip(chunk, features / features.norm(dim=-1, keepdim=True)):
                        self._texts[text] = row
            for text in texts:
                self._texts.move_to_end(text)
            embedded = torch.stack([self._texts[t] for t in texts]) if texts else torch.empty(0, 0)
            while len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
            return embedded

    def _scores(self, image_emb: torch.Tensor, texts: Sequence[str]) -> list[Score]:
        import torch

        with torch.inference_mode():
            text_emb = self.embed_texts(texts).to(image_emb.device)
            # Clamped per image, as Hessel et al. define it (torchmetrics clamps the batch mean).
            values = 100 * (image_emb * text_emb).sum(dim=-1).clamp(min=0)
        i = self.info
        return [
            Score(float(v), t, i.scorer, i.model, i.pretrained, i.weights_sha256) for v, t in zip(values.tolist(), texts)
        ]

    def score(self, images: Sequence[Image], texts: Sequence[str], batch_size: int | None = None) -> list[Score]:
        """CLIPScore of each image against its text (one text per image), each in 0..100."""
        if len(images) != len(texts):
            raise ScoringError(f"score: {len(images)} images but {len(texts)} texts; give one text per image")
        if not images:
            return []
        return self._scores(self.embed_images(images, batch_size), texts)

    def score_pairs(
        self, images: Sequence[Image], intents: Sequence[str], prompts: Sequence[str], batch_size: int | None = None
    ) -> list[ImageScores]:
        """Each image against its intent (rank by this) and its own plain-text prompt; images encoded once."""
        if not len(images) == len(intents) == len(prompts):
            raise ScoringError(
                f"score_pairs: {len(images)} images, {len(intents)} intents and {len(prompts)} prompts; "
                "give one intent and one prompt per image"
            )
        if not images:
            return []
        image_emb = self.embed_images(images, batch_size)
        return [ImageScores(a, b) for a, b in zip(self._scores(image_emb, intents), self._scores(image_emb, prompts))]

    def text_similarity(self, query: str, candidates: Sequence[str]) -> list[float]:
        """Cosine similarity of ``query`` to each candidate text (-1..1), for related-term suggestions."""
        if not candidates:
            return []
        emb = self.embed_texts([query, *candidates])
        return (emb[1:] @ emb[0]).tolist()

    def image_similarity(self, images: Sequence[Image], batch_size: int | None = None) -> list[list[float]]:
        """The matrix of cosine similarities between images (1.0 on the diagonal)."""
        if not images:
            return []
        emb = self.embed_images(images, batch_size)
        return (emb @ emb.T).tolist()


def seed_diversity(scorer: ClipScorer, images: Sequence[Image]) -> float:
    """Mean pairwise (1 - cos) between images: how much a prompt's images vary across seeds."""
    if len(images) < 2:
        raise ScoringError(f"seed_diversity needs at least 2 images, got {len(images)}")
    matrix = scorer.image_similarity(images)
    n = len(matrix)
    total = sum(1 - matrix[i][j] for i in range(n) for j in range(i + 1, n))
    return total / (n * (n - 1) / 2)


def suggest_terms(scorer: ClipScorer, prompt: str, terms: Sequence[str], top: int = 10) -> list[TermSuggestion]:
    """The ``top`` terms closest to ``prompt`` by CLIP text similarity, best first."""
    if top < 1:
        raise ScoringError(f"suggest_terms: top={top}, expected at least 1")
    ranked = sorted(zip(terms, scorer.text_similarity(prompt, terms)), key=lambda pair: -pair[1])
    return [TermSuggestion(term, similarity) for term, similarity in ranked[:top]]


#: Scorer classes by kind (``ScorerSpec.kind``); each scores PIL images against texts.
SCORERS: dict[str, type[ClipScorer]] = {"clip": ClipScorer}


def _evicted(key: tuple[ScorerSpec, str]) -> None:
    release_memory(key[1])


#: Loaded scorers by (spec, device), least recently used first; bounded like the pipelines
#: (``promptlab.model_cache``), so scoring with many CLIP models holds only the last few.
_SCORERS: ModelCache[tuple[ScorerSpec, str], ClipScorer] = ModelCache("scorers", on_evict=_evicted)


def _load(spec: ScorerSpec, device: str) -> ClipScorer:
    return SCORERS[spec.kind](spec, _load_clip(spec.model, spec.pretrained, device), device)


def load_scorer(spec: str = DEFAULT_SPEC, *, device: str | None = None) -> ClipScorer:
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
    paths: Sequence[Path | str], prompts: Sequence[str], scorer: ClipScorer, batch_size: int | None = None
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
