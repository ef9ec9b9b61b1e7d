"""Built-in tiny models: random-weight pipelines for tests and offline trials. Their images are noise.

Each is built from small configs with a fixed seed, so the weights are the same on every
machine, and keeps the real models' shapes where the pipelines depend on them: a VAE that
downsamples by 8 into 4 latent channels, CLIP text encoders over the real 49,408-token
vocabulary with 77 positions, SDXL's two encoders with pooled embeddings and size/crop
conditioning, 9 UNet input channels for inpainting models and 5 (plus a DPT depth estimator)
for the depth model. A model is written once, as safetensors, to
``builtin.tiny_model_dir(NAME)`` and then loaded through ``from_pretrained`` like a real one.

    >>> folder = tiny_model_folder("tiny-sd")
    >>> folder.name
    'tiny-sd'
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.builtin import tiny_model_dir
from promptlab.render.quiet import quiet_libraries
from promptlab.tokens import END_TOKEN, save_clip_tokenizer

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

#: Bumped whenever a builder changes, so stale cached folders are rebuilt.
TINY_VERSION = 1
_STAMP = "promptlab_tiny.json"
_SEED = 0
START_ID = 49406
END_ID = 49407
#: SD 1.x/2.x/SDXL all train with these betas; the tiny and micro models share them so schedulers behave alike.
SD_BETAS: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
}


def clip_text_config(width: int, hidden_act: str = "quick_gelu", pad_id: int = END_ID) -> Any:
    """A 2-layer CLIP text encoder config over CLIP's real vocabulary and 77 positions, ``width`` wide."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=77,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=width,
        hidden_act=hidden_act,
        bos_token_id=START_ID,
        eos_token_id=END_ID,
        pad_token_id=pad_id,
    )


def _text_encoder(with_projection: bool = False, hidden_act: str = "quick_gelu", pad_id: int = END_ID) -> Any:
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    config = clip_text_config(32, hidden_act, pad_id)
    _seed()
    return CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)


def _vae(scaling_factor: float) -> Any:
    from diffusers import AutoencoderKL

    _seed()
    # Four levels, three downsamplings: 8x spatial reduction into 4 channels, like SD's VAE.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def _sd_unet(in_channels: int, linear_projection: bool = False) -> Any:
    from diffusers import UNet2DConditionModel

    _seed()
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=8,
        use_linear_projection=linear_projection,
    )


def _sdxl_unet(in_channels: int) -> Any:
    from diffusers import UNet2DConditionModel

    time_dim = 8
    _seed()
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        # Both encoders' hidden states side by side, as SDXL's 768 + 1280 = 2048.
        cross_attention_dim=32 + 32,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        # Six size/crop numbers embedded, plus text_encoder_2's pooled projection (2816 in SDXL).
        projection_class_embeddings_input_dim=6 * time_dim + 32,
        norm_num_groups=8,
    )


def _seed() -> None:
    import torch

    torch.manual_seed(_SEED)


def _tokenizer(folder: Path, pad_token: str = END_TOKEN) -> Any:
    from transformers import CLIPTokenizer

    save_clip_tokenizer(folder, pad_token=pad_token)
    return CLIPTokenizer.from_pretrained(str(folder))


def _sd_pipeline(work: Path, in_channels: int) -> DiffusionPipeline:
    from diffusers import PNDMScheduler, StableDiffusionInpaintPipeline, StableDiffusionPipeline

    pipeline_class = StableDiffusionInpaintPipeline if in_channels == 9 else StableDiffusionPipeline
    return pipeline_class(
        vae=_vae(0.18215),
        text_encoder=_text_encoder(),
        tokenizer=_tokenizer(work / "tok"),
        unet=_sd_unet(in_channels),
        scheduler=PNDMScheduler(**SD_BETAS, skip_prk_steps=True, set_alpha_to_one=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl_pipeline(work: Path, in_channels: int) -> DiffusionPipeline:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline

    pipeline_class = StableDiffusionXLInpaintPipeline if in_channels == 9 else StableDiffusionXLPipeline
    return pipeline_class(
        vae=_vae(0.13025),
        text_encoder=_text_encoder(),
        text_encoder_2=_text_encoder(with_projection=True, hidden_act="gelu", pad_id=0),
        tokenizer=_tokenizer(work / "tok"),
        # SDXL's second tokenizer pads with "!" (id 0), as open_clip does.
        tokenizer_2=_tokenizer(work / "tok2", pad_token="!"),
        unet=_sdxl_unet(in_channels),
        scheduler=EulerDiscreteScheduler(**SD_BETAS, timestep_spacing="leading"),
        force_zeros_for_empty_prompt=True,
    )


def build_tiny_sd(work: Path) -> DiffusionPipeline:
    """SD 1.x shapes: one CLIPTextModel, 4-channel UNet, PNDM scheduler."""
    return _sd_pipeline(work, in_channels=4)


def build_tiny_sd_inpaint(work: Path) -> DiffusionPipeline:
    """SD 1.x inpainting shapes: UNet reads latents + mask + masked-image latents (9 channels)."""
    return _sd_pipeline(work, in_channels=9)


def build_tiny_sdxl(work: Path) -> DiffusionPipeline:
    """SDXL shapes: CLIPTextModel + CLIPTextModelWithProjection, "text_time" size/crop conditioning."""
    return _sdxl_pipeline(work, in_channels=4)


def build_tiny_sdxl_inpaint(work: Path) -> DiffusionPipeline:
    """SDXL inpainting shapes: the SDXL UNet with 9 input channels."""
    return _sdxl_pipeline(work, in_channels=9)


def build_tiny_sd2_depth(work: Path) -> DiffusionPipeline:
    """SD 2 depth shapes: UNet reads latents + depth (5 channels), a tiny DPT depth estimator."""
    from diffusers import PNDMScheduler, StableDiffusionDepth2ImgPipeline
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    depth_config = DPTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        backbone_out_indices=(0, 1, 2, 3),
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        is_hybrid=False,
    )
    _seed()
    depth_estimator = DPTForDepthEstimation(depth_config)
    return StableDiffusionDepth2ImgPipeline(
        vae=_vae(0.18215),
        text_encoder=_text_encoder(hidden_act="gelu", pad_id=0),
        tokenizer=_tokenizer(work / "tok", pad_token="!"),
        # SD 2's UNet uses linear projections in its transformer blocks; family detection reads it.
        unet=_sd_unet(in_channels=5, linear_projection=True),
        scheduler=PNDMScheduler(**SD_BETAS, skip_prk_steps=True, set_alpha_to_one=False),
        depth_estimator=depth_estimator,
        feature_extractor=DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False),
    )


#: How each of ``builtin.TINY_MODELS`` is built.
TINY_BUILDERS: dict[str, Callable[[Path], DiffusionPipeline]] = {
    "tiny-sd": build_tiny_sd,
    "tiny-sd-inpaint": build_tiny_sd_inpaint,
    "tiny-sdxl": build_tiny_sdxl,
    "tiny-sdxl-inpaint": build_tiny_sdxl_inpaint,
    "tiny-sd2-depth": build_tiny_sd2_depth,
}


def _is_current(folder: Path) -> bool:
    stamp = folder / _STAMP
    if not stamp.is_file():
        return False
    try:
        return json.loads(stamp.read_text()).get("version") == TINY_VERSION
    except (OSError, ValueError):
        return False


def tiny_model_folder(name: str) -> Path:
    """The diffusers folder of built-in tiny model ``name``, built on first use.

    The model is built in a temporary folder beside the final one and renamed into place, so
    a parallel process sees either no folder or a complete one.
    """
    builder = TINY_BUILDERS[name]
    final = tiny_model_dir(name)
    root = final.parent
    if _is_current(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        built = work / name
        with quiet_libraries():
            pipe = builder(work / "scratch")
            pipe.save_pretrained(str(built), safe_serialization=True)
        (built / _STAMP).write_text(json.dumps({"name": name, "version": TINY_VERSION}))
        if final.exists() and not _is_current(final):
            stale = work / "stale"
            os.replace(final, stale)
        try:
            os.replace(built, final)
        except OSError:
            # Another process renamed its identical build into place first.
            if not _is_current(final):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def build_tiny_controlnet(unet: Any) -> Any:
    """A ControlNet shaped for ``unet`` (its blocks and conditioning), with seeded random weights everywhere.

    A trained ControlNet starts from zero-initialised output convolutions; these are random, so the
    conditioning image visibly changes a render (a test can tell scale 0 from scale 1).
    """
    import torch
    from diffusers import ControlNetModel

    _seed()
    # Four embedding levels, three stride-2 steps: the image is read at the latents' 1/8 size.
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 16, 16))
    generator = torch.Generator().manual_seed(_SEED)
    with torch.no_grad():
        for layer in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.5)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.1)
    return controlnet


def _tiny_embedding_vectors(family: str) -> dict[str, Any]:
    import torch

    generator = torch.Generator().manual_seed(_SEED)
    # Two vectors (a multi-vector embedding), as wide as the tiny encoders (32).
    if family == "sdxl":
        return {
            "clip_l": torch.randn((2, 32), generator=generator),
            "clip_g": torch.randn((2, 32), generator=generator),
        }
    return {"emb_params": torch.randn((2, 32), generator=generator)}


#: Built-in tiny ControlNets by name, and the tiny model each is shaped for.
TINY_CONTROLNETS: dict[str, str] = {"tiny-sd-controlnet": "tiny-sd", "tiny-sdxl-controlnet": "tiny-sdxl"}
#: Built-in tiny textual-inversion embeddings (A1111-style safetensors) by name, and their model family.
TINY_EMBEDDINGS: dict[str, str] = {"tiny-sd-embedding": "sd1", "tiny-sdxl-embedding": "sdxl"}


def tiny_controlnet_folder(name: str) -> Path:
    """The diffusers folder (``config.json`` + weights) of built-in tiny ControlNet ``name``, built on first use."""
    from diffusers import UNet2DConditionModel

    base = TINY_CONTROLNETS[name]
    final = tiny_model_dir(name)
    if _is_current(final):
        return final
    unet = UNet2DConditionModel.from_pretrained(str(tiny_model_folder(base)), subfolder="unet")

    def write(folder: Path) -> None:
        build_tiny_controlnet(unet).save_pretrained(str(folder), safe_serialization=True)

    return _publish(name, write)


def tiny_embedding_file(name: str) -> Path:
    """The ``.safetensors`` file of built-in tiny embedding ``name`` (two random 32-wide vectors), written on first use."""
    from safetensors.torch import save_file

    family = TINY_EMBEDDINGS[name]
    final = tiny_model_dir(name)
    if not _is_current(final):

        def write(folder: Path) -> None:
            folder.mkdir(parents=True)
            save_file(_tiny_embedding_vectors(family), str(folder / f"{name}.safetensors"))

        _publish(name, write)
    return final / f"{name}.safetensors"


def _publish(name: str, write: Callable[[Path], None]) -> Path:
    """Write a built-in folder with ``write`` beside its final place and rename it there (see ``tiny_model_folder``)."""
    final = tiny_model_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    try:
        built = work / name
        with quiet_libraries():
            write(built)
        (built / _STAMP).write_text(json.dumps({"name": name, "version": TINY_VERSION}))
        if final.exists() and not _is_current(final):
            os.replace(final, work / "stale")
        try:
            os.replace(built, final)
        except OSError:
            if not _is_current(final):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
