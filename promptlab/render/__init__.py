"""Rendering: load Stable Diffusion models with diffusers and render prompts in seeded batches.

- ``models``: find/load/cache models, detect the family, describe a model.
- ``tiny``: built-in random-weight tiny models for tests (their images are noise).
- ``schedulers``: scheduler names (diffusers classes and A1111 sampler names).
- ``images``: input image reading and sizing for img2img, inpaint and depth2img.
- ``params``: ``RenderParams``, ``RenderItem``, ``parse_size``.
- ``conditioning``: prompt embeddings through compel (weighted prompts).
- ``engine``: batched rendering and typed, JSON-serialisable results.

Importing this package does not import torch or diffusers; they load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promptlab.lazy import lazy_names

if TYPE_CHECKING:
    from promptlab.builtin import TINY_MODELS
    from promptlab.render.engine import (
        RenderedImage,
        RenderProgress,
        RenderRequest,
        RenderResult,
        RenderSetup,
        render,
        render_batches,
        render_request,
    )
    from promptlab.render.models import (
        BUILTIN_MODELS,
        FAMILIES,
        PIPELINE_CLASSES,
        ModelInfo,
        ModelSource,
        ModelSpec,
        detect_family,
        load_model,
        model_info,
    )
    from promptlab.render.params import (
        LONG_PROMPT_POLICIES,
        MAX_SEED,
        RENDER_PARAM_NAMES,
        TASK_INPUTS,
        TASKS,
        RenderItem,
        RenderParams,
        Size,
        parse_size,
    )
    from promptlab.render.schedulers import SCHEDULERS, SchedulerChoice, list_schedulers

# Each name's module, imported on first use: ``promptlab.render.params`` (the CLI's choices) loads
# without the engine, and ``promptlab --help`` stays fast.
_HOMES: dict[str, str] = {
    "TINY_MODELS": "promptlab.builtin",
    **dict.fromkeys(
        ("RenderedImage", "RenderProgress", "RenderRequest", "RenderResult", "RenderSetup", "render", "render_batches",
         "render_request"),
        "promptlab.render.engine",
    ),
    **dict.fromkeys(
        ("BUILTIN_MODELS", "FAMILIES", "PIPELINE_CLASSES", "ModelInfo", "ModelSource", "ModelSpec", "detect_family",
         "load_model", "model_info"),
        "promptlab.render.models",
    ),
    **dict.fromkeys(
        ("LONG_PROMPT_POLICIES", "MAX_SEED", "RENDER_PARAM_NAMES", "TASK_INPUTS", "TASKS", "RenderItem", "RenderParams",
         "Size", "parse_size"),
        "promptlab.render.params",
    ),
    **dict.fromkeys(("SCHEDULERS", "SchedulerChoice", "list_schedulers"), "promptlab.render.schedulers"),
}  # fmt: skip


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())


__all__ = [
    "BUILTIN_MODELS",
    "FAMILIES",
    "LONG_PROMPT_POLICIES",
    "MAX_SEED",
    "PIPELINE_CLASSES",
    "RENDER_PARAM_NAMES",
    "SCHEDULERS",
    "TASKS",
    "TASK_INPUTS",
    "TINY_MODELS",
    "ModelInfo",
    "ModelSource",
    "ModelSpec",
    "RenderItem",
    "RenderParams",
    "RenderProgress",
    "RenderRequest",
    "RenderResult",
    "RenderSetup",
    "RenderedImage",
    "SchedulerChoice",
    "Size",
    "detect_family",
    "list_schedulers",
    "load_model",
    "model_info",
    "parse_size",
    "render",
    "render_batches",
    "render_request",
]
