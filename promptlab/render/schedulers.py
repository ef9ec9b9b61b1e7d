"""Schedulers by name: diffusers' compatible classes and the A1111 sampler names users know.

Two kinds of names resolve to a scheduler:

- every class in the pipeline's ``scheduler.compatibles``, under its class name in snake case
  without ``Scheduler``/``Discrete`` (``EulerAncestralDiscreteScheduler`` -> ``euler_ancestral``,
  ``DPMSolverMultistepScheduler`` -> ``dpm_solver_multistep``), built with the model's own
  scheduler config;
- the A1111/k-diffusion sampler names in ``SCHEDULERS`` ("Euler a", "DPM++ 2M Karras", ...),
  mapped as diffusers' scheduler overview documents, with the flags that define them set
  explicitly so a model whose config ships e.g. ``use_karras_sigmas: true`` still gets plain
  "DPM++ 2M".

Lookup ignores case, spaces, ``_`` and ``-``: ``"dpm++ 2m karras"``, ``"DPM++ 2M Karras"`` and
``"dpmpp_2m_karras"`` are one scheduler. A scheduler is swapped the way diffusers intends,
``SchedulerClass.from_config(original_config, **overrides)``, always from the model's original
config so one swap never leaks flags into the next.

    >>> SCHEDULERS["dpmpp_2m_karras"].class_name
    'DPMSolverMultistepScheduler'
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptlab.errors import RenderError

if TYPE_CHECKING:
    from diffusers import SchedulerMixin

    from promptlab.render.models import ModelSpec


@dataclass(frozen=True)
class SchedulerSpec:
    """An A1111 sampler name and the diffusers scheduler class and config that render it."""

    label: str
    class_name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class SchedulerChoice:
    """One scheduler a pipeline can use: the stored ``name``, what users call it, how it is built."""

    name: str
    label: str
    class_name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


_DPMPP_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2}
_DPMPP_2M_SDE = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}
_APPROX = "approximation: diffusers has no exact equivalent; its docs call DPMSolverSinglestep very similar"
_KARRAS = {"use_karras_sigmas": True}
_NO_KARRAS = {"use_karras_sigmas": False}

SCHEDULERS: dict[str, SchedulerSpec] = {
    "euler": SchedulerSpec("Euler", "EulerDiscreteScheduler", _NO_KARRAS),
    "euler_a": SchedulerSpec("Euler a", "EulerAncestralDiscreteScheduler"),
    "heun": SchedulerSpec("Heun", "HeunDiscreteScheduler", _NO_KARRAS),
    "lms": SchedulerSpec("LMS", "LMSDiscreteScheduler", _NO_KARRAS),
    "lms_karras": SchedulerSpec("LMS Karras", "LMSDiscreteScheduler", _KARRAS),
    "dpm2": SchedulerSpec("DPM2", "KDPM2DiscreteScheduler", _NO_KARRAS),
    "dpm2_karras": SchedulerSpec("DPM2 Karras", "KDPM2DiscreteScheduler", _KARRAS),
    "dpm2_a": SchedulerSpec("DPM2 a", "KDPM2AncestralDiscreteScheduler", _NO_KARRAS),
    "dpm2_a_karras": SchedulerSpec("DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", _KARRAS),
    "dpmpp_2m": SchedulerSpec("DPM++ 2M", "DPMSolverMultistepScheduler", {**_DPMPP_2M, **_NO_KARRAS}),
    "dpmpp_2m_karras": SchedulerSpec("DPM++ 2M Karras", "DPMSolverMultistepScheduler", {**_DPMPP_2M, **_KARRAS}),
    "dpmpp_2m_sde": SchedulerSpec("DPM++ 2M SDE", "DPMSolverMultistepScheduler", {**_DPMPP_2M_SDE, **_NO_KARRAS}),
    "dpmpp_2m_sde_karras": SchedulerSpec(
        "DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", {**_DPMPP_2M_SDE, **_KARRAS}
    ),
    "dpmpp_sde": SchedulerSpec("DPM++ SDE", "DPMSolverSinglestepScheduler", _NO_KARRAS),
    "dpmpp_sde_karras": SchedulerSpec("DPM++ SDE Karras", "DPMSolverSinglestepScheduler", _KARRAS),
    "dpmpp_2s_a": SchedulerSpec("DPM++ 2S a", "DPMSolverSinglestepScheduler", _NO_KARRAS, _APPROX),
    "dpmpp_2s_a_karras": SchedulerSpec("DPM++ 2S a Karras", "DPMSolverSinglestepScheduler", _KARRAS, _APPROX),
    "ddim": SchedulerSpec("DDIM", "DDIMScheduler"),
    "pndm": SchedulerSpec("PNDM", "PNDMScheduler"),
    "unipc": SchedulerSpec("UniPC", "UniPCMultistepScheduler", _NO_KARRAS),
    "deis": SchedulerSpec("DEIS", "DEISMultistepScheduler", _NO_KARRAS),
}


def class_scheduler_name(class_name: str) -> str:
    """``EulerAncestralDiscreteScheduler`` -> ``euler_ancestral``; ``UniPCMultistepScheduler`` -> ``uni_pc_multistep``."""
    stem = class_name.removesuffix("Scheduler").removesuffix("Discrete")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", stem).lower()


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def _missing_dependency(cls: type) -> str | None:
    """The packages a scheduler class needs but cannot import here (diffusers gives a placeholder)."""
    from diffusers.utils import DummyObject

    if not isinstance(cls, DummyObject):
        return None
    missing = [name for name in getattr(cls, "_backends", ()) if importlib.util.find_spec(name) is None]
    return " ".join(missing) or "an optional dependency"


def _compatible_classes(scheduler: SchedulerMixin) -> dict[str, type]:
    classes = {cls.__name__: cls for cls in scheduler.compatibles}
    classes[type(scheduler).__name__] = type(scheduler)
    return classes


def scheduler_choices(scheduler: SchedulerMixin, *, include_unavailable: bool = False) -> list[SchedulerChoice]:
    """Every scheduler name usable with a pipeline whose scheduler is ``scheduler``.

    Names whose class cannot be imported here (``DPMSolverSDEScheduler`` needs torchsde,
    ``LMSDiscreteScheduler`` needs scipy) are left out unless ``include_unavailable``.
    """
    classes = _compatible_classes(scheduler)
    choices: dict[str, SchedulerChoice] = {}
    for class_name, cls in sorted(classes.items()):
        if include_unavailable or _missing_dependency(cls) is None:
            name = class_scheduler_name(class_name)
            choices[name] = SchedulerChoice(name, class_name, class_name)
    for name, spec in SCHEDULERS.items():
        cls = classes.get(spec.class_name)
        if cls is not None and (include_unavailable or _missing_dependency(cls) is None):
            choices[name] = SchedulerChoice(name, spec.label, spec.class_name, dict(spec.overrides), spec.note)
    return sorted(choices.values(), key=lambda c: c.name)


def find_scheduler(name: str, scheduler: SchedulerMixin) -> SchedulerChoice:
    """The choice that ``name`` means for this pipeline's scheduler; RenderError if none."""
    choices = scheduler_choices(scheduler, include_unavailable=True)
    lookup: dict[str, SchedulerChoice] = {}
    for choice in choices:
        for alias in (choice.name, choice.label):
            lookup.setdefault(_normalise(alias), choice)
    for choice in choices:
        lookup.setdefault(_normalise(choice.class_name), choice)
    found = lookup.get(_normalise(name))
    if found is None:
        known = ", ".join(c.name for c in scheduler_choices(scheduler))
        if _normalise(name) in {_normalise(k) for k in SCHEDULERS} | {_normalise(s.label) for s in SCHEDULERS.values()}:
            raise RenderError(
                f"scheduler {name!r} is not compatible with this model's {type(scheduler).__name__}; "
                f"valid names: {known}"
            )
        raise RenderError(f"unknown scheduler {name!r}; valid names: {known}")
    return found


def build_scheduler(choice: SchedulerChoice, original_config: Mapping[str, Any]) -> SchedulerMixin:
    """``SchedulerClass.from_config(original_config, **overrides)``; RenderError if the class can't load here."""
    import diffusers

    cls = getattr(diffusers, choice.class_name)
    missing = _missing_dependency(cls)
    if missing is not None:
        raise RenderError(
            f"scheduler {choice.name!r} ({choice.class_name}) needs {missing}, which is not installed: "
            f"pip install {missing}, or pick another scheduler"
        )
    # Latents are not images in [-1, 1]: a config that does not say (micro's DPM-Solver config, a
    # single file's Euler config) must not leave DDIM/DDPM at their clip_sample=True default,
    # which clips every prediction and renders mush. SD's own configs say False.
    latent_defaults = {"clip_sample": False}
    return cls.from_config({**latent_defaults, **original_config}, **choice.overrides)


def list_schedulers(model: ModelSpec | str) -> list[SchedulerChoice]:
    """Every scheduler name ``model`` can render with here (what ``promptlab model schedulers`` lists)."""
    from promptlab.render.models import base_pipeline

    return scheduler_choices(base_pipeline(model).scheduler)
