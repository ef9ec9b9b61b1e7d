"""The ``imagereward`` scorer: ImageReward v1.0, BLIP fine-tuned on which of a prompt's images people preferred.

As the authors compute it (THUDM/ImageReward, ``ImageReward/ImageReward.py``, ``score``): the
image preprocessed as OpenAI's CLIP does (bicubic resize of the short side to 224, centre crop,
CLIP's mean and std) and encoded by BLIP's ViT-L/16 (all its tokens); the prompt tokenized by
``bert-base-uncased`` (padded and cut to 35 tokens) and read by BLIP's BERT text encoder, which
cross-attends to the image tokens in every layer; its first token's state through an MLP
(768 -> 1024 -> 128 -> 64 -> 16 -> 1, the aesthetic predictor's shape), then normalised by the
mean and standard deviation the authors published::

    score = (MLP(BERT(prompt | ViT(image))[CLS]) - 0.16717362830052426) / 1.0333394966054072

about -2..2, 0 for an average image of the authors' data. The package ``image-reward`` pins old
versions of our dependencies, so the forward pass is rebuilt here on transformers' BLIP classes,
which are ported from the same BLIP code: ``BlipVisionModel`` (LayerNorm eps 1e-6, as BLIP's
ViT) and ``BlipTextModel`` without pooler, called as an encoder (``is_decoder=False``:
bidirectional self-attention, as BLIP's ``mode='multimodal'``). The checkpoint's keys are renamed
by ``blip_to_transformers``; keys the score does not use (``vision_proj``, ``text_proj``) are left
out, and a key the score needs that the checkpoint lacks is an error, not a random weight.

The value compares images scored against the **same** text (``within_prompt``). Weights:
``THUDM/ImageReward`` (``ImageReward.pt``, ``med_config.json``) and the ``bert-base-uncased``
tokenizer; a local copy is a folder, ``imagereward:/path/to/folder``, holding ``ImageReward.pt``
(or ``ImageReward.safetensors``), ``med_config.json`` and, unless the hub's is cached, ``vocab.txt``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from promptlab.errors import ScoringError
from promptlab.hashing import file_sha256
from promptlab.scoring.aesthetic import aesthetic_head
from promptlab.scoring.clip import DEFAULT_BATCH_SIZE, ScorerInfo
from promptlab.scoring.paired import TextImageScorer
from promptlab.scoring.published import (
    IMAGEREWARD_TOKENIZER,
    PUBLISHED,
    hub_file,
    hub_folder,
    local_weights,
    read_state_dict,
)
from promptlab.scoring.spec import ScorerSpec

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

#: The published normalisation of the MLP's output (``ImageReward.mean`` and ``.std``).
MEAN, STD = 0.16717362830052426, 1.0333394966054072

#: The tokens of a prompt ImageReward reads, padded to this length as the authors do.
MAX_LENGTH = 35

#: BLIP's ViT-L/16 at 224 px (``create_vit('large', 224)``), in transformers' ``BlipVisionConfig`` terms.
VIT_LARGE: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 16,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-6,
}

WEIGHTS_NAMES = ("ImageReward.pt", "ImageReward.safetensors")

# BLIP ViT names -> transformers BlipVisionModel names (BLIP's conversion to transformers renames the same way).
_VISION_KEYS: tuple[tuple[str, str], ...] = (
    (r"^cls_token$", "embeddings.class_embedding"),
    (r"^pos_embed$", "embeddings.position_embedding"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embedding."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.attn\.qkv\.", r"encoder.layers.\1.self_attn.qkv."),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"encoder.layers.\1.self_attn.projection."),
    (r"^blocks\.(\d+)\.mlp\.", r"encoder.layers.\1.mlp."),
    (r"^norm\.", "post_layernorm."),
)


@dataclass(frozen=True)
class ImageRewardParts:
    """ImageReward's three parts: BLIP's image encoder, its image-grounded text encoder, the MLP head."""

    vision: Any
    text: Any
    head: Any


def blip_to_transformers(state: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The checkpoint's ``blip.visual_encoder.*``, ``blip.text_encoder.*`` and ``mlp.*`` tensors under
    transformers' names (vision, text, head); other keys are left out."""
    vision, text, head = {}, {}, {}
    for key, value in state.items():
        if key.startswith("blip.visual_encoder."):
            name = key.removeprefix("blip.visual_encoder.")
            for pattern, replacement in _VISION_KEYS:
                if re.search(pattern, name):
                    vision[re.sub(pattern, replacement, name)] = value
                    break
        elif key.startswith("blip.text_encoder."):
            text[key.removeprefix("blip.text_encoder.")] = value
        elif key.startswith("mlp."):
            head[key.removeprefix("mlp.")] = value
    return vision, text, head


def build_parts(med_config: dict[str, Any], vision: dict[str, Any] | None = None) -> ImageRewardParts:
    """ImageReward's parts with random weights: BLIP's ViT (``VIT_LARGE`` unless given) and the BERT that ``med_config`` describes."""
    from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

    vision_config = BlipVisionConfig(**(vision or VIT_LARGE))
    text_config = BlipTextConfig(
        vocab_size=med_config["vocab_size"],
        hidden_size=med_config["hidden_size"],
        intermediate_size=med_config["intermediate_size"],
        num_hidden_layers=med_config["num_hidden_layers"],
        num_attention_heads=med_config["num_attention_heads"],
        max_position_embeddings=med_config["max_position_embeddings"],
        hidden_act=med_config.get("hidden_act", "gelu"),
        layer_norm_eps=med_config.get("layer_norm_eps", 1e-12),
        pad_token_id=med_config.get("pad_token_id", 0),
        # BLIP sets the text encoder's encoder_width to the ViT's width; is_decoder builds the cross-attention.
        encoder_hidden_size=vision_config.hidden_size,
        is_decoder=True,
        # Generation's special tokens: no part of scoring (and out of a small test vocabulary).
        bos_token_id=None,
        eos_token_id=None,
        sep_token_id=None,
    )
    return ImageRewardParts(
        BlipVisionModel(vision_config), BlipTextModel(text_config, add_pooling_layer=False), aesthetic_head(text_config.hidden_size)
    )


def _load_part(module: Any, state: dict[str, Any], what: str, path: Path, spec: str) -> None:
    result = module.load_state_dict(state, strict=False)
    # BLIP saved its position ids (a persistent buffer then); they are recomputed, present or not.
    # Every weight must come from the file.
    missing = [key for key in result.missing_keys if not key.endswith("position_ids")]
    unexpected = [key for key in result.unexpected_keys if not key.endswith("position_ids")]
    if missing or unexpected:
        detail = f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(unexpected[:3])}"
        raise ScoringError(f"scorer {spec!r}: {path} does not fit ImageReward's {what} ({detail})")


def load_parts(path: Path, med_config: Path, spec: str, vision: dict[str, Any] | None = None) -> ImageRewardParts:
    """ImageReward's parts with the checkpoint's weights (read without running code)."""
    try:
        config = json.loads(med_config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ScoringError(f"scorer {spec!r}: cannot read {med_config} as BLIP's med_config.json: {error}") from error
    parts = build_parts(config, vision)
    vision_state, text_state, head_state = blip_to_transformers(read_state_dict(path, spec))
    for module, state, what in ((parts.vision, vision_state, "image encoder"), (parts.text, text_state, "text encoder"),
                                (parts.head, head_state, "MLP head")):
        _load_part(module, state, what, path, spec)
    return parts


class ImageRewardScorer(TextImageScorer):
    """ImageReward: BLIP's image-grounded text encoding of the prompt, scored by an MLP and normalised."""

    reads_text: ClassVar[bool] = True
    within_prompt: ClassVar[bool] = True

    def __init__(
        self, spec: ScorerSpec, parts: ImageRewardParts, tokenizer: Any, device: str, weights: str | None = None,
        weights_sha256: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

        self.spec = spec
        self.vision = parts.vision.to(device).eval()
        self.text = parts.text.to(device).eval()
        self.head = parts.head.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        size = self.vision.config.image_size
        # The authors' _transform(224): CLIP's preprocessing.
        self.preprocess = Compose([
            Resize(size, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(size),
            lambda image: image.convert("RGB"),
            ToTensor(),
            Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ])
        self.info = ScorerInfo(spec.name, spec.model, weights, weights_sha256, device, MAX_LENGTH)

    def embed_images(self, images: Sequence[Image]) -> torch.Tensor:
        """BLIP's image tokens for one batch (all of them: the text encoder attends to each)."""
        import torch

        pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        return self.vision(pixel_values=pixels).last_hidden_state

    def values(self, image_tokens: torch.Tensor, texts: Sequence[str]) -> list[float]:
        """The normalised reward of each image (its tokens) for its text."""
        import torch

        tokens = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        ).to(self.device)
        image_mask = torch.ones(image_tokens.shape[:-1], dtype=torch.long, device=self.device)
        states = self.text(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            encoder_hidden_states=image_tokens,
            encoder_attention_mask=image_mask,
            is_decoder=False,
        ).last_hidden_state
        return ((self.head(states[:, 0, :].float()).squeeze(-1) - MEAN) / STD).tolist()


def load_imagereward(spec: ScorerSpec, device: str, vision: dict[str, Any] | None = None) -> ImageRewardScorer:
    """ImageReward from the hub cache, or from a local folder (``imagereward:/path``); ``vision`` overrides BLIP's ViT-L."""
    from transformers import BertTokenizer

    published = PUBLISHED["imagereward"]
    # 1. The checkpoint and BLIP's text config: a local folder, or the published files from the hub cache.
    if spec.pretrained is not None:
        folder = local_weights(spec.name, spec.pretrained, folder=True)
        path = next((folder / name for name in WEIGHTS_NAMES if (folder / name).is_file()), None)
        if path is None or not (folder / "med_config.json").is_file():
            raise ScoringError(
                f"scorer {spec.name!r}: {folder} must hold {' or '.join(WEIGHTS_NAMES)} and med_config.json "
                f"(from {published.files[0].repo})"
            )
        med_config, source, sha = folder / "med_config.json", str(folder), file_sha256(path)
        tokenizer_dir = folder if (folder / "vocab.txt").is_file() else None
    else:
        path = hub_file(spec.name, published, published.files[0])
        med_config = hub_file(spec.name, published, published.files[1])
        source, sha, tokenizer_dir = f"{published.files[0].repo}/{published.files[0].filename}", None, None
    if tokenizer_dir is None:
        tokenizer_dir = hub_folder(spec.name, published, IMAGEREWARD_TOKENIZER, ("vocab.txt", "tokenizer_config.json"))
    # 2. The parts with their weights, and BLIP's tokenizer (bert-base-uncased; its two added tokens are never input).
    parts = load_parts(path, med_config, spec.name, vision)
    try:
        tokenizer = BertTokenizer.from_pretrained(str(tokenizer_dir))
    except Exception as error:  # noqa: BLE001 - transformers raises many types for a bad folder
        raise ScoringError(f"scorer {spec.name!r}: cannot load the bert-base-uncased tokenizer from {tokenizer_dir}: {error}") from error
    return ImageRewardScorer(spec, parts, tokenizer, device, source, sha)
