"""The JSON that Fooocus, RuinedFooocus and SwarmUI write where A1111 writes its infotext, and NovelAI's
``Comment``.
"""

from __future__ import annotations

import re
from typing import Any

from promptlab.errors import ImportMetadataError
from promptlab.metadata.parameters import GenerationParameters, NOVELAI_CHUNK, extra_text, load_json, matches_type

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
        at = f" at {switch:.0%} of the steps" if matches_type(switch, float) else ""
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
        extra=extra | {key: extra_text(value) for key, value in values.items()},
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
        extra={key: extra_text(value) for key, value in values.items() if key != "software"},
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
        extra={key: extra_text(value) for key, value in (values | others).items()},
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
    comment = load_json(chunks[NOVELAI_CHUNK], NOVELAI_CHUNK)
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
        extra={key: extra_text(value) for key, value in values.items()},
        source="novelai",
        notes=tuple(notes),
    )


def _json_typed(value: object, kind: type, where: str) -> Any:
    """``value`` as ``kind``; whole numbers written as text ("6952411511246973023") count as numbers."""
    if isinstance(value, str) and kind is not str and re.fullmatch(r"\s*[-+]?\d+(\.\d*)?\s*", value):
        value = float(value) if kind is float or "." in value else int(value)
    return checked_type(value, kind, where)


def checked_type(value: object, kind: type, where: str) -> Any:
    """``value`` (None stays None) if it is a ``kind`` (str, int or float; an int counts as a float), as that
    kind; ImportMetadataError naming ``where`` otherwise."""
    if value is None:
        return None
    if not matches_type(value, kind):
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
        if not (isinstance(item, list) and len(item) >= 2 and isinstance(item[0], str) and matches_type(item[1], float)):
            raise ImportMetadataError(f"{where} entry {item!r} is not [name, weight]")
        pairs.append((item[0], float(item[1])))
    return tuple(pairs)
