"""Render many (prompt, seed) pairs that share parameters, batch by batch.

Every image has its own seed and its own CPU ``torch.Generator`` (diffusers passes a list of
them, one per image), so the image for (prompt, seed, params) is the same alone or inside a
batch of other prompts, up to float rounding.

    >>> items = [RenderItem("a red fox", seed=1), RenderItem("a (red)1.3 fox", seed=2)]
    >>> params = RenderParams(num_inference_steps=2, width=64, height=64)
    >>> for batch in render_batches(items, params, "tiny-sd", batch_size=2):
    ...     [image.seed for image in batch.images]
    [1, 2]
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptlab.errors import RenderError
from promptlab.hashing import file_sha256
from promptlab.render.adapters import LoraSpec, activate_loras, apply_loras
from promptlab.render.conditioning import encode_prompts
from promptlab.render.controlnet import (
    DEFAULT_SCALE,
    ControlNetUsed,
    check_fits,
    control_kwargs,
    controlnet_pipeline,
    load_controlnet,
    read_control_image,
)
from promptlab.render.embeddings import Embedding, apply_embeddings
from promptlab.render.images import InputImages, depth_tensor, prepare_images
from promptlab.render.models import LoadedModel, ModelSource, ModelSpec, load_model
from promptlab.render.params import MAX_COUNT, RenderItem, RenderParams, check_seed, check_size
from promptlab.render.schedulers import SchedulerChoice, build_scheduler, class_scheduler_name, find_scheduler

if TYPE_CHECKING:
    from diffusers import SchedulerMixin
    from PIL import Image

_VERSIONED = ("torch", "diffusers", "transformers", "compel", "promptlab")


@dataclass(frozen=True)
class RenderProgress:
    """Where a render stands: denoising ``step`` of ``steps`` in ``batch`` of ``batches``."""

    batch: int
    batches: int
    step: int
    steps: int
    images_done: int
    images_total: int


ProgressCallback = Callable[[RenderProgress], None]


@dataclass
class RenderedImage:
    """One finished image and what made it; ``index`` is its position in the request."""

    image: Image.Image
    prompt: str
    negative_prompt: str
    seed: int
    index: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "width": self.image.width,
            "height": self.image.height,
        }


@dataclass(frozen=True)
class SchedulerUsed:
    """The scheduler as run: stored name, user-facing label, class and full config."""

    name: str
    label: str
    class_name: str
    config: Mapping[str, Any]


@dataclass(frozen=True)
class InputFile:
    """An input image file of the render, with its hash so a rerun can check it is the same file."""

    role: str
    path: str
    sha256: str


@dataclass(frozen=True)
class RenderSetup:
    """Everything shared by a render's images: enough to render them again.

    ``params`` are the parameters as rendered: ``width``/``height`` always filled in.
    """

    model: ModelSource
    vae: ModelSource | None
    family: str
    pipeline_class: str
    task: str
    dtype: str
    device: str
    params: RenderParams
    scheduler: SchedulerUsed
    inputs: tuple[InputFile, ...]
    versions: Mapping[str, str]
    load_seconds: float
    #: The LoRAs as applied: each with its file and sha256 (hub LoRAs fetched).
    loras: tuple[LoraSpec, ...] = ()
    #: The textual-inversion embeddings loaded, each with its file's sha256 and token.
    embeddings: tuple[Embedding, ...] = ()
    #: The ControlNet: its weights' source, its conditioning image's sha256 and its scale.
    controlnet: ControlNetUsed | None = None

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(dataclasses.asdict(self))


@dataclass
class RenderResult:
    """Images plus their shared setup and per-batch render seconds; ``to_dict`` is JSON-safe."""

    setup: RenderSetup
    images: list[RenderedImage] = field(default_factory=list)
    batch_seconds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "setup": self.setup.to_dict(),
            "images": [image.to_dict() for image in self.images],
            "timings": {"load_seconds": self.setup.load_seconds, "batch_seconds": list(self.batch_seconds)},
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no infinities (DPM-Solver's lambda_min_clipped is -inf): "-inf", which float() reads back.
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide what an image looks like."""
    return dict(_installed_versions())


@cache
def _installed_versions() -> dict[str, str]:
    # Reading package metadata takes milliseconds per library, and a process's libraries do not change.
    import promptlab

    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = promptlab.__version__ if name == "promptlab" else "not installed"
    return versions


def _scheduler_choice(params: RenderParams, loaded: LoadedModel) -> SchedulerChoice:
    if params.scheduler is not None:
        return find_scheduler(params.scheduler, loaded.scheduler)
    class_name = type(loaded.scheduler).__name__
    return SchedulerChoice(class_scheduler_name(class_name), class_name, class_name)


def _inputs(params: RenderParams, loaded: LoadedModel) -> tuple[InputImages | None, tuple[InputFile, ...]]:
    files = _input_files(params)
    if params.image is None:
        return None, files
    images = prepare_images(
        params.image,
        mask_image=params.mask_image,
        depth_map=params.depth_map,
        width=params.width,
        height=params.height,
        multiple=loaded.pipe.vae_scale_factor,
    )
    return images, files


def _input_files(params: RenderParams) -> tuple[InputFile, ...]:
    files = []
    for role in ("image", "mask_image", "depth_map", "control_image"):
        path = getattr(params, role)
        if path is None:
            continue
        if not Path(path).is_file():
            raise RenderError(f"{role.replace('_', ' ')} file {str(path)!r} does not exist")
        files.append(InputFile(role, str(Path(path).resolve()), file_sha256(Path(path))))
    return tuple(files)


def _resolved_size(
    params: RenderParams, loaded: LoadedModel, images: InputImages | None, control: Image.Image | None = None
) -> tuple[int, int]:
    if images is not None:
        return images.width, images.height
    if control is not None:
        # Already at width x height where given: a txt2img ControlNet render takes its image's size.
        return control.width, control.height
    pipe = loaded.pipe
    default = getattr(pipe, "default_sample_size", None) or pipe.unet.config.sample_size
    factor = pipe.vae_scale_factor
    width, height = params.width or default * factor, params.height or default * factor
    for name, value in (("width", width), ("height", height)):
        if value % factor:
            raise RenderError(f"{name} {value} must be a multiple of this model's VAE factor {factor}")
    return width, height


def _task_kwargs(task: str, images: InputImages | None, count: int, width: int, height: int) -> dict[str, Any]:
    if task == "txt2img" or images is None:
        return {"height": height, "width": width}
    # One copy per image: diffusers encodes image i with generator i.
    kwargs: dict[str, Any] = {"image": [images.image] * count}
    if task == "inpaint":
        kwargs.update(mask_image=[images.mask_image] * count, height=height, width=width)
    if task == "depth2img" and images.depth_map is not None:
        kwargs["depth_map"] = depth_tensor(images.depth_map).repeat(count, 1, 1)
    return kwargs


def _control_kwargs(plan: _Plan, count: int) -> dict[str, Any]:
    controlnet = plan.setup.controlnet
    if controlnet is None or plan.control is None:
        return {}
    return control_kwargs(plan.setup.task, plan.control, count, controlnet.scale)


@dataclass(frozen=True)
class _Plan:
    """A checked render: the setup to record plus what each batch needs to run."""

    setup: RenderSetup
    loaded: LoadedModel
    choice: SchedulerChoice
    images: InputImages | None
    width: int
    height: int
    control: Image.Image | None = None


def render_batches(
    items: Sequence[RenderItem],
    params: RenderParams,
    model: ModelSpec | str,
    *,
    batch_size: int = 4,
    progress: ProgressCallback | None = None,
) -> Iterator[RenderResult]:
    """Render ``items`` with shared ``params``, yielding one ``RenderResult`` per finished batch.

    Everything is checked and the model loaded before this returns, so a bad parameter, image
    or model raises here rather than at the first ``next()``. Images keep request order.
    """
    # 1. Check the request.
    if not _is_positive_int(batch_size):
        raise RenderError(f"batch_size {batch_size!r} must be a whole number >= 1")
    items = list(items)
    if not items:
        raise RenderError("nothing to render: give at least one (prompt, seed) item")
    for item in items:
        if not isinstance(item, RenderItem):
            raise RenderError(f"render item {item!r} must be a RenderItem(prompt, seed)")
    # 2.-6. The model, the input images and size, the scheduler, the LoRAs and the embeddings.
    plan, scheduler = _plan(params, model)
    return _run(items, plan, batch_size, progress, scheduler)


def check_render(params: RenderParams, model: ModelSpec | str) -> RenderSetup:
    """Load the model and check the input images, the size and the scheduler, rendering nothing.

    What ``render_batches`` does before its first batch: a runner calls it once per setup, so a bad
    model, scheduler or image fails once, before any cell, rather than once per cell.
    """
    return _plan(params, model)[0].setup


def _plan(params: RenderParams, model: ModelSpec | str) -> tuple[_Plan, SchedulerMixin]:
    # 2. Load the model for the task (or reuse it: the last few loaded are kept).
    loaded = load_model(model, params.task)
    # 3. Read input images and settle the size; a ControlNet brings its pipeline and image.
    images, files = _inputs(params, loaded)
    loaded, controlnet, control = _controlnet(params, loaded, images, files)
    width, height = _resolved_size(params, loaded, images, control)
    check_size(width, height)
    # 4. Settle the scheduler (a bad name fails now, not mid-run).
    choice = _scheduler_choice(params, loaded)
    scheduler = build_scheduler(choice, loaded.scheduler_config)
    # 5. Load the LoRAs onto the model (the base stays loaded) and make exactly these active.
    loras = apply_loras(loaded.pipe, params.loras, loaded.source.model, loaded.family)
    # 6. Load the textual-inversion embeddings into the text encoder(s), unloading any others.
    embeddings = apply_embeddings(loaded.pipe, loaded.family, params.embeddings)
    if controlnet is not None:
        params = dataclasses.replace(params, controlnet_conditioning_scale=controlnet.scale)
    setup = RenderSetup(
        model=loaded.source,
        vae=loaded.vae,
        family=loaded.family,
        pipeline_class=type(loaded.pipe).__name__,
        task=params.task,
        dtype=loaded.dtype,
        device=loaded.device,
        # The size as rendered, so the record replays exactly even where the model chose it.
        params=dataclasses.replace(params, width=width, height=height),
        scheduler=SchedulerUsed(choice.name, choice.label, choice.class_name, _json_safe(dict(scheduler.config))),
        inputs=files,
        versions=library_versions(),
        load_seconds=loaded.load_seconds,
        loras=loras,
        embeddings=embeddings,
        controlnet=controlnet,
    )
    return _Plan(setup, loaded, choice, images, width, height, control), scheduler


def _controlnet(
    params: RenderParams, loaded: LoadedModel, images: InputImages | None, files: tuple[InputFile, ...]
) -> tuple[LoadedModel, ControlNetUsed | None, Image.Image | None]:
    """The task's ControlNet pipeline on the loaded model's components, what a run records of it, its image."""
    if params.controlnet is None or params.control_image is None:
        return loaded, None, None
    controlnet, source = load_controlnet(params.controlnet, loaded.dtype, loaded.device)
    check_fits(controlnet, loaded.pipe, loaded.family, params.controlnet)
    control = read_control_image(
        params.control_image, width=params.width, height=params.height, multiple=loaded.pipe.vae_scale_factor
    )
    if images is not None and control.size != (images.width, images.height):
        raise RenderError(
            f"control image {params.control_image!r} is {control.width}x{control.height} but image file {params.image!r} "
            f"is {images.width}x{images.height}; give them the same size, or pass width and height to resize both"
        )
    pipe = controlnet_pipeline(loaded.pipe, controlnet, params.task, loaded.family, loaded.dtype)
    scale = DEFAULT_SCALE if params.controlnet_conditioning_scale is None else params.controlnet_conditioning_scale
    image_sha256 = next(f.sha256 for f in files if f.role == "control_image")
    return dataclasses.replace(loaded, pipe=pipe), ControlNetUsed(source, image_sha256, float(scale)), control


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _run(
    items: list[RenderItem], plan: _Plan, batch_size: int, progress: ProgressCallback | None, checked: SchedulerMixin
) -> Iterator[RenderResult]:
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    done = 0
    for number, batch in enumerate(batches):
        started = time.perf_counter()
        on_step_end = _step_reporter(progress, number, len(batches), done, len(items))
        # A fresh scheduler per batch (the first takes the unused one built while checking): no state carries over.
        scheduler = checked if number == 0 else build_scheduler(plan.choice, plan.loaded.scheduler_config)
        rendered = _render_batch(batch, done, plan, scheduler, on_step_end)
        done += len(batch)
        if progress is not None:
            steps = getattr(plan.loaded.pipe, "num_timesteps", plan.setup.params.num_inference_steps)
            progress(RenderProgress(number + 1, len(batches), steps, steps, done, len(items)))
        yield RenderResult(setup=plan.setup, images=rendered, batch_seconds=[time.perf_counter() - started])


def _step_reporter(
    progress: ProgressCallback | None, number: int, batches: int, done: int, total: int
) -> Callable[..., dict[str, Any]] | None:
    if progress is None:
        return None

    def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        steps = getattr(pipe, "num_timesteps", step + 1)
        progress(RenderProgress(number + 1, batches, step + 1, steps, done, total))
        return callback_kwargs

    return on_step_end


def _render_batch(
    batch: list[RenderItem],
    first_index: int,
    plan: _Plan,
    scheduler: SchedulerMixin,
    on_step_end: Callable[..., dict[str, Any]] | None,
) -> list[RenderedImage]:
    import torch

    params = plan.setup.params
    pipe = plan.loaded.pipe
    pipe.scheduler = scheduler
    # Another render may have switched the LoRAs since this one was planned.
    activate_loras(pipe, plan.setup.loras)
    apply_embeddings(pipe, plan.loaded.family, params.embeddings)
    negatives = [params.negative_prompt if item.negative_prompt is None else item.negative_prompt for item in batch]
    prompts = [item.prompt for item in batch]
    generators = [torch.Generator("cpu").manual_seed(item.seed) for item in batch]
    # Inference mode, not only the pipeline's own no_grad: the prompt encoding before it would
    # otherwise record an autograd graph, and every op skips autograd's bookkeeping.
    with torch.inference_mode(), warnings.catch_warnings():
        conditioning = encode_prompts(pipe, plan.loaded.family, prompts, negatives, params.long_prompt)
        # depth2img opens a CPU autocast context that torch declines for float32; harmless.
        warnings.filterwarnings("ignore", message=".*CPU [Aa]utocast.*")
        output = pipe(
            num_inference_steps=params.num_inference_steps,
            guidance_scale=params.guidance_scale,
            generator=generators,
            output_type="pil",
            callback_on_step_end=on_step_end,
            **({"strength": params.strength} if params.task != "txt2img" else {}),
            **_task_kwargs(params.task, plan.images, len(batch), plan.width, plan.height),
            **_control_kwargs(plan, len(batch)),
            **conditioning.pipeline_kwargs(),
        )
    return [
        RenderedImage(image=image, prompt=item.prompt, negative_prompt=negative, seed=item.seed, index=first_index + i)
        for i, (image, item, negative) in enumerate(zip(output.images, batch, negatives))
    ]


def render(
    items: Sequence[RenderItem],
    params: RenderParams,
    model: ModelSpec | str,
    *,
    batch_size: int = 4,
    progress: ProgressCallback | None = None,
) -> RenderResult:
    """Render every item and return all images in one result (``render_batches``, collected)."""
    batches = render_batches(items, params, model, batch_size=batch_size, progress=progress)
    result = next(batches)
    for batch in batches:
        result.images.extend(batch.images)
        result.batch_seconds.extend(batch.batch_seconds)
    return result


@dataclass(frozen=True)
class RenderRequest:
    """One prompt rendered ``count`` times with seeds ``seed``, ``seed + 1``, ... (what ``promptlab render`` asks).

    ``seed`` None draws a random 32-bit start seed; it is recorded like any other.
    """

    prompt: str
    model: ModelSpec
    params: RenderParams = RenderParams()
    seed: int | None = None
    count: int = 1
    batch_size: int = 4

    def items(self) -> list[RenderItem]:
        if not _is_positive_int(self.count) or self.count > MAX_COUNT:
            raise RenderError(f"count {self.count!r} must be a whole number from 1 to {MAX_COUNT}")
        start = secrets.randbits(32) if self.seed is None else check_seed(self.seed)
        check_seed(start + self.count - 1)
        return [RenderItem(self.prompt, start + offset) for offset in range(self.count)]


def render_request(request: RenderRequest, progress: ProgressCallback | None = None) -> RenderResult:
    """Render a ``RenderRequest``: the one library call behind ``promptlab render``."""
    return render(request.items(), request.params, request.model, batch_size=request.batch_size, progress=progress)
