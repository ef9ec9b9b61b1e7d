"""The ``pickscore`` scorer: PickScore v1, a CLIP ViT-H/14 fine-tuned on which image people picked (Pick-a-Pic).

As the authors' README computes it (yuvalkirstain/PickScore): the processor of
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (bicubic resize of the short side to 224, centre crop,
CLIP's mean and std; text cut at 77 tokens), the model ``yuvalkirstain/PickScore_v1`` as a
transformers ``CLIPModel``, and::

    score = logit_scale.exp() * cos(E_image, E_text)       # about 18..24 for SD images

The value only compares images scored against the **same** text (a softmax over them is the
probability people prefer each): a prompt that scores higher is not a better prompt, so
variants are compared within one seed and prompt (``within_prompt``). A local copy is a folder
saved with ``save_pretrained``: ``pickscore:/path/to/folder``, holding the model and, unless the
laion processor is in the hub cache, its processor (``preprocessor_config.json`` and tokenizer).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from promptlab.errors import ScoringError
from promptlab.scoring.clip import DEFAULT_BATCH_SIZE, ScorerInfo
from promptlab.scoring.paired import TextImageScorer
from promptlab.scoring.published import PICKSCORE_PROCESSOR, PICKSCORE_PROCESSOR_FILES, PUBLISHED, hub_folder, local_weights
from promptlab.scoring.spec import ScorerSpec

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

#: The files a transformers CLIP model and its processor are read from.
MODEL_PATTERNS = ("config.json", "model.safetensors")
PROCESSOR_PATTERNS = PICKSCORE_PROCESSOR_FILES

def has_own_processor(folder: Path) -> bool:
    """Whether a saved folder holds a processor: an image processor's config (transformers 4 writes
    preprocessor_config.json, 5 processor_config.json) and a tokenizer's."""
    images = any((folder / name).is_file() for name in ("preprocessor_config.json", "processor_config.json"))
    return images and (folder / "tokenizer_config.json").is_file()


#: The tokens PickScore reads of a text, as in the authors' README (CLIP's context).
MAX_LENGTH = 77


class PickScoreScorer(TextImageScorer):
    """PickScore: the model's logit scale times the cosine of image and text embeddings."""

    reads_text: ClassVar[bool] = True
    within_prompt: ClassVar[bool] = True

    def __init__(
        self, spec: ScorerSpec, model: Any, processor: Any, device: str, weights: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.spec = spec
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self.batch_size = batch_size
        self.info = ScorerInfo(spec.name, spec.model, weights, None, device, MAX_LENGTH)

    def embed_images(self, images: Sequence[Image]) -> torch.Tensor:
        """Unit-norm image embeddings of one batch, preprocessed by the processor."""
        pixels = self.processor.image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        pooled = self.model.vision_model(pixel_values=pixels["pixel_values"].to(self.device)).pooler_output
        features = self.model.visual_projection(pooled).float()
        return features / features.norm(dim=-1, keepdim=True)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-norm text embeddings, each distinct text encoded once."""
        import torch

        distinct = list(dict.fromkeys(texts))
        tokens = self.processor.tokenizer(
            distinct, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        ).to(self.device)
        pooled = self.model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).pooler_output
        features = self.model.text_projection(pooled).float()
        features = features / features.norm(dim=-1, keepdim=True)
        rows = {text: index for index, text in enumerate(distinct)}
        return features[torch.tensor([rows[t] for t in texts], device=features.device)]

    def values(self, image_emb: torch.Tensor, texts: Sequence[str]) -> list[float]:
        """PickScore: ``logit_scale.exp() * cos`` of each image embedding with its text's."""
        scale = self.model.logit_scale.exp().float()
        return (scale * (image_emb * self.embed_texts(texts)).sum(dim=-1)).tolist()


def load_pickscore(spec: ScorerSpec, device: str) -> PickScoreScorer:
    """PickScore from the hub cache (model and laion processor) or from a local folder (``pickscore:/path``)."""
    from transformers import CLIPModel, CLIPProcessor

    # 1. Where the model and the processor are.
    published = PUBLISHED["pickscore"]
    if spec.pretrained is not None:
        model_dir = local_weights(spec.name, spec.pretrained, folder=True)
        has_processor = has_own_processor(model_dir)
        processor_dir = model_dir if has_processor else hub_folder(spec.name, published, PICKSCORE_PROCESSOR, PROCESSOR_PATTERNS)
        source = str(model_dir)
    else:
        model_dir = hub_folder(spec.name, published, spec.model, (*MODEL_PATTERNS, "pytorch_model.bin"))
        processor_dir = hub_folder(spec.name, published, PICKSCORE_PROCESSOR, PROCESSOR_PATTERNS)
        source = spec.model
    # 2. Load them (transformers reads safetensors, or a .bin with its own safe loader).
    try:
        model = CLIPModel.from_pretrained(str(model_dir))
        # The PIL image processor, as the authors' transformers had (version 5 defaults to a torchvision one).
        processor = CLIPProcessor.from_pretrained(str(processor_dir), use_fast=False)
    except Exception as error:  # noqa: BLE001 - transformers raises many types for a bad folder
        detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise ScoringError(f"scorer {spec.name!r}: cannot load a CLIP model and processor from {Path(model_dir)}: {detail}") from error
    return PickScoreScorer(spec, model, processor, device, source)
