"""A rendered run's own PNG: A1111's infotext of the run and the ``promptlab`` chunk holding its record.

    png = run_png(record, image, scores, experiment="squirrel-styles")
    store.record_run(record, png, scores)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from promptlab.errors import ExportError
from promptlab.metadata.a1111 import A1111_PROMPT_SYNTAX_KEY
from promptlab.metadata.parameters import GenerationParameters
from promptlab.metadata.png import png_bytes
from promptlab.prompt.a1111 import lora_tag

if TYPE_CHECKING:
    from promptlab.store import RunRecord, ScoreRecord


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
    settings.update(_run_adapter_settings(params))
    loras = _run_loras(params)
    if loras:
        # A1111 reads a LoRA from its tag in the prompt and names it by hash in "Lora hashes" (extra_networks_lora.py).
        prompt = " ".join([part for part in (prompt, *(lora_tag(name, strength) for name, strength, _ in loras)) if part])
        hashes = [f"{name.replace(':', '').replace(',', '')}: {digest[:12]}" for name, _, digest in loras if digest]
        if hashes:
            settings["Lora hashes"] = ", ".join(hashes)
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
        loras=tuple((name, strength) for name, strength, _ in loras),
    )


def _run_loras(params: Mapping[str, Any]) -> list[tuple[str, float, str | None]]:
    """The run's LoRAs as (name, strength, A1111's hash or None), in the order they were applied."""
    loras = []
    for lora in params.get("loras") or ():
        if isinstance(lora, Mapping) and isinstance(lora.get("name"), str) and isinstance(lora.get("strength"), (int, float)):
            digest = lora.get("a1111_hash")
            loras.append((lora["name"], float(lora["strength"]), digest if isinstance(digest, str) else None))
    return loras


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


def _run_adapter_settings(params: Mapping[str, Any]) -> dict[str, str]:
    """A1111's ``TI hashes`` (each embedding's token and file sha256, first 12 hex digits, as A1111's
    ``Embedding.shorthash``) and sd-webui-controlnet's ``ControlNet 0`` unit, for a run that has them.

    The ControlNet unit names the model and its weight; its image was given preprocessed (Module: none).
    """
    settings: dict[str, str] = {}
    embeddings = [e for e in params.get("embeddings") or () if isinstance(e, Mapping)]
    if embeddings:
        settings["TI hashes"] = ", ".join(f"{e.get('token')}: {str(e.get('sha256', ''))[:12]}" for e in embeddings)
    controlnet = params.get("controlnet")
    if isinstance(controlnet, Mapping) and controlnet.get("model"):
        name = Path(str(controlnet["model"])).stem if controlnet.get("kind") in ("file", "folder") else str(controlnet["model"])
        sha256 = controlnet.get("sha256")
        model = f"{name} [{sha256[:8]}]" if isinstance(sha256, str) else name
        scale = controlnet.get("scale", 1.0)
        weight = f"{scale:g}" if isinstance(scale, (int, float)) else str(scale)
        settings["ControlNet 0"] = f"Module: none, Model: {model}, Weight: {weight}, Guidance Start: 0, Guidance End: 1"
    return settings


def _run_model_hash(params: Mapping[str, Any]) -> str | None:
    """A1111's "Model hash" of a single-file checkpoint: its SHA-256, first 10 hex digits (sd_models' shorthash)."""
    source = params.get("model_source")
    if isinstance(source, Mapping) and source.get("kind") == "file" and isinstance(source.get("sha256"), str):
        return str(source["sha256"])[:10]
    return None
