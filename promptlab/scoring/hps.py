"""The ``hps-v2`` and ``hps-v2.1`` scorers: Human Preference Score v2, OpenCLIP ViT-H/14 fine-tuned on HPD v2 choices.

As the authors compute it (tgxs002/HPSv2, ``hpsv2/img_score.py``): the open_clip model ViT-H-14
with the checkpoint's ``state_dict`` loaded, images preprocessed by its *validation* transform
(``light_augmentation=True``: the longest side resized to 224, bicubic, and padded with black to a
square, no crop; CLIP's mean and std), text by open_clip's tokenizer (77 tokens), and::

    score = cos(E_image, E_text)       # about 0.2..0.35; no logit scale, no factor 100

The value only compares images scored against the **same** text, so variants are compared
within one seed and prompt (``within_prompt``). Published weights: ``HPS_v2_compressed.pt`` and
``HPS_v2.1_compressed.pt`` in ``xswu/HPSv2`` (``hps`` names v2.1, which the authors recommend);
a local copy: ``hps:/path/to/HPS_v2.1_compressed.pt`` (or a ``.safetensors`` of its state dict).
Scored in float32 (the authors score under CUDA autocast, in float16).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from promptlab.errors import ScoringError
from promptlab.hashing import file_sha256
from promptlab.scoring.clip import DEFAULT_BATCH_SIZE, ScorerInfo
from promptlab.scoring.paired import TextImageScorer
from promptlab.scoring.published import HPS_MODEL, HPS_PRETRAINED_CFG, PUBLISHED, hub_file, local_weights, read_state_dict
from promptlab.scoring.spec import ScorerSpec

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image


def hps_preprocess(image_size: int | tuple[int, int]) -> Any:
    """HPS v2's validation transform: longest side to ``image_size`` (bicubic), black padding to a square."""
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg = open_clip.get_pretrained_cfg(HPS_MODEL, HPS_PRETRAINED_CFG)
    return open_clip.image_transform(
        image_size,
        is_train=False,
        mean=cfg.get("mean") or OPENAI_DATASET_MEAN,
        std=cfg.get("std") or OPENAI_DATASET_STD,
        resize_mode="longest",
        interpolation="bicubic",
        fill_color=0,
    )


def load_hps_model(path: Path, spec: str, device: str, architecture: str = HPS_MODEL) -> Any:
    """An open_clip ``architecture`` built without weights, then given the checkpoint's state dict."""
    import open_clip

    state = read_state_dict(path, spec)
    state = state.get("state_dict", state)
    if all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    # Built on the device (its random initialisation is quick there), then overwritten by the checkpoint.
    model = open_clip.create_model(architecture, pretrained=None, device=device)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ScoringError(
            f"scorer {spec!r}: {path} does not fit open_clip {architecture}: {str(error).splitlines()[0]}"
        ) from error
    return model.to(device).eval()


class HpsScorer(TextImageScorer):
    """HPS v2/v2.1: cosine of the fine-tuned OpenCLIP image and text embeddings."""

    reads_text: ClassVar[bool] = True
    within_prompt: ClassVar[bool] = True

    def __init__(
        self,
        spec: ScorerSpec,
        model: Any,
        device: str,
        weights: str | None = None,
        weights_sha256: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        architecture: str = HPS_MODEL,
    ) -> None:
        import open_clip

        self.spec = spec
        self.model = model
        self.preprocess = hps_preprocess(model.visual.image_size)
        self.tokenizer = open_clip.get_tokenizer(architecture)
        self.device = device
        self.batch_size = batch_size
        self.info = ScorerInfo(spec.name, spec.model, weights, weights_sha256, device, self.tokenizer.context_length)

    def embed_images(self, images: Sequence[Image]) -> torch.Tensor:
        """Unit-norm image embeddings of one batch, through HPS's validation transform."""
        import torch

        pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        return self.model.encode_image(pixels, normalize=True).float()

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings, each distinct text encoded once."""
        import torch

        distinct = list(dict.fromkeys(texts))
        features = self.model.encode_text(self.tokenizer(distinct).to(self.device), normalize=True).float()
        rows = {text: index for index, text in enumerate(distinct)}
        return features[torch.tensor([rows[t] for t in texts], device=features.device)]

    def values(self, embedded: torch.Tensor, texts: Sequence[str]) -> list[float]:
        """HPS: the plain cosine of each unit-norm image embedding with its text's."""
        return (embedded * self.embed_texts(texts)).sum(dim=-1).tolist()


def load_hps(spec: ScorerSpec, device: str) -> HpsScorer:
    """HPS for ``spec``: the published checkpoint from the hub cache, or a local file (``hps:/path``)."""
    # 1. The checkpoint: a local file, or the version's published file from the hub cache.
    # A local file is identified by its sha256; a hub file by its repository and name.
    if spec.pretrained is not None:
        path = local_weights(spec.name, spec.pretrained)
        source, sha = spec.pretrained, file_sha256(path)
    else:
        published = PUBLISHED[spec.name]
        path = hub_file(spec.name, published, published.files[0])
        source, sha = f"{published.files[0].repo}/{published.files[0].filename}", None
    # 2. ViT-H-14 with its weights.
    model = load_hps_model(path, spec.name, device, spec.model)
    return HpsScorer(spec, model, device, source, sha, architecture=spec.model)
