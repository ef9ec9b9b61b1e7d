"""What every reader fills in (``GenerationParameters``, ``ImageMetadata``), the chunk names and
limits, and the checks every reader shares (JSON depth, lone surrogates).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import PngImagePlugin

from promptlab.errors import ImportMetadataError

Source = Literal["a1111", "comfyui", "invokeai", "promptlab", "fooocus", "ruinedfooocus", "swarmui", "novelai"]

A1111_CHUNK = "parameters"
PROMPTLAB_CHUNK = "promptlab"
COMFYUI_CHUNK = "prompt"
INVOKEAI_CHUNK = "invokeai_metadata"
INVOKEAI_LEGACY_CHUNK = "sd-metadata"
INVOKEAI_DREAM_CHUNK = "Dream"
NOVELAI_CHUNK = "Comment"
# Pillow's own limit for a compressed text chunk; promptlab reads no longer text from any chunk.
MAX_TEXT_CHARS = PngImagePlugin.MAX_TEXT_CHUNK
# Real metadata is a few levels deep (ComfyUI's graph: 4); deeper is no tool's output.
MAX_JSON_DEPTH = 64
#: The values the tools themselves allow (ComfyUI's widgets are the widest: steps to 10,000, CFG to
#: 100, sizes to 16,384, any 64-bit seed); a value outside is no real image's and is refused.
FIELD_RANGES: dict[str, tuple[float, float]] = {
    "seed": (0, 2**64 - 1),
    "steps": (1, 10_000),
    "cfg_scale": (0.0, 100.0),
    "width": (1, 16_384),
    "height": (1, 16_384),
    "denoising_strength": (0.0, 1.0),
    "clip_skip": (0, 64),
}


@dataclass(frozen=True)
class GenerationParameters:
    """How an image was made, in the terms A1111's infotext uses.

    ``sampler`` and ``scheduler`` hold the source tool's own names: A1111 before 1.9 writes
    ``Sampler: DPM++ 2M Karras``, later ``Sampler: DPM++ 2M, Schedule type: Karras``; ComfyUI
    gives ``euler`` + ``normal``; InvokeAI's single choice (``dpmpp_2m_k``) lands in ``sampler``.
    ``clip_skip`` counts as A1111 does (1 = last CLIP layer, 2 = penultimate), which is
    diffusers' ``clip_skip`` + 1. ``extra`` keeps every other key in the order it was read.
    ``loras`` are (name, strength) pairs in the order they were applied. When the tool combined
    several prompts into one conditioning, ``prompts`` (``negative_prompts``) holds each one and
    ``prompt`` only one of them. ``notes`` names, in words, what the tool did that no field holds
    (another sampler, a ControlNet, a refiner...).
    """

    prompt: str
    negative_prompt: str = ""
    steps: int | None = None
    sampler: str | None = None
    scheduler: str | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None
    model_hash: str | None = None
    denoising_strength: float | None = None
    clip_skip: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    source: Source = "promptlab"
    loras: tuple[tuple[str, float], ...] = ()
    prompts: tuple[ConditioningPrompt, ...] = ()
    negative_prompts: tuple[ConditioningPrompt, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConditioningPrompt:
    """One of several prompts a tool combines into one conditioning (ComfyUI's area prompts), and how it applies.

    ``text`` is the prompt as the tool wrote it; ``strength`` the strength the tool gives it
    (1.0 when it gives none); ``scope`` where or when it applies ("704x384 at x=0, y=512",
    "steps 0%-50%"; "" for the whole image, all steps); ``node`` the id of its text encoder node.
    """

    text: str
    strength: float = 1.0
    scope: str = ""
    node: str = ""


@dataclass(frozen=True)
class ImageMetadata:
    """What an image file says about how it was made.

    ``chunks`` holds the file's text chunks by keyword, exactly as stored; the EXIF UserComment
    of a JPEG/WebP appears there as ``parameters``, where A1111 would have put it in a PNG.
    """

    path: Path
    parameters: GenerationParameters
    chunks: dict[str, str]
    promptlab_record: dict[str, Any] | None = None


def short(value: object, limit: int = 50) -> str:
    """A value as a note shows it: text quoted and cut at ``limit`` characters, numbers without float noise."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        text = " ".join(value.split())
        return repr(text if len(text) <= limit else text[: limit - 3] + "...")
    return repr(value)


def matches_type(value: object, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def extra_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def load_json(text: str, chunk: str) -> Any:
    try:
        data = json.loads(text)
    except RecursionError:
        raise ImportMetadataError(f"'{chunk}' chunk: JSON nested deeper than {MAX_JSON_DEPTH} levels, which no tool writes") from None
    except ValueError as error:
        raise ImportMetadataError(f"'{chunk}' chunk is not valid JSON ({error})") from error
    return check_json(data, f"'{chunk}' chunk")


def check_json(data: Any, what: str) -> Any:
    """``data`` (parsed JSON) if it nests at most ``MAX_JSON_DEPTH`` levels and holds only text a file can
    hold, else ImportMetadataError naming ``what``.

    Walked without recursion, so a hostile document cannot exhaust the stack of the code that reads it.
    JSON's ``\\ud800`` escape makes a lone surrogate, which no text file, terminal or database takes.
    """
    level: list[Any] = [data]
    for _ in range(MAX_JSON_DEPTH + 1):
        children: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                children += item.values()
                check_text(" ".join(map(str, item)), what)
            elif isinstance(item, (list, tuple)):
                children += item
            elif isinstance(item, str):
                check_text(item, what)
        if not children:
            return data
        level = children
    raise ImportMetadataError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels, which no tool writes")


_RE_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, what: str) -> None:
    found = _RE_SURROGATE.search(text)
    if found:
        raise ImportMetadataError(
            f"{what}: character {found.start() + 1} of {short(text, 40)} is a lone surrogate "
            f"(\\u{ord(found.group()):04X}), which no text file or database holds"
        )
