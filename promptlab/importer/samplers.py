"""Other tools' sampler and schedule names as the A1111 sampler name promptlab renders.

``imported_scheduler`` reads an image's sampler and schedule with the name tables of
``promptlab.render.schedulers`` (``SCHEDULERS``' labels, ``A1111_SCHEDULE_TWINS``,
``COMFYUI_SAMPLERS``, ``INVOKEAI_SCHEDULERS`` and A1111's schedule types), so the names the
importer gives are the names the renderer takes. The choices, and why:

1. ``scheduler`` is an A1111 sampler name, which promptlab's renderer resolves. ComfyUI's
   ``sampler_name`` + ``scheduler`` and InvokeAI's scheduler map through those tables;
   A1111 1.9+'s ``Sampler`` + ``Schedule type`` join into the older single name
   ("DPM++ 2M" + "Karras" -> "DPM++ 2M Karras").
2. A choice with no A1111 name (ComfyUI's ``exponential`` schedule, ``lcm``) leaves
   ``scheduler`` unset and says so in a note; the source's own names stay in the imported
   prompt's ``source_sampler``/``source_scheduler``. promptlab's own images keep the scheduler
   name they were rendered with.
3. Fooocus, RuinedFooocus, SwarmUI and NovelAI name samplers as ComfyUI does, in older
   spellings (``sample_euler``, ``k_euler``, NovelAI's ``native`` schedule), read as today's.

    >>> imported_scheduler(GenerationParameters(prompt="", sampler="dpmpp_2m", scheduler="karras", source="comfyui"), {})
    ImportedScheduler(name='DPM++ 2M Karras', note=None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptlab.metadata import GenerationParameters, Source
from promptlab.render.schedulers import (
    A1111_DEFAULT_SCHEDULES,
    A1111_SCHEDULE_TWINS,
    A1111_SPACING_SCHEDULES,
    A1111_TIMESTEP_SAMPLERS,
    COMFYUI_SAMPLERS,
    INVOKEAI_SCHEDULERS,
    SCHEDULERS,
    scheduler_named_in_a1111_sampler,
)

# ComfyUI ``scheduler`` values A1111 has: "normal" is the sampler's plain schedule, "karras" its twin.
COMFYUI_PLAIN_SCHEDULES = ("normal",)
COMFYUI_KARRAS_SCHEDULES = ("karras",)
# Tools that name samplers and schedules as ComfyUI does.
_COMFYUI_NAMING: tuple[Source, ...] = ("comfyui", "fooocus", "ruinedfooocus", "swarmui", "novelai")


@dataclass(frozen=True)
class ImportedScheduler:
    """The A1111 sampler name promptlab renders an imported image with (None: none fits), and why not, if not."""

    name: str | None
    note: str | None = None


def imported_scheduler(params: GenerationParameters, record: Mapping[str, Any]) -> ImportedScheduler:
    """The A1111 sampler name for ``params``' sampler and schedule; ``record`` is promptlab's own chunk, if any."""
    naming, sampler, schedule = _sampler_naming(params)
    if naming == "promptlab":
        recorded = record.get("params", {}).get("scheduler") if isinstance(record.get("params"), dict) else None
        return ImportedScheduler(recorded if isinstance(recorded, str) else sampler)
    if sampler is None:
        return ImportedScheduler(None)
    if naming == "comfyui":
        return _comfyui_scheduler(sampler, schedule)
    if naming == "invokeai":
        key = INVOKEAI_SCHEDULERS.get(sampler)
        if key is None:
            return ImportedScheduler(None, f"InvokeAI scheduler {sampler!r} has no A1111 sampler name; scheduler left unset")
        return ImportedScheduler(SCHEDULERS[key].label)
    return _a1111_scheduler(sampler, schedule)


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


def _comfyui_scheduler(sampler: str, schedule: str | None) -> ImportedScheduler:
    key = COMFYUI_SAMPLERS.get(sampler)
    base = SCHEDULERS[key].label if key is not None else None
    plain = schedule in COMFYUI_PLAIN_SCHEDULES or (sampler == "ddim" and schedule == "ddim_uniform")
    karras = A1111_SCHEDULE_TWINS["Karras"]
    if base is not None and plain:
        return ImportedScheduler(base)
    if base is not None and schedule in COMFYUI_KARRAS_SCHEDULES and base in karras:
        return ImportedScheduler(karras[base])
    return ImportedScheduler(
        None, f"ComfyUI sampler {sampler!r} with scheduler {schedule!r} has no A1111 sampler name; scheduler left unset"
    )


def _a1111_scheduler(sampler: str, schedule: str | None) -> ImportedScheduler:
    """A1111's ``Sampler`` and ``Schedule type`` as the sampler name promptlab renders, as A1111 itself reads them.

    No schedule type: an infotext from before 1.9, whose sampler names held their schedule.
    ``Automatic`` is the sampler's own default (Karras for DPM++ 2M, Exponential for DPM++ 2M
    SDE, the model's sigmas for Euler). ``SGM Uniform`` and ``DDIM`` space timesteps in ways
    promptlab's names do not say: the model's own spacing is used, and a note says so.
    promptlab's own name for a scheduler A1111 lacks is read back from its sampler text.
    """
    own = scheduler_named_in_a1111_sampler(sampler)
    if own is not None:
        return ImportedScheduler(own)
    if schedule is None or sampler in A1111_TIMESTEP_SAMPLERS:
        return ImportedScheduler(sampler)
    used = A1111_DEFAULT_SCHEDULES.get(sampler, "Uniform") if schedule == "Automatic" else schedule
    if used == "Uniform":
        return ImportedScheduler(sampler)
    twins = A1111_SCHEDULE_TWINS.get(used, {})
    if sampler in twins:
        return ImportedScheduler(twins[sampler])
    if used in A1111_SPACING_SCHEDULES:
        return ImportedScheduler(
            sampler,
            f"A1111 schedule type {schedule!r} spaces the timesteps its own way; promptlab renders "
            f"{sampler!r} on the model's own timestep spacing",
        )
    schedule_text = f"{schedule!r} ({used})" if used != schedule else repr(schedule)
    return ImportedScheduler(
        None,
        f"A1111 sampler {sampler!r} with schedule type {schedule_text} has no single A1111 sampler name; "
        "scheduler left unset",
    )
