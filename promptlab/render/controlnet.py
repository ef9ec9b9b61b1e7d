"""ControlNet: load a model, check it fits the base, read the conditioning image, build the pipeline.

A ControlNet is a hub id, a diffusers folder (``config.json`` + weights), a ``.safetensors`` file
(diffusers' ``from_single_file``, which reads a matching config from the hub) or a built-in tiny one
(``tiny-sd-controlnet``, ``tiny-sdxl-controlnet``: random weights, for tests). It joins any task
diffusers has a ControlNet pipeline for: txt2img, img2img and inpaint, SD 1.x/2.x and SDXL. The
pipeline is built from the loaded model's own components (``from_pipe``), so the base is never
loaded twice; ControlNets are kept in a bounded cache like models.

The conditioning image, decided here:

- RGB is read as is; grayscale (``L``: depth, edge and line maps) becomes RGB, which is lossless. Any
  other mode (RGBA, palette, 16-bit, CMYK) is refused: dropping an alpha channel or mapping 16-bit
  depth to 8 bits changes what the ControlNet sees, so the user chooses how.
- Its size is the render's: without ``width``/``height`` a txt2img render takes the control image's
  size (a multiple of 8), and an image task needs a control image of the init image's size. With
  ``width``/``height`` given it is resized to exactly that, as input images are (``render.images``).

``controlnet_conditioning_scale`` multiplies the ControlNet's residuals: at 0 the image is the base
pipeline's for the same seed.
"""

from __future__ import annotations

import os
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.builtin import BUILTIN_MODELS
from promptlab.device import release_memory
from promptlab.errors import ModelError, RenderError
from promptlab.model_cache import ModelCache
from promptlab.render.images import read_image
from promptlab.render.models import ModelSource, resolve_model
from promptlab.render.quiet import quiet_libraries
from promptlab.render.tiny import TINY_CONTROLNETS, tiny_controlnet_folder

if TYPE_CHECKING:
    from diffusers import ControlNetModel, DiffusionPipeline
    from PIL import Image

#: diffusers' ControlNet pipeline per task and family; a task or family missing here has none.
CONTROLNET_PIPELINES: dict[str, dict[str, str]] = {
    "txt2img": {
        "sd1": "StableDiffusionControlNetPipeline",
        "sd2": "StableDiffusionControlNetPipeline",
        "sdxl": "StableDiffusionXLControlNetPipeline",
    },
    "img2img": {
        "sd1": "StableDiffusionControlNetImg2ImgPipeline",
        "sd2": "StableDiffusionControlNetImg2ImgPipeline",
        "sdxl": "StableDiffusionXLControlNetImg2ImgPipeline",
    },
    "inpaint": {
        "sd1": "StableDiffusionControlNetInpaintPipeline",
        "sd2": "StableDiffusionControlNetInpaintPipeline",
        "sdxl": "StableDiffusionXLControlNetInpaintPipeline",
    },
}
#: Control image modes read as they are, and those converted to RGB losslessly.
CONTROL_IMAGE_MODES = ("RGB", "L")
#: The scale diffusers applies when none is given.
DEFAULT_SCALE = 1.0


@dataclass(frozen=True)
class ControlNetUsed:
    """The ControlNet of a render as recorded: where its weights came from, its image's hash, its scale."""

    source: ModelSource
    image_sha256: str
    scale: float


def resolve_controlnet(model: str) -> ModelSource:
    """Where ControlNet ``model`` comes from, without loading it; ModelError if it cannot be one."""
    if model in TINY_CONTROLNETS:
        return ModelSource(model, "builtin", str(tiny_controlnet_folder(model)))
    try:
        source = resolve_model(model, what="controlnet")
    except ModelError as error:
        if model in BUILTIN_MODELS or Path(model).expanduser().exists():
            raise
        raise ModelError(
            f"controlnet {model!r}: no such file or folder, and not a hub id (owner/name) or built-in ControlNet "
            f"({', '.join(TINY_CONTROLNETS)}); give a ControlNet folder (config.json + weights), .safetensors file or hub id"
        ) from error
    if source.kind in ("folder", "builtin") and not (Path(source.location) / "config.json").is_file():
        raise ModelError(
            f"controlnet {model!r} is a whole pipeline (model_index.json), not a ControlNet; give a ControlNet's "
            "folder (config.json + weights), file or hub id, e.g. lllyasviel/sd-controlnet-canny"
        )
    return source


def _reason(error: Exception) -> str:
    """The first sentence of a library error: it says why."""
    return str(error).split("\n", 1)[0].split(". ", 1)[0][:300]


def _hub_revision(repo_id: str) -> str | None:
    """The cached snapshot's commit hash, read from the hub cache without network."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    return Path(cached).parent.name if isinstance(cached, str) else None


def _load(source: ModelSource, dtype: str, device: str) -> ControlNetModel:
    import torch
    from diffusers import ControlNetModel

    torch_dtype = getattr(torch, dtype)
    # Read when loading, not when huggingface_hub was imported: a caller may go offline later.
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    try:
        with quiet_libraries(), warnings.catch_warnings():
            # diffusers passes huggingface_hub an argument it has deprecated; a notice for diffusers, not users.
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            if source.kind == "file":
                controlnet = ControlNetModel.from_single_file(source.location, dtype=torch_dtype, local_files_only=offline)
            else:
                controlnet = ControlNetModel.from_pretrained(
                    source.location, dtype=torch_dtype, local_files_only=offline and source.kind == "hub"
                )
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        hint = (
            "download it once with network access, or give a local ControlNet folder"
            if source.kind == "hub"
            else "the file is damaged, or diffusers could not read its config from the hub (it does for single files): "
            "download the file again, or with no network give a ControlNet folder"
            if source.kind == "file"
            else "check that the folder holds a ControlNet's config.json and weights"
        )
        raise ModelError(f"controlnet {source.model!r} cannot be loaded ({_reason(error)}); {hint}") from error
    return controlnet.to(device)


def _evicted(key: tuple[str, str, str]) -> None:
    release_memory(key[2])


#: Loaded ControlNets by (location, dtype, device), least recently used first.
_CONTROLNETS: ModelCache[tuple[str, str, str], tuple[Any, ModelSource]] = ModelCache("controlnets", on_evict=_evicted)


def load_controlnet(model: str, dtype: str, device: str) -> tuple[ControlNetModel, ModelSource]:
    """The ControlNet ``model`` in ``dtype`` on ``device`` (cached), and where its weights came from."""
    source = resolve_controlnet(model)

    def load() -> tuple[Any, ModelSource]:
        recorded = source
        if source.kind == "hub":
            recorded = ModelSource(source.model, "hub", source.location, revision=_hub_revision(source.location))
        return _load(source, dtype, device), recorded

    return _CONTROLNETS.get_or_load((source.location, dtype, device), load)


def _family_words(family: str) -> str:
    return {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}.get(family, family)


def check_fits(controlnet: ControlNetModel, pipe: DiffusionPipeline, family: str, name: str) -> None:
    """RenderError unless ``controlnet`` was made for a UNet like ``pipe``'s (same base)."""
    made, unet = controlnet.config, pipe.unet.config
    sdxl = made.get("addition_embed_type") == "text_time"
    base = "SDXL" if sdxl else {1024: "SD 2.x", 768: "SD 1.x"}.get(made.get("cross_attention_dim"), "another base")
    if sdxl != (family == "sdxl") or made.get("cross_attention_dim") != unet.get("cross_attention_dim"):
        raise RenderError(
            f"controlnet {name!r} is made for {base} (cross-attention {made.get('cross_attention_dim')} wide) but the model "
            f"is {_family_words(family)} ({unet.get('cross_attention_dim')} wide); use a ControlNet trained for "
            f"{_family_words(family)}"
        )
    if tuple(made.get("block_out_channels", ())) != tuple(unet.get("block_out_channels", ())):
        raise RenderError(
            f"controlnet {name!r} has UNet blocks {tuple(made.get('block_out_channels', ()))} but the model's are "
            f"{tuple(unet.get('block_out_channels', ()))}: its residuals cannot join this model; use a ControlNet for it"
        )


# The last ControlNet pipeline built on each task pipeline: it goes when the task pipeline goes, and
# holds no ControlNet the cache has dropped (a sweep over ControlNets keeps only the cache's).
_PIPES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def controlnet_pipeline(
    pipe: DiffusionPipeline, controlnet: ControlNetModel, task: str, family: str, dtype: str
) -> DiffusionPipeline:
    """diffusers' ControlNet pipeline for ``task``, sharing ``pipe``'s components (no weights are loaded)."""
    import diffusers
    import torch

    if family not in CONTROLNET_PIPELINES.get(task, {}):
        have = ", ".join(CONTROLNET_PIPELINES)
        raise RenderError(f"diffusers has no ControlNet pipeline for task {task} on {_family_words(family)} models (it has: {have})")
    control_pipe = _PIPES.get(pipe)
    if control_pipe is None or control_pipe.controlnet is not controlnet:
        cls = getattr(diffusers, CONTROLNET_PIPELINES[task][family])
        with quiet_libraries():
            control_pipe = cls.from_pipe(pipe, controlnet=controlnet, dtype=getattr(torch, dtype))
        control_pipe.set_progress_bar_config(disable=True)
        _PIPES[pipe] = control_pipe
    return control_pipe


def read_control_image(path: str, *, width: int | None, height: int | None, multiple: int = 8) -> Image.Image:
    """The control image as an RGB image of the render's size (the rules in the module docstring)."""
    from PIL import Image

    image = read_image(path, "RGB", "control image")  # opens, checks and loads it; its mode is read below
    check_control_image_mode(path)
    target = (width or image.width, height or image.height)
    if target[0] % multiple or target[1] % multiple:
        raise RenderError(
            f"control image {path!r} is {image.width}x{image.height}, not a multiple of {multiple} on each side; "
            "pass width and height (--size WxH) to resize it"
        )
    return image if target == image.size else image.resize(target, Image.Resampling.LANCZOS)


def check_control_image_mode(path: str) -> None:
    """RenderError unless the image file at ``path`` is RGB or 8-bit grayscale (read without decoding its pixels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            mode = opened.mode
    except (OSError, UnidentifiedImageError) as error:
        raise RenderError(f"control image file {path!r} cannot be read as an image: {error}") from error
    if mode not in CONTROL_IMAGE_MODES:
        raise RenderError(
            f"control image {path!r} has mode {mode} ({_MODE_WORDS.get(mode, 'not RGB or grayscale')}); a ControlNet reads "
            "RGB, and converting it would change what it sees: save it as RGB (or 8-bit grayscale) first"
        )


_MODE_WORDS = {
    "RGBA": "an alpha channel",
    "LA": "grayscale with an alpha channel",
    "P": "a palette",
    "PA": "a palette with alpha",
    "I;16": "16-bit grayscale",
    "I": "32-bit integers",
    "F": "32-bit floats",
    "CMYK": "print colours",
    "1": "1-bit",
}


def control_kwargs(task: str, image: Image.Image, count: int, scale: float) -> dict[str, Any]:
    """The pipeline arguments that carry the control image (one per image) and the scale."""
    # diffusers' txt2img ControlNet pipeline takes the control image as ``image``; the others as ``control_image``.
    name = "image" if task == "txt2img" else "control_image"
    return {name: [image] * count, "controlnet_conditioning_scale": float(scale)}
