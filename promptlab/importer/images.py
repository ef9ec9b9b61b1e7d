"""An image's metadata, read by ``promptlab.metadata``, as a prompt promptlab can render again::

    imported = import_image(Path("00012-1234.png"))
    imported.prompt                  # compel syntax: "a red fox, (snow)1.2"
    imported.generation_params()     # {"num_inference_steps": 28, "scheduler": "DPM++ 2M Karras", ...}

The choices, and why:

1. Images are read by ``metadata.read_image_metadata`` (A1111 ``parameters``, ComfyUI
   ``prompt`` graph, InvokeAI ``invokeai_metadata``/``sd-metadata``, promptlab's own chunk);
   its ``ImportMetadataError`` names the file. Prompts become compel syntax as
   ``importer.syntax`` reads each tool's; promptlab's come from its own record, and A1111 text
   promptlab wrote in compel syntax stays as it is.
2. The sampler is named as ``importer.samplers`` reads it: an A1111 sampler name, or none and a
   note saying why.
3. ``clip_skip`` counts as diffusers does (layers skipped: A1111's "Clip skip: 2" is 1).
4. What has no field (hires-fix settings, a tool's own keys) is named in ``notes``; the file
   keeps it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from promptlab.importer.samplers import imported_scheduler
from promptlab.importer.syntax import extra_networks, to_compel
from promptlab.metadata import (
    A1111_PROMPT_SYNTAX_KEY,
    ConditioningPrompt,
    GenerationParameters,
    ImageMetadata,
    Source,
    read_image_metadata,
)
from promptlab.prompt import Prompt, convert, parse_compel


#: The keys of ``ImportedPrompt.to_dict`` that repeat another under A1111's name, for scripts that use those.
ALIASES = ("steps", "cfg_scale", "sampler")


@dataclass(frozen=True)
class ImportedPrompt:
    """A prompt and its generation parameters read from an image, in diffusers' names, ready to render again.

    ``prompt`` and ``negative_prompt`` are compel syntax; ``source_prompt`` and
    ``source_negative_prompt`` keep the text as the tool wrote it. ``loras`` are the (name,
    weight) pairs the image was made with (promptlab does not load them); ``prompts`` and
    ``negative_prompts`` hold, in compel syntax, each prompt a tool combined into one
    conditioning (ComfyUI's area prompts), of which ``prompt`` is one. ``notes`` says what
    could not be carried over.
    """

    file: Path
    source: Source
    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    scheduler: str | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None
    strength: float | None = None
    clip_skip: int | None = None
    source_prompt: str = ""
    source_negative_prompt: str = ""
    source_sampler: str | None = None
    source_scheduler: str | None = None
    notes: tuple[str, ...] = ()
    model_hash: str | None = None
    loras: tuple[tuple[str, float], ...] = ()
    prompts: tuple[ConditioningPrompt, ...] = ()
    negative_prompts: tuple[ConditioningPrompt, ...] = ()

    def to_prompt(self) -> Prompt:
        """The positive prompt as promptlab's prompt model, its negative as free text."""
        parsed = parse_compel(self.prompt, join_parts=True)
        return Prompt(parsed.subject, parsed.terms, negative=self.negative_prompt)

    def generation_params(self) -> dict[str, Any]:
        """The known txt2img parameters, in diffusers' names (what a render request and a run take).

        ``strength`` is left out: A1111 writes a denoising strength for img2img and for its
        hires-fix pass alike, and ComfyUI's ``denoise`` is 1.0 on txt2img, so it does not say
        the image was an img2img render.
        """
        params = {
            "num_inference_steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "scheduler": self.scheduler,
            "width": self.width,
            "height": self.height,
            "clip_skip": self.clip_skip,
        }
        return {key: value for key, value in params.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: diffusers' names, plus A1111's (``steps``, ``cfg_scale``, ``sampler``: ``ALIASES``) as aliases."""
        return {
            "file": str(self.file),
            "source": self.source,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "num_inference_steps": self.num_inference_steps,
            "steps": self.num_inference_steps,
            "guidance_scale": self.guidance_scale,
            "cfg_scale": self.guidance_scale,
            "scheduler": self.scheduler,
            "sampler": self.scheduler,
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "strength": self.strength,
            "clip_skip": self.clip_skip,
            "source_prompt": self.source_prompt,
            "source_negative_prompt": self.source_negative_prompt,
            "source_sampler": self.source_sampler,
            "source_scheduler": self.source_scheduler,
            "model_hash": self.model_hash,
            "loras": [[name, weight] for name, weight in self.loras],
            "prompts": [asdict(part) for part in self.prompts],
            "negative_prompts": [asdict(part) for part in self.negative_prompts],
            "notes": list(self.notes),
        }


def import_image(path: Path) -> ImportedPrompt:
    """The prompt and parameters in an image's metadata; ``ImportMetadataError`` naming the file if there are none."""
    path = Path(path)
    return imported_prompt(read_image_metadata(path))


def image_prompt(path: Path) -> str:
    """The prompt an image was made with, without weights: the text a CLIP score reads (``promptlab score``)."""
    return convert(import_image(path).prompt, "compel", "plain")


def imported_prompt(meta: ImageMetadata) -> ImportedPrompt:
    """``meta`` (from ``metadata.read_image_metadata``) as a prompt promptlab can render again."""
    params = meta.parameters
    notes: list[str] = list(params.notes)
    record = meta.promptlab_record or {}
    # 1. prompts in compel syntax, without the extra-network tags the tool took out before encoding
    positive_text, loras, tag_notes = extra_networks(params.prompt, params.source)
    negative_text, negative_loras, negative_tag_notes = extra_networks(params.negative_prompt, params.source)
    if params.source == "promptlab" and isinstance(record.get("prompt"), str):
        prompt = record["prompt"]
        negative = record.get("negative_prompt", params.negative_prompt)
        negative = negative if isinstance(negative, str) else params.negative_prompt
    elif params.source == "a1111" and params.extra.get(A1111_PROMPT_SYNTAX_KEY) == "compel":
        # promptlab wrote its prompts as rendered, in compel syntax, where they had no A1111 form (its LoRA tags after them)
        prompt, negative = (positive_text.rstrip() if loras else params.prompt), params.negative_prompt
    else:
        prompt = to_compel(positive_text, params.source, meta.path, "prompt")
        negative = to_compel(negative_text, params.source, meta.path, "negative prompt")
    prompts, negative_prompts = (
        tuple(
            replace(part, text=to_compel(part.text, params.source, meta.path, f"node {part.node} prompt"))
            for part in parts
        )
        for parts in (params.prompts, params.negative_prompts)
    )
    loras = [*params.loras, *loras, *negative_loras]
    notes += tag_notes + negative_tag_notes
    if loras:
        listed = ", ".join(f"{name} {weight:g}" for name, weight in loras)
        notes.append(f"made with LoRAs ({listed}; kept in loras); promptlab does not load them")
    # 2. the sampler as an A1111 name
    scheduler = imported_scheduler(params, record)
    if scheduler.note:
        notes.append(scheduler.note)
    # 3. the rest, in diffusers' names; what has no field is named in a note
    dropped = _dropped_fields(params)
    if dropped:
        notes.append(dropped)
    model = params.model
    if params.source == "promptlab" and isinstance(record.get("model"), str):
        model = record["model"]
    return ImportedPrompt(
        file=meta.path,
        source=params.source,
        prompt=prompt,
        negative_prompt=negative,
        seed=params.seed,
        num_inference_steps=params.steps,
        guidance_scale=params.cfg_scale,
        scheduler=scheduler.name,
        width=params.width,
        height=params.height,
        model=model,
        strength=params.denoising_strength,
        clip_skip=params.clip_skip - 1 if params.clip_skip is not None else None,
        source_prompt=params.prompt,
        source_negative_prompt=params.negative_prompt,
        source_sampler=params.sampler,
        source_scheduler=params.scheduler,
        notes=tuple(notes),
        model_hash=params.model_hash,
        loras=tuple(loras),
        prompts=prompts,
        negative_prompts=negative_prompts,
    )


def _dropped_fields(params: GenerationParameters) -> str | None:
    """A note naming the source's fields the record has no place for (the file keeps them)."""
    if params.source == "promptlab":
        return None
    dropped = [
        f"{key}: {value if len(value) <= 60 else value[:57] + '...'}"
        for key, value in params.extra.items()
        if value.strip() and key != A1111_PROMPT_SYNTAX_KEY
    ]
    if not dropped:
        return None
    return f"not in the record (the file keeps them): {'; '.join(dropped)}"
