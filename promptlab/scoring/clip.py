"""The CLIP scorer: CLIPScore of images against texts with open_clip, text embeddings cached, and what it offers beyond scores."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from promptlab.builtin import builtin_clip_dir
from promptlab.errors import ScoringError
from promptlab.hashing import file_sha256
from promptlab.scoring.builtin_clip import BUILTIN_CLIP_MODELS, builtin_clip_weights, register_builtin_clip
from promptlab.scoring.checks import check_images, check_pairs, check_texts
from promptlab.scoring.spec import ScorerSpec

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image


DEFAULT_BATCH_SIZE = 32


#: Text embeddings kept per scorer (least recently used ones go first).
TEXT_CACHE_SIZE = 4096


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
class LoadedClip:
    """An open_clip model with its image transform, tokenizer and (for a local file) weights hash."""

    model: Any
    preprocess: Any
    tokenizer: Any
    weights_sha256: str | None


def load_clip(model_name: str, pretrained: str | None, device: str) -> LoadedClip:
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
    return LoadedClip(model, preprocess, open_clip.get_tokenizer(model_name), sha)


class ClipScorer:
    """CLIPScore with one open_clip model: batched images, cached text embeddings."""

    reads_text: ClassVar[bool] = True
    #: CLIPScore is on one scale for every text (an image that shows the words scores high).
    within_prompt: ClassVar[bool] = False

    def __init__(
        self, spec: ScorerSpec, loaded: LoadedClip, device: str, batch_size: int = DEFAULT_BATCH_SIZE
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

    def embed_images(self, images: Sequence[Image], batch_size: int | None = None) -> torch.Tensor:
        """L2-normalised image embeddings, preprocessed and encoded in batches on the model's device."""
        import torch

        size = self.batch_size if batch_size is None else batch_size
        check_images(images, size)
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
        check_texts(images, texts)
        if not images:
            return []
        return self._scores(self.embed_images(images, batch_size), texts)

    def score_pairs(
        self, images: Sequence[Image], intents: Sequence[str], prompts: Sequence[str], batch_size: int | None = None
    ) -> list[ImageScores]:
        """Each image against its intent (rank by this) and its own plain-text prompt; images encoded once."""
        check_pairs(images, intents, prompts)
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


def _need_clip(scorer: object, what: str) -> None:
    if not isinstance(scorer, ClipScorer):
        name = getattr(getattr(scorer, "spec", None), "name", type(scorer).__name__)
        raise ScoringError(f"{what} needs a CLIP scorer's embeddings, and scorer {name!r} has none; use 'clip', 'micro-clip' or an open_clip 'NAME:TAG'")


def seed_diversity(scorer: ClipScorer, images: Sequence[Image]) -> float:
    """Mean pairwise (1 - cos) between images: how much a prompt's images vary across seeds."""
    _need_clip(scorer, "seed_diversity")
    if len(images) < 2:
        raise ScoringError(f"seed_diversity needs at least 2 images, got {len(images)}")
    matrix = scorer.image_similarity(images)
    n = len(matrix)
    total = sum(1 - matrix[i][j] for i in range(n) for j in range(i + 1, n))
    return total / (n * (n - 1) / 2)


def suggest_terms(scorer: ClipScorer, prompt: str, terms: Sequence[str], top: int = 10) -> list[TermSuggestion]:
    """The ``top`` terms closest to ``prompt`` by CLIP text similarity, best first."""
    _need_clip(scorer, "suggest_terms")
    if top < 1:
        raise ScoringError(f"suggest_terms: top={top}, expected at least 1")
    ranked = sorted(zip(terms, scorer.text_similarity(prompt, terms)), key=lambda pair: -pair[1])
    return [TermSuggestion(term, similarity) for term, similarity in ranked[:top]]
