"""Find, load and describe Stable Diffusion models; the last few loaded stay in memory.

A model is one of:

- a built-in model: ``micro``, trained on micro-world scenes and shipped with promptlab (see
  ``promptlab.micro``), or a tiny random model (``tiny-sd``, ``tiny-sdxl``, ... see
  ``promptlab.render.tiny``) for fast tests;
- a local diffusers folder (holding ``model_index.json``);
- a single checkpoint file: ``.safetensors`` through diffusers' ``from_single_file``; a pickle
  ``.ckpt``/``.pt``/``.pth``/``.bin`` only with ``allow_pickle=True``, since unpickling runs code;
- a Hugging Face hub id (``stabilityai/stable-diffusion-xl-base-1.0``), from the local hub
  cache or downloaded.

The family (``sd1``, ``sd2``, ``sdxl``) is read from the loaded components, not the name.
Loaded models are kept per (model, dtype, device, vae) in a bounded cache (``promptlab.model_cache``:
the 2 most recently used by default, ``PROMPTLAB_MODEL_CACHE`` to change); a second task on the
same weights reuses the components through diffusers' ``Pipeline.from_pipe``.

    >>> loaded = load_model(ModelSpec("tiny-sd"), task="txt2img")
    >>> loaded.family, type(loaded.pipe).__name__
    ('sd1', 'StableDiffusionPipeline')
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.builtin import BUILTIN_MODELS, MICRO_MODELS, RETRAIN_COMMAND, TINY_MODELS
from promptlab.device import choose_device, choose_dtype, release_memory
from promptlab.errors import ModelError, RenderError
from promptlab.hashing import file_sha256
from promptlab.model_cache import ModelCache
from promptlab.render.params import TASKS
from promptlab.render.quiet import quiet_libraries
from promptlab.render.tiny import tiny_model_folder

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, DiffusionPipeline, SchedulerMixin

FAMILIES: dict[str, str] = {
    "sd1": "Stable Diffusion 1.x (one CLIP ViT-L text encoder, 768-wide cross-attention)",
    "sd2": "Stable Diffusion 2.x (OpenCLIP ViT-H text encoder, 1024-wide, linear-projection attention)",
    "sdxl": "Stable Diffusion XL (two text encoders, pooled embeddings, size/crop conditioning)",
}

#: diffusers pipeline class per task (``params.TASKS``) and family; a missing family means diffusers has none.
PIPELINE_CLASSES: dict[str, dict[str, str]] = {
    "txt2img": {"sd1": "StableDiffusionPipeline", "sd2": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"},
    "img2img": {
        "sd1": "StableDiffusionImg2ImgPipeline",
        "sd2": "StableDiffusionImg2ImgPipeline",
        "sdxl": "StableDiffusionXLImg2ImgPipeline",
    },
    "inpaint": {
        "sd1": "StableDiffusionInpaintPipeline",
        "sd2": "StableDiffusionInpaintPipeline",
        "sdxl": "StableDiffusionXLInpaintPipeline",
    },
    "depth2img": {"sd2": "StableDiffusionDepth2ImgPipeline"},
}

_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# UNet input channels: latents only, latents + depth, latents + mask + masked-image latents.
_UNET_TASKS = {4: ("txt2img", "img2img", "inpaint"), 5: ("depth2img",), 9: ("inpaint",)}


@dataclass(frozen=True)
class ModelSpec:
    """What to load: the model, an optional separate VAE, and device/dtype overrides (None = automatic)."""

    model: str
    vae: str | None = None
    dtype: str | None = None
    device: str | None = None
    allow_pickle: bool = False


@dataclass(frozen=True)
class ModelSource:
    """Where weights came from: ``kind`` is builtin, hub, folder or file.

    ``revision`` is the hub commit; ``sha256`` the checkpoint file's hash (files only).
    """

    model: str
    kind: str
    location: str
    revision: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ComponentInfo:
    """One pipeline component: its name, class and the library that defines it (None when absent)."""

    name: str
    class_name: str | None
    library: str | None


@dataclass(frozen=True)
class ModelInfo:
    """What ``promptlab model info`` shows."""

    model: str
    pipeline_class: str
    family: str
    components: tuple[ComponentInfo, ...]
    source: ModelSource


@dataclass
class LoadedModel:
    """A pipeline ready for one task, with everything a run records about it."""

    pipe: DiffusionPipeline
    source: ModelSource
    family: str
    task: str
    dtype: str
    device: str
    vae: ModelSource | None
    scheduler: SchedulerMixin = field(repr=False)
    load_seconds: float = 0.0

    @property
    def scheduler_config(self) -> Mapping[str, Any]:
        """The model's own scheduler config, which every swap starts from."""
        return self.scheduler.config


@dataclass
class _Base:
    pipe: DiffusionPipeline
    source: ModelSource
    family: str
    vae: ModelSource | None
    load_seconds: float
    #: Pipelines for other tasks sharing this model's weights, by task: they go when it goes.
    task_pipes: dict[str, DiffusionPipeline] = field(default_factory=dict)


def _evicted(key: tuple[str, str, str, str | None]) -> None:
    release_memory(key[2])


#: Loaded models by (location, dtype, device, vae), least recently used first.
_BASES: ModelCache[tuple[str, str, str, str | None], _Base] = ModelCache("pipelines", on_evict=_evicted)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _looks_like_path(model: str) -> bool:
    return (
        model.startswith((".", "~", "/"))
        or "\\" in model
        or model.count("/") > 1
        or Path(model).is_absolute()
        or model.lower().endswith((".safetensors", *_PICKLE_SUFFIXES))
    )


def resolve_model(model: str, *, allow_pickle: bool = False, what: str = "model") -> ModelSource:
    """Decide what ``model`` names, without loading it; ModelError if it cannot be a model."""
    if model in MICRO_MODELS:
        folder = MICRO_MODELS[model]
        if not (folder / "model_index.json").is_file():
            raise ModelError(
                f"built-in model {model!r} has no weights at {folder}; install promptlab from a full checkout "
                f"or remake them with `{RETRAIN_COMMAND}`"
            )
        return ModelSource(model, "builtin", str(folder))
    if model in TINY_MODELS:
        return ModelSource(model, "builtin", str(tiny_model_folder(model)))
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file() and not (path / "config.json").is_file():
            raise ModelError(
                f"{what} {model!r} is a folder but not a diffusers folder (no model_index.json or config.json)"
            )
        return ModelSource(model, "folder", str(path.resolve()))
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in _PICKLE_SUFFIXES and not allow_pickle:
            raise ModelError(
                f"{what} {model!r} is a pickle checkpoint ({suffix}); loading one can run arbitrary code. "
                "Use a .safetensors file, or pass allow_pickle=True (--allow-pickle) if you trust its source"
            )
        if suffix != ".safetensors" and suffix not in _PICKLE_SUFFIXES:
            raise ModelError(
                f"{what} {model!r} is a {suffix or 'suffix-less'} file; expected a .safetensors checkpoint "
                "(or .ckpt with allow_pickle) or a diffusers folder"
            )
        return ModelSource(model, "file", str(path.resolve()), sha256=file_sha256(path))
    if _looks_like_path(model) or not _HUB_ID.match(model):
        raise ModelError(
            f"{what} {model!r}: no such file or folder, and not a hub id (owner/name) or built-in model "
            f"({', '.join(BUILTIN_MODELS)})"
        )
    return ModelSource(model, "hub", model)


def _reason(error: Exception) -> str:
    """The first sentence of a library error: it says why; the rest is advice about library internals."""
    return re.split(r"\.\s|\n", str(error), maxsplit=1)[0][:300]


def _hub_failure(source: ModelSource, error: Exception, what: str = "model") -> ModelError:
    reason = _reason(error)
    return ModelError(
        f"{what} {source.model!r} is not in the local Hugging Face cache and could not be downloaded "
        f"({type(error).__name__}: {reason}). Download it once with network access "
        "(HF_HUB_OFFLINE unset), or pass a local diffusers folder or a .safetensors file instead, "
        "e.g. --model ./models/my-model or --model ./my-model.safetensors"
    )


def _hub_revision(repo_id: str) -> str | None:
    """The cached snapshot's commit hash, read from the hub cache without network."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "model_index.json")
    if isinstance(cached, str):
        return Path(cached).parent.name
    cached = try_to_load_from_cache(repo_id, "config.json")
    return Path(cached).parent.name if isinstance(cached, str) else None


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def detect_family(components: Mapping[str, Any]) -> str:
    """``sd1``, ``sd2`` or ``sdxl`` from the loaded components' structure.

    SDXL: a second text encoder or UNet ``addition_embed_type == "text_time"``. SD 2.x: 1024-wide
    cross-attention or text encoder, linear-projection attention blocks, or a depth
    estimator (depth2img exists only for SD 2). Otherwise SD 1.x, v-prediction or not: SD 2's
    768-v checkpoints are told by their 1024-wide conditioning, and SD 1.x fine-tunes (and
    promptlab's ``micro``) predict v too.
    """
    unet = components.get("unet")
    if unet is None:
        raise ModelError("this pipeline has no UNet; promptlab renders Stable Diffusion 1.x/2.x/XL models only")
    config = unet.config
    if components.get("text_encoder_2") is not None or config.get("addition_embed_type") == "text_time":
        return "sdxl"
    text_encoder = components.get("text_encoder")
    hidden = getattr(getattr(text_encoder, "config", None), "hidden_size", None)
    if (
        config.get("cross_attention_dim") == 1024
        or hidden == 1024
        or config.get("use_linear_projection")
        or components.get("depth_estimator") is not None
    ):
        return "sd2"
    return "sd1"


def _load_vae(spec: str, torch_dtype: Any) -> tuple[AutoencoderKL, ModelSource]:
    from diffusers import AutoencoderKL

    source = resolve_model(spec, allow_pickle=False, what="vae")
    local_only = _env_flag("HF_HUB_OFFLINE")
    try:
        with quiet_libraries():
            if source.kind == "file":
                vae = AutoencoderKL.from_single_file(source.location, dtype=torch_dtype, local_files_only=local_only)
            elif source.kind != "hub" and (Path(source.location) / "model_index.json").is_file():
                # A whole pipeline folder (or built-in model) lends its VAE.
                vae = AutoencoderKL.from_pretrained(source.location, subfolder="vae", dtype=torch_dtype)
            else:
                vae = AutoencoderKL.from_pretrained(source.location, dtype=torch_dtype, local_files_only=local_only)
    except (OSError, ValueError) as error:
        if source.kind == "hub":
            raise _hub_failure(source, error, what="vae") from error
        hint = (
            "; diffusers reads a matching VAE config from the hub for single files, so with no network "
            "use a VAE folder (config.json + weights) instead"
            if source.kind == "file"
            else ""
        )
        raise ModelError(f"vae {spec!r} cannot be loaded as an AutoencoderKL ({_reason(error)}){hint}") from error
    if source.kind == "hub":
        source = ModelSource(source.model, "hub", source.location, revision=_hub_revision(source.location))
    return vae, source


class _LazyCheckpoint(Mapping[str, Any]):
    """A safetensors file as a read-only mapping that reads a tensor only when asked."""

    def __init__(self, path: str) -> None:
        from safetensors import safe_open

        self._file = safe_open(path, framework="pt")
        self._keys = set(self._file.keys())

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        return self._file.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


_SD_UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight"
_SINGLE_FILE_TYPES = {
    "v1": ("sd1", "StableDiffusionPipeline"),
    "inpainting": ("sd1", "StableDiffusionInpaintPipeline"),
    "v2": ("sd2", "StableDiffusionPipeline"),
    "inpainting_v2": ("sd2", "StableDiffusionInpaintPipeline"),
    "xl_base": ("sdxl", "StableDiffusionXLPipeline"),
    "xl_refiner": ("sdxl", "StableDiffusionXLImg2ImgPipeline"),
    "xl_inpaint": ("sdxl", "StableDiffusionXLInpaintPipeline"),
    "playground-v2-5": ("sdxl", "StableDiffusionXLPipeline"),
}


def _single_file_pipeline_class(source: ModelSource) -> str:
    """The pipeline class for a checkpoint file, from diffusers' own key-based model-type detection."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type, load_single_file_checkpoint

    try:
        if source.location.lower().endswith(".safetensors"):
            checkpoint: Mapping[str, Any] = _LazyCheckpoint(source.location)
        else:
            checkpoint = load_single_file_checkpoint(source.location, local_files_only=True)
        model_type = infer_diffusers_model_type(checkpoint)
    except Exception as error:  # safetensors and torch.load raise many types for a corrupt file
        raise ModelError(f"model {source.model!r} cannot be read as a checkpoint: {error}") from error
    # diffusers falls back to "v1" for any unknown file, so require an SD UNet's first layer.
    if model_type not in _SINGLE_FILE_TYPES or _SD_UNET_KEY not in checkpoint:
        raise ModelError(
            f"model {source.model!r} is not a Stable Diffusion checkpoint by diffusers' detection "
            f"(type {model_type!r}, UNet weights {'found' if _SD_UNET_KEY in checkpoint else 'missing'}); "
            "promptlab renders Stable Diffusion 1.x, 2.x and XL checkpoints only"
        )
    return _SINGLE_FILE_TYPES[model_type][1]


def _load_pipeline(source: ModelSource, torch_dtype: Any, vae: AutoencoderKL | None) -> DiffusionPipeline:
    import diffusers

    extra = {"vae": vae} if vae is not None else {}
    if source.kind == "file":
        pipeline_class = getattr(diffusers, _single_file_pipeline_class(source))
        try:
            return pipeline_class.from_single_file(
                source.location, dtype=torch_dtype, local_files_only=_env_flag("HF_HUB_OFFLINE"), **extra
            )
        except (OSError, ValueError) as error:
            raise ModelError(
                f"model {source.model!r} cannot be loaded with from_single_file ({_reason(error)}). "
                "diffusers reads a matching config from the hub for single files; with no network, "
                "use a local diffusers folder instead"
            ) from error
    try:
        return diffusers.DiffusionPipeline.from_pretrained(
            source.location,
            dtype=torch_dtype,
            local_files_only=source.kind == "hub" and _env_flag("HF_HUB_OFFLINE"),
            **extra,
        )
    except (OSError, ValueError) as error:
        if source.kind == "hub":
            raise _hub_failure(source, error) from error
        raise ModelError(f"model {source.model!r} cannot be loaded from {source.location}: {error}") from error


def _base(spec: ModelSpec, device: str, dtype: str) -> _Base:
    source = resolve_model(spec.model, allow_pickle=spec.allow_pickle)
    return _BASES.get_or_load((source.location, dtype, device, spec.vae), lambda: _load_base(spec, source, device, dtype))


def _load_base(spec: ModelSpec, source: ModelSource, device: str, dtype: str) -> _Base:
    started = time.perf_counter()
    torch_dtype = _torch_dtype(dtype)
    vae, vae_source = _load_vae(spec.vae, torch_dtype) if spec.vae else (None, None)
    with quiet_libraries():
        pipe = _load_pipeline(source, torch_dtype, vae)
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if source.kind == "hub":
        source = ModelSource(source.model, "hub", source.location, revision=_hub_revision(source.location))
    return _Base(
        pipe=pipe,
        source=source,
        family=detect_family(pipe.components),
        vae=vae_source,
        load_seconds=time.perf_counter() - started,
    )


def check_task(task: str, family: str, unet_in_channels: int, model: str) -> str:
    """The pipeline class name for ``task`` on this model; RenderError if diffusers has none for it."""
    if task not in TASKS:
        raise RenderError(f"task {task!r} is not one of {', '.join(TASKS)}")
    if family not in PIPELINE_CLASSES[task]:
        have = ", ".join(sorted(PIPELINE_CLASSES[task]))
        raise RenderError(
            f"diffusers has no {task} pipeline for {family} models such as {model!r} (it has one for: {have})"
        )
    allowed = _UNET_TASKS.get(unet_in_channels, ())
    if task not in allowed:
        kind = {5: "a depth model", 9: "an inpainting model"}.get(unet_in_channels, "a standard model")
        needs = {
            "depth2img": "a depth model (UNet in_channels 5), e.g. stabilityai/stable-diffusion-2-depth or tiny-sd2-depth",
            "inpaint": "an inpainting model or a standard one",
        }.get(task, "a standard model (UNet in_channels 4)")
        raise RenderError(
            f"model {model!r} is {kind} (UNet in_channels {unet_in_channels}); it renders task(s) "
            f"{', '.join(allowed) or 'none'}, and {task} needs {needs}"
        )
    return PIPELINE_CLASSES[task][family]


def load_model(spec: ModelSpec | str, task: str = "txt2img") -> LoadedModel:
    """Load (or reuse, from the bounded cache) the pipeline that runs ``task`` with ``spec``'s model.

    ModelError when the model cannot be found or loaded; RenderError when the model cannot
    run the task (e.g. depth2img on an SDXL model).
    """
    import diffusers

    spec = ModelSpec(spec) if isinstance(spec, str) else spec
    if task not in TASKS:
        raise RenderError(f"task {task!r} is not one of {', '.join(TASKS)}")
    device = choose_device(spec.device)
    dtype = choose_dtype(device, spec.dtype)
    started = time.perf_counter()
    base = _base(spec, device, dtype)
    class_name = check_task(task, base.family, base.pipe.unet.config.in_channels, spec.model)
    pipe = base.task_pipes.get(task)
    if pipe is None:
        # Always a new pipeline object sharing the weights: renders swap its scheduler, never the base's.
        with quiet_libraries():
            # from_pipe casts the shared weights to float32 unless told the dtype.
            pipe = getattr(diffusers, class_name).from_pipe(base.pipe, dtype=_torch_dtype(dtype))
        pipe.set_progress_bar_config(disable=True)
        base.task_pipes[task] = pipe
    return LoadedModel(
        pipe=pipe,
        source=base.source,
        family=base.family,
        task=task,
        dtype=dtype,
        device=device,
        vae=base.vae,
        # The base pipeline's scheduler: renders swap the task pipeline's, never this one.
        scheduler=base.pipe.scheduler,
        load_seconds=time.perf_counter() - started,
    )


def base_pipeline(spec: ModelSpec | str) -> DiffusionPipeline:
    """The model's own pipeline (its ``model_index.json`` class), cached like ``load_model``'s, never modified by renders."""
    spec = ModelSpec(spec) if isinstance(spec, str) else spec
    device = choose_device(spec.device)
    return _base(spec, device, choose_dtype(device, spec.dtype)).pipe


def _component_info(name: str, component: Any) -> ComponentInfo:
    if component is None:
        return ComponentInfo(name, None, None)
    cls = type(component)
    return ComponentInfo(name, cls.__name__, cls.__module__.split(".")[0])


def model_info(spec: ModelSpec | str) -> ModelInfo:
    """Load ``spec``'s model (or reuse the loaded one) and describe its pipeline and components."""
    spec = ModelSpec(spec) if isinstance(spec, str) else spec
    device = choose_device(spec.device)
    base = _base(spec, device, choose_dtype(device, spec.dtype))
    components = tuple(_component_info(name, comp) for name, comp in sorted(base.pipe.components.items()))
    return ModelInfo(
        model=spec.model,
        pipeline_class=type(base.pipe).__name__,
        family=base.family,
        components=components,
        source=base.source,
    )


def loaded_models() -> list[tuple[str, str, str, str | None]]:
    """The models held in memory now, least recently used first: (location, dtype, device, vae)."""
    return list(_BASES.keys())


def clear_cache() -> None:
    """Forget every loaded pipeline and give the accelerator's memory back."""
    _BASES.clear()
