"""Render parameters with diffusers' names, checked up front.

    >>> RenderParams(num_inference_steps=4, width=64, height=64).guidance_scale
    7.5
    >>> parse_size("512x768")
    Size(width=512, height=768)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from promptlab.errors import RenderError

MAX_SEED = 2**64
SIZE_MULTIPLE = 8

#: How prompts past CLIP's 75-token window are read (recorded with every run).
LONG_PROMPT_POLICIES: dict[str, str] = {
    "truncate": "tokens past the 75-token window are dropped, as diffusers does",
    "chunk": "the prompt is encoded in 75-token chunks that are concatenated (compel, truncate_long_prompts=False)",
}

#: Tasks and the input images each needs.
TASK_INPUTS: dict[str, tuple[str, ...]] = {
    "txt2img": (),
    "img2img": ("image",),
    "inpaint": ("image", "mask_image"),
    "depth2img": ("image",),
}
_OPTIONAL_INPUTS = {"depth2img": ("depth_map",)}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_seed(seed: object) -> int:
    """``seed`` if it is an int in 0 <= seed < 2**64 (torch.Generator's range), else RenderError."""
    if not _is_int(seed) or not 0 <= seed < MAX_SEED:  # type: ignore[operator]
        raise RenderError(f"seed {seed!r} must be a whole number from 0 to 2**64 - 1")
    return seed  # type: ignore[return-value]


@dataclass(frozen=True)
class RenderParams:
    """Parameters shared by every image of a render.

    ``height``/``width`` None: the model's default size for txt2img, the input image's size for
    image tasks. ``scheduler`` None: the model's own scheduler. ``guidance_scale`` may be 0; at
    1 or below diffusers turns classifier-free guidance off and the negative prompt has no effect.
    ``strength`` (image tasks) is the share of the denoising schedule that runs, so at least one
    step must remain: ``int(num_inference_steps * strength) >= 1``. Input images are file paths.
    """

    task: str = "txt2img"
    num_inference_steps: int = 30
    guidance_scale: float = 7.5
    height: int | None = None
    width: int | None = None
    negative_prompt: str = ""
    strength: float = 0.8
    scheduler: str | None = None
    long_prompt: str = "truncate"
    image: str | None = None
    mask_image: str | None = None
    depth_map: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASK_INPUTS:
            raise RenderError(f"task {self.task!r} is not one of {', '.join(TASK_INPUTS)}")
        if not _is_int(self.num_inference_steps) or self.num_inference_steps < 1:
            raise RenderError(f"num_inference_steps {self.num_inference_steps!r} must be a whole number >= 1")
        if not _is_number(self.guidance_scale) or self.guidance_scale < 0:
            raise RenderError(f"guidance_scale {self.guidance_scale!r} must be a finite number >= 0")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value <= 0 or value % SIZE_MULTIPLE):
                raise RenderError(f"{name} {value!r} must be a positive multiple of {SIZE_MULTIPLE}")
        if not _is_number(self.strength) or not 0 < self.strength <= 1:
            raise RenderError(f"strength {self.strength!r} must be a number in 0 < strength <= 1")
        if self.long_prompt not in LONG_PROMPT_POLICIES:
            raise RenderError(
                f"long_prompt {self.long_prompt!r} is not one of {', '.join(LONG_PROMPT_POLICIES)}"
            )
        if not isinstance(self.negative_prompt, str):
            raise RenderError(f"negative_prompt {self.negative_prompt!r} must be text")
        self._check_inputs()

    def _check_inputs(self) -> None:
        needed = TASK_INPUTS[self.task]
        allowed = needed + _OPTIONAL_INPUTS.get(self.task, ())
        for name in ("image", "mask_image", "depth_map"):
            value = getattr(self, name)
            if name in needed and not value:
                raise RenderError(f"task {self.task} needs {name} (an image file)")
            if value and name not in allowed:
                raise RenderError(f"task {self.task} takes no {name} (got {value!r})")
        if needed and int(self.num_inference_steps * self.strength) < 1:
            raise RenderError(
                f"strength {self.strength} x num_inference_steps {self.num_inference_steps} leaves no denoising "
                "step; raise either so that their product is at least 1"
            )


@dataclass(frozen=True)
class RenderItem:
    """One image to render: its prompt (compel syntax), seed, and negative prompt (None = the params')."""

    prompt: str
    seed: int
    negative_prompt: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise RenderError(f"prompt {self.prompt!r} must be text (compel syntax)")
        check_seed(self.seed)


class Size(NamedTuple):
    """An image size in pixels."""

    width: int
    height: int


def parse_size(text: str) -> Size:
    """``"512x768"`` -> ``Size(width=512, height=768)``; RenderError unless both are positive multiples of 8."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if match is None:
        raise RenderError(f"size {text!r} must be WIDTHxHEIGHT in pixels, e.g. 512x768")
    width, height = int(match[1]), int(match[2])
    for name, value in (("width", width), ("height", height)):
        if value <= 0 or value % SIZE_MULTIPLE:
            raise RenderError(f"size {text!r}: {name} {value} must be a positive multiple of {SIZE_MULTIPLE}")
    return Size(width, height)
