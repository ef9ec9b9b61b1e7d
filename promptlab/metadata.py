"""Generation parameters inside image files: write what other tools read, read what they write.

Every image promptlab renders is a PNG carrying two text chunks: ``parameters``, A1111's
infotext (read by A1111's PNG Info, civitai, ComfyUI on drop and InvokeAI), and ``promptlab``,
the whole run record as JSON. Importing reads promptlab's own chunks, A1111 infotexts (PNG text
chunk, EXIF UserComment in JPEG/WebP, or "stealth" bits in the pixels), the JSON Fooocus,
RuinedFooocus and SwarmUI write where A1111 writes its infotext, ComfyUI's API-format ``prompt``
graph, InvokeAI's ``invokeai_metadata`` (2.x: ``sd-metadata`` or ``Dream``) and NovelAI's
``Comment``. What a tool did that the record's fields cannot hold is named in its ``notes``.

Example::

    params = GenerationParameters(prompt="a red fox", steps=20, sampler="Euler a",
                                  cfg_scale=7.0, seed=1234, width=512, height=512)
    write_png(image, path, params, promptlab_record={"run_id": 7})
    meta = read_image_metadata(path)
    meta.parameters == dataclasses.replace(params, source="promptlab")  # True
    meta.promptlab_record                                               # {"run_id": 7}

Sampler and scheduler names stay the strings each tool wrote ("DPM++ 2M Karras", "euler",
"dpmpp_2m_k"); mapping them to diffusers schedulers is the renderer's job.

Any file can be given, so reading is bounded: an image over Pillow's pixel limit is refused
before it is decoded, a text chunk over Pillow's 1 MB text-chunk limit before it is parsed,
JSON nested deeper than ``MAX_JSON_DEPTH``, and numbers no tool writes (``FIELD_RANGES``); A1111's
generation line is read in linear time. Each refusal is one ``ImportMetadataError``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import dataclasses
import math
import warnings

from PIL import ExifTags, Image, PngImagePlugin, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from promptlab.errors import ExportError, ImportMetadataError

if TYPE_CHECKING:
    from promptlab.store import RunRecord, ScoreRecord

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


# A1111 infotext_utils.re_param: "key: value" pairs, a value either JSON-quoted or running to the next comma.
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
# The pieces ``_a1111_pairs`` reads A1111's generation line with, each in linear time.
_RE_KEY_RUN = re.compile(r"[\w \-/]+")
_RE_WORD_CHAR = re.compile(r"\w")
_RE_SPACE = re.compile(r"\s*")
_RE_BACKSLASHES = re.compile(r"\\*")
_RE_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_RE_KEY = re.compile(r"\w[\w \-/]+")
_NEGATIVE_PREFIX = "Negative prompt:"
# The key promptlab adds, set to "compel", when its prompts have no A1111 form and go in as rendered.
A1111_PROMPT_SYNTAX_KEY = "Prompt syntax"

# processing.create_infotext's key order; other keys follow "Tiling" as A1111's extra_generation_params do.
_A1111_KEY_ORDER = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Image CFG scale", "Seed", "Face restoration",
    "Size", "Model hash", "Model", "FP8 weight", "Cache FP16 weight for LoRA", "VAE hash", "VAE",
    "Variation seed", "Variation seed strength", "Seed resize from", "Denoising strength",
    "Conditional mask weight", "Clip skip", "ENSD", "Token merging ratio", "Token merging ratio hr",
    "Init image hash", "RNG", "Tiling",
)
_A1111_TRAILING_KEYS = ("Version", "User")
_A1111_TYPED_KEYS = {
    "Steps": "steps",
    "Sampler": "sampler",
    "Schedule type": "scheduler",
    "CFG scale": "cfg_scale",
    "Seed": "seed",
    "Size": "width and height",
    "Model hash": "model_hash",
    "Model": "model",
    "Denoising strength": "denoising_strength",
    "Clip skip": "clip_skip",
}


def format_a1111_parameters(params: GenerationParameters) -> str:
    """A1111's infotext for ``params``, as ``processing.create_infotext`` writes it.

    Keys come in create_infotext's order (``extra`` keys A1111 knows in their place, others after
    ``Tiling``, ``Version`` and ``User`` last); values are quoted as ``infotext_utils.quote`` does,
    plus the few its reader would change: empty, padded or starting with ``"``. ``clip_skip`` is
    written whenever set (A1111 leaves out its default 1; readers take either the same way).

    Raises ``ExportError`` where the text would not read back as written: an ``extra`` key that
    duplicates a typed field or that A1111's parser cannot match, a prompt line starting with
    ``Negative prompt:``, fewer than three ``key: value`` pairs (A1111 then reads the line as prompt).
    """
    _check_prompt_lines(params)
    values = _a1111_values(params)
    if len(values) < 3:
        raise ExportError(
            f"A1111 parameters need at least 3 'key: value' pairs (readers take a shorter last line "
            f"for part of the prompt); got {list(values) or 'none'}: set steps, sampler and cfg_scale"
        )
    generation_line = ", ".join(f"{key}: {_quote(value)}" for key, value in values.items())
    negative = f"\n{_NEGATIVE_PREFIX} {params.negative_prompt}" if params.negative_prompt else ""
    return f"{params.prompt}{negative}\n{generation_line}".strip()


def parse_a1111_parameters(text: str) -> GenerationParameters:
    """Read an A1111 infotext the way A1111's ``parse_generation_parameters`` does.

    The last line holds the ``key: value`` pairs; lines before it are the prompt until one starts
    with ``Negative prompt:``, the rest the negative prompt. ``Size: WxH`` gives width and height;
    keys without a field go to ``extra`` in order, values unquoted. Unlike A1111, which takes text
    without a generation line for a bare prompt, this raises ``ImportMetadataError``: A1111 always
    writes that line, so its absence means the text is not an infotext.
    """
    *lines, last_line = text.strip().split("\n")
    pairs = _a1111_pairs(last_line)
    if len(pairs) < 3:
        shown = last_line if len(last_line) <= 80 else last_line[:77] + "..."
        raise ImportMetadataError(
            f"A1111 parameters: last line {shown!r} is not a generation line "
            f"(A1111 ends its text with 'Steps: ..., Sampler: ..., CFG scale: ...')"
        )
    prompt, negative_prompt = _split_prompts(lines)
    values = {key: _unquote(value) for key, value in pairs}
    return _params_from_a1111_values(prompt, negative_prompt, values)


def _a1111_pairs(line: str) -> list[tuple[str, str]]:
    r"""``_RE_PARAM.findall(line)`` (A1111's own ``re_param``), in time linear in the line's length.

    The regex retries at every position of a long run of word characters without a colon, so
    A1111's reader takes quadratic time on a long last line (32,000 characters: 5 s). The same
    pairs come from the runs themselves: a key is a run of ``[\w \-/]`` followed by ``:``, from the
    first word character the scan reaches in it, if two or more characters remain; its value is a
    quoted string followed by ``,`` or the end, else the text up to the next ``,``.
    """
    pairs: list[tuple[str, str]] = []
    closing = _ClosingQuotes(line)
    scan = 0
    for run in _RE_KEY_RUN.finditer(line):
        start, colon = run.span()
        if colon <= scan or line[colon : colon + 1] != ":":
            continue
        first = _RE_WORD_CHAR.search(line, max(start, scan), colon)
        if first is None or colon - first.start() < 2:
            continue
        value_start = _RE_SPACE.match(line, colon + 1).end()  # type: ignore[union-attr]
        end = closing.after(value_start) if line[value_start : value_start + 1] == '"' else None
        if end is not None and (end == len(line) or line[end] == ","):
            value = line[value_start:end]
        else:
            comma = line.find(",", value_start)
            end = len(line) if comma < 0 else comma
            value = line[value_start:end]
        pairs.append((line[first.start() : colon], value))
        scan = end + 1 if end < len(line) else end
    return pairs


class _ClosingQuotes:
    """Where ``"(?:\\.|[^\\"])+"`` opened at a quote ends, found by bisection over the line's quotes."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.quotes: list[int] = []  # quotes not escaped by the backslashes before them
        backslashes = 0
        for match in re.finditer(r'\\+|"', line):
            if match.group() == '"':
                if backslashes % 2 == 0:
                    self.quotes.append(match.start())
                backslashes = 0
            else:
                backslashes = len(match.group()) if match.end() < len(line) and line[match.end()] == '"' else 0

    def after(self, opening: int) -> int | None:
        """The index just past the closing quote of a string opened at ``opening``; None where the regex finds none."""
        import bisect

        line = self.line
        body = opening + 1
        # Backslashes right after the opening quote pair up from there, whatever came before it.
        run = _RE_BACKSLASHES.match(line, body).end() - body  # type: ignore[union-attr]
        first = body + run
        if first < len(line) and line[first] == '"':
            if run == 0:
                return None  # "" holds nothing: the regex needs one character at least
            if run % 2 == 0:
                return first + 1
            first += 1  # an escaped quote
        elif run % 2 == 1:
            first += 1  # the odd backslash escapes the character after it
        index = bisect.bisect_left(self.quotes, max(first, body + 1))
        return self.quotes[index] + 1 if index < len(self.quotes) else None


def _check_prompt_lines(params: GenerationParameters) -> None:
    for name, text in (("prompt", params.prompt), ("negative_prompt", params.negative_prompt)):
        for line in text.split("\n"):
            if line.strip().startswith(_NEGATIVE_PREFIX):
                raise ExportError(
                    f"{name} has a line starting with {_NEGATIVE_PREFIX!r} ({line.strip()[:60]!r}); "
                    f"A1111 readers would split the prompt there: reword that line"
                )


def _a1111_values(params: GenerationParameters) -> dict[str, str]:
    """The generation line's keys and unquoted values, in A1111's order."""
    if (params.width is None) != (params.height is None):
        raise ExportError(
            f"width={params.width}, height={params.height}: A1111's 'Size' needs both or neither"
        )
    size = f"{params.width}x{params.height}" if params.width is not None else None
    typed: dict[str, object] = {
        "Steps": params.steps,
        "Sampler": params.sampler,
        "Schedule type": params.scheduler,
        "CFG scale": params.cfg_scale,
        "Seed": params.seed,
        "Size": size,
        "Model hash": params.model_hash,
        "Model": params.model,
        "Denoising strength": params.denoising_strength,
        "Clip skip": params.clip_skip,
    }
    for key, value in params.extra.items():
        if key in _A1111_TYPED_KEYS:
            raise ExportError(
                f"extra key {key!r} duplicates the field {_A1111_TYPED_KEYS[key]}: set that field instead"
            )
        if not _RE_KEY.fullmatch(key):
            raise ExportError(
                f"extra key {key!r} cannot be read back by A1111: a key is a letter, digit or '_' "
                f"followed by at least one of those, spaces, '-' or '/'"
            )
        if not isinstance(value, str):
            raise ExportError(f"extra[{key!r}] = {value!r}: extra values must be strings")

    values: dict[str, str] = {}
    for key in _A1111_KEY_ORDER:
        value = typed[key] if key in typed else params.extra.get(key)
        if value is not None:
            values[key] = _format_value(value)
    for key, value in params.extra.items():
        if key not in values and key not in _A1111_TRAILING_KEYS:
            values[key] = value
    for key in _A1111_TRAILING_KEYS:
        if key in params.extra:
            values[key] = params.extra[key]
    return values


def _format_value(value: object) -> str:
    # A1111's UI hands whole-number floats over as ints ("CFG scale: 7"); repr keeps other floats exact.
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _quote(value: str) -> str:
    """A1111's ``infotext_utils.quote``, also quoting values its reader would otherwise unquote or trim."""
    if any(char in value for char in ",\n:") or value.startswith('"') or value != value.strip() or not value:
        return json.dumps(value, ensure_ascii=False)
    return value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            return value
    return value


def _split_prompts(lines: list[str]) -> tuple[str, str]:
    prompt: list[str] = []
    negative: list[str] = []
    done_with_prompt = False
    for raw_line in lines:
        line = raw_line.strip()
        if line.startswith(_NEGATIVE_PREFIX):
            done_with_prompt = True
            line = line[len(_NEGATIVE_PREFIX) :].strip()
        target = negative if done_with_prompt else prompt
        # A1111 drops empty lines only before the first non-empty one
        if target or line:
            target.append(line)
    return "\n".join(prompt), "\n".join(negative)


def _params_from_a1111_values(
    prompt: str, negative_prompt: str, values: dict[str, str]
) -> GenerationParameters:
    def number(key: str, kind: type[int] | type[float]) -> Any:
        text = values.pop(key, None)
        if text is None:
            return None
        try:
            return kind(text)
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise ImportMetadataError(f"A1111 parameters: '{key}: {text}' is not {expected}") from None

    width = height = None
    size = values.pop("Size", None)
    if size is not None:
        match = _RE_IMAGE_SIZE.match(size)
        if match is None:
            raise ImportMetadataError(f"A1111 parameters: 'Size: {size}' is not WIDTHxHEIGHT, e.g. 512x768")
        width, height = int(match.group(1)), int(match.group(2))
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=number("Steps", int),
        sampler=values.pop("Sampler", None),
        scheduler=values.pop("Schedule type", None),
        cfg_scale=number("CFG scale", float),
        seed=number("Seed", int),
        width=width,
        height=height,
        model=values.pop("Model", None),
        model_hash=values.pop("Model hash", None),
        denoising_strength=number("Denoising strength", float),
        clip_skip=number("Clip skip", int),
        extra=values,
        source="a1111",
    )


# ComfyUI nodes that turn text into conditioning, and the inputs holding their text.
_COMFYUI_TEXT_INPUTS = {
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("text",),
    "CLIPTextEncodeSD3": ("clip_l", "clip_g", "t5xxl"),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl"),
    "CLIPTextEncodeHunyuanDiT": ("bert", "mt5xl"),
}
_COMFYUI_SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
# Conditioning these nodes emit carries no text, whatever feeds them.
_COMFYUI_EMPTY_CONDITIONING = ("ConditioningZeroOut",)
# Inputs that carry a model, text encoder, conditioning or setting, not the picture being made.
_COMFYUI_SETTING_INPUTS = frozenset(
    {"model", "clip", "vae", "positive", "negative", "guider", "sampler", "sigmas", "noise", "control_net",
     "clip_vision", "clip_vision_output", "upscale_model", "style_model", "mask", "bbox_detector", "sam_model_opt"}
)  # fmt: skip
_COMFYUI_SETTING_PREFIXES = ("conditioning", "model", "clip", "vae")
# Inputs that carry the latent (or pixels) a node starts from, in the order they are followed.
_COMFYUI_LATENT_INPUTS = ("samples", "latent_image", "latent", "samples_to", "pixels", "image", "images")
# Nodes on the way from a sampler to the saved file that change nothing worth a note.
_COMFYUI_PLAIN_NODES = frozenset({"VAEDecode", "VAEDecodeTiled", "Reroute"})
# Inputs naming the checkpoint (or diffusion model) a loader loads.
_COMFYUI_CHECKPOINT_INPUTS = ("ckpt_name", "unet_name", "model_path")
# Conditioning nodes that give their prompts a place, strength or time span.
_COMFYUI_SCOPE_NODES = (
    "ConditioningSetArea", "ConditioningSetAreaPercentage", "ConditioningSetAreaStrength",
    "ConditioningSetMask", "ConditioningSetTimestepRange",
)  # fmt: skip


def parse_comfyui_prompt(graph: dict[str, Any], image_size: tuple[int, int] | None = None) -> GenerationParameters:
    """Read a ComfyUI API-format graph (the PNG's ``prompt`` chunk: node id -> {class_type, inputs}).

    The record is the sampler that makes the saved image, followed back from the save node
    (``SaveImage``, ``PreviewImage``...) to a KSampler, KSamplerAdvanced, SamplerCustom or
    SamplerCustomAdvanced; when the graph saves several images, the one of ``image_size`` (the
    file's own size) decides, else the last pass. From that sampler: its settings (through
    KSamplerSelect, BasicScheduler, RandomNoise and CFGGuider/BasicGuider for the custom ones),
    ``positive``/``negative`` through conditioning nodes to the text encoders (several prompts
    combined, by area or not, each land in ``prompts`` with their strength and area), ``model``
    through LoRA loaders (``loras``) to the checkpoint, ``latent_image`` to the latent's size.
    Whatever else shapes the image (other samplers, an img2img source, ControlNets, unCLIP,
    hypernetworks, upscales) is named in ``notes``. Raises ``ImportMetadataError`` naming the
    node when a link cannot be followed.
    """
    reader = _ComfyGraph(graph)
    found = _ComfyFindings()
    # 1. the sampler that makes the saved image
    sampler_id = reader.record_sampler(image_size, found)
    sampling = reader.sampling(sampler_id, found)
    where = f"sampler node {sampler_id}"
    # 2. its prompts, model and size
    positive = reader.prompt_parts(sampling.positive, f"{where} 'positive'", found)
    negative = [] if sampling.negative is None else reader.prompt_parts(sampling.negative, f"{where} 'negative'", found)
    model, loras = reader.model_chain(sampling.model, found)
    clip_skip = reader.clip_skip(positive, found)
    width, height = reader.latent_size(sampling.latent, found)
    # 3. the other samplers, and the prompts as a record
    reader.note_other_samplers(sampler_id, found)
    prompt, prompts = _comfyui_prompt_record(positive, "positive", found)
    negative_prompt, negative_prompts = _comfyui_prompt_record(negative, "negative", found)
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=sampling.steps,
        sampler=sampling.sampler,
        scheduler=sampling.scheduler,
        cfg_scale=sampling.cfg,
        seed=sampling.seed,
        width=width,
        height=height,
        model=model,
        denoising_strength=sampling.denoise,
        clip_skip=clip_skip,
        extra=found.extra,
        source="comfyui",
        loras=tuple(loras),
        prompts=prompts,
        negative_prompts=negative_prompts,
        notes=tuple(found.notes),
    )


def _comfyui_prompt_record(
    parts: list[ConditioningPrompt], side: str, found: _ComfyFindings
) -> tuple[str, tuple[ConditioningPrompt, ...]]:
    """One prompt for the record, and all of them when the graph combined several."""
    if not parts:
        return "", ()
    if len(parts) == 1 and not parts[0].scope and parts[0].strength == 1.0:
        return parts[0].text, ()
    whole = [part for part in parts if not part.scope]
    chosen = whole[0] if len(whole) == 1 else parts[0]
    field_name = "prompts" if side == "positive" else "negative_prompts"
    if len(parts) == 1:
        found.note(
            f"the {side} prompt applies to {chosen.scope or 'the whole image'} at strength {chosen.strength:g} "
            f"(kept in {field_name}); promptlab renders it everywhere at strength 1"
        )
    else:
        which = "the one for the whole image" if len(whole) == 1 else "the first"
        found.note(
            f"the {side} conditioning combines {len(parts)} prompts, each kept in {field_name} with its strength "
            f"and area; the {side} prompt is node {chosen.node}'s ({which}), and promptlab renders only that one"
        )
    return chosen.text, tuple(parts)


def _link(value: object) -> tuple[str, int] | None:
    """(node id, output index) when ``value`` is a ComfyUI link ``[node_id, output]``, else None."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    ):
        return str(value[0]), value[1]
    return None


def _short(value: object, limit: int = 50) -> str:
    """A value as a note shows it: text quoted and cut at ``limit`` characters, numbers without float noise."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        text = " ".join(value.split())
        return repr(text if len(text) <= limit else text[: limit - 3] + "...")
    return repr(value)


@dataclass
class _ComfyFindings:
    """What reading a graph found beyond the record's fields: notes in order, and A1111-named extras."""

    notes: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass
class _ComfySampling:
    """A sampler node's settings, and the links to what it samples with."""

    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    seed: int | None = None
    denoise: float | None = None
    model: object = None
    positive: object = None
    negative: object = None
    latent: object = None


class _ComfyGraph:
    """Walks an API-format ComfyUI graph; every failure names the node and input involved."""

    def __init__(self, graph: object) -> None:
        if not isinstance(graph, dict) or not all(
            isinstance(node, dict)
            and isinstance(node.get("class_type"), str)
            and isinstance(node.get("inputs"), dict)
            for node in graph.values()
        ):
            raise ImportMetadataError(
                "ComfyUI prompt: not an API-format graph (expected node id -> {class_type, inputs})"
            )
        self.graph: dict[str, dict[str, Any]] = {str(key): node for key, node in graph.items()}
        # output node -> the sampler that makes its image, filled by record_sampler
        self.saved: dict[str, str] = {}

    def class_type(self, node_id: str) -> str:
        return str(self.graph[node_id]["class_type"])

    def inputs(self, node_id: str) -> dict[str, Any]:
        return dict(self.graph[node_id]["inputs"])

    def node_ids(self) -> list[str]:
        # ComfyUI numbers nodes in creation order; "10" comes after "9"
        return sorted(self.graph, key=lambda node_id: (len(node_id), node_id))

    def target(self, value: object, where: str) -> str | None:
        """The node a link points at; None for a plain value; an error for a link to nowhere."""
        link = _link(value)
        if link is None:
            return None
        if link[0] not in self.graph:
            raise ImportMetadataError(
                f"ComfyUI prompt: {where} links to node {link[0]}, which is not in the graph"
            )
        return link[0]

    def here(self, node_id: str) -> str:
        return f"node {node_id} ({self.class_type(node_id)})"

    def describe(self, node_id: str) -> str:
        """``node 17 (ControlNetApplyAdvanced: strength=0.6, control_net='canny.safetensors')``: settings, files."""
        settings = []
        for name, value in self.inputs(node_id).items():
            if _link(value) is None:
                if isinstance(value, (str, int, float)):
                    settings.append(f"{name}={_short(value, 40)}")
            elif name in ("control_net", "image", "pixels", "clip_vision_output", "style_model", "upscale_model"):
                names = self._file_names(value)
                if names:
                    settings.append(f"{name}={', '.join(_short(n, 60) for n in names)}")
        return f"node {node_id} ({self.class_type(node_id)}{': ' + ', '.join(settings) if settings else ''})"

    def _file_names(self, value: object, depth: int = 2) -> list[str]:
        """File names (model files, loaded images) at most ``depth`` links up from ``value``."""
        names: list[str] = []
        pending, seen = [(value, depth)], set()
        while pending:
            inner, left = pending.pop(0)
            link = _link(inner)
            if link is None or link[0] not in self.graph or link[0] in seen or left == 0:
                continue
            seen.add(link[0])
            if self.class_type(link[0]) in (*_COMFYUI_SAMPLERS, *_COMFYUI_PLAIN_NODES):
                continue  # a picture made in the graph, not a file
            for name, item in self.inputs(link[0]).items():
                if isinstance(item, str) and (name == "image" or name.endswith("_name")) and name != "sampler_name":
                    names.append(item)
                pending.append((item, left - 1))
        return list(dict.fromkeys(names))

    def samplers(self) -> list[str]:
        return [node_id for node_id in self.node_ids() if self.class_type(node_id) in _COMFYUI_SAMPLERS]

    def outputs(self) -> list[str]:
        """Nodes that write a picture out (SaveImage, PreviewImage and their kin)."""
        return [
            node_id
            for node_id in self.node_ids()
            if re.search(r"save|preview", self.class_type(node_id), re.IGNORECASE)
            and any(_link(value) for value in self.inputs(node_id).values())
        ]

    @staticmethod
    def _carries_picture(name: str) -> bool:
        return name not in _COMFYUI_SETTING_INPUTS and not name.startswith(_COMFYUI_SETTING_PREFIXES)

    def _behind(self, node_id: str, through_samplers: bool) -> tuple[list[str], list[str]]:
        """The samplers whose latent reaches ``node_id``, and the other nodes on the way, nearest first.

        Only inputs that carry a picture are followed; the walk stops at a sampler unless
        ``through_samplers``.
        """
        samplers: list[str] = []
        passed: list[str] = []
        pending = [value for name, value in self.inputs(node_id).items() if self._carries_picture(name)]
        seen = {node_id}
        while pending:
            link = _link(pending.pop(0))
            if link is None or link[0] not in self.graph or link[0] in seen:
                continue
            seen.add(link[0])
            is_sampler = self.class_type(link[0]) in _COMFYUI_SAMPLERS
            (samplers if is_sampler else passed).append(link[0])
            if through_samplers or not is_sampler:
                pending += [value for name, value in self.inputs(link[0]).items() if self._carries_picture(name)]
        return samplers, passed

    def upstream_samplers(self, sampler_id: str) -> list[str]:
        """Every sampler whose output ``sampler_id`` starts from, directly or through others."""
        return self._behind(sampler_id, through_samplers=True)[0]

    def record_sampler(self, image_size: tuple[int, int] | None, found: _ComfyFindings) -> str:
        """The sampler that makes the saved image (see ``parse_comfyui_prompt``), noting how it was chosen."""
        samplers = self.samplers()
        if not samplers:
            classes = sorted({self.class_type(node_id) for node_id in self.graph})
            raise ImportMetadataError(
                f"ComfyUI prompt: no sampler node ({', '.join(_COMFYUI_SAMPLERS)}); node classes: {classes}"
            )
        passed_by_output: dict[str, list[str]] = {}
        for output_id in self.outputs():
            behind, passed = self._behind(output_id, through_samplers=False)
            if behind:
                self.saved[output_id] = behind[0]
                passed_by_output[output_id] = passed
        candidates: list[tuple[str | None, str]] = list(self.saved.items()) or [(None, s) for s in samplers]
        how = "they all come from that sampler"
        if image_size is not None and len({s for _, s in candidates}) > 1:
            sized = [
                (o, s) for o, s in candidates if self.latent_size(self.inputs(s).get("latent_image")) == image_size
            ]
            if sized and len({s for _, s in sized}) < len({s for _, s in candidates}):
                candidates, how = sized, f"this file's size, {image_size[0]}x{image_size[1]}, is that image's"
        if len({s for _, s in candidates}) > 1:
            last = [(o, s) for o, s in candidates if not any(s in self.upstream_samplers(t) for _, t in candidates)]
            candidates = last or candidates
            how = "promptlab cannot tell which one this file is, and takes the last pass"
        output_id, sampler_id = candidates[0]
        if len(samplers) > 1 or len(self.saved) > 1:
            made = f", which makes the image saved by {self.here(output_id)}" if output_id else ""
            if not self.saved:
                made = " (the graph saves no image; promptlab takes the last pass)"
            found.note(f"the record is sampler {self.here(sampler_id)}{made}")
        if len(self.saved) > 1:
            saves = ", ".join(f"node {o}" for o in self.saved)
            found.note(f"the graph saves {len(self.saved)} images ({saves}); {how}")
        for node_id in passed_by_output.get(output_id or "", []):
            self._note_after_sampling(node_id, found)
        return sampler_id

    def _note_after_sampling(self, node_id: str, found: _ComfyFindings) -> None:
        class_type, inputs = self.class_type(node_id), self.inputs(node_id)
        if class_type in _COMFYUI_PLAIN_NODES:
            vae_id = self.target(inputs.get("vae"), f"{self.here(node_id)} 'vae'")
            if vae_id is not None and "vae_name" in self.inputs(vae_id):
                vae = self.scalar(self.inputs(vae_id)["vae_name"], str, f"{self.here(vae_id)} 'vae_name'")
                found.extra["VAE"] = str(vae)
            return
        found.note(f"after sampling, the saved image goes through {self.describe(node_id)}; promptlab does not do that")

    def sampling(self, node_id: str, found: _ComfyFindings) -> _ComfySampling:
        """Sampler ``node_id``'s settings, read through the nodes the custom samplers link to."""
        class_type, inputs = self.class_type(node_id), self.inputs(node_id)
        where = f"sampler node {node_id}"
        out = _ComfySampling(
            model=inputs.get("model"), positive=inputs.get("positive"), negative=inputs.get("negative"),
            latent=inputs.get("latent_image"),
        )  # fmt: skip
        if class_type in ("KSampler", "KSamplerAdvanced"):
            out.sampler = self.scalar(inputs.get("sampler_name"), str, f"{where} 'sampler_name'")
            out.scheduler = self.scalar(inputs.get("scheduler"), str, f"{where} 'scheduler'")
            out.steps = self.scalar(inputs.get("steps"), int, f"{where} 'steps'")
            out.cfg = self.scalar(inputs.get("cfg"), float, f"{where} 'cfg'")
        if class_type == "KSampler":
            out.seed = self.scalar(inputs.get("seed"), int, f"{where} 'seed'")
            out.denoise = self.scalar(inputs.get("denoise"), float, f"{where} 'denoise'")
        elif class_type == "KSamplerAdvanced":
            self._advanced_steps(node_id, out, found)
        elif class_type == "SamplerCustom":
            if inputs.get("add_noise") is False:
                found.note(f"{where} adds no noise: it goes on denoising the latent it is given; seed left unset")
            else:
                out.seed = self.scalar(inputs.get("noise_seed"), int, f"{where} 'noise_seed'")
            out.cfg = self.scalar(inputs.get("cfg"), float, f"{where} 'cfg'")
        elif class_type == "SamplerCustomAdvanced":
            self._noise(inputs.get("noise"), out, where, found)
            self._guider(inputs.get("guider"), out, where, found)
        if class_type in ("SamplerCustom", "SamplerCustomAdvanced"):
            self._custom_sampler(inputs.get("sampler"), out, where, found)
            self._sigmas(inputs.get("sigmas"), out, where, found)
        return out

    def _advanced_steps(self, node_id: str, out: _ComfySampling, found: _ComfyFindings) -> None:
        inputs, where = self.inputs(node_id), f"sampler node {node_id}"
        if self.scalar(inputs.get("add_noise"), str, f"{where} 'add_noise'") == "disable":
            found.note(f"{where} adds no noise: it goes on denoising the latent it is given; seed left unset")
        else:
            out.seed = self.scalar(inputs.get("noise_seed"), int, f"{where} 'noise_seed'")
        start = self.scalar(inputs.get("start_at_step"), int, f"{where} 'start_at_step'") or 0
        end = self.scalar(inputs.get("end_at_step"), int, f"{where} 'end_at_step'")
        if out.steps is not None and (start > 0 or (end is not None and end < out.steps)):
            last = out.steps if end is None else min(end, out.steps)
            found.note(f"{where} runs only steps {start} to {last} of {out.steps}")
        leftover = self.scalar(inputs.get("return_with_leftover_noise"), str, f"{where} 'return_with_leftover_noise'")
        if leftover == "enable":
            found.note(f"{where} hands on its latent with the noise left in, for another sampler to finish")

    def _noise(self, value: object, out: _ComfySampling, where: str, found: _ComfyFindings) -> None:
        node_id = self.target(value, f"{where} 'noise'")
        if node_id is None:
            return
        inputs = self.inputs(node_id)
        if "noise_seed" in inputs:
            out.seed = self.scalar(inputs["noise_seed"], int, f"{self.here(node_id)} 'noise_seed'")
        else:
            found.note(f"{where} takes its noise from {self.describe(node_id)}; seed left unset")

    def _guider(self, value: object, out: _ComfySampling, where: str, found: _ComfyFindings) -> None:
        node_id = self.target(value, f"{where} 'guider'")
        if node_id is None:
            raise ImportMetadataError(f"ComfyUI prompt: {where} 'guider' is {value!r}, not a link to a guider node")
        class_type, inputs = self.class_type(node_id), self.inputs(node_id)
        out.model = inputs.get("model")
        if class_type == "BasicGuider":
            # no classifier-free guidance: one pass on the conditioning, which is CFG scale 1
            out.positive, out.cfg = inputs.get("conditioning"), 1.0
        elif "positive" in inputs:
            out.positive, out.negative = inputs["positive"], inputs.get("negative")
            out.cfg = self.scalar(inputs.get("cfg"), float, f"{self.here(node_id)} 'cfg'")
            if class_type != "CFGGuider":
                found.note(
                    f"{where} is guided by {self.describe(node_id)}; promptlab reads its positive, negative and cfg only"
                )
        elif "cond1" in inputs:
            out.positive, out.negative = inputs["cond1"], inputs.get("negative")
            out.cfg = self.scalar(inputs.get("cfg_conds"), float, f"{self.here(node_id)} 'cfg_conds'")
            second = self.prompt_parts(inputs.get("cond2"), f"{self.here(node_id)} 'cond2'", _ComfyFindings())
            texts = "; ".join(_short(part.text) for part in second)
            found.note(
                f"{where} is guided by {self.describe(node_id)}, which adds a second positive ({texts}); "
                f"promptlab reads cond1 only"
            )
        else:
            raise ImportMetadataError(
                f"ComfyUI prompt: {where} 'guider' comes from {self.here(node_id)}, which promptlab cannot read "
                f"(it reads CFGGuider, BasicGuider, DualCFGGuider and guiders with positive, negative and cfg)"
            )

    def _custom_sampler(self, value: object, out: _ComfySampling, where: str, found: _ComfyFindings) -> None:
        node_id = self.target(value, f"{where} 'sampler'")
        if node_id is None:
            return
        inputs = self.inputs(node_id)
        if "sampler_name" in inputs:
            out.sampler = self.scalar(inputs["sampler_name"], str, f"{self.here(node_id)} 'sampler_name'")
        else:
            found.note(f"{where} samples with {self.describe(node_id)}; sampler left unset")

    def _sigmas(self, value: object, out: _ComfySampling, where: str, found: _ComfyFindings) -> None:
        node_id = self.target(value, f"{where} 'sigmas'")
        seen: set[str] = set()
        while node_id is not None and node_id not in seen and "sigmas" in self.inputs(node_id):
            seen.add(node_id)
            found.note(f"{where} samples a noise schedule cut or changed by {self.describe(node_id)}")
            node_id = self.target(self.inputs(node_id)["sigmas"], f"{self.here(node_id)} 'sigmas'")
        if node_id is None:
            return
        inputs, here = self.inputs(node_id), self.here(node_id)
        out.steps = self.scalar(inputs.get("steps"), int, f"{here} 'steps'")
        out.denoise = self.scalar(inputs.get("denoise"), float, f"{here} 'denoise'")
        if "scheduler" in inputs:
            out.scheduler = self.scalar(inputs["scheduler"], str, f"{here} 'scheduler'")
        else:
            found.note(f"{where} takes its noise schedule from {self.describe(node_id)}; scheduler left unset")

    def note_other_samplers(self, record_id: str, found: _ComfyFindings) -> None:
        """Name every sampler but ``record_id``, with its settings and what its output becomes."""
        upstream = self.upstream_samplers(record_id)
        for node_id in self.samplers():
            if node_id == record_id:
                continue
            roles = []
            if node_id in upstream:
                roles.append("the record's sampling starts from its output")
            saves = [output_id for output_id, sampler_id in self.saved.items() if sampler_id == node_id]
            if saves:
                roles.append(f"it makes the image saved by node {', '.join(saves)}")
            role = "; ".join(roles) if roles else "its output does not reach the saved image"
            found.note(f"{self.here(node_id)} also samples{self._summary(node_id)}: {role}; it is not in this record")

    def _summary(self, node_id: str) -> str:
        try:
            sampling = self.sampling(node_id, _ComfyFindings())
            prompt = self.prompt_parts(sampling.positive, self.here(node_id), _ComfyFindings())
        except ImportMetadataError:
            return ""
        settings = [
            f"{sampling.sampler}/{sampling.scheduler}" if sampling.sampler else None,
            f"{sampling.steps} steps" if sampling.steps is not None else None,
            f"cfg {sampling.cfg:g}" if sampling.cfg is not None else None,
            f"seed {sampling.seed}" if sampling.seed is not None else None,
            f"denoise {sampling.denoise:g}" if sampling.denoise is not None else None,
            f"prompt {_short(prompt[0].text, 40)}" if prompt else None,
            f"and {len(prompt) - 1} more prompts" if len(prompt) > 1 else None,
        ]
        return " (" + ", ".join(item for item in settings if item) + ")"

    def scalar(self, value: object, kind: type, where: str, seen: frozenset[str] = frozenset()) -> Any:
        """A widget value, following links to nodes that hold one value (primitive, string, seed nodes)."""
        node_id = self.target(value, where)
        if node_id is None:
            if value is None:
                return None
            if not _matches(value, kind):
                expected = "text" if kind is str else kind.__name__
                raise ImportMetadataError(f"ComfyUI prompt: {where} is {value!r}; expected {expected}")
            return float(value) if kind is float else value  # type: ignore[arg-type]
        if node_id in seen:
            raise ImportMetadataError(f"ComfyUI prompt: {where} follows a cycle through node {node_id}")
        inputs = self.inputs(node_id)
        candidates = list(inputs.items())
        if len(candidates) != 1:
            candidates = [(name, inner) for name, inner in candidates if _matches(inner, kind)]
            if len(candidates) != 1 or any(_link(inner) for inner in inputs.values()):
                raise ImportMetadataError(
                    f"ComfyUI prompt: {where} links to node {node_id} ({self.class_type(node_id)}), "
                    f"which is not a simple value node (inputs: {sorted(inputs)}); promptlab cannot "
                    f"compute its output"
                )
        name, inner = candidates[0]
        return self.scalar(inner, kind, f"node {node_id} '{name}'", seen | {node_id})

    def prompt_parts(
        self, value: object, where: str, found: _ComfyFindings, seen: frozenset[str] = frozenset()
    ) -> list[ConditioningPrompt]:
        """The prompts a conditioning link carries, each with the strength and area the graph gives it."""
        node_id = self.target(value, where)
        if node_id is None:
            raise ImportMetadataError(
                f"ComfyUI prompt: {where} is {value!r}, not a link to a conditioning node"
            )
        if node_id in seen:
            raise ImportMetadataError(f"ComfyUI prompt: {where} follows a cycle through node {node_id}")
        class_type, inputs, here = self.class_type(node_id), self.inputs(node_id), self.here(node_id)
        seen = seen | {node_id}
        if class_type in _COMFYUI_EMPTY_CONDITIONING:
            return []
        conditioned = any(name.startswith("conditioning") for name in inputs)
        text_inputs = _COMFYUI_TEXT_INPUTS.get(class_type) or (
            ("text",) if "text" in inputs and not conditioned else ()
        )
        if text_inputs:
            return [self._encoded_text(node_id, text_inputs, found)]
        if class_type in _COMFYUI_SCOPE_NODES:
            inner = self.prompt_parts(inputs.get("conditioning"), f"{here} 'conditioning'", found, seen)
            return [self._scoped(node_id, part) for part in inner]
        if class_type == "ConditioningAverage":
            share = self.scalar(inputs.get("conditioning_to_strength"), float, f"{here} 'conditioning_to_strength'")
            share = 1.0 if share is None else share
            found.note(
                f"{here} averages the embeddings of its prompts ({share:g} : {1 - share:g}); promptlab cannot render that"
            )
            to = self.prompt_parts(inputs.get("conditioning_to"), f"{here} 'conditioning_to'", found, seen)
            source = self.prompt_parts(inputs.get("conditioning_from"), f"{here} 'conditioning_from'", found, seen)
            return [replace(p, strength=p.strength * share) for p in to] + [
                replace(p, strength=p.strength * (1 - share)) for p in source
            ]
        if class_type == "ConditioningConcat":
            found.note(f"{here} puts the embeddings of its prompts one after the other (as A1111's BREAK does)")
        if _link(inputs.get("positive")) and _link(inputs.get("negative")):
            # ControlNetApplyAdvanced and kin: output 0 is the positive, output 1 the negative
            side = "positive" if _link(value) == (node_id, 0) else "negative"
            found.note(f"{self.describe(node_id)} changes the conditioning; promptlab does not carry it over")
            return self.prompt_parts(inputs[side], f"{here} '{side}'", found, seen)
        upstream = [(name, inner) for name, inner in inputs.items() if name.startswith("conditioning") and _link(inner)]
        if not upstream:
            known = sorted({name for names in _COMFYUI_TEXT_INPUTS.values() for name in names})
            raise ImportMetadataError(
                f"ComfyUI prompt: {where} comes from {here}, which has no text input promptlab knows "
                f"({', '.join(known)}) and no conditioning input to follow"
            )
        if class_type == "FluxGuidance":
            guidance = self.scalar(inputs.get("guidance"), float, f"{here} 'guidance'")
            if guidance is not None:
                found.extra["Distilled CFG Scale"] = f"{guidance:g}"
        elif class_type not in ("ConditioningCombine", "ConditioningConcat"):
            found.note(f"{self.describe(node_id)} changes the conditioning; promptlab does not carry it over")
        parts: list[ConditioningPrompt] = []
        for name, inner in upstream:
            parts += self.prompt_parts(inner, f"{here} '{name}'", found, seen)
        return parts

    def _encoded_text(self, node_id: str, text_inputs: tuple[str, ...], found: _ComfyFindings) -> ConditioningPrompt:
        inputs, here = self.inputs(node_id), self.here(node_id)
        texts = {name: self.scalar(inputs[name], str, f"{here} '{name}'") for name in text_inputs if name in inputs}
        distinct = list(dict.fromkeys(text for text in texts.values() if text and text.strip()))
        if len(distinct) > 1:
            shown = "; ".join(f"{name}: {_short(text, 40)}" for name, text in texts.items() if text)
            found.note(f"{here} gives its text encoders different texts ({shown}); the record keeps the first")
        if "guidance" in inputs:
            guidance = self.scalar(inputs["guidance"], float, f"{here} 'guidance'")
            if guidance is not None:
                found.extra["Distilled CFG Scale"] = f"{guidance:g}"
        return ConditioningPrompt(distinct[0] if distinct else "", node=node_id)

    def _scoped(self, node_id: str, part: ConditioningPrompt) -> ConditioningPrompt:
        """``part`` as the area, mask, strength or timestep node ``node_id`` sets it."""
        class_type, inputs, here = self.class_type(node_id), self.inputs(node_id), self.here(node_id)

        def number(name: str) -> float:
            value = self.scalar(inputs.get(name), float, f"{here} '{name}'")
            return 0.0 if value is None else value

        strength = self.scalar(inputs.get("strength"), float, f"{here} 'strength'")
        part = part if strength is None else replace(part, strength=strength)
        if class_type == "ConditioningSetArea":
            scope = f"{number('width'):g}x{number('height'):g} at x={number('x'):g}, y={number('y'):g}"
        elif class_type == "ConditioningSetAreaPercentage":
            size = f"{number('width'):.0%}x{number('height'):.0%}"
            scope = f"{size} of the image at x={number('x'):.0%}, y={number('y'):.0%}"
        elif class_type == "ConditioningSetMask":
            mask = self.target(inputs.get("mask"), f"{here} 'mask'")
            scope = f"the mask from {self.describe(mask) if mask else 'nowhere'}"
        elif class_type == "ConditioningSetTimestepRange":
            scope = f"steps {number('start'):.0%}-{number('end'):.0%}"
        else:
            return part
        if class_type == "ConditioningSetTimestepRange" and part.scope:
            return replace(part, scope=f"{part.scope}, {scope}")
        # an outer area replaces an inner one, as ComfyUI sets it
        return replace(part, scope=scope)

    def model_chain(self, value: object, found: _ComfyFindings) -> tuple[str | None, list[tuple[str, float]]]:
        """The checkpoint ``value`` comes from, and the LoRAs loaded on the way, in the order applied."""
        loras: list[tuple[str, float]] = []
        seen: set[str] = set()
        while (node_id := self.target(value, "model")) is not None and node_id not in seen:
            seen.add(node_id)
            inputs, here = self.inputs(node_id), self.here(node_id)
            checkpoint = next((name for name in _COMFYUI_CHECKPOINT_INPUTS if name in inputs), None)
            if checkpoint is not None:
                loras.reverse()
                return self.scalar(inputs[checkpoint], str, f"{here} '{checkpoint}'"), loras
            if "lora_name" in inputs:
                loras.append(self._lora(node_id, found))
            elif self.class_type(node_id) not in _COMFYUI_PLAIN_NODES:
                found.note(f"{self.describe(node_id)} changes the model; promptlab does not carry it over")
            value = inputs.get("model", inputs.get("model1"))
        loras.reverse()
        return None, loras

    def _lora(self, node_id: str, found: _ComfyFindings) -> tuple[str, float]:
        inputs, here = self.inputs(node_id), self.here(node_id)
        name = self.scalar(inputs["lora_name"], str, f"{here} 'lora_name'")
        key = "strength_model" if "strength_model" in inputs else "strength"
        strength = self.scalar(inputs.get(key), float, f"{here} '{key}'")
        strength = 1.0 if strength is None else strength
        clip_strength = self.scalar(inputs.get("strength_clip"), float, f"{here} 'strength_clip'")
        if clip_strength is not None and clip_strength != strength:
            found.note(
                f"LoRA {name!r} ({here}) has strength {strength:g} on the model and {clip_strength:g} on the "
                f"text encoder; loras keeps the model's"
            )
        return name, strength

    def clip_skip(self, parts: list[ConditioningPrompt], found: _ComfyFindings) -> int | None:
        """A1111's "Clip skip" from a CLIPSetLastLayer before the first prompt's text encoder."""
        if not parts:
            return None
        value = self.inputs(parts[0].node).get("clip")
        seen: set[str] = set()
        while (node_id := self.target(value, "clip")) is not None and node_id not in seen:
            seen.add(node_id)
            inputs, here = self.inputs(node_id), self.here(node_id)
            if "stop_at_clip_layer" in inputs:
                layer = self.scalar(inputs["stop_at_clip_layer"], int, f"{here} 'stop_at_clip_layer'")
                return None if layer is None else -layer
            names = [inputs[name] for name in inputs if name.startswith("clip_name") and isinstance(inputs[name], str)]
            if names:
                found.extra["Text encoders"] = ", ".join(names)
            if any(name in inputs for name in _COMFYUI_CHECKPOINT_INPUTS) or names:
                return None
            value = inputs.get("clip")
        return None

    def latent_size(self, value: object, found: _ComfyFindings | None = None) -> tuple[int | None, int | None]:
        """The pixel size of the latent ``value`` links to, noting where it comes from when not an empty latent."""
        found = found or _ComfyFindings()
        size: tuple[float, float] | None = None
        scale = 1.0
        seen: set[str] = set()
        # past an earlier sampler, only its size matters: what made its latent is its own story
        past_sampler = False
        while (node_id := self.target(value, "latent_image")) is not None and node_id not in seen:
            seen.add(node_id)
            class_type, inputs, here = self.class_type(node_id), self.inputs(node_id), self.here(node_id)
            if class_type in _COMFYUI_SAMPLERS:
                past_sampler = True
            elif class_type.startswith("VAEEncode"):
                if not past_sampler:
                    found.note(f"img2img: the sampling starts from a picture, encoded by {self.describe(node_id)}")
                break
            else:
                if size is None and "width" in inputs and "height" in inputs:
                    width = self.scalar(inputs["width"], int, f"{here} 'width'")
                    height = self.scalar(inputs["height"], int, f"{here} 'height'")
                    size = None if width is None or height is None else (width * scale, height * scale)
                elif size is None and "scale_by" in inputs:
                    scale *= self.scalar(inputs["scale_by"], float, f"{here} 'scale_by'") or 1.0
                if class_type.startswith("Empty"):
                    break
                if not past_sampler:
                    found.note(f"the sampled latent comes through {self.describe(node_id)}")
            if past_sampler and size is not None:
                break
            value = next((inputs[name] for name in _COMFYUI_LATENT_INPUTS if _link(inputs.get(name))), None)
        if size is None:
            return None, None
        return round(size[0]), round(size[1])


def _matches(value: object, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def parse_invokeai_metadata(metadata: dict[str, Any]) -> GenerationParameters:
    """Read InvokeAI 3+'s ``invokeai_metadata`` chunk, or 2.x's ``sd-metadata`` (values under ``image``).

    InvokeAI's single ``scheduler`` choice (``euler``, ``dpmpp_2m_k``) becomes ``sampler``; its
    ``clip_skip`` (layers skipped) becomes A1111's count (+1); its ``loras`` become (name,
    weight) pairs. Other keys go to ``extra``, values that are not plain text as JSON.
    """
    if not isinstance(metadata, dict):
        raise ImportMetadataError(f"InvokeAI metadata: expected a JSON object, got {type(metadata).__name__}")
    if "positive_prompt" not in metadata and isinstance(metadata.get("image"), dict):
        return _parse_invokeai_legacy(metadata)
    values = dict(metadata)
    prompt = _typed(values.pop("positive_prompt", None), str, "positive_prompt")
    if prompt is None:
        raise ImportMetadataError(f"InvokeAI metadata: no 'positive_prompt' (keys: {sorted(metadata)})")
    model = values.pop("model", None)
    model_name = model_hash = None
    if isinstance(model, dict):
        model_name = _typed(model.get("name", model.get("model_name")), str, "model.name")
        model_hash = _typed(model.get("hash"), str, "model.hash")
    elif model is not None:
        model_name = _typed(model, str, "model")
    clip_skip = _typed(values.pop("clip_skip", None), int, "clip_skip")
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=_typed(values.pop("negative_prompt", None), str, "negative_prompt") or "",
        steps=_typed(values.pop("steps", None), int, "steps"),
        sampler=_typed(values.pop("scheduler", None), str, "scheduler"),
        cfg_scale=_typed(values.pop("cfg_scale", None), float, "cfg_scale"),
        seed=_typed(values.pop("seed", None), int, "seed"),
        width=_typed(values.pop("width", None), int, "width"),
        height=_typed(values.pop("height", None), int, "height"),
        model=model_name,
        model_hash=model_hash,
        denoising_strength=_typed(values.pop("strength", None), float, "strength"),
        clip_skip=None if clip_skip is None else clip_skip + 1,
        loras=_invokeai_loras(values.pop("loras", None)),
        extra={key: _extra_text(value) for key, value in values.items()},
        source="invokeai",
    )


def _invokeai_loras(value: object) -> tuple[tuple[str, float], ...]:
    """InvokeAI 3's ``[{lora: {model_name}, weight}]`` or 4's ``[{model: {name}, weight}]`` as (name, weight)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ImportMetadataError(f"InvokeAI metadata: 'loras' is {value!r}; expected a list")
    pairs = []
    for index, item in enumerate(value):
        model = item.get("model", item.get("lora")) if isinstance(item, dict) else None
        name = model.get("name", model.get("model_name")) if isinstance(model, dict) else None
        weight = item.get("weight", 1.0) if isinstance(item, dict) else None
        if not isinstance(name, str) or not _matches(weight, float):
            raise ImportMetadataError(
                f"InvokeAI metadata: 'loras[{index}]' is {item!r}; "
                f"expected {{\"model\": {{\"name\": ...}}, \"weight\": ...}}"
            )
        pairs.append((name, float(weight)))  # type: ignore[arg-type]
    return tuple(pairs)


def _split_invokeai2_negative(text: str) -> tuple[str, str]:
    """InvokeAI 2.x's own split: every ``[...]`` is negative prompt, joined by spaces; the rest is the prompt."""
    negatives = re.findall(r"\[(.*?)\]", text)
    if not negatives:
        return text.strip(), ""
    positive = re.sub(" +", " ", re.sub(r"\[(.*?)\]", " ", text))
    return positive.strip(), " ".join(negatives).strip()


def _parse_invokeai_legacy(metadata: dict[str, Any]) -> GenerationParameters:
    image = dict(metadata["image"])
    prompt = image.pop("prompt", None)
    negatives: list[str] = []
    if isinstance(prompt, list):
        parts = [item for item in prompt if isinstance(item, dict) and isinstance(item.get("prompt"), str)]
        if len(parts) != len(prompt) or not parts:
            raise ImportMetadataError(
                f"InvokeAI sd-metadata: 'image.prompt' {prompt!r} is not a list of {{prompt, weight}}"
            )
        texts = []
        for part in parts:
            positive, negative = _split_invokeai2_negative(part["prompt"])
            texts.append(positive)
            negatives += [negative] if negative else []
        # several entries are InvokeAI 2's weighted blend, which compel writes as .blend()
        weights = ", ".join(f"{part.get('weight', 1)}" for part in parts)
        quoted = ", ".join(json.dumps(text, ensure_ascii=False) for text in texts)
        prompt = texts[0] if len(parts) == 1 else f"({quoted}).blend({weights})"
    elif isinstance(prompt, str):
        prompt, negative = _split_invokeai2_negative(prompt)
        negatives += [negative] if negative else []
    prompt = _typed(prompt, str, "image.prompt")
    if prompt is None:
        raise ImportMetadataError(
            f"InvokeAI sd-metadata: no 'image.prompt' (image keys: {sorted(metadata['image'])})"
        )
    typed_keys = ("image", "model_weights", "model_hash")
    extra = {key: _extra_text(value) for key, value in metadata.items() if key not in typed_keys}
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=" ".join(negatives),
        steps=_typed(image.pop("steps", None), int, "image.steps"),
        sampler=_typed(image.pop("sampler", None), str, "image.sampler"),
        cfg_scale=_typed(image.pop("cfg_scale", None), float, "image.cfg_scale"),
        seed=_typed(image.pop("seed", None), int, "image.seed"),
        width=_typed(image.pop("width", None), int, "image.width"),
        height=_typed(image.pop("height", None), int, "image.height"),
        model=_typed(metadata.get("model_weights"), str, "model_weights"),
        model_hash=_typed(metadata.get("model_hash"), str, "model_hash"),
        denoising_strength=_typed(image.pop("strength", None), float, "image.strength"),
        extra=extra | {key: _extra_text(value) for key, value in image.items()},
        source="invokeai",
    )


# InvokeAI 2.x's dream switches (ldm/invoke/args.py), short and long, -> the name promptlab keeps them under.
_DREAM_SWITCHES = {
    "s": "steps", "steps": "steps", "S": "seed", "seed": "seed", "W": "width", "width": "width",
    "H": "height", "height": "height", "C": "cfg_scale", "cfg_scale": "cfg_scale", "A": "sampler",
    "m": "sampler", "sampler": "sampler", "f": "strength", "strength": "strength", "I": "init_img",
    "M": "init_mask", "T": "fit", "g": "grid", "G": "facetool_strength", "ft": "facetool",
    "cf": "codeformer_fidelity", "U": "upscale", "V": "with_variations", "v": "variation_amount",
    "c": "outcrop", "D": "out_direction", "tm": "text_mask",
}  # fmt: skip
_RE_DREAM_SWITCH = re.compile(r"--?[A-Za-z][\w-]*")


def parse_invokeai_dream(text: str) -> GenerationParameters:
    """Read InvokeAI 2.x's ``Dream`` chunk: ``"a prompt [negative]" -s 50 -S 42 -W 512 -H 768 -C 7.5 -A k_lms``.

    The prompt is quoted (later 2.x versions leave it bare, up to the first switch); its
    ``[...]`` parts are the negative prompt, split out as InvokeAI does. Switches are read as
    ``dream_prompt_str`` writes them; those without a field go to ``extra`` under InvokeAI's
    long names (``facetool_strength``, ``upscale``...).
    """
    text = text.strip()
    match = re.fullmatch(r'"(.*)"((?:\s+--?[A-Za-z].*)?)', text, re.S) or re.fullmatch(
        r"(.+?)((?:\s--?[A-Za-z].*)?)", text, re.S
    )
    if match is None:
        raise ImportMetadataError(f"InvokeAI Dream: {text[:60]!r} is not '\"prompt\" -s STEPS -S SEED ...'")
    try:
        tokens = shlex.split(match.group(2))
    except ValueError as error:
        raise ImportMetadataError(f"InvokeAI Dream: switches {match.group(2)!r} cannot be split ({error})") from error
    values: dict[str, str] = {}
    key = None
    for token in tokens:
        if _RE_DREAM_SWITCH.fullmatch(token):
            name = token.lstrip("-")
            key = _DREAM_SWITCHES.get(name, name)
            values[key] = ""
        elif key is None:
            raise ImportMetadataError(f"InvokeAI Dream: {token!r} comes before any switch")
        else:
            values[key] = f"{values[key]} {token}".strip()

    def number(name: str, kind: type[int] | type[float]) -> Any:
        raw = values.pop(name, None)
        if raw is None:
            return None
        try:
            return kind(raw)
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise ImportMetadataError(f"InvokeAI Dream: {name} {raw!r} is not {expected}") from None

    prompt, negative = _split_invokeai2_negative(match.group(1))
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=negative,
        steps=number("steps", int),
        sampler=values.pop("sampler", None),
        cfg_scale=number("cfg_scale", float),
        seed=number("seed", int),
        width=number("width", int),
        height=number("height", int),
        denoising_strength=number("strength", float),
        extra={name: value or "true" for name, value in values.items()},
        source="invokeai",
    )


def _typed(value: object, kind: type, key: str) -> Any:
    if value is None:
        return None
    if not _matches(value, kind):
        expected = {str: "text", int: "a whole number", float: "a number"}[kind]
        raise ImportMetadataError(f"InvokeAI metadata: '{key}' is {value!r}; expected {expected}")
    return float(value) if kind is float else value  # type: ignore[arg-type]


def _extra_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


#: zlib level of the PNGs promptlab writes: ComfyUI's default. Pillow's 6 takes about 4x as long
#: on small renders for the same size (0.44 vs 0.12 ms at 64x64; equal at 512x512).
PNG_COMPRESS_LEVEL = 4


def png_bytes(
    image: Image.Image, parameters: GenerationParameters, record: dict[str, Any] | None = None
) -> bytes:
    """``image`` as PNG bytes with A1111's ``parameters`` chunk and, given a record, the ``promptlab`` chunk.

    The same image, parameters and record give the same bytes, so the store can name the file by
    their sha256. Text that is not Latin-1 goes into iTXt chunks (UTF-8), so any prompt survives.
    """
    info = PngInfo()
    info.add_text(A1111_CHUNK, format_a1111_parameters(parameters))
    if record is not None:
        try:
            record_text = json.dumps(record, ensure_ascii=False)
        except (TypeError, ValueError) as error:
            raise ExportError(f"promptlab record cannot be stored as JSON: {error}") from error
        info.add_text(PROMPTLAB_CHUNK, record_text)
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG", pnginfo=info, compress_level=PNG_COMPRESS_LEVEL)
    except (OSError, ValueError) as error:
        raise ExportError(f"image of mode {image.mode!r} cannot be saved as PNG: {error}") from error
    return buffer.getvalue()


def write_png(
    image: Image.Image,
    path: Path,
    parameters: GenerationParameters,
    promptlab_record: dict[str, Any] | None = None,
) -> None:
    """Write ``png_bytes(image, parameters, promptlab_record)`` to ``path``, whole or not at all."""
    data = png_bytes(image, parameters, promptlab_record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def parse_fooocus_metadata(data: dict[str, Any]) -> GenerationParameters:
    """Read Fooocus's own JSON metadata (its ``parameters`` chunk when ``fooocus_scheme`` is ``fooocus``).

    Fooocus encodes each entry of ``full_prompt`` (the styled prompt, then the Fooocus V2
    expansion) on its own and lays the embeddings one after the other, which is what A1111's
    ``BREAK`` means: the prompt is those entries joined with ``BREAK`` (the same for
    ``full_negative_prompt``). ``sampler``/``scheduler`` are ComfyUI's names (Fooocus samples
    with ComfyUI's code), ``resolution`` is ``(width, height)``, ``clip_skip`` counts as A1111's.
    The user's own prompt goes to ``extra`` as "Raw prompt", as Fooocus's A1111 scheme calls it.
    """
    values = dict(data)
    where = "Fooocus metadata"
    prompt_parts = _text_list(values.pop("full_prompt", None), f"{where} 'full_prompt'")
    negative_parts = _text_list(values.pop("full_negative_prompt", None), f"{where} 'full_negative_prompt'")
    raw_prompt = _json_typed(values.pop("prompt", None), str, f"{where} 'prompt'")
    raw_negative = _json_typed(values.pop("negative_prompt", None), str, f"{where} 'negative_prompt'")
    if prompt_parts is None and raw_prompt is None:
        raise ImportMetadataError(f"{where}: no 'full_prompt' or 'prompt' (keys: {sorted(data)})")
    prompt_parts = prompt_parts if prompt_parts is not None else [raw_prompt or ""]
    negative_parts = negative_parts if negative_parts is not None else [raw_negative or ""]
    notes = []
    if len(prompt_parts) > 1 or len(negative_parts) > 1:
        notes.append(
            "Fooocus encodes each part of its prompt (the styled prompt, the Fooocus V2 expansion) on its own "
            "and lays them one after the other: the parts are joined here with BREAK, A1111's word for that"
        )
    extra = {"Raw prompt": raw_prompt or "", "Raw negative prompt": raw_negative or ""}
    width = height = None
    resolution = values.pop("resolution", None)
    if resolution is not None:
        match = re.fullmatch(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)", str(resolution))
        if match is None:
            raise ImportMetadataError(f"{where}: 'resolution' {resolution!r} is not '(width, height)'")
        width, height = int(match.group(1)), int(match.group(2))
    refiner = values.get("refiner_model")
    if isinstance(refiner, str) and refiner not in ("", "None"):
        switch = values.get("refiner_switch")
        at = f" at {switch:.0%} of the steps" if _matches(switch, float) else ""
        notes.append(f"Fooocus hands the sampling over to the refiner {refiner!r}{at}; promptlab does not")
    return GenerationParameters(
        prompt=" BREAK ".join(part.strip() for part in prompt_parts if part.strip()),
        negative_prompt=" BREAK ".join(part.strip() for part in negative_parts if part.strip()),
        steps=_json_typed(values.pop("steps", None), int, f"{where} 'steps'"),
        sampler=_json_typed(values.pop("sampler", None), str, f"{where} 'sampler'"),
        scheduler=_json_typed(values.pop("scheduler", None), str, f"{where} 'scheduler'"),
        cfg_scale=_json_typed(values.pop("guidance_scale", None), float, f"{where} 'guidance_scale'"),
        seed=_json_typed(values.pop("seed", None), int, f"{where} 'seed'"),
        width=width,
        height=height,
        model=_json_typed(values.pop("base_model", None), str, f"{where} 'base_model'"),
        model_hash=_json_typed(values.pop("base_model_hash", None), str, f"{where} 'base_model_hash'"),
        clip_skip=_json_typed(values.pop("clip_skip", None), int, f"{where} 'clip_skip'"),
        loras=_lora_list(values.pop("loras", None), f"{where} 'loras'"),
        extra=extra | {key: _extra_text(value) for key, value in values.items()},
        source="fooocus",
        notes=tuple(notes),
    )


def parse_ruinedfooocus_metadata(data: dict[str, Any]) -> GenerationParameters:
    """Read RuinedFooocus's JSON (``parameters`` chunk with ``"software": "RuinedFooocus"``).

    ``Prompt``/``Negative`` hold the prompts as rendered, ``sampler_name``/``scheduler`` are
    ComfyUI's names, ``loras`` is ``[[hash, "weight - name"], ...]`` (older versions: the text
    ``Loras:<name:weight>,...``). Every other key goes to ``extra``.
    """
    values = dict(data)
    where = "RuinedFooocus metadata"
    prompt = _json_typed(values.pop("Prompt", values.pop("prompt", None)), str, f"{where} 'Prompt'")
    if prompt is None:
        raise ImportMetadataError(f"{where}: no 'Prompt' (keys: {sorted(data)})")
    refiner = values.get("refiner_model_name")
    notes = []
    if isinstance(refiner, str) and refiner not in ("", "None"):
        notes.append(f"RuinedFooocus hands the sampling over to the refiner {refiner!r}; promptlab does not")
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=_json_typed(values.pop("Negative", None), str, f"{where} 'Negative'") or "",
        steps=_json_typed(values.pop("steps", None), int, f"{where} 'steps'"),
        sampler=_json_typed(values.pop("sampler_name", None), str, f"{where} 'sampler_name'"),
        scheduler=_json_typed(values.pop("scheduler", None), str, f"{where} 'scheduler'"),
        cfg_scale=_json_typed(values.pop("cfg", None), float, f"{where} 'cfg'"),
        seed=_json_typed(values.pop("seed", None), int, f"{where} 'seed'"),
        width=_json_typed(values.pop("width", None), int, f"{where} 'width'"),
        height=_json_typed(values.pop("height", None), int, f"{where} 'height'"),
        model=_json_typed(values.pop("base_model_name", None), str, f"{where} 'base_model_name'"),
        model_hash=_json_typed(values.pop("base_model_hash", None), str, f"{where} 'base_model_hash'"),
        denoising_strength=_json_typed(values.pop("denoise", None), float, f"{where} 'denoise'"),
        clip_skip=_json_typed(values.pop("clip_skip", None), int, f"{where} 'clip_skip'"),
        loras=_ruinedfooocus_loras(values.pop("loras", None), f"{where} 'loras'"),
        extra={key: _extra_text(value) for key, value in values.items() if key != "software"},
        source="ruinedfooocus",
        notes=tuple(notes),
    )


def _ruinedfooocus_loras(value: object, where: str) -> tuple[tuple[str, float], ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        # older versions: "Loras:<name:weight>,<name:weight>"
        return tuple((name, float(weight)) for name, weight in re.findall(r"<([^:<>]+):([-+]?\d*\.?\d+)>", value))
    pairs = []
    for item in value if isinstance(value, list) else [value]:
        text = item[1] if isinstance(item, list) and len(item) == 2 and isinstance(item[1], str) else ""
        match = re.fullmatch(r"\s*([-+]?\d*\.?\d+)\s+-\s+(.+)", text)
        if match is None:
            raise ImportMetadataError(f"{where} entry {item!r} is not [hash, \"weight - name\"]")
        pairs.append((match.group(2), float(match.group(1))))
    return tuple(pairs)


def parse_swarmui_metadata(data: dict[str, Any]) -> GenerationParameters:
    """Read SwarmUI's JSON (``parameters`` chunk: ``{"sui_image_params": {...}, ...}``).

    Parameter ids are SwarmUI's (``prompt``, ``negativeprompt``, ``cfgscale``, ``loras`` with
    ``loraweights``); ``sampler``/``scheduler`` are ComfyUI's names (SwarmUI renders through
    ComfyUI); ``clipstopatlayer`` -2 is A1111's "Clip skip: 2". Every other key goes to ``extra``.
    """
    where = "SwarmUI metadata"
    values = data.get("sui_image_params")
    if not isinstance(values, dict):
        raise ImportMetadataError(f"{where}: 'sui_image_params' is {values!r}; expected an object")
    values = dict(values)
    prompt = _json_typed(values.pop("prompt", None), str, f"{where} 'prompt'")
    if prompt is None:
        raise ImportMetadataError(f"{where}: no 'prompt' (keys: {sorted(values)})")
    names = _text_list(values.pop("loras", None), f"{where} 'loras'") or []
    weights = values.pop("loraweights", None)
    weights = weights if isinstance(weights, list) else [1.0] * len(names)
    if len(weights) != len(names):
        raise ImportMetadataError(f"{where}: {len(names)} 'loras' but {len(weights)} 'loraweights'")
    try:
        loras = tuple((name, float(weight)) for name, weight in zip(names, weights))
    except (TypeError, ValueError):
        raise ImportMetadataError(f"{where}: 'loraweights' {weights!r} are not numbers") from None
    stop_at = _json_typed(values.pop("clipstopatlayer", None), int, f"{where} 'clipstopatlayer'")
    others = {key: value for key, value in data.items() if key != "sui_image_params"}
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=_json_typed(values.pop("negativeprompt", None), str, f"{where} 'negativeprompt'") or "",
        steps=_json_typed(values.pop("steps", None), int, f"{where} 'steps'"),
        sampler=_json_typed(values.pop("sampler", None), str, f"{where} 'sampler'"),
        scheduler=_json_typed(values.pop("scheduler", None), str, f"{where} 'scheduler'"),
        cfg_scale=_json_typed(values.pop("cfgscale", None), float, f"{where} 'cfgscale'"),
        seed=_json_typed(values.pop("seed", None), int, f"{where} 'seed'"),
        width=_json_typed(values.pop("width", None), int, f"{where} 'width'"),
        height=_json_typed(values.pop("height", None), int, f"{where} 'height'"),
        model=_json_typed(values.pop("model", None), str, f"{where} 'model'"),
        clip_skip=None if stop_at is None else -stop_at,
        loras=loras,
        extra={key: _extra_text(value) for key, value in (values | others).items()},
        source="swarmui",
    )


def parse_novelai_metadata(chunks: dict[str, str]) -> GenerationParameters:
    """Read NovelAI's PNG text: the prompt in ``Description``, the settings as JSON in ``Comment``.

    ``uc`` is the negative prompt, ``scale`` the CFG scale, ``sampler`` k-diffusion's name
    (``k_euler_ancestral``), ``noise_schedule`` (newer images) the schedule; ``Source`` names the
    model ("Stable Diffusion 1D44365E": the hash is its last word). Prompts are NovelAI's syntax
    (``{word}`` x1.05, ``[word]`` /1.05). Every other key goes to ``extra``.
    """
    where = "NovelAI metadata"
    comment = _load_json(chunks[NOVELAI_CHUNK], NOVELAI_CHUNK)
    if not isinstance(comment, dict):
        raise ImportMetadataError(f"{where}: 'Comment' holds {type(comment).__name__}, not a JSON object")
    values = dict(comment)
    prompt = _json_typed(values.pop("prompt", None), str, f"{where} 'prompt'")
    prompt = chunks.get("Description", "") if prompt is None else prompt
    source = chunks.get("Source")
    hash_match = re.search(r"\s([0-9A-Fa-f]{8,})$", source or "")
    notes = []
    v4_prompt = values.get("v4_prompt")
    caption = v4_prompt.get("caption") if isinstance(v4_prompt, dict) else None
    captions = caption.get("char_captions") if isinstance(caption, dict) else None
    if captions:
        notes.append(f"NovelAI's {len(captions)} character prompts (v4_prompt) are not in the record")
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=_json_typed(values.pop("uc", None), str, f"{where} 'uc'") or "",
        steps=_json_typed(values.pop("steps", None), int, f"{where} 'steps'"),
        sampler=_json_typed(values.pop("sampler", None), str, f"{where} 'sampler'"),
        scheduler=_json_typed(values.pop("noise_schedule", None), str, f"{where} 'noise_schedule'"),
        cfg_scale=_json_typed(values.pop("scale", None), float, f"{where} 'scale'"),
        seed=_json_typed(values.pop("seed", None), int, f"{where} 'seed'"),
        width=_json_typed(values.pop("width", None), int, f"{where} 'width'"),
        height=_json_typed(values.pop("height", None), int, f"{where} 'height'"),
        model=source,
        model_hash=hash_match.group(1) if hash_match else None,
        denoising_strength=_json_typed(values.pop("strength", None), float, f"{where} 'strength'"),
        extra={key: _extra_text(value) for key, value in values.items()},
        source="novelai",
        notes=tuple(notes),
    )


def _json_typed(value: object, kind: type, where: str) -> Any:
    """``value`` as ``kind``; whole numbers written as text ("6952411511246973023") count as numbers."""
    if isinstance(value, str) and kind is not str and re.fullmatch(r"\s*[-+]?\d+(\.\d*)?\s*", value):
        value = float(value) if kind is float or "." in value else int(value)
    if value is None:
        return None
    if not _matches(value, kind):
        expected = {str: "text", int: "a whole number", float: "a number"}[kind]
        raise ImportMetadataError(f"{where} is {value!r}; expected {expected}")
    return float(value) if kind is float else value  # type: ignore[arg-type]


def _text_list(value: object, where: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImportMetadataError(f"{where} is {value!r}; expected a list of texts")
    return list(value)


def _lora_list(value: object, where: str) -> tuple[tuple[str, float], ...]:
    """``[[name, weight], ...]`` (a third item, the hash, is allowed) as (name, weight) pairs."""
    if value is None:
        return ()
    pairs = []
    for item in value if isinstance(value, list) else [value]:
        if not (isinstance(item, list) and len(item) >= 2 and isinstance(item[0], str) and _matches(item[1], float)):
            raise ImportMetadataError(f"{where} entry {item!r} is not [name, weight]")
        pairs.append((item[0], float(item[1])))
    return tuple(pairs)


def read_image_metadata(path: Path) -> ImageMetadata:
    """The generation parameters stored in an image file, from whichever tool wrote them.

    Tries, in order: promptlab's own chunks; ``parameters``: A1111's infotext (PNG text chunk
    or JPEG/WebP EXIF UserComment), or the JSON of Fooocus, RuinedFooocus or SwarmUI; ComfyUI's
    ``prompt`` graph; InvokeAI's ``invokeai_metadata``, ``sd-metadata`` and ``Dream``; NovelAI's
    ``Comment``; and, when the file has none of these, A1111's "stealth" infotext in the
    pixels' lowest bits. The first one present decides: if it does not parse, that is the error.
    Raises ``ImportMetadataError`` naming the file and what was, or was not, found.
    """
    path = Path(path)
    chunks, size, stealth = _read_chunks(path)
    try:
        _check_chunk_sizes(chunks)
        parameters, record = _parse_chunks(chunks, size)
        _check_ranges(parameters)
        check_json(dataclasses.asdict(parameters), "the metadata")
    except ImportMetadataError as error:
        raise ImportMetadataError(f"{path}: {error}") from error
    if stealth:
        parameters = replace(parameters, notes=(f"read from the pixels' lowest bits ({stealth})", *parameters.notes))
    return ImageMetadata(path=path, parameters=parameters, chunks=chunks, promptlab_record=record)


# Chunks that say how an image was made; without any of them, the pixels may hide A1111's stealth infotext.
_KNOWN_CHUNKS = (
    PROMPTLAB_CHUNK, A1111_CHUNK, COMFYUI_CHUNK, INVOKEAI_CHUNK, INVOKEAI_LEGACY_CHUNK, INVOKEAI_DREAM_CHUNK,
    NOVELAI_CHUNK,
)  # fmt: skip


def _read_chunks(path: Path) -> tuple[dict[str, str], tuple[int, int], str | None]:
    """The file's text chunks, its size, and the stealth signature when the text came from the pixels."""
    stealth = None
    try:
        with warnings.catch_warnings():
            # Pillow warns past its pixel limit and raises past twice that: refuse before decoding either.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            chunks = {key: str(value) for key, value in getattr(image, "text", {}).items()}
            if A1111_CHUNK not in chunks:
                comment = _exif_user_comment(image, path)
                if comment:
                    chunks[A1111_CHUNK] = comment
            if not any(name in chunks for name in _KNOWN_CHUNKS):
                found = _stealth_text(image, path)
                if found is not None:
                    stealth, text = found
                    chunks.update(_stealth_chunks(text))
            size = image.size
    except FileNotFoundError:
        raise ImportMetadataError(f"{path}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImportMetadataError(
            f"{path}: the image is larger than promptlab reads (Pillow's limit, {Image.MAX_IMAGE_PIXELS:,} pixels): {error}"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImportMetadataError(f"{path}: not an image file Pillow can read ({error})") from error
    except ValueError as error:  # Pillow's text-chunk limits: "Decompressed data too large", "Too much memory ..."
        raise ImportMetadataError(f"{path}: its text chunks are larger than promptlab reads ({error})") from None
    return chunks, size, stealth


def _check_chunk_sizes(chunks: dict[str, str]) -> None:
    for name, text in chunks.items():
        if len(text) > MAX_TEXT_CHARS:
            raise ImportMetadataError(
                f"'{name}' chunk holds {len(text):,} characters, more than promptlab reads ({MAX_TEXT_CHARS:,}, "
                "Pillow's limit for a compressed text chunk); no tool writes metadata that long"
            )


def _check_ranges(params: GenerationParameters) -> None:
    """ImportMetadataError naming the first field whose value no tool writes (``FIELD_RANGES``),
    or a prompt longer than promptlab renders."""
    from promptlab.render.params import MAX_PROMPT_CHARS

    for name in ("prompt", "negative_prompt"):
        length = len(getattr(params, name))
        if length > MAX_PROMPT_CHARS:
            raise ImportMetadataError(f"{name} is {length:,} characters long, more than promptlab renders ({MAX_PROMPT_CHARS:,})")
    for name, (low, high) in FIELD_RANGES.items():
        value = getattr(params, name)
        if value is None:
            continue
        whole = isinstance(low, int)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
            raise ImportMetadataError(f"{name} = {value!r}: expected a {'whole number' if whole else 'number'}")
        if not (math.isfinite(value) and low <= value <= high):
            shown = "2**64 - 1" if high == 2**64 - 1 else f"{high:,}"
            raise ImportMetadataError(
                f"{name} = {value!r} is out of range: expected {'a whole number' if whole else 'a number'} "
                f"from {low} to {shown}"
            )


# The stealth-pnginfo signatures: which bits carry the text, and whether it is gzipped.
_STEALTH_SIGNATURES = {
    "stealth_pnginfo": ("alpha", False),
    "stealth_pngcomp": ("alpha", True),
    "stealth_rgbinfo": ("rgb", False),
    "stealth_rgbcomp": ("rgb", True),
}
_STEALTH_HEADER_BITS = (15 + 4) * 8


def _stealth_text(image: Image.Image, path: Path) -> tuple[str, str] | None:
    """The signature and text hidden in the pixels' lowest bits by A1111's stealth-pnginfo (NovelAI does the same).

    The bits run column by column, top to bottom: the alpha channel's (one a pixel) or red,
    green and blue's (three); a 15-byte signature, the text's length in bits (32-bit big-endian),
    then the text, gzipped for the ``comp`` signatures.
    """
    import numpy as np

    if image.mode not in ("RGB", "RGBA"):
        return None
    pixels = np.asarray(image)
    height = pixels.shape[0]
    for mode in ("alpha", "rgb"):
        if mode == "alpha" and image.mode != "RGBA":
            continue
        channels = pixels[:, :, 3:] if mode == "alpha" else pixels[:, :, :3]

        def data(bit_count: int, channels: Any = channels) -> bytes:
            columns = -(-bit_count // (height * channels.shape[2]))
            bits = channels[:, :columns].transpose(1, 0, 2).reshape(-1)[:bit_count] & 1
            return bytes(np.packbits(bits.astype(np.uint8)))

        header = data(_STEALTH_HEADER_BITS)
        signature = header[:15].decode("latin-1")
        if _STEALTH_SIGNATURES.get(signature, ("",))[0] != mode:
            continue
        length = int.from_bytes(header[15:19], "big")
        capacity = pixels.shape[0] * pixels.shape[1] * channels.shape[2] - _STEALTH_HEADER_BITS
        if length > 8 * MAX_TEXT_CHARS:
            raise ImportMetadataError(f"{path}: {signature} says {length // 8:,} bytes follow, more than promptlab reads ({MAX_TEXT_CHARS:,})")
        if length > capacity:
            raise ImportMetadataError(f"{path}: {signature} says {length} bits follow, but the image holds {capacity}")
        payload = data(_STEALTH_HEADER_BITS + length)[19:]
        try:
            if _STEALTH_SIGNATURES[signature][1]:
                payload = gzip.decompress(payload)
            return signature, payload.decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise ImportMetadataError(f"{path}: {signature} text in the pixels cannot be read ({error})") from error
    return None


def _stealth_chunks(text: str) -> dict[str, str]:
    """Stealth text as the chunks it stands for: NovelAI's JSON of its chunks, or A1111's infotext."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and NOVELAI_CHUNK in data:
        check_json(data, "the stealth text's JSON")
        return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in data.items()}
    return {A1111_CHUNK: text}


def _exif_user_comment(image: Image.Image, path: Path) -> str | None:
    """EXIF UserComment, where A1111 (via piexif) puts its infotext in JPEG and WebP files."""
    raw = image.getexif().get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.UserComment)
    if isinstance(raw, str):
        return raw.strip("\0").strip() or None
    if not isinstance(raw, bytes):
        return None
    header, body = raw[:8], raw[8:]
    try:
        if header == b"UNICODE\0":
            text = body.decode(_utf16_encoding(body))
        elif header == b"ASCII\0\0\0":
            text = body.decode("latin-1")
        elif header == b"\0" * 8:
            text = body.decode("utf-8")
        else:
            text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportMetadataError(f"{path}: EXIF UserComment cannot be decoded ({error})") from error
    return text.strip("\0").strip() or None


def _utf16_encoding(body: bytes) -> str:
    if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
        return "utf-16"
    # piexif writes big-endian; some writers use little-endian, told apart by where ASCII's zero bytes sit
    zeros_first = body[0::2].count(0)
    zeros_second = body[1::2].count(0)
    return "utf-16-le" if zeros_second > zeros_first else "utf-16-be"


def _parse_chunks(
    chunks: dict[str, str], image_size: tuple[int, int] | None = None
) -> tuple[GenerationParameters, dict[str, Any] | None]:
    if PROMPTLAB_CHUNK in chunks:
        record = _load_json(chunks[PROMPTLAB_CHUNK], PROMPTLAB_CHUNK)
        if not isinstance(record, dict):
            raise ImportMetadataError(
                f"'{PROMPTLAB_CHUNK}' chunk holds {type(record).__name__}, not a JSON object"
            )
        if A1111_CHUNK not in chunks:
            raise ImportMetadataError(
                f"'{PROMPTLAB_CHUNK}' chunk without the '{A1111_CHUNK}' chunk promptlab writes beside it"
            )
        return replace(parse_a1111_parameters(chunks[A1111_CHUNK]), source="promptlab"), record
    if A1111_CHUNK in chunks:
        return _parse_parameters_chunk(chunks), None
    if COMFYUI_CHUNK in chunks:
        return parse_comfyui_prompt(_load_json(chunks[COMFYUI_CHUNK], COMFYUI_CHUNK), image_size), None
    for name in (INVOKEAI_CHUNK, INVOKEAI_LEGACY_CHUNK):
        if name in chunks:
            return parse_invokeai_metadata(_load_json(chunks[name], name)), None
    if INVOKEAI_DREAM_CHUNK in chunks:
        return parse_invokeai_dream(chunks[INVOKEAI_DREAM_CHUNK]), None
    if NOVELAI_CHUNK in chunks and chunks.get("Software", "").startswith("NovelAI"):
        return parse_novelai_metadata(chunks), None
    found = ", ".join(repr(name) for name in chunks) or "none"
    raise ImportMetadataError(
        f"no generation metadata (text chunks: {found}); promptlab reads A1111 '{A1111_CHUNK}' "
        f"(PNG text, JPEG/WebP EXIF UserComment or stealth bits), the JSON Fooocus, RuinedFooocus "
        f"and SwarmUI put there, ComfyUI '{COMFYUI_CHUNK}', InvokeAI '{INVOKEAI_CHUNK}', "
        f"'{INVOKEAI_LEGACY_CHUNK}' or '{INVOKEAI_DREAM_CHUNK}', NovelAI '{NOVELAI_CHUNK}', and its own "
        f"'{PROMPTLAB_CHUNK}'"
    )


def _parse_parameters_chunk(chunks: dict[str, str]) -> GenerationParameters:
    """The ``parameters`` chunk: A1111's infotext, or the JSON that Fooocus, RuinedFooocus or SwarmUI put there."""
    text = chunks[A1111_CHUNK]
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        data = None  # an A1111 prompt may start with "{" (dynamic prompts)
    except RecursionError:
        raise ImportMetadataError(f"'{A1111_CHUNK}' chunk: JSON nested deeper than {MAX_JSON_DEPTH} levels, which no tool writes") from None
    if isinstance(data, dict):
        check_json(data, f"'{A1111_CHUNK}' chunk")
        if isinstance(data.get("sui_image_params"), dict):
            return parse_swarmui_metadata(data)
        if data.get("software") == "RuinedFooocus":
            return parse_ruinedfooocus_metadata(data)
        if "fooocus" in (data.get("metadata_scheme"), chunks.get("fooocus_scheme")) or "full_prompt" in data:
            return parse_fooocus_metadata(data)
        raise ImportMetadataError(
            f"'{A1111_CHUNK}' chunk holds JSON with keys {sorted(data)[:8]}, which is neither A1111's infotext nor "
            f"the JSON of Fooocus, RuinedFooocus or SwarmUI that promptlab reads"
        )
    params = parse_a1111_parameters(text)
    if chunks.get("fooocus_scheme") == "a1111":
        note = "written by Fooocus in A1111's format, which joins Fooocus's prompt parts with ', ' into one prompt"
        params = replace(params, notes=(*params.notes, note))
    return params


def _load_json(text: str, chunk: str) -> Any:
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
                _check_text(" ".join(map(str, item)), what)
            elif isinstance(item, (list, tuple)):
                children += item
            elif isinstance(item, str):
                _check_text(item, what)
        if not children:
            return data
        level = children
    raise ImportMetadataError(f"{what}: JSON nested deeper than {MAX_JSON_DEPTH} levels, which no tool writes")


_RE_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(text: str, what: str) -> None:
    found = _RE_SURROGATE.search(text)
    if found:
        raise ImportMetadataError(
            f"{what}: character {found.start() + 1} of {_short(text, 40)} is a lone surrogate "
            f"(\\u{ord(found.group()):04X}), which no text file or database holds"
        )


# A run's own PNG: what the store keeps for every rendered cell.


def run_png(record: RunRecord, image: Image.Image, scores: Sequence[ScoreRecord], experiment: str) -> bytes:
    """The PNG file of a rendered run: A1111's ``parameters`` infotext and a ``promptlab`` chunk holding
    the record, its experiment's name and its scores, ready for ``Store.record_run``.

    The same run and image give the same bytes, so the store names the file by their sha256.
    """
    chunk = record.to_dict()
    chunk["experiment"] = experiment
    chunk["scores"] = [score.__dict__.copy() for score in scores]
    try:
        json.dumps(chunk, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ExportError(
            f"run ({record.cell}) cannot be stored as JSON: {exc}; convert the value to a string or number"
        ) from exc
    return png_bytes(image, run_parameters(record, image.size, chunk), chunk)


def run_parameters(record: RunRecord, size: tuple[int, int], chunk: Mapping[str, Any] | None = None) -> GenerationParameters:
    """The run as A1111 1.9+ reads an infotext: prompts in its syntax, its sampler and schedule names.

    ``chunk`` is ``record.to_dict()`` where the caller has it already.
    """
    params = record.params
    clip_skip = params.get("clip_skip")
    prompt, negative, compel = _run_a1111_prompts(record, chunk if chunk is not None else record.to_dict())
    sampler = _run_a1111_sampler(params)
    settings = dict(sampler.settings) if sampler else {}
    if compel:
        settings[A1111_PROMPT_SYNTAX_KEY] = "compel"
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=negative,
        steps=params.get("num_inference_steps"),
        sampler=sampler.sampler if sampler else None,
        scheduler=sampler.schedule_type if sampler else None,
        cfg_scale=params.get("guidance_scale"),
        seed=record.seed,
        width=size[0],
        height=size[1],
        model=record.model,
        model_hash=_run_model_hash(params),
        # Pasted into txt2img, a denoising strength switches A1111's hires fix on.
        denoising_strength=params.get("strength") if record.task != "txt2img" else None,
        # A1111 counts the last CLIP layer as 1; diffusers' clip_skip counts layers skipped.
        clip_skip=clip_skip + 1 if isinstance(clip_skip, int) else None,
        extra=settings,
    )


def _run_a1111_prompts(record: RunRecord, chunk: Mapping[str, Any]) -> tuple[str, str, bool]:
    """Both prompts in A1111 syntax, and False; or, where either has no A1111 form, both as rendered, and True.

    A rendered image is never lost over its metadata: its prompts then go in as compel text under
    ``Prompt syntax: compel`` (A1111 keeps a key it does not know; promptlab's import reads it).
    A prompt built from terms is written from them (as the ``prompt_a1111`` column is); a prompt
    kept verbatim is converted from its compel text.
    """
    from promptlab.errors import PromptSyntaxError
    from promptlab.prompt import convert

    try:
        if record.prompt_text is None:
            prompt = record.prompt.to_a1111()
        else:
            prompt = convert(record.prompt_text, "compel", "a1111")
        return prompt, convert(record.negative_prompt, "compel", "a1111"), False
    except PromptSyntaxError:
        return str(chunk["prompt"]), record.negative_prompt, True


def _run_a1111_sampler(params: Mapping[str, Any]) -> Any:
    """The A1111 name of the scheduler the run used (its class and config); None if the record has neither."""
    from promptlab.render.schedulers import A1111Sampler, a1111_sampler

    class_name, config, steps = params.get("scheduler_class"), params.get("scheduler_config"), params.get("num_inference_steps")
    if isinstance(class_name, str) and isinstance(config, Mapping) and isinstance(steps, int):
        name = params.get("scheduler_name")
        return a1111_sampler(class_name, config, steps, name if isinstance(name, str) else None)
    # A record made by hand, without the render setup: its scheduler name is all there is.
    name = params.get("scheduler")
    return A1111Sampler(name) if isinstance(name, str) else None


def _run_model_hash(params: Mapping[str, Any]) -> str | None:
    """A1111's "Model hash" of a single-file checkpoint: its SHA-256, first 10 hex digits (sd_models' shorthash)."""
    source = params.get("model_source")
    if isinstance(source, Mapping) and source.get("kind") == "file" and isinstance(source.get("sha256"), str):
        return str(source["sha256"])[:10]
    return None
