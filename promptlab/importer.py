"""Prompts made elsewhere, brought in: image metadata, A1111 styles.csv and Fooocus style files.

What ``promptlab import`` calls::

    batch = import_paths([Path("00012-1234.png"), Path("styles.csv")])
    batch.prompts[0].prompt          # compel syntax, ready to render again
    batch.prompts[0].to_dict()       # what --format json prints
    store_imported(store, batch.prompts[0])             # a run of the experiment "imported"
    save_styles_as_vocab(batch.styles, Path("my-vocab"))  # presets + templates for the builder

The choices, and why:

1. Images are read by ``metadata.read_image_metadata`` (A1111 ``parameters``, ComfyUI
   ``prompt`` graph, InvokeAI ``invokeai_metadata``/``sd-metadata``, promptlab's own chunk);
   its ``ImportMetadataError`` names the file. Prompts become compel syntax: A1111's with
   ``prompt.convert``; ComfyUI's the same way after escaping ``[`` ``]`` (ComfyUI reads them
   as text, A1111 as a down-weight); InvokeAI's are compel already and are normalised;
   promptlab's come from its own record. A prompt the model cannot hold (A1111's ``BREAK``)
   raises ``ImportMetadataError`` naming the file.
2. ``scheduler`` is an A1111 sampler name, which promptlab's renderer resolves. ComfyUI's
   ``sampler_name`` + ``scheduler`` and InvokeAI's scheduler map through the tables below;
   A1111 1.9+'s ``Sampler`` + ``Schedule type`` join into the older single name
   ("DPM++ 2M" + "Karras" -> "DPM++ 2M Karras"). A choice with no A1111 name (ComfyUI's
   ``exponential`` schedule, ``lcm``) leaves ``scheduler`` unset and says so in ``notes``;
   the source's own names stay in ``source_sampler``/``source_scheduler``. promptlab's own
   images keep the scheduler name they were rendered with.
3. ``clip_skip`` counts as diffusers does (layers skipped: A1111's "Clip skip: 2" is 1).
4. ``store_imported`` records an image as a run of the experiment ``imported``: PNG bytes as
   they are (metadata intact); a JPEG/WebP is stored as PNG carrying its text chunks. Each
   image is its own variant (``experiment.variant_key`` of its prompt, parameters and image
   hash: LoRAs or hires passes made elsewhere are not all in the metadata), so importing it
   again finds its run; an unknown seed is stored as -1 (A1111's "random"); no score is
   recorded. The run is txt2img: a denoising strength does not tell img2img from a hires-fix
   pass, so it is kept as ``source_strength``; the model hash, LoRAs, combined prompts and
   notes are kept beside it (``source_model_hash``, ``source_loras``, ``source_prompts``,
   ``import_notes``).
5. Style files are read as their tools read them: ``styles.csv`` with ``utf-8-sig`` and
   ``csv.DictReader(skipinitialspace=True)``, rows whose name starts with ``#`` skipped, the
   old ``text`` column for ``prompt``; a Fooocus file is a JSON list of ``{name, prompt,
   negative_prompt}``. A name given twice keeps the later style, as both tools do.
6. ``save_styles_as_vocab`` adds each style's negative prompt as a preset to
   ``<vocab_dir>/negative.toml`` (what ``vocab.load_vocab`` reads) and its prompt template to
   ``<vocab_dir>/templates/styles.toml``: the loader reads every top-level ``*.toml`` other
   than ``negative.toml`` and ``subjects.toml`` as a category, so the templates live one
   folder down, where ``load_styles`` reads them. Names become preset names (lowercase,
   ``-``); a name already taken raises ``VocabError`` rather than overwrite it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from promptlab.errors import ImportMetadataError, PromptSyntaxError, VocabError
from promptlab.metadata import (
    A1111_PROMPT_SYNTAX_KEY,
    MAX_JSON_DEPTH,
    ConditioningPrompt,
    GenerationParameters,
    ImageMetadata,
    Source,
    check_json,
    read_image_metadata,
)
from promptlab.prompt import Prompt, convert, parse_compel
from promptlab.vocab import NAME_RE, NEGATIVE_FILE, toml_string, write_toml_files

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

if TYPE_CHECKING:
    from promptlab.store import Run, Store

IMPORT_EXPERIMENT = "imported"
UNKNOWN_SEED = -1
STYLES_FILE = Path("templates") / "styles.toml"
# A1111's styles.csv and Fooocus's style files are kilobytes; one far larger is no style file.
MAX_STYLE_FILE_BYTES = 16 * 1024 * 1024
STYLE_PLACEHOLDER = "{prompt}"
StyleSource = Literal["a1111", "fooocus", "promptlab"]
# File suffixes read as style files; anything else is read as an image.
STYLE_SUFFIXES: dict[str, StyleSource] = {".csv": "a1111", ".json": "fooocus"}

# A1111 sampler -> its Karras-schedule twin, where A1111 had one (before 1.9 they were one name).
A1111_KARRAS: dict[str, str] = {
    "LMS": "LMS Karras",
    "DPM2": "DPM2 Karras",
    "DPM2 a": "DPM2 a Karras",
    "DPM++ 2S a": "DPM++ 2S a Karras",
    "DPM++ 2M": "DPM++ 2M Karras",
    "DPM++ SDE": "DPM++ SDE Karras",
    "DPM++ 2M SDE": "DPM++ 2M SDE Karras",
}
# A1111 sampler -> its exponential-schedule twin, where promptlab has one (A1111 1.6-1.8 had it as one name).
A1111_EXPONENTIAL: dict[str, str] = {"DPM++ 2M SDE": "DPM++ 2M SDE Exponential"}
# ComfyUI KSampler ``sampler_name`` -> A1111 sampler (k-diffusion's names, which both tools wrap).
COMFYUI_SAMPLERS: dict[str, str] = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "lms": "LMS",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "ddim": "DDIM",
    "uni_pc": "UniPC",
    "deis": "DEIS",
}
# ComfyUI ``scheduler`` values A1111 has: "normal" is the sampler's plain schedule, "karras" its twin.
COMFYUI_PLAIN_SCHEDULES = ("normal",)
COMFYUI_KARRAS_SCHEDULES = ("karras",)
# InvokeAI's scheduler names (3.x+, and 2.x's ``k_`` names) -> A1111 sampler.
INVOKEAI_SCHEDULERS: dict[str, str] = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "heun": "Heun",
    "lms": "LMS",
    "lms_k": "LMS Karras",
    "kdpm_2": "DPM2",
    "kdpm_2_a": "DPM2 a",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_k": "DPM++ 2M Karras",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_k": "DPM++ 2M SDE Karras",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_k": "DPM++ SDE Karras",
    "ddim": "DDIM",
    "pndm": "PNDM",
    "unipc": "UniPC",
    "deis": "DEIS",
    "k_euler": "Euler",
    "k_euler_a": "Euler a",
    "k_heun": "Heun",
    "k_lms": "LMS",
    "k_dpm_2": "DPM2",
    "k_dpm_2_a": "DPM2 a",
    "k_dpmpp_2": "DPM++ 2M",
    "k_dpmpp_2_a": "DPM++ 2S a",
}
# A1111's extra-network tag (extra_networks.re_extra_net): <kind:name:weight...>, taken out before encoding.
_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")
# Tools whose prompts hold extra-network tags, taken out as A1111 takes them out.
_EXTRA_NETWORK_SOURCES: tuple[Source, ...] = ("a1111", "fooocus", "swarmui")
# Tools whose prompts are ComfyUI's syntax (A1111's, with [ ] as plain text): they encode with ComfyUI's code.
_COMFYUI_SYNTAX: tuple[Source, ...] = ("comfyui", "fooocus", "ruinedfooocus", "swarmui")
# Tools that name samplers and schedules as ComfyUI does.
_COMFYUI_NAMING: tuple[Source, ...] = ("comfyui", "fooocus", "ruinedfooocus", "swarmui", "novelai")
# NovelAI's emphasis: each {} multiplies a word's weight by this, each [] divides it.
NOVELAI_EMPHASIS = 1.05


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
        """JSON-ready: diffusers' names, plus A1111's (``steps``, ``cfg_scale``, ``sampler``) as aliases."""
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


@dataclass(frozen=True)
class Style:
    """A style from A1111 or Fooocus: a prompt template and a negative prompt.

    ``{prompt}`` in the template marks where the user's prompt goes. ``prompt`` and
    ``negative_prompt`` are as the tool wrote them, in A1111 syntax.
    """

    name: str
    prompt: str
    negative_prompt: str
    source: StyleSource
    file: Path | None = None

    @property
    def key(self) -> str:
        """The name as a vocabulary preset name: lowercase letters, digits, ``-``."""
        return style_key(self.name)

    def apply(self, prompt: str) -> str:
        """``prompt`` with this style, as A1111 applies one: into ``{prompt}``, else appended after a comma."""
        return _merge(self.prompt, prompt)

    def apply_negative(self, negative_prompt: str) -> str:
        """``negative_prompt`` with this style's negative, by the same rule."""
        return _merge(self.negative_prompt, negative_prompt)

    def compel_prompt(self) -> str:
        """The template in compel syntax (``{prompt}`` kept), for promptlab's builder."""
        return self._compel(self.prompt, "prompt")

    def compel_negative_prompt(self) -> str:
        """The negative prompt in compel syntax."""
        return self._compel(self.negative_prompt, "negative_prompt")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "source": self.source,
            "file": None if self.file is None else str(self.file),
        }

    def _compel(self, text: str, what: str) -> str:
        if not text.strip():
            return ""
        try:
            return convert(text, "a1111", "compel")
        except PromptSyntaxError as error:
            where = f"{self.file}: " if self.file is not None else ""
            raise ImportMetadataError(
                f"{where}style {self.name!r}: its {what} {text!r} cannot be read: {error}"
            ) from error


@dataclass(frozen=True)
class ImportBatch:
    """What ``import_paths`` read: prompts from images, styles from style files, in argument order."""

    prompts: list[ImportedPrompt] = field(default_factory=list)
    styles: list[Style] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"prompts": [p.to_dict() for p in self.prompts], "styles": [s.to_dict() for s in self.styles]}


@dataclass(frozen=True)
class SavedStyles:
    """What ``save_styles_as_vocab`` wrote: the files (None when nothing went there) and the names added."""

    negative_file: Path | None
    styles_file: Path | None
    presets: list[str]
    templates: list[str]


# 1. Images.


def import_image(path: Path) -> ImportedPrompt:
    """The prompt and parameters in an image's metadata; ``ImportMetadataError`` naming the file if there are none."""
    path = Path(path)
    return imported_prompt(read_image_metadata(path))


def imported_prompt(meta: ImageMetadata) -> ImportedPrompt:
    """``meta`` (from ``metadata.read_image_metadata``) as a prompt promptlab can render again."""
    params = meta.parameters
    notes: list[str] = list(params.notes)
    record = meta.promptlab_record or {}
    # 1. prompts in compel syntax, without the extra-network tags the tool took out before encoding
    positive_text, loras, tag_notes = _extra_networks(params.prompt, params.source)
    negative_text, negative_loras, negative_tag_notes = _extra_networks(params.negative_prompt, params.source)
    if params.source == "promptlab" and isinstance(record.get("prompt"), str):
        prompt = record["prompt"]
        negative = record.get("negative_prompt", params.negative_prompt)
        negative = negative if isinstance(negative, str) else params.negative_prompt
    elif params.source == "a1111" and params.extra.get(A1111_PROMPT_SYNTAX_KEY) == "compel":
        # promptlab wrote its prompts as rendered, in compel syntax, where they had no A1111 form
        prompt, negative = params.prompt, params.negative_prompt
    else:
        prompt = _to_compel(positive_text, params.source, meta.path, "prompt")
        negative = _to_compel(negative_text, params.source, meta.path, "negative prompt")
    prompts, negative_prompts = (
        tuple(
            replace(part, text=_to_compel(part.text, params.source, meta.path, f"node {part.node} prompt"))
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
    naming, sampler, schedule = _sampler_naming(params)
    scheduler, note = _scheduler(naming, sampler, schedule, record)
    if note:
        notes.append(note)
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
        scheduler=scheduler,
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


def _to_compel(text: str, source: Source, path: Path, what: str) -> str:
    if not text.strip():
        return ""
    try:
        if source == "invokeai":
            return convert(text, "compel", "compel")
        if source in _COMFYUI_SYNTAX:
            # ComfyUI weighs only round brackets; its square brackets are text
            return convert(re.sub(r"(?<!\\)([\[\]])", r"\\\1", text), "a1111", "compel")
        if source == "novelai":
            return convert(novelai_to_a1111(text), "a1111", "compel")
        return convert(text, "a1111", "compel")
    except PromptSyntaxError as error:
        syntax = {"invokeai": "compel", "novelai": "NovelAI"}.get(source)
        syntax = syntax or ("ComfyUI" if source in _COMFYUI_SYNTAX else "A1111")
        shown = text if len(text) <= 120 else text[:117] + "..."
        raise ImportMetadataError(
            f"{path}: {source} {what} {shown!r} cannot be read as {syntax} syntax: {error}"
        ) from error


def novelai_to_a1111(text: str) -> str:
    r"""NovelAI's prompt in A1111 syntax: ``{word}`` is ``(word:1.05)``, ``[word]`` ``(word:0.952381)``, nested ones multiply.

    NovelAI reads ``(`` ``)`` and ``\`` as text, so they are escaped. Its newer numeric emphasis
    (``1.5::word::``) raises ``PromptSyntaxError``.

    >>> novelai_to_a1111("a {{cat}}, [dog] (hat)")
    'a (cat:1.1025), (dog:0.952380952) \\(hat\\)'
    """
    if "::" in text:
        raise PromptSyntaxError(
            "NovelAI's numeric emphasis ('1.5::word::') is not read by promptlab", text=text, position=text.index("::")
        )
    pieces: list[str] = []
    chunk: list[str] = []
    depth = {"{": 0, "[": 0}

    def flush() -> None:
        if chunk:
            piece = re.sub(r"([\\()\[\]])", r"\\\1", "".join(chunk))
            weight = round(NOVELAI_EMPHASIS ** (depth["{"] - depth["["]), 9)
            pieces.append(piece if weight == 1 else f"({piece}:{weight!r})")
            chunk.clear()

    for char in text:
        opener = {"}": "{", "]": "["}.get(char)
        if char in depth or (opener is not None and depth[opener] > 0):
            flush()
            if char in depth:
                depth[char] += 1
            else:
                depth[opener] -= 1  # type: ignore[index]
        else:
            chunk.append(char)
    flush()
    return "".join(pieces)


def _extra_networks(text: str, source: Source) -> tuple[str, list[tuple[str, float]], list[str]]:
    """``text`` without A1111's ``<lora:name:weight>``-style tags (A1111 removes them before encoding, as
    Fooocus and SwarmUI do), the LoRAs among them as (name, UNet weight), and notes for the rest."""
    if source not in _EXTRA_NETWORK_SOURCES:
        return text, [], []
    loras: list[tuple[str, float]] = []
    notes: list[str] = []

    def take(match: re.Match[str]) -> str:
        kind, args = match.group(1), match.group(2).split(":")
        positional = [arg for arg in args[1:] if "=" not in arg]
        try:
            weights = [float(arg) for arg in positional[:2]] or [1.0]
        except ValueError:
            weights = []
        if kind.lower() in ("lora", "lyco") and weights and len(positional) == len(args) - 1:
            # A1111: the first number weighs the text encoder, a second the UNet (else the same)
            loras.append((args[0], weights[-1]))
            if len(weights) == 2 and weights[0] != weights[1]:
                notes.append(
                    f"{match.group(0)} weighs the text encoder {weights[0]:g} and the UNet {weights[1]:g}; "
                    "loras keeps the UNet's"
                )
        else:
            notes.append(
                f"{match.group(0)} is taken out of the prompt, as {source} takes it out; promptlab does not apply it"
            )
        return ""

    return _EXTRA_NETWORK.sub(take, text), loras, notes


def _sampler_naming(params: GenerationParameters) -> tuple[Source, str | None, str | None]:
    """Whose names ``params``' sampler and schedule use, in today's spelling.

    ComfyUI's first versions wrote ``sample_euler``; NovelAI writes k-diffusion's ``k_euler`` and
    calls the plain schedule ``native``. Fooocus, RuinedFooocus and SwarmUI use ComfyUI's names.
    """
    if params.source not in _COMFYUI_NAMING:
        return params.source, params.sampler, params.scheduler
    prefix = "k_" if params.source == "novelai" else "sample_"
    sampler = params.sampler[len(prefix) :] if params.sampler and params.sampler.startswith(prefix) else params.sampler
    schedule = params.scheduler
    if params.source in ("novelai", "swarmui") and schedule in (None, "native"):
        schedule = "normal"
    return "comfyui", sampler, schedule


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


def _scheduler(
    source: Source, sampler: str | None, schedule: str | None, record: dict[str, Any]
) -> tuple[str | None, str | None]:
    """The A1111 sampler name for the source's sampler (and schedule), and a note when there is none."""
    if source == "promptlab":
        recorded = record.get("params", {}).get("scheduler") if isinstance(record.get("params"), dict) else None
        return (recorded if isinstance(recorded, str) else sampler), None
    if sampler is None:
        return None, None
    if source == "comfyui":
        base = COMFYUI_SAMPLERS.get(sampler)
        plain = schedule in COMFYUI_PLAIN_SCHEDULES or (sampler == "ddim" and schedule == "ddim_uniform")
        if base is not None and plain:
            return base, None
        if base is not None and schedule in COMFYUI_KARRAS_SCHEDULES and base in A1111_KARRAS:
            return A1111_KARRAS[base], None
        return None, (
            f"ComfyUI sampler {sampler!r} with scheduler {schedule!r} has no A1111 sampler name; scheduler left unset"
        )
    if source == "invokeai":
        name = INVOKEAI_SCHEDULERS.get(sampler)
        if name is None:
            return None, f"InvokeAI scheduler {sampler!r} has no A1111 sampler name; scheduler left unset"
        return name, None
    return _a1111_scheduler(sampler, schedule)


def _a1111_scheduler(sampler: str, schedule: str | None) -> tuple[str | None, str | None]:
    """A1111's ``Sampler`` and ``Schedule type`` as the sampler name promptlab renders, as A1111 itself reads them.

    No schedule type: an infotext from before 1.9, whose sampler names held their schedule.
    ``Automatic`` is the sampler's own default (Karras for DPM++ 2M, Exponential for DPM++ 2M
    SDE, the model's sigmas for Euler). ``SGM Uniform`` and ``DDIM`` space timesteps in ways
    promptlab's names do not say: the model's own spacing is used, and a note says so.
    promptlab's own name for a scheduler A1111 lacks is read back from its sampler text.
    """
    from promptlab.render.schedulers import (
        A1111_DEFAULT_SCHEDULES,
        A1111_SPACING_SCHEDULES,
        A1111_TIMESTEP_SAMPLERS,
        scheduler_named_in_a1111_sampler,
    )

    own = scheduler_named_in_a1111_sampler(sampler)
    if own is not None:
        return own, None
    if schedule is None or sampler in A1111_TIMESTEP_SAMPLERS:
        return sampler, None
    used = A1111_DEFAULT_SCHEDULES.get(sampler, "Uniform") if schedule == "Automatic" else schedule
    if used == "Uniform":
        return sampler, None
    twins = {"Karras": A1111_KARRAS, "Exponential": A1111_EXPONENTIAL}.get(used, {})
    if sampler in twins:
        return twins[sampler], None
    if used in A1111_SPACING_SCHEDULES:
        return sampler, (
            f"A1111 schedule type {schedule!r} spaces the timesteps its own way; promptlab renders "
            f"{sampler!r} on the model's own timestep spacing"
        )
    schedule_text = f"{schedule!r} ({used})" if used != schedule else repr(schedule)
    return None, (
        f"A1111 sampler {sampler!r} with schedule type {schedule_text} has no single A1111 sampler name; "
        "scheduler left unset"
    )


# 2. Style files.


def import_styles(path: Path) -> list[Style]:
    """The styles in an A1111 ``styles.csv`` (``.csv``) or a Fooocus style file (``.json``), in file order."""
    path = Path(path)
    kind = STYLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ImportMetadataError(
            f"{path}: not a style file; promptlab reads A1111 styles.csv (.csv) and Fooocus styles (.json)"
        )
    try:
        if path.stat().st_size > MAX_STYLE_FILE_BYTES:
            raise ImportMetadataError(
                f"{path}: {path.stat().st_size:,} bytes, more than a style file holds (promptlab reads up to {MAX_STYLE_FILE_BYTES:,})"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportMetadataError(f"{path}: no such file") from None
    except OSError as error:
        raise ImportMetadataError(f"{path}: cannot be read ({error.strerror or error})") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportMetadataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    styles = _a1111_styles(text, path) if kind == "a1111" else _fooocus_styles(text, path)
    # a name given twice keeps its first place and its last definition, as a dict does in both tools
    by_name: dict[str, Style] = {}
    for style in styles:
        by_name[style.name] = style
    return list(by_name.values())


def _a1111_styles(text: str, path: Path) -> list[Style]:
    reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
    fields = reader.fieldnames or []
    if "name" not in fields or not ({"prompt", "text"} & set(fields)):
        raise ImportMetadataError(
            f"{path}: A1111 styles.csv needs the columns name,prompt,negative_prompt (or the old name,text); "
            f"its header is {','.join(fields) or 'empty'}"
        )
    styles = []
    try:
        for row in reader:
            name = row.get("name") or ""
            if not name or name.startswith("#"):
                continue
            prompt = row.get("prompt") if "prompt" in fields else row.get("text")
            styles.append(Style(name, prompt or "", row.get("negative_prompt") or "", "a1111", path))
    except csv.Error as error:  # a field past csv's limit, which no style is
        raise ImportMetadataError(f"{path}: cannot be read as CSV ({error})") from None
    return styles


def _fooocus_styles(text: str, path: Path) -> list[Style]:
    try:
        data = check_json(json.loads(text), str(path))
    except RecursionError:
        raise ImportMetadataError(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH} levels, which no style file is") from None
    except ValueError as error:
        raise ImportMetadataError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(data, list):
        raise ImportMetadataError(
            f"{path}: a Fooocus style file is a JSON list of {{name, prompt, negative_prompt}}, "
            f"got {type(data).__name__}"
        )
    styles = []
    for index, entry in enumerate(data):
        where = f"{path}: entry {index + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise ImportMetadataError(f"{where} is {entry!r}; expected an object with a non-empty \"name\"")
        values = {}
        for key in ("prompt", "negative_prompt"):
            value = entry.get(key, "")
            if not isinstance(value, str):
                raise ImportMetadataError(f"{where} ({entry['name']!r}): {key!r} is {value!r}; expected text")
            values[key] = value
        styles.append(Style(entry["name"], values["prompt"], values["negative_prompt"], "fooocus", path))
    return styles


def style_key(name: str) -> str:
    """A style name as a vocabulary name: ``"Cinematic Photo"`` -> ``cinematic-photo``; one without letters, a hash."""
    key = re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")
    if not key:
        return "style-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return key if key[0].isalpha() else f"style-{key}"


def _merge(style_text: str, text: str) -> str:
    # modules/styles.py merge_prompts
    if STYLE_PLACEHOLDER in style_text:
        return style_text.replace(STYLE_PLACEHOLDER, text)
    return ", ".join(part for part in (text.strip(), style_text.strip()) if part)


def save_styles_as_vocab(styles: Sequence[Style], vocab_dir: Path) -> SavedStyles:
    """Add the styles' negative prompts as presets and their templates to ``vocab_dir`` (see point 6).

    Both files are appended to, their comments kept, and written all or nothing: every string is
    escaped as TOML needs, and each new file is read back before it replaces the old one
    (``vocab.write_toml_files``), so an imported style never makes a vocabulary unreadable.
    Raises ``VocabError`` before writing anything if two styles share a key, a key is already
    in the file, or a text holds what no file can (a lone surrogate).
    """
    vocab_dir = Path(vocab_dir)
    # 1. names and texts, all checked before anything is written
    seen: dict[str, str] = {}
    for style in styles:
        if not NAME_RE.fullmatch(style.key):
            raise VocabError(f"style {style.name!r}: key {style.key!r} is not a valid vocabulary name")
        if style.key in seen:
            raise VocabError(
                f"styles {seen[style.key]!r} and {style.name!r} both become the name {style.key!r}; rename one"
            )
        seen[style.key] = style.name
    presets = [(style, style.compel_negative_prompt()) for style in styles if style.negative_prompt.strip()]
    templates = [(style, style.compel_prompt()) for style in styles if style.prompt.strip()]
    negative_file = vocab_dir / NEGATIVE_FILE
    styles_file = vocab_dir / STYLES_FILE
    _check_free(negative_file, [style.key for style, _ in presets])
    _check_free(styles_file, [style.key for style, _ in templates])
    # 2. the tables, as they must read back
    preset_tables = {style.key: {"description": _described(style), "text": text} for style, text in presets}
    template_tables = {
        style.key: {
            "name": style.name,
            "prompt": style.prompt,
            "prompt_compel": compel,
            "negative_prompt": style.negative_prompt,
            **({"negative_preset": style.key} if style.negative_prompt.strip() else {}),
            "source": style.source,
        }
        for style, compel in templates
    }
    names = {style.key: style.name for style in styles}
    # 3. append, both files or neither
    files: dict[Path, str] = {}
    expected: dict[Path, dict[str, dict[str, str]]] = {}
    if presets:
        header = "# Negative-prompt presets imported from style files.\n"
        files[negative_file] = _appended(negative_file, _toml_tables(preset_tables, names), header)
        expected[negative_file] = preset_tables
    if templates:
        header = "# Prompt templates imported from style files; {prompt} marks the user's prompt.\n"
        files[styles_file] = _appended(styles_file, _toml_tables(template_tables, names), header)
        expected[styles_file] = template_tables
    write_toml_files(files, expected)
    return SavedStyles(
        negative_file=negative_file if presets else None,
        styles_file=styles_file if templates else None,
        presets=[style.key for style, _ in presets],
        templates=[style.key for style, _ in templates],
    )


def load_styles(vocab_dir: Path) -> list[Style]:
    """The prompt templates ``save_styles_as_vocab`` wrote to ``<vocab_dir>/templates/styles.toml``; none if absent."""
    path = Path(vocab_dir) / STYLES_FILE
    if not path.is_file():
        return []
    data = _read_toml(path)
    styles = []
    for key, table in data.items():
        if not isinstance(table, dict) or not isinstance(table.get("prompt"), str):
            raise VocabError(f"{path}: [{key}] must be a table with prompt = \"...\"")
        styles.append(
            Style(
                name=str(table.get("name", key)),
                prompt=table["prompt"],
                negative_prompt=str(table.get("negative_prompt", "")),
                source="promptlab",
                file=path,
            )
        )
    return styles


def _described(style: Style) -> str:
    origin = {"a1111": "A1111", "fooocus": "Fooocus", "promptlab": "promptlab"}[style.source]
    where = f" ({style.file.name})" if style.file is not None else ""
    return f"Imported from {origin} style {style.name!r}{where}"


def _check_free(path: Path, keys: Iterable[str]) -> None:
    keys = list(keys)
    if not keys or not path.is_file():
        return
    taken = [key for key in keys if key in _read_toml(path)]
    if taken:
        raise VocabError(f"{path}: already has {', '.join(taken)}; remove those tables or rename the styles first")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise VocabError(f"{path}: cannot be read as TOML ({error})") from error


def _appended(path: Path, text: str, header: str) -> str:
    """The file's text with ``text`` appended (or ``header`` and ``text`` for a new file)."""
    try:
        existing = path.read_text(encoding="utf-8") if path.is_file() else header
    except (OSError, UnicodeDecodeError) as error:
        raise VocabError(f"{path}: cannot be read ({error})") from error
    if existing and not existing.endswith("\n"):
        existing += "\n"
    return existing + text


def _toml_tables(tables: dict[str, dict[str, str]], names: dict[str, str]) -> str:
    return "".join(
        f"\n[{key}]\n" + "".join(f"{field} = {toml_string(value, f'style {names[key]!r} {field}')}\n" for field, value in table.items())
        for key, table in tables.items()
    )


# 3. Many files at once, and the store.


def import_paths(paths: Iterable[Path]) -> ImportBatch:
    """Images and style files (``STYLE_SUFFIXES``), read in order; the first file that fails raises, naming it."""
    prompts: list[ImportedPrompt] = []
    styles: list[Style] = []
    for path in map(Path, paths):
        if path.suffix.lower() in STYLE_SUFFIXES:
            styles.extend(import_styles(path))
        else:
            prompts.append(import_image(path))
    return ImportBatch(prompts=prompts, styles=styles)


def store_imported(store: Store, imported: ImportedPrompt, image_path: Path | None = None) -> Run:
    """Record ``imported`` and its image (``imported.file`` unless given) as a run of the experiment ``imported``.

    Importing the same image again returns the run already recorded.
    """
    from promptlab.experiment import variant_key
    from promptlab.store import RunRecord

    image_path = Path(image_path) if image_path is not None else imported.file
    # 1. everything that can fail on the input, before the store is touched
    prompt = imported.to_prompt()
    data = _png_data(image_path)
    params = imported.generation_params()
    # what the record holds beyond the run's columns, kept in its params so that nothing read is lost
    kept = {
        "source_strength": imported.strength,
        "source_model_hash": imported.model_hash,
        "source_loras": [[name, weight] for name, weight in imported.loras],
        "source_prompts": [asdict(part) for part in imported.prompts],
        "source_negative_prompts": [asdict(part) for part in imported.negative_prompts],
        "import_notes": list(imported.notes),
    }
    source_params = {name: value for name, value in kept.items() if value not in (None, [])}
    model = imported.model or ""
    seed = imported.seed if imported.seed is not None else UNKNOWN_SEED
    # what made an image elsewhere is never fully known (LoRAs, hires passes), so each image is its own variant
    key = variant_key(
        prompt=prompt,
        negative_prompt=imported.negative_prompt,
        model=model,
        task="txt2img",
        params=params,
        input_hashes={"imported_image": hashlib.sha256(data).hexdigest()},
        prompt_text=imported.prompt,
    )
    # 2. the experiment and the run
    experiment = store.get_or_create_experiment(
        IMPORT_EXPERIMENT, {"name": IMPORT_EXPERIMENT, "description": "images read by promptlab import"}
    )
    assert experiment.id is not None
    existing = store.find_run(experiment.id, key, seed)
    if existing is not None and existing.status == "ok":
        return existing
    record = RunRecord(
        experiment_id=experiment.id,
        variant_key=key,
        seed=seed,
        prompt=prompt,
        # the prompt as the tool wrote it (converted to compel), not re-written through the model of terms
        prompt_text=imported.prompt,
        model=model,
        negative_prompt=imported.negative_prompt,
        params={**params, **source_params, "imported_from": imported.source, "source_file": str(image_path)},
        label=image_path.name,
    )
    return store.record_run(record, data)


def _png_data(path: Path) -> bytes:
    """The file's bytes if it is a PNG; otherwise the image as PNG carrying the file's metadata text."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImportMetadataError(f"{path}: cannot be read ({error.strerror or error})") from error
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    chunks = read_image_metadata(path).chunks
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    try:
        with Image.open(io.BytesIO(data)) as image:
            # the store keeps PNGs; CMYK JPEGs and the like have no PNG mode
            picture = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            picture.save(buffer, format="PNG", pnginfo=info)
    except (OSError, ValueError) as error:
        raise ImportMetadataError(f"{path}: cannot be stored as PNG ({error})") from error
    return buffer.getvalue()
