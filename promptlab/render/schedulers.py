"""Schedulers by name: diffusers' compatible classes and the A1111 sampler names users know.

Two kinds of names resolve to a scheduler:

- every class in the pipeline's ``scheduler.compatibles``, under its class name in snake case
  without ``Scheduler``/``Discrete`` (``EulerAncestralDiscreteScheduler`` -> ``euler_ancestral``,
  ``DPMSolverMultistepScheduler`` -> ``dpm_solver_multistep``), built with the model's own
  scheduler config;
- the A1111/k-diffusion sampler names in ``SCHEDULERS`` ("Euler a", "DPM++ 2M Karras", ...),
  mapped as diffusers' scheduler overview documents, with the flags that define them set
  explicitly so a model whose config ships e.g. ``use_karras_sigmas: true`` still gets plain
  "DPM++ 2M" (and "DEIS", "PNDM", which A1111 lacks).

The other way round, ``a1111_sampler`` says what A1111 1.9+ calls the scheduler a render
really used (its class and config, not the name it was asked by), as the ``Sampler`` and
``Schedule type`` of A1111's infotext: ``DPMSolverMultistepScheduler`` with
``use_karras_sigmas`` is ``DPM++ 2M`` + ``Karras``; without, ``DPM++ 2M`` + the schedule type
whose timesteps lie nearest its own (A1111's ``Automatic`` would pick Karras). A scheduler of an
algorithm A1111 lacks (DEIS, PNDM with its warm-up, DPMSolverSinglestep) says so instead.

The names other tools write are here too, so that the importer reads them into names the
renderer takes: ``COMFYUI_SAMPLERS`` and ``INVOKEAI_SCHEDULERS`` map ComfyUI's and InvokeAI's
names to ``SCHEDULERS`` names, and ``A1111_SCHEDULE_TWINS`` joins A1111 1.9+'s ``Sampler`` and
``Schedule type`` into the single name older versions wrote.

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
_NOT_SDE = (
    "diffusers' docs map A1111's DPM++ SDE to DPMSolverSinglestep, which is deterministic; "
    "dpm_solver_sde (DPMSolverSDEScheduler, needs torchsde) is A1111's stochastic sampler"
)
_KARRAS = {"use_karras_sigmas": True}
_NO_KARRAS = {"use_karras_sigmas": False}
_EXPONENTIAL = {"use_karras_sigmas": False, "use_exponential_sigmas": True}

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
    # A1111 1.6-1.8's name; 1.9+ writes "DPM++ 2M SDE" + "Exponential", its default schedule for that sampler.
    "dpmpp_2m_sde_exponential": SchedulerSpec(
        "DPM++ 2M SDE Exponential", "DPMSolverMultistepScheduler", {**_DPMPP_2M_SDE, **_EXPONENTIAL}
    ),
    "dpmpp_sde": SchedulerSpec("DPM++ SDE", "DPMSolverSinglestepScheduler", _NO_KARRAS, _NOT_SDE),
    "dpmpp_sde_karras": SchedulerSpec("DPM++ SDE Karras", "DPMSolverSinglestepScheduler", _KARRAS, _NOT_SDE),
    "dpmpp_2s_a": SchedulerSpec("DPM++ 2S a", "DPMSolverSinglestepScheduler", _NO_KARRAS, _APPROX),
    "dpmpp_2s_a_karras": SchedulerSpec("DPM++ 2S a Karras", "DPMSolverSinglestepScheduler", _KARRAS, _APPROX),
    "ddim": SchedulerSpec("DDIM", "DDIMScheduler"),
    "plms": SchedulerSpec("PLMS", "PNDMScheduler", {"skip_prk_steps": True}),
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



# A1111 1.9+ names, read from its source: modules/sd_samplers_kdiffusion.py (samplers and the
# schedule each picks for "Automatic"), sd_samplers_timesteps.py (DDIM, PLMS, UniPC, which step on
# fixed timesteps and take no schedule type), sd_schedulers.py (schedule types), sd_samplers.py
# (get_sampler_and_scheduler: an unknown sampler name becomes DPM++ 2M, an unknown schedule Automatic).

A1111_DEFAULT_SCHEDULES: dict[str, str] = {
    "DPM++ 2M": "Karras",
    "DPM++ SDE": "Karras",
    "DPM++ 2S a": "Karras",
    "DPM2": "Karras",
    "DPM2 a": "Karras",
    "Restart": "Karras",
    "DPM++ 2M SDE": "Exponential",
    "DPM++ 2M SDE Heun": "Exponential",
    "DPM++ 3M SDE": "Exponential",
}
"""The schedule A1111's ``Automatic`` picks per sampler; every other k-diffusion sampler gets ``Uniform``."""

A1111_TIMESTEP_SAMPLERS = ("DDIM", "PLMS", "UniPC")

A1111_SPACING_SCHEDULES = ("Uniform", "SGM Uniform", "DDIM")
"""A1111's schedule types that space timesteps evenly, each as a function of the step count n.

``Uniform`` is k-diffusion's ``get_sigmas``, t = linspace(999, 0, n); ``SGM Uniform`` takes
t = linspace(999, 0, n + 1)[:-1]; ``DDIM`` (A1111 1.10+) t = 1, 1 + 1000//n, ... reversed.
"""

# "Beta" is A1111 1.10+; both tools draw it with alpha = beta = 0.6.
_A1111_SIGMA_FLAGS = {"use_karras_sigmas": "Karras", "use_exponential_sigmas": "Exponential", "use_beta_sigmas": "Beta"}
# Flags whose sigmas no A1111 schedule type draws.
_NON_A1111_SIGMA_FLAGS = ("use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting")
# Timesteps this close are one schedule: diffusers rounds to whole timesteps, SGM Uniform's fall between.
_SAME_TIMESTEPS = 1.5
# diffusers spaces timesteps two ways for one timestep_spacing: the multistep solvers' way, and everyone else's.
_MULTISTEP_SPACING = ("DPMSolverMultistepScheduler", "DEISMultistepScheduler", "UniPCMultistepScheduler")
_A1111_BY_CLASS = {
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "HeunDiscreteScheduler": "Heun",
    "LMSDiscreteScheduler": "LMS",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    # diffusers' port of k-diffusion's sample_dpmpp_sde
    "DPMSolverSDEScheduler": "DPM++ SDE",
    "DDIMScheduler": "DDIM",
    "UniPCMultistepScheduler": "UniPC",
}
# DPMSolverMultistepScheduler's (algorithm_type, solver_order, solver_type) that are k-diffusion's samplers.
_A1111_DPM_MULTISTEP = {
    ("dpmsolver++", 2, "midpoint"): "DPM++ 2M",
    ("sde-dpmsolver++", 2, "midpoint"): "DPM++ 2M SDE",
    ("sde-dpmsolver++", 2, "heun"): "DPM++ 2M SDE Heun",
}
_NOT_A1111 = re.compile(r"diffusers (\w+) \((?:promptlab ([\w\-]+); )?not an A1111 sampler\)")


@dataclass(frozen=True)
class A1111Sampler:
    """A diffusers scheduler in A1111 1.9+'s infotext terms.

    ``sampler`` and ``schedule_type`` are the ``Sampler`` and ``Schedule type`` values
    (``schedule_type`` None where A1111 takes none); ``settings`` more keys A1111 reads into its
    settings when the text is pasted (``Noise Schedule``, ``UniPC order``, ...). Where A1111 has no
    sampler of the same algorithm, ``exact`` is False and ``sampler`` reads
    ``diffusers DEISMultistepScheduler (promptlab deis; not an A1111 sampler)``, with no schedule
    type: A1111 reads any name it does not know as its default sampler (DPM++ 2M), so the text
    says so in words, and ends in no schedule name A1111 would split off the sampler name.
    """

    sampler: str
    schedule_type: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    exact: bool = True


def a1111_sampler(class_name: str, config: Mapping[str, Any], steps: int, name: str | None = None) -> A1111Sampler:
    """What A1111 1.9+ calls the scheduler ``class_name`` built with ``config`` at ``steps`` steps.

    ``name`` is promptlab's name for the scheduler, kept in the text where A1111 has no name.
    Karras, exponential and beta sigmas are A1111's schedule types of those names; evenly spaced
    timesteps get the A1111 schedule type whose timesteps are nearest (see ``a1111_spacing``).

    >>> a1111_sampler("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
    ...     "solver_type": "midpoint", "use_karras_sigmas": True}, 20)
    A1111Sampler(sampler='DPM++ 2M', schedule_type='Karras', settings={}, exact=True)
    >>> a1111_sampler("DEISMultistepScheduler", {"timestep_spacing": "leading"}, 20, "deis").sampler
    'diffusers DEISMultistepScheduler (promptlab deis; not an A1111 sampler)'
    """
    sampler = _a1111_sampler_name(class_name, config)
    settings: dict[str, str] = {}
    if config.get("rescale_betas_zero_snr"):
        settings["Noise Schedule"] = "Zero Terminal SNR"
    if sampler == "UniPC":
        settings.update({
            "UniPC variant": str(config.get("solver_type", "bh2")),
            "UniPC order": str(config.get("solver_order", 2)),
            "UniPC lower order final": str(bool(config.get("lower_order_final", True))),
        })  # fmt: skip
    if any(config.get(flag) for flag in _NON_A1111_SIGMA_FLAGS):
        sampler = None
    if sampler is None:
        # No schedule type either: A1111 would apply it to the sampler it falls back to.
        named = f"promptlab {name}; " if name else ""
        return A1111Sampler(f"diffusers {class_name} ({named}not an A1111 sampler)", None, settings, exact=False)
    schedule = next((label for flag, label in _A1111_SIGMA_FLAGS.items() if config.get(flag)), None)
    if schedule is None and sampler not in A1111_TIMESTEP_SAMPLERS:
        schedule = a1111_spacing(class_name, config, steps)
    return A1111Sampler(sampler, schedule, settings)


def a1111_spacing(class_name: str, config: Mapping[str, Any], steps: int) -> str:
    """The A1111 schedule type whose timesteps lie nearest those diffusers takes for this scheduler.

    The first of ``A1111_SPACING_SCHEDULES`` within rounding everywhere, else the nearest:
    Euler's "linspace" is ``Uniform`` exactly, "leading" with SD's ``steps_offset`` 1 is ``DDIM``
    (exactly where n divides 1000; else A1111 adds one step above), "trailing" is ``SGM Uniform``
    within rounding. The multistep solvers space one step more finely ("linspace" is ``SGM
    Uniform`` there); their "leading" steps 1000 // (n + 1) apart, which no A1111 schedule does
    (nearest: ``DDIM``).
    """
    import diffusers
    import numpy as np

    keys = ("num_train_timesteps", "timestep_spacing", "steps_offset")
    reference = "DPMSolverMultistepScheduler" if class_name in _MULTISTEP_SPACING else "EulerDiscreteScheduler"
    spacing = getattr(diffusers, reference).from_config({key: config[key] for key in keys if key in config})
    spacing.set_timesteps(steps)
    ours = spacing.timesteps.numpy().astype(float)
    total = int(config.get("num_train_timesteps", 1000))
    theirs = {
        "Uniform": np.linspace(total - 1, 0, steps),
        "SGM Uniform": np.linspace(total - 1, 0, steps + 1)[:-1],
        "DDIM": np.arange(1, total, max(total // steps, 1))[::-1].astype(float),
    }

    def distance(label: str) -> float:
        # aligned at the low end, where A1111's DDIM schedule takes an extra step above when n does not divide 1000
        t = theirs[label]
        common = min(len(t), len(ours))
        return float(np.abs(ours[-common:] - t[-common:]).max()) + 2 * abs(len(t) - len(ours))

    close = [label for label in A1111_SPACING_SCHEDULES if distance(label) <= _SAME_TIMESTEPS]
    return close[0] if close else min(A1111_SPACING_SCHEDULES, key=distance)


def scheduler_named_in_a1111_sampler(sampler: str) -> str | None:
    """The promptlab scheduler name inside a ``Sampler`` value ``a1111_sampler`` wrote for a non-A1111 scheduler."""
    match = _NOT_A1111.fullmatch(sampler.strip())
    if match is None:
        return None
    return match.group(2) or class_scheduler_name(match.group(1))


def _a1111_sampler_name(class_name: str, config: Mapping[str, Any]) -> str | None:
    if config.get("thresholding"):
        return None
    if class_name == "DPMSolverMultistepScheduler":
        key = (config.get("algorithm_type"), config.get("solver_order"), config.get("solver_type"))
        return _A1111_DPM_MULTISTEP.get(key)  # type: ignore[arg-type]
    if class_name == "PNDMScheduler":
        # PNDM without its Runge-Kutta warm-up is the PLMS of latent diffusion, which A1111 runs
        return "PLMS" if config.get("skip_prk_steps") else None
    return _A1111_BY_CLASS.get(class_name)


# Other tools' names for these samplers, read when an image made there is imported.


def _a1111_schedule_twins() -> dict[str, dict[str, str]]:
    labels = {spec.label for spec in SCHEDULERS.values()}
    twins: dict[str, dict[str, str]] = {schedule: {} for schedule in _A1111_SIGMA_FLAGS.values()}
    for spec in SCHEDULERS.values():
        for flag, schedule in _A1111_SIGMA_FLAGS.items():
            sampler = spec.label.removesuffix(f" {schedule}")
            if spec.overrides.get(flag) and sampler != spec.label and sampler in labels:
                twins[schedule][sampler] = spec.label
    return twins


A1111_SCHEDULE_TWINS: dict[str, dict[str, str]] = _a1111_schedule_twins()
"""Per A1111 schedule type, each sampler -> the one name A1111 gave the two before 1.9.

A1111 1.9+ writes ``Sampler: DPM++ 2M, Schedule type: Karras``; before, "DPM++ 2M Karras" (and
1.6-1.8 "DPM++ 2M SDE Exponential"). Built from ``SCHEDULERS``: every label that is another
label and a schedule type, and sets that schedule's sigmas.

    >>> A1111_SCHEDULE_TWINS["Karras"]["DPM++ 2M"]
    'DPM++ 2M Karras'
    >>> A1111_SCHEDULE_TWINS["Exponential"]
    {'DPM++ 2M SDE': 'DPM++ 2M SDE Exponential'}
"""

COMFYUI_SAMPLERS: dict[str, str] = {
    "euler": "euler",
    "euler_ancestral": "euler_a",
    "heun": "heun",
    "lms": "lms",
    "dpm_2": "dpm2",
    "dpm_2_ancestral": "dpm2_a",
    "dpmpp_2s_ancestral": "dpmpp_2s_a",
    "dpmpp_sde": "dpmpp_sde",
    "dpmpp_sde_gpu": "dpmpp_sde",
    "dpmpp_2m": "dpmpp_2m",
    "dpmpp_2m_sde": "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu": "dpmpp_2m_sde",
    "ddim": "ddim",
    "uni_pc": "unipc",
    "deis": "deis",
}
"""ComfyUI KSampler's ``sampler_name`` -> the ``SCHEDULERS`` name on its plain schedule.

Both tools wrap k-diffusion's samplers; ComfyUI keeps k-diffusion's names (``sample_dpmpp_2m``).
"""

INVOKEAI_SCHEDULERS: dict[str, str] = {
    "euler": "euler",
    "euler_a": "euler_a",
    "heun": "heun",
    "lms": "lms",
    "lms_k": "lms_karras",
    "kdpm_2": "dpm2",
    "kdpm_2_a": "dpm2_a",
    "dpmpp_2m": "dpmpp_2m",
    "dpmpp_2m_k": "dpmpp_2m_karras",
    "dpmpp_2m_sde": "dpmpp_2m_sde",
    "dpmpp_2m_sde_k": "dpmpp_2m_sde_karras",
    "dpmpp_sde": "dpmpp_sde",
    "dpmpp_sde_k": "dpmpp_sde_karras",
    "ddim": "ddim",
    "pndm": "pndm",
    "unipc": "unipc",
    "deis": "deis",
    "k_euler": "euler",
    "k_euler_a": "euler_a",
    "k_heun": "heun",
    "k_lms": "lms",
    "k_dpm_2": "dpm2",
    "k_dpm_2_a": "dpm2_a",
    "k_dpmpp_2": "dpmpp_2m",
    "k_dpmpp_2_a": "dpmpp_2s_a",
}
"""InvokeAI's scheduler names (3.x+, and 2.x's ``k_`` names) -> the ``SCHEDULERS`` name."""
