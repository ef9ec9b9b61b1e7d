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
from promptlab.render.adapters import LoraSpec

#: The largest seed: the store keeps seeds in a signed 64-bit column (SQLite and PostgreSQL alike),
#: so every seed promptlab renders, reads from a file or stores is from 0 to 2**63 - 1.
MAX_SEED = 2**63 - 1
#: What a seed must be, as every error about one says it.
SEED_RANGE = "a whole number from 0 to 2**63 - 1 (the store keeps seeds as signed 64-bit integers)"
SIZE_MULTIPLE = 8
# Diffusers' schedulers step through the model's 1000 training timesteps: no more steps than that.
MAX_STEPS = 1000
# Past these a render cannot finish on any machine promptlab runs on (a 4096x4096 SD image needs
# tens of GB for its attention maps); a larger number is a typo, refused before the model loads.
MAX_SIDE = 8192
MAX_PIXELS = 4096 * 4096
# Images one request renders (``promptlab render -n``); an experiment has its own cell limit.
MAX_COUNT = 10_000
# A prompt longer than this is no prompt (CLIP reads 75 tokens; chunked, 10,000 characters are some
# 30 chunks), and the text encoder's cost grows with it.
MAX_PROMPT_CHARS = 10_000
# compel scales a fragment's embedding by its weight: far past this it leaves the range float16
# holds, and the image is noise or black. No prompt needs more (A1111's own emphasis is 1.1 a step).
MAX_WEIGHT = 100.0

#: How prompts past CLIP's 75-token window are read (recorded with every run).
LONG_PROMPT_POLICIES: dict[str, str] = {
    "truncate": "tokens past the 75-token window are dropped, as diffusers does",
    "chunk": "the prompt is encoded in 75-token chunks that are concatenated (compel, truncate_long_prompts=False)",
}



class TaskInputs(NamedTuple):
    """The input images a task needs, and every one it takes (diffusers' argument names)."""

    needs: tuple[str, ...]
    takes: tuple[str, ...]


#: Tasks and their input images, in the order tasks are listed (txt2img first).
TASK_INPUTS: dict[str, TaskInputs] = {
    "txt2img": TaskInputs((), ()),
    "img2img": TaskInputs(("image",), ("image",)),
    "inpaint": TaskInputs(("image", "mask_image"), ("image", "mask_image")),
    "depth2img": TaskInputs(("image",), ("image", "depth_map")),
}
#: The tasks promptlab renders; ``render.models.PIPELINE_CLASSES`` names diffusers' pipeline for each.
TASKS: tuple[str, ...] = tuple(TASK_INPUTS)
#: Every input image a render can take.
INPUT_IMAGES: tuple[str, ...] = ("image", "mask_image", "depth_map")
#: Render parameters a run records with a column of its own (diffusers' argument names); the rest
#: of a run's parameters are kept as JSON.
RENDER_PARAM_NAMES: tuple[str, ...] = (
    "num_inference_steps",
    "guidance_scale",
    "width",
    "height",
    "scheduler",
    "strength",
    "controlnet_conditioning_scale",
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_seed(seed: object) -> int:
    """``seed`` if it is an int from 0 to ``MAX_SEED`` (what the store keeps), else RenderError.

    >>> check_seed(2**63)
    Traceback (most recent call last):
    ...
    promptlab.errors.RenderError: seed 9223372036854775808 must be a whole number from 0 to 2**63 - 1 (the store keeps seeds as signed 64-bit integers)
    """
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:  # type: ignore[operator]
        raise RenderError(f"seed {seed!r} must be {SEED_RANGE}")
    return seed  # type: ignore[return-value]


@dataclass(frozen=True)
class EmbeddingFile:
    """A textual-inversion embedding to load: its file (or diffusers folder) and its trigger token.

    ``token`` None: the file's own (a diffusers file's one key, else the file name without its
    suffix, as A1111 names an embedding).

        >>> parse_embedding("styles/emb.safetensors:<my-style>")
        EmbeddingFile(path='styles/emb.safetensors', token='<my-style>')
    """

    path: str
    token: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.strip():
            raise RenderError(f"embedding {self.path!r} must be a file path (an A1111 .pt/.safetensors or a diffusers file)")
        if self.token is not None and (not isinstance(self.token, str) or not self.token or _BAD_TOKEN.search(self.token)):
            raise RenderError(
                f"embedding {self.path}: token {self.token!r} must be one word without spaces, commas, colons, "
                "parentheses or quotes (it is written into prompts), e.g. <my-style>"
            )

    def spec(self) -> str:
        """``PATH:TOKEN`` as ``parse_embedding`` reads it (``PATH`` alone for the file's own token)."""
        return self.path if self.token is None else f"{self.path}:{self.token}"


# A trigger token is written into compel and A1111 prompts: none of their syntax characters.
_BAD_TOKEN = re.compile(r'[\s,:()\[\]{}"\\|]')


def parse_embedding(text: str) -> EmbeddingFile:
    """``PATH[:TOKEN]`` (the form ``--embedding`` and experiment files take) as an ``EmbeddingFile``."""
    if not isinstance(text, str):
        raise RenderError(f"embedding {text!r} must be text: PATH or PATH:TOKEN")
    path, colon, token = text.rpartition(":")
    # No colon, a Windows drive ("C:\\emb.pt"), or a colon inside the path: it is all path.
    if not colon or not path or len(path) == 1 or any(char in token for char in "/\\") or not token:
        return EmbeddingFile(text)
    return EmbeddingFile(path, token)


@dataclass(frozen=True)
class RenderParams:
    """Parameters shared by every image of a render.

    ``height``/``width`` None: the model's default size for txt2img, the input image's size for
    image tasks. ``scheduler`` None: the model's own scheduler. ``guidance_scale`` may be 0; at
    1 or below diffusers turns classifier-free guidance off and the negative prompt has no effect.
    ``strength`` (image tasks) is the share of the denoising schedule that runs, so at least one
    step must remain: ``int(num_inference_steps * strength) >= 1``. Input images are file paths.
    ``loras`` are applied at their strengths (``promptlab.render.adapters``); none by default.

    ``embeddings`` are loaded into the text encoder(s) for the render (``render.embeddings``).
    ``controlnet`` (hub id, diffusers folder or ``.safetensors`` file) adds a ControlNet to any task,
    guided by ``control_image``; ``controlnet_conditioning_scale`` None means diffusers' 1.0 with a
    ControlNet and is None without one (``render.controlnet``).
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
    embeddings: tuple[EmbeddingFile, ...] = ()
    controlnet: str | None = None
    control_image: str | None = None
    controlnet_conditioning_scale: float | None = None
    loras: tuple[LoraSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in TASK_INPUTS:
            raise RenderError(f"task {self.task!r} is not one of {', '.join(TASK_INPUTS)}")
        if not _is_int(self.num_inference_steps) or not 1 <= self.num_inference_steps <= MAX_STEPS:
            raise RenderError(
                f"num_inference_steps {self.num_inference_steps!r} must be a whole number from 1 to {MAX_STEPS} "
                "(the schedulers' training timesteps)"
            )
        if not _is_number(self.guidance_scale) or self.guidance_scale < 0:
            raise RenderError(f"guidance_scale {self.guidance_scale!r} must be a finite number >= 0")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value <= 0 or value % SIZE_MULTIPLE):
                raise RenderError(f"{name} {value!r} must be a positive multiple of {SIZE_MULTIPLE}")
        if self.width is not None and self.height is not None:
            check_size(self.width, self.height)
        if not _is_number(self.strength) or not 0 < self.strength <= 1:
            raise RenderError(f"strength {self.strength!r} must be a number in 0 < strength <= 1")
        if self.long_prompt not in LONG_PROMPT_POLICIES:
            raise RenderError(
                f"long_prompt {self.long_prompt!r} is not one of {', '.join(LONG_PROMPT_POLICIES)}"
            )
        if not isinstance(self.negative_prompt, str):
            raise RenderError(f"negative_prompt {self.negative_prompt!r} must be text")
        self._check_inputs()
        self._check_adapters()
        if isinstance(self.loras, (list, tuple)):
            # A setup read back from JSON (``RenderSetup.to_dict``) gives each LoRA as a dict of LoraSpec's fields.
            object.__setattr__(self, "loras", tuple(LoraSpec.from_dict(lora) if isinstance(lora, dict) else lora for lora in self.loras))
        if not isinstance(self.loras, tuple) or not all(isinstance(lora, LoraSpec) for lora in self.loras):
            raise RenderError(f"loras {self.loras!r} must be a tuple of LoraSpec (promptlab.render.adapters.parse_lora reads NAME[:STRENGTH])")

    def _check_adapters(self) -> None:
        if isinstance(self.embeddings, (list, tuple)):
            # A setup read back from JSON (``RenderSetup.to_dict``) gives each as {"path", "token"}, or PATH:TOKEN text.
            embeddings = tuple(
                EmbeddingFile(e.get("path"), e.get("token")) if isinstance(e, dict) else parse_embedding(e) if isinstance(e, str) else e
                for e in self.embeddings
            )
            object.__setattr__(self, "embeddings", embeddings)
        if not isinstance(self.embeddings, tuple) or not all(isinstance(e, EmbeddingFile) for e in self.embeddings):
            raise RenderError(f"embeddings {self.embeddings!r} must be a tuple of EmbeddingFile (parse_embedding reads PATH:TOKEN)")
        tokens = [e.token for e in self.embeddings if e.token is not None]
        if len(set(tokens)) < len(tokens):
            raise RenderError(f"embeddings {', '.join(e.spec() for e in self.embeddings)}: each token may be given once")
        if (self.controlnet is None) != (self.control_image is None):
            given, missing = ("controlnet", "control_image") if self.controlnet else ("control_image", "controlnet")
            raise RenderError(f"{given} {getattr(self, given)!r} needs {missing} too: a ControlNet model and its conditioning image go together")
        scale = self.controlnet_conditioning_scale
        if scale is not None:
            if self.controlnet is None:
                raise RenderError(f"controlnet_conditioning_scale {scale!r} needs a controlnet (and a control_image)")
            if not _is_number(scale) or scale < 0:
                raise RenderError(f"controlnet_conditioning_scale {scale!r} must be a finite number >= 0 (0: no ControlNet effect)")

    def _check_inputs(self) -> None:
        needed, allowed = TASK_INPUTS[self.task]
        for name in INPUT_IMAGES:
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


def check_prompt(text: str, what: str = "prompt") -> None:
    """RenderError unless compel ``text`` is at most ``MAX_PROMPT_CHARS`` long with every weight at most ``MAX_WEIGHT``."""
    from promptlab.errors import PromptSyntaxError
    from promptlab.prompt import compel_parts

    check_prompt_length(text, what)
    try:
        fragments = [fragment for part in compel_parts(text) for fragment in part]
    except PromptSyntaxError:
        return  # not compel's syntax: the render's own reading of it says why, naming the text
    for fragment, weight in fragments:
        check_weight(weight, f"{what}: {fragment[:40]!r}")


def check_prompt_length(text: str, what: str = "prompt") -> None:
    """RenderError if ``text`` is longer than ``MAX_PROMPT_CHARS``: checked before any parser reads it."""
    if len(text) > MAX_PROMPT_CHARS:
        raise RenderError(f"{what} is {len(text):,} characters long: at most {MAX_PROMPT_CHARS:,}; shorten it")


def check_weight(weight: float, what: str) -> None:
    """RenderError unless ``weight`` is a finite number from 0 to ``MAX_WEIGHT``."""
    if not (math.isfinite(weight) and 0 <= weight <= MAX_WEIGHT):
        raise RenderError(
            f"{what}: weight {weight:g} is out of range: weights go from 0 to {MAX_WEIGHT:g} (past that the "
            "embedding leaves the range the encoder's float16 holds); use a weight like 1.3 for stronger"
        )


def check_size(width: int, height: int) -> None:
    """RenderError unless a side is at most ``MAX_SIDE`` and the image at most ``MAX_PIXELS`` pixels."""
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise RenderError(
            f"size {width}x{height} is too large: at most {MAX_SIDE} pixels a side and {MAX_PIXELS:,} pixels "
            f"in all ({int(MAX_PIXELS**0.5)}x{int(MAX_PIXELS**0.5)})"
        )


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
    check_size(width, height)
    return Size(width, height)
