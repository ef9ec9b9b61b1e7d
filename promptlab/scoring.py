"""CLIP scores: how well each image matches a text, with open_clip.

The ``clip`` scorer computes CLIPScore (Hessel et al. 2021, "CLIPScore: A Reference-free
Evaluation Metric for Image Captioning", EMNLP; also torchmetrics' ``CLIPScore``)::

    score = 100 * max(cos(E_image, E_text), 0)

with both embeddings L2-normalised. Two deliberate differences from torchmetrics: the clamp
at 0 is applied per image, as in the paper (torchmetrics clamps the batch mean), and texts
past CLIP's 77-token context are cut by open_clip's own tokenizer, which keeps the end token
(torchmetrics' truncation drops it, which lowers scores of long prompts).

The default model is ViT-L/14 with OpenAI's weights, the CLIPScore standard, loaded as
``ViT-L-14-quickgelu`` because those weights were trained with QuickGELU (plain ``ViT-L-14``
only warns about the mismatch). Stronger alternatives: ``ViT-H-14:laion2b_s32b_b79k`` and
``ViT-bigG-14:laion2b_s39b_b160k``. A scorer spec is one of:

- ``"clip"``: the default model;
- ``"NAME:PRETRAINED_TAG"`` (``"ViT-B-32:openai"``) or ``"NAME"`` (its first pretrained tag);
- ``"NAME:/path/to/weights.safetensors"``: a local checkpoint for an open_clip architecture;
- a built-in tiny model: ``"tiny-clip"`` (random weights, for tests and the demo).

Each image gets two scores when variants are compared: against the **intent** (what the user
wants to see) and against its **own prompt**. Ranking variants by their own prompts moves the
target with every added word, so rankings use the intent score; the own-prompt score shows
whether the added words show up in the image.

    >>> scorer = load_scorer("tiny-clip")
    >>> [s.value for s in scorer.score(images, ["a red circle"] * len(images))]
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.errors import ScoringError
from promptlab.paths import cache_dir

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

DEFAULT_MODEL = "ViT-L-14-quickgelu"
DEFAULT_PRETRAINED = "openai"
DEFAULT_BATCH_SIZE = 32
TEXT_CACHE_SIZE = 4096
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

#: A tiny CLIP with open_clip's text tower and tokenizer, for tests and the demo (random weights).
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def _build_tiny_clip(folder: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from open_clip.model import CLIP

    torch.manual_seed(0)
    model = CLIP(**TINY_CLIP_CONFIG)
    # Random towers give cosines around 0, which the clamp turns into 0 for most pairs; a shared
    # projection and a shared final-norm offset put scores in a readable range, still random.
    with torch.no_grad():
        model.visual.proj.copy_(model.text_projection)
        offset = torch.randn(model.ln_final.bias.shape) * 0.6
        model.ln_final.bias.copy_(offset)
        model.visual.ln_post.bias.copy_(offset)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    config = {"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))


#: Built-in CLIP models: name -> builder writing an open_clip ``local-dir`` folder.
BUILTIN_CLIP_MODELS: dict[str, Callable[[Path], None]] = {"tiny-clip": _build_tiny_clip}


@dataclass(frozen=True)
class ScorerInfo:
    """Exactly which model a score came from: open_clip name, pretrained tag or file, file hash."""

    scorer: str
    model: str
    pretrained: str | None
    weights_sha256: str | None
    device: str


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
    """An image's score against the intent and against its own prompt."""

    intent: Score
    prompt: Score


@dataclass(frozen=True)
class FileScore:
    """What ``promptlab score`` prints for one image file."""

    image: str
    prompt: str
    scorer: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "prompt": self.prompt, "scorer": self.scorer, "value": self.value}


def builtin_clip_folder(name: str) -> Path:
    """The folder of a built-in CLIP model, built on first use (atomically, safe across processes)."""
    if name not in BUILTIN_CLIP_MODELS:
        raise ScoringError(f"unknown built-in CLIP model {name!r}; built-in: {', '.join(BUILTIN_CLIP_MODELS)}")
    folder = cache_dir() / "clip" / name
    if (folder / "open_clip_config.json").is_file():
        return folder
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder.parent))
    BUILTIN_CLIP_MODELS[name](temp)
    try:
        temp.rename(folder)
    except OSError:
        # Another process finished first: its folder is identical.
        import shutil

        shutil.rmtree(temp, ignore_errors=True)
    return folder


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ScorerSpec:
    """A parsed scorer spec: what to hand open_clip."""

    name: str
    model: str
    pretrained: str | None
    local_dir: Path | None = None


def parse_scorer_spec(spec: str) -> ScorerSpec:
    """Read a scorer spec (see the module docstring); ScoringError names a spec of no known form."""
    import open_clip

    text = spec.strip()
    if not text:
        raise ScoringError("scorer spec is empty: use 'clip', 'NAME:PRETRAINED_TAG', 'NAME:/path/to/weights' or 'tiny-clip'")
    if text in BUILTIN_CLIP_MODELS:
        return ScorerSpec(text, text, None, builtin_clip_folder(text))
    if text == "clip":
        return ScorerSpec("clip", DEFAULT_MODEL, DEFAULT_PRETRAINED)
    name, sep, pretrained = text.partition(":")
    if name not in open_clip.list_models():
        raise ScoringError(
            f"scorer {spec!r}: {name!r} is not an open_clip model; use 'clip', a built-in "
            f"({', '.join(BUILTIN_CLIP_MODELS)}), or NAME[:PRETRAINED_TAG] with NAME from open_clip.list_models()"
        )
    if not sep:
        tags = open_clip.list_pretrained_tags_by_model(name)
        if not tags:
            raise ScoringError(f"scorer {spec!r}: open_clip knows no pretrained weights for {name}; add :/path/to/weights")
        pretrained = tags[0]
    if pretrained.endswith(_WEIGHT_SUFFIXES) or os.sep in pretrained:
        if not Path(pretrained).expanduser().is_file():
            raise ScoringError(f"scorer {spec!r}: weights file {pretrained} does not exist")
        pretrained = str(Path(pretrained).expanduser().resolve())
    elif pretrained not in open_clip.list_pretrained_tags_by_model(name):
        known = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise ScoringError(f"scorer {spec!r}: {name} has no pretrained tag {pretrained!r}; known tags: {known}")
    return ScorerSpec(text, name, pretrained)


def choose_device(requested: str | None = None) -> str:
    import torch

    if requested:
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class ClipScorer:
    """CLIPScore with one open_clip model: batched images, cached text embeddings."""

    def __init__(self, spec: ScorerSpec, model: Any, preprocess: Any, tokenizer: Any, device: str, weights_sha256: str | None) -> None:
        self.spec = spec
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.info = ScorerInfo(spec.name, spec.model, spec.pretrained, weights_sha256, device)
        self._texts: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()

    def _score(self, value: float, text: str) -> Score:
        i = self.info
        return Score(value, text, i.scorer, i.model, i.pretrained, i.weights_sha256)

    def embed_images(self, images: Sequence[Image], batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
        """L2-normalised image embeddings, computed in batches on the model's device."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size]
                pixels = torch.stack([self.preprocess(im.convert("RGB")) for im in chunk]).to(self.device)
                features = self.model.encode_image(pixels).float()
                out.append(features / features.norm(dim=-1, keepdim=True))
        return torch.cat(out) if out else torch.empty(0)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings; each distinct text is encoded once (LRU cache)."""
        import torch

        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._texts))
            if missing:
                with torch.inference_mode():
                    tokens = self.tokenizer(missing).to(self.device)
                    features = self.model.encode_text(tokens).float()
                    features = features / features.norm(dim=-1, keepdim=True)
                for text, row in zip(missing, features):
                    self._texts[text] = row
            for text in texts:
                self._texts.move_to_end(text)
            embedded = torch.stack([self._texts[t] for t in texts])
            while len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
            return embedded

    def score(self, images: Sequence[Image], texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> list[Score]:
        """CLIPScore of each image against its text (one text per image), each in 0..100."""
        if len(images) != len(texts):
            raise ScoringError(f"score: {len(images)} images but {len(texts)} texts; give one text per image")
        if not images:
            return []
        image_emb = self.embed_images(images, batch_size)
        text_emb = self.embed_texts(texts)
        cosines = (image_emb * text_emb).sum(dim=-1).clamp(min=0) * 100
        return [self._score(float(v), t) for v, t in zip(cosines.tolist(), texts)]

    def score_pairs(self, images: Sequence[Image], intents: Sequence[str], prompts: Sequence[str]) -> list[ImageScores]:
        """Each image against its intent and against its own prompt (plain text)."""
        intent = self.score(images, intents)
        prompt = self.score(images, prompts)
        return [ImageScores(a, b) for a, b in zip(intent, prompt)]

    def text_similarity(self, query: str, candidates: Sequence[str]) -> list[float]:
        """Cosine similarity of ``query`` to each candidate text (for related-term suggestions)."""
        if not candidates:
            return []
        emb = self.embed_texts([query, *candidates])
        return (emb[1:] @ emb[0]).tolist()

    def image_similarity(self, images: Sequence[Image]) -> list[list[float]]:
        """The matrix of cosine similarities between images."""
        emb = self.embed_images(images)
        return (emb @ emb.T).tolist()


def seed_diversity(scorer: ClipScorer, images: Sequence[Image]) -> float:
    """Mean pairwise (1 - cos) between images: how much a prompt's images vary across seeds."""
    if len(images) < 2:
        raise ScoringError(f"seed_diversity needs at least 2 images, got {len(images)}")
    matrix = scorer.image_similarity(images)
    n = len(matrix)
    total = sum(1 - matrix[i][j] for i in range(n) for j in range(i + 1, n))
    return total / (n * (n - 1) / 2)


def suggest_terms(scorer: ClipScorer, prompt: str, terms: Sequence[str], top: int = 10) -> list[tuple[str, float]]:
    """The ``top`` terms closest to ``prompt`` by CLIP text similarity, best first."""
    sims = scorer.text_similarity(prompt, terms)
    return sorted(zip(terms, sims), key=lambda pair: -pair[1])[:top]


@lru_cache(maxsize=4)
def _load(spec_text: str, device: str) -> ClipScorer:
    import open_clip

    spec = parse_scorer_spec(spec_text)
    if spec.local_dir is not None:
        name = f"local-dir:{spec.local_dir}"
        weights = spec.local_dir / "open_clip_model.safetensors"
        model, _, preprocess = open_clip.create_model_and_transforms(name, device=device)
        tokenizer = open_clip.get_tokenizer(name)
        sha = file_sha256(weights)
    else:
        sha = file_sha256(Path(spec.pretrained)) if spec.pretrained and Path(spec.pretrained).is_file() else None
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.model, pretrained=spec.pretrained, device=device
            )
        except Exception as error:  # noqa: BLE001 - hub/network failures come in many types
            raise ScoringError(
                f"cannot load CLIP model {spec.model} with pretrained {spec.pretrained!r}: "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. Offline? Download the "
                f"weights once elsewhere and point at the file: scorer = \"{spec.model}:/path/to/open_clip_model.safetensors\""
            ) from error
        tokenizer = open_clip.get_tokenizer(spec.model)
    model.eval()
    return ClipScorer(spec, model, preprocess, tokenizer, device, sha)


def load_scorer(spec: str = "clip", *, device: str | None = None) -> ClipScorer:
    """The scorer for ``spec``, loaded once per process and device."""
    return _load(spec.strip(), choose_device(device))


def score_files(paths: Sequence[Path], prompts: Sequence[str], scorer: ClipScorer) -> list[FileScore]:
    """Score image files against texts (one per file); an unreadable file raises ScoringError naming it."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    images = []
    for path in paths:
        try:
            with PILImage.open(path) as opened:
                images.append(opened.convert("RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise ScoringError(f"cannot read image {path}: {error}") from error
    scores = scorer.score(images, list(prompts))
    return [FileScore(str(p), s.text, scorer.info.scorer, s.value) for p, s in zip(paths, scores)]


#: Scorers by name: each builds a ClipScorer from a spec string.
SCORERS: dict[str, Callable[..., ClipScorer]] = {"clip": load_scorer}
