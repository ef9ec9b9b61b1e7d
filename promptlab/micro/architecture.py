"""The micro models' architectures: micro's VAE, text encoder, UNet, noise schedule and tokenizer.

micro is Stable Diffusion 1.x in miniature (64x64 images, 16x16x4 latents, a 64-wide CLIP text
encoder over CLIP's real vocabulary); micro-clip's open_clip config is ``builtin.MICRO_CLIP_CONFIG``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.render.tiny import SD_BETAS

if TYPE_CHECKING:
    import torch

def build_vae(scaling_factor: float = 1.0) -> Any:
    """The micro VAE: 64x64 RGB <-> 16x16x4 latents."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=scaling_factor,
        mid_block_add_attention=False,
    )


def build_text_encoder() -> Any:
    """The micro text encoder: SD 1.x's CLIPTextModel shape at width 64."""
    from transformers import CLIPTextModel

    from promptlab.render.tiny import clip_text_config

    return CLIPTextModel(clip_text_config(64))


def build_unet() -> Any:
    """The micro UNet: 16x16 latents, cross-attention at 8x8 and 4x4."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=4,
        norm_num_groups=16,
    )


#: micro's noise schedule: SD's betas rescaled to zero terminal SNR, v-prediction, trailing timesteps
#: (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed"). With SD's own
#: schedule the last step keeps about 7% of the signal; on 16x16 latents that leaks a scene's
#: background and layout to the UNet, which then learns them from the noise instead of the caption
#: and, sampling from pure noise, paints a muddy ground with the shape in the middle.
SCHEDULE: dict[str, Any] = {
    **SD_BETAS,
    "rescale_betas_zero_snr": True,
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
}


def build_scheduler() -> Any:
    """The noise schedule shared by training and the saved pipeline."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULE)


def latent_scaling(means: torch.Tensor, stds: torch.Tensor) -> float:
    """The VAE scaling factor: one over the standard deviation of sampled latents, as SD sets it."""
    import torch

    generator = torch.Generator().manual_seed(0)
    sample = means + stds * torch.randn(means.shape, generator=generator)
    return float(1.0 / sample.std())


def micro_tokenizer() -> Any:
    """A fresh stock ``CLIPTokenizer`` of the offline vocabulary, as SD models ship it."""
    import tempfile

    from transformers import CLIPTokenizer

    from promptlab.tokens import save_clip_tokenizer

    with tempfile.TemporaryDirectory() as scratch:
        return CLIPTokenizer.from_pretrained(str(save_clip_tokenizer(Path(scratch))))
