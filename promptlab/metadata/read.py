"""``read_image_metadata``: which tool wrote an image's metadata, and its parameters read by that tool's rules."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from promptlab.errors import ImportMetadataError
from promptlab.metadata.a1111 import parse_a1111_parameters
from promptlab.metadata.comfyui import parse_comfyui_prompt
from promptlab.metadata.invokeai import parse_invokeai_dream, parse_invokeai_metadata
from promptlab.metadata.json_formats import parse_fooocus_metadata, parse_novelai_metadata, parse_ruinedfooocus_metadata, parse_swarmui_metadata
from promptlab.metadata.parameters import A1111_CHUNK, COMFYUI_CHUNK, FIELD_RANGES, GenerationParameters, INVOKEAI_CHUNK, INVOKEAI_DREAM_CHUNK, INVOKEAI_LEGACY_CHUNK, ImageMetadata, MAX_JSON_DEPTH, NOVELAI_CHUNK, PROMPTLAB_CHUNK, check_json, load_json
from promptlab.metadata.png import check_chunk_sizes, read_chunks

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
    chunks, size, stealth = read_chunks(path)
    try:
        check_chunk_sizes(chunks)
        parameters, record = _parse_chunks(chunks, size)
        _check_ranges(parameters)
        check_json(dataclasses.asdict(parameters), "the metadata")
    except ImportMetadataError as error:
        raise ImportMetadataError(f"{path}: {error}") from error
    if stealth:
        parameters = replace(parameters, notes=(f"read from the pixels' lowest bits ({stealth})", *parameters.notes))
    return ImageMetadata(path=path, parameters=parameters, chunks=chunks, promptlab_record=record)


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
        # A whole number of 400 digits is out of range, not an overflow: only a float can be inf or NaN.
        if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
            shown = "2**64 - 1" if high == 2**64 - 1 else f"{high:,}"
            raise ImportMetadataError(
                f"{name} = {value!r} is out of range: expected {'a whole number' if whole else 'a number'} "
                f"from {low} to {shown}"
            )


def _parse_chunks(
    chunks: dict[str, str], image_size: tuple[int, int] | None = None
) -> tuple[GenerationParameters, dict[str, Any] | None]:
    if PROMPTLAB_CHUNK in chunks:
        record = load_json(chunks[PROMPTLAB_CHUNK], PROMPTLAB_CHUNK)
        if not isinstance(record, dict):
            raise ImportMetadataError(
                f"'{PROMPTLAB_CHUNK}' chunk holds {type(record).__name__}, not a JSON object"
            )
        if A1111_CHUNK not in chunks:
            raise ImportMetadataError(
                f"'{PROMPTLAB_CHUNK}' chunk without the '{A1111_CHUNK}' chunk promptlab writes beside it"
            )
        return replace(parse_a1111_parameters(chunks[A1111_CHUNK]), source="promptlab", loras=_record_loras(record)), record
    if A1111_CHUNK in chunks:
        return _parse_parameters_chunk(chunks), None
    if COMFYUI_CHUNK in chunks:
        return parse_comfyui_prompt(load_json(chunks[COMFYUI_CHUNK], COMFYUI_CHUNK), image_size), None
    for name in (INVOKEAI_CHUNK, INVOKEAI_LEGACY_CHUNK):
        if name in chunks:
            return parse_invokeai_metadata(load_json(chunks[name], name)), None
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


def _record_loras(record: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """The (name, strength) LoRAs a promptlab record lists in its params, in the order they were applied."""
    params = record.get("params")
    loras = params.get("loras") if isinstance(params, dict) else None
    return tuple(
        (lora["name"], float(lora["strength"]))
        for lora in loras or ()
        if isinstance(lora, dict) and isinstance(lora.get("name"), str) and isinstance(lora.get("strength"), (int, float))
    )
