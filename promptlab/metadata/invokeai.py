"""InvokeAI's metadata: ``invokeai_metadata`` (3.x+), ``sd-metadata`` and the ``Dream`` line (2.x)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from promptlab.errors import ImportMetadataError
from promptlab.metadata.json_formats import checked_type
from promptlab.metadata.parameters import GenerationParameters, extra_text, matches_type

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
        extra={key: extra_text(value) for key, value in values.items()},
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
        if not isinstance(name, str) or not matches_type(weight, float):
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
    extra = {key: extra_text(value) for key, value in metadata.items() if key not in typed_keys}
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
        extra=extra | {key: extra_text(value) for key, value in image.items()},
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
    return checked_type(value, kind, f"InvokeAI metadata: '{key}'")
