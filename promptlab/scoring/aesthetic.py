"""The ``aesthetic`` scorer: the LAION improved aesthetic predictor, an MLP on CLIP ViT-L/14 image embeddings.

Schuhmann's predictor (christophschuhmann/improved-aesthetic-predictor, ``simple_inference.py``)
preprocesses an image as OpenAI's CLIP does (bicubic resize of the short side to 224, centre crop,
CLIP's mean and std), encodes it with ViT-L/14 (OpenAI's weights), **L2-normalises** the embedding
and feeds it to five linear layers without activations (768 -> 1024 -> 128 -> 64 -> 16 -> 1; the
dropouts between them act only in training)::

    score = MLP(E_image / |E_image|)        # about 1..10: the mean rating people would give the image

The normalisation is the step its users skip, and without it the head's output is off its scale.
The text is not read: each ``Score.text`` is "" and ``score_pairs`` gives the intent and the
prompt the same value. Weights: ``sac+logos+ava1-l14-linearMSE.pth`` (``PUBLISHED["aesthetic"]``),
or ``aesthetic:/path/to/head.safetensors`` (or ``.pth``) for a local copy of the head; the CLIP
model is open_clip's ``ViT-L-14-quickgelu:openai``, as the ``clip`` scorer loads it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from promptlab.errors import ScoringError
from promptlab.hashing import file_sha256
from promptlab.scoring.checks import check_images, check_pairs, check_texts
from promptlab.scoring.clip import DEFAULT_BATCH_SIZE, ImageScores, LoadedClip, Score, ScorerInfo, load_clip
from promptlab.scoring.published import (
    AESTHETIC_CLIP,
    PUBLISHED,
    hub_file,
    hub_offline,
    local_weights,
    missing_message,
    read_state_dict,
)
from promptlab.scoring.spec import ScorerSpec

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image


def aesthetic_head(input_size: int = 768) -> torch.nn.Module:
    """The predictor's MLP, its parameters named as in the published state dict (``layers.0.weight``, ...)."""
    from torch import nn

    layers = nn.Sequential(
        nn.Linear(input_size, 1024),
        nn.Dropout(0.2),
        nn.Linear(1024, 128),
        nn.Dropout(0.2),
        nn.Linear(128, 64),
        nn.Dropout(0.1),
        nn.Linear(64, 16),
        nn.Linear(16, 1),
    )
    return nn.Sequential(OrderedDict(layers=layers))


def load_aesthetic_head(path: Path, spec: str) -> torch.nn.Module:
    """The head from a state-dict file (safetensors or a plain pickle, read without running code)."""
    state = read_state_dict(path, spec)
    first = state.get("layers.0.weight")
    if first is None or first.ndim != 2:
        raise ScoringError(
            f"scorer {spec!r}: {path} is not the aesthetic predictor's head (no 2-d 'layers.0.weight'; "
            f"its keys start {', '.join(list(state)[:3]) or 'nothing'})"
        )
    head = aesthetic_head(first.shape[1])
    try:
        head.load_state_dict(state)
    except RuntimeError as error:
        raise ScoringError(f"scorer {spec!r}: {path} does not fit the aesthetic head: {str(error).splitlines()[0]}") from error
    return head.eval()


class AestheticScorer:
    """The LAION aesthetic predictor: unit-norm CLIP image embeddings through its MLP head."""

    reads_text: ClassVar[bool] = False
    within_prompt: ClassVar[bool] = False

    def __init__(
        self,
        spec: ScorerSpec,
        clip: LoadedClip,
        head: torch.nn.Module,
        device: str,
        weights: str | None = None,
        weights_sha256: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        embedding = int(clip.model.visual.output_dim)
        if head[0][0].in_features != embedding:
            raise ScoringError(
                f"scorer {spec.name!r}: the head reads {head[0][0].in_features}-d embeddings but {spec.model} "
                f"gives {embedding}-d ones; the published head is for CLIP ViT-L/14 (768)"
            )
        self.spec = spec
        self.model = clip.model
        self.preprocess = clip.preprocess
        self.head = head.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        # The text is never read, so the context length is 0, like the micro judge's.
        self.info = ScorerInfo(spec.name, spec.model, weights, weights_sha256, device, 0)

    def predict(self, images: Sequence[Image], batch_size: int | None = None) -> list[float]:
        """Each image's predicted aesthetic rating (about 1..10)."""
        import torch

        size = self.batch_size if batch_size is None else batch_size
        check_images(images, size)
        values: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(images), size):
                pixels = torch.stack([self.preprocess(im) for im in images[start : start + size]]).to(self.device)
                features = self.model.encode_image(pixels).float()
                # The head was trained on unit-norm embeddings (the authors' ``normalized``; a zero vector stays 0).
                norms = features.norm(dim=-1, keepdim=True)
                unit = features / torch.where(norms == 0, torch.ones_like(norms), norms)
                values += self.head(unit).squeeze(-1).tolist()
        return values

    def score(self, images: Sequence[Image], texts: Sequence[str], batch_size: int | None = None) -> list[Score]:
        """Each image's aesthetic rating; ``texts`` (one per image) are checked but not read."""
        check_texts(images, texts)
        i = self.info
        return [Score(v, "", i.scorer, i.model, i.pretrained, i.weights_sha256) for v in self.predict(images, batch_size)]

    def score_pairs(
        self, images: Sequence[Image], intents: Sequence[str], prompts: Sequence[str], batch_size: int | None = None
    ) -> list[ImageScores]:
        """The same rating twice per image (intent and prompt): the predictor does not read text."""
        check_pairs(images, intents, prompts)
        scores = self.score(images, [""] * len(images), batch_size)
        return [ImageScores(score, score) for score in scores]


def load_aesthetic(spec: ScorerSpec, device: str) -> AestheticScorer:
    """The aesthetic scorer for ``spec``: its head from the hub cache or a local file, CLIP ViT-L/14 through open_clip."""
    # 1. The head's weights: a local file, or the published one from the hub cache.
    # A local file is identified by its sha256; a hub file by its repository and name.
    if spec.pretrained is not None:
        path = local_weights(spec.name, spec.pretrained)
        source, sha = spec.pretrained, file_sha256(path)
    else:
        published = PUBLISHED["aesthetic"]
        path = hub_file(spec.name, published, published.files[0])
        source, sha = f"{published.files[0].repo}/{published.files[0].filename}", None
    head = load_aesthetic_head(path, spec.name)
    # 2. The CLIP model it reads embeddings from (offline and absent: say so in the aesthetic scorer's terms).
    try:
        clip = load_clip(*AESTHETIC_CLIP, device)
    except ScoringError as error:
        if not hub_offline():
            raise
        published = PUBLISHED["aesthetic"]
        raise ScoringError(missing_message(spec.name, published, published.files[1], "HF_HUB_OFFLINE=1 keeps the network off")) from error
    return AestheticScorer(spec, clip, head, device, source, sha)
