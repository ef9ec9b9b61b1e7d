"""Every scheduler name swaps on the tiny pipeline and renders; lookups and errors."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
from diffusers import EulerDiscreteScheduler, PNDMScheduler

from promptlab.errors import RenderError
from promptlab.render import RenderItem, RenderParams, list_schedulers, render
from promptlab.render.schedulers import SCHEDULERS, class_scheduler_name, find_scheduler, scheduler_choices

# tiny-sd's PNDM config (the real SD 1.5 one); compatibles is the set every SD pipeline offers.
_SD_SCHEDULER = PNDMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, skip_prk_steps=True)
ALL_NAMES = sorted({c.name for c in scheduler_choices(_SD_SCHEDULER, include_unavailable=True)} | set(SCHEDULERS))
# diffusers' schedulers trip numpy 2 deprecation notices thousands of times per render.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
_NEEDS = {"LMSDiscreteScheduler": "scipy", "DPMSolverSDEScheduler": "torchsde"}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread: None) -> None:
    """Render tests run torch on one thread (see conftest)."""


def _missing(class_name: str) -> str | None:
    package = _NEEDS.get(class_name)
    return package if package and importlib.util.find_spec(package) is None else None


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_scheduler_name_swaps_and_renders(name: str) -> None:
    choice = find_scheduler(name, _SD_SCHEDULER)
    params = RenderParams(num_inference_steps=1, width=64, height=64, scheduler=name)
    missing = _missing(choice.class_name)
    if missing:
        with pytest.raises(RenderError, match=f"{name}.*needs {missing}.*pip install {missing}"):
            render([RenderItem("a lighthouse", 3)], params, "tiny-sd")
        assert name not in {c.name for c in list_schedulers("tiny-sd")}
        return
    result = render([RenderItem("a lighthouse", 3)], params, "tiny-sd")
    used = result.setup.scheduler
    assert (used.name, used.class_name) == (choice.name, choice.class_name)
    assert used.config["_class_name"] == choice.class_name
    for key, value in choice.overrides.items():
        assert used.config[key] == value, f"{name}: {key} not applied by {choice.class_name}"
    assert np.asarray(result.images[0].image).shape == (64, 64, 3)
    assert name in {c.name for c in list_schedulers("tiny-sd")}


def test_a1111_table_follows_diffusers_docs() -> None:
    assert SCHEDULERS["dpmpp_2m_karras"].class_name == "DPMSolverMultistepScheduler"
    assert SCHEDULERS["dpmpp_2m_karras"].overrides["use_karras_sigmas"] is True
    assert SCHEDULERS["dpmpp_2m_sde_karras"].overrides == {
        "algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True
    }
    assert SCHEDULERS["dpmpp_sde"].class_name == "DPMSolverSinglestepScheduler"
    assert SCHEDULERS["euler_a"].class_name == "EulerAncestralDiscreteScheduler"
    assert SCHEDULERS["dpm2_a_karras"].class_name == "KDPM2AncestralDiscreteScheduler"
    assert "approximation" in SCHEDULERS["dpmpp_2s_a"].note
    assert all(name == name.lower() and " " not in name for name in SCHEDULERS)


@pytest.mark.parametrize(
    ("class_name", "name"),
    [
        ("EulerAncestralDiscreteScheduler", "euler_ancestral"),
        ("DPMSolverMultistepScheduler", "dpm_solver_multistep"),
        ("KDPM2AncestralDiscreteScheduler", "kdpm2_ancestral"),
        ("UniPCMultistepScheduler", "uni_pc_multistep"),
        ("DDIMScheduler", "ddim"),
        ("LMSDiscreteScheduler", "lms"),
        ("EDMEulerScheduler", "edm_euler"),
    ],
)
def test_class_names_become_snake_case(class_name: str, name: str) -> None:
    assert class_scheduler_name(class_name) == name


@pytest.mark.parametrize("spelling", ["DPM++ 2M Karras", "dpm++ 2m karras", "dpmpp_2m_karras", "DPMPP-2M-KARRAS"])
def test_lookup_ignores_case_spaces_and_separators(spelling: str) -> None:
    assert find_scheduler(spelling, _SD_SCHEDULER).name == "dpmpp_2m_karras"


def test_class_name_and_a1111_label_both_resolve() -> None:
    assert find_scheduler("Euler a", _SD_SCHEDULER).class_name == "EulerAncestralDiscreteScheduler"
    assert find_scheduler("EulerAncestralDiscreteScheduler", _SD_SCHEDULER).name == "euler_ancestral"
    assert find_scheduler("euler_ancestral", _SD_SCHEDULER).overrides == {}


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(RenderError, match=r"unknown scheduler 'Euler b'; valid names: .*dpmpp_2m_karras.*euler_a"):
        find_scheduler("Euler b", _SD_SCHEDULER)
    with pytest.raises(RenderError, match="unknown scheduler 'nope'"):
        render([RenderItem("x", 1)], RenderParams(num_inference_steps=1, width=64, height=64, scheduler="nope"), "tiny-sd")


def test_scheduler_outside_compatibles_is_refused() -> None:
    # A scheduler whose compatibles hold only itself stands in for a model outside the Karras family.
    class Lonely(EulerDiscreteScheduler):
        _compatibles: list[str] = []

        @property
        def compatibles(self) -> list[type]:
            return [type(self)]

    with pytest.raises(RenderError, match="'DPM\\+\\+ 2M' is not compatible with this model's Lonely"):
        find_scheduler("DPM++ 2M", Lonely())


def test_swaps_start_from_the_model_config_not_the_last_swap() -> None:
    params = RenderParams(num_inference_steps=1, width=64, height=64)
    karras = render([RenderItem("a", 1)], RenderParams(**{**params.__dict__, "scheduler": "DPM++ 2M Karras"}), "tiny-sd")
    assert karras.setup.scheduler.config["use_karras_sigmas"] is True
    plain = render([RenderItem("a", 1)], RenderParams(**{**params.__dict__, "scheduler": "dpm_solver_multistep"}), "tiny-sd")
    assert plain.setup.scheduler.config["use_karras_sigmas"] is False
    default = render([RenderItem("a", 1)], params, "tiny-sd")
    assert (default.setup.scheduler.name, default.setup.scheduler.class_name) == ("pndm", "PNDMScheduler")


def test_swapped_schedulers_do_not_clip_latents_unless_the_model_says_so() -> None:
    from diffusers import DPMSolverMultistepScheduler

    from promptlab.render.schedulers import build_scheduler

    # micro's config (DPM-Solver's) has no clip_sample; DDIM's default True would clip latents to [-1, 1].
    config = DPMSolverMultistepScheduler().config
    assert "clip_sample" not in config
    ddim = find_scheduler("ddim", DPMSolverMultistepScheduler())
    assert build_scheduler(ddim, config).config.clip_sample is False
    assert build_scheduler(ddim, {**config, "clip_sample": True}).config.clip_sample is True


def test_list_schedulers_hides_what_cannot_load_here() -> None:
    choices = {c.name: c for c in list_schedulers("tiny-sdxl")}
    assert {"euler", "euler_a", "dpmpp_2m_karras", "ddim", "unipc", "euler_ancestral"} <= set(choices)
    for choice in choices.values():
        assert _missing(choice.class_name) is None
    assert choices["dpmpp_2m_karras"].label == "DPM++ 2M Karras"


@pytest.mark.parametrize("name", ["DPM++ 2M SDE Karras", "Euler a", "UniPC"])
def test_schedulers_render_on_sdxl(name: str) -> None:
    params = RenderParams(num_inference_steps=2, width=64, height=64, scheduler=name)
    result = render([RenderItem("a lighthouse", 3), RenderItem("a boat", 4)], params, "tiny-sdxl")
    assert result.setup.scheduler.label == name and len(result.images) == 2



# What A1111 itself does, ported from its source to judge promptlab's names by A1111's rules.
# modules/sd_samplers_kdiffusion.py, sd_samplers_timesteps.py, sd_samplers_lcm.py (1.9.0): every sampler name.
A1111_SAMPLERS = (
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a", "Euler",
    "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM", "PLMS", "UniPC", "LCM",
)  # fmt: skip
# modules/sd_schedulers.py: (name, label, aliases); 1.9.0 has the first six, 1.10 the rest.
A1111_SCHEDULES = (
    ("automatic", "Automatic", ()), ("uniform", "Uniform", ()), ("karras", "Karras", ()),
    ("exponential", "Exponential", ()), ("polyexponential", "Polyexponential", ()),
    ("sgm_uniform", "SGM Uniform", ("SGMUniform",)), ("kl_optimal", "KL Optimal", ()),
    ("align_your_steps", "Align Your Steps", ()), ("simple", "Simple", ()), ("normal", "Normal", ()),
    ("ddim", "DDIM", ()), ("beta", "Beta", ()),
)  # fmt: skip
# The "scheduler" option of each k-diffusion sampler (what Automatic picks); the rest use the model's sigmas.
A1111_SAMPLER_SCHEDULES = {
    "DPM++ 2M": "karras", "DPM++ SDE": "karras", "DPM++ 2S a": "karras", "DPM2": "karras", "DPM2 a": "karras",
    "Restart": "karras", "DPM++ 2M SDE": "exponential", "DPM++ 2M SDE Heun": "exponential",
    "DPM++ 3M SDE": "exponential",
}  # fmt: skip
# SD 1.5's scheduler as a diffusers folder written today holds it (tiny-sd's): "leading" timesteps from 1.
_SD_FOLDER_SCHEDULER = PNDMScheduler(
    beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, skip_prk_steps=True,
    timestep_spacing="leading", steps_offset=1,
)  # fmt: skip


def a1111_reads(sampler_name: str | None, scheduler_name: str | None) -> tuple[str, str]:
    """modules/sd_samplers.py get_sampler_and_scheduler, as infotext pasting calls it."""
    by_key = {key: (name, label) for name, label, _ in A1111_SCHEDULES for key in (name, label)}
    found = by_key.get(scheduler_name, ("automatic", "Automatic"))  # type: ignore[arg-type]
    name = sampler_name or A1111_SAMPLERS[0]
    for schedule_name, label, aliases in A1111_SCHEDULES:
        for option in (label, schedule_name, *aliases):
            if name.endswith(" " + option):
                found = (schedule_name, label)
                name = name[: -(len(option) + 1)]
                break
    sampler = name if name in A1111_SAMPLERS else A1111_SAMPLERS[0]
    if A1111_SAMPLER_SCHEDULES.get(sampler) == found[0]:
        found = ("automatic", "Automatic")
    return sampler, found[1]


def _micro_scheduler() -> Any:
    from diffusers import DPMSolverMultistepScheduler

    from promptlab.render.models import MICRO_MODELS

    return DPMSolverMultistepScheduler.from_pretrained(MICRO_MODELS["micro"], subfolder="scheduler")


def _written(base: Any, steps: int = 20) -> dict[str, Any]:
    """What A1111 is told, by scheduler name, for every scheduler this model can use."""
    from promptlab.render.schedulers import a1111_sampler, build_scheduler

    written = {}
    for choice in scheduler_choices(base, include_unavailable=True):
        if _missing(choice.class_name):
            continue
        config = dict(build_scheduler(choice, base.config).config)
        written[choice.name] = a1111_sampler(choice.class_name, config, steps, choice.name)
    return written


@pytest.mark.slow
@pytest.mark.parametrize("model", ["sd", "sd-folder", "micro"])
def test_a1111_names_are_names_a1111_reads_back_as_written(model: str) -> None:
    from promptlab.render.schedulers import A1111_TIMESTEP_SAMPLERS, scheduler_named_in_a1111_sampler

    base = {"sd": _SD_SCHEDULER, "sd-folder": _SD_FOLDER_SCHEDULER}.get(model) or _micro_scheduler()
    for name, a1111 in _written(base).items():
        if not a1111.exact:
            # A1111 reads an unknown sampler as DPM++ 2M: the text names the class, splits off no schedule
            assert a1111.sampler.startswith("diffusers ") and a1111.schedule_type is None
            assert a1111_reads(a1111.sampler, None) == ("DPM++ 2M", "Automatic")
            assert scheduler_named_in_a1111_sampler(a1111.sampler) == name
            continue
        assert a1111.sampler in A1111_SAMPLERS
        if a1111.sampler in A1111_TIMESTEP_SAMPLERS:
            assert a1111.schedule_type is None, name
            continue
        # never left to A1111's Automatic, which is Karras for DPM++ 2M and Exponential for DPM++ 2M SDE
        assert a1111.schedule_type in {label for _, label, _ in A1111_SCHEDULES} - {"Automatic"}, name
        sampler, schedule = a1111_reads(a1111.sampler, a1111.schedule_type)
        if schedule == "Automatic":
            schedule = {n: label for n, label, _ in A1111_SCHEDULES}[A1111_SAMPLER_SCHEDULES[sampler]]
        assert (sampler, schedule) == (a1111.sampler, a1111.schedule_type), name


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "sampler", "schedule"),
    [
        # SD's folder config spaces Euler's timesteps "leading" from 1, A1111's DDIM schedule
        ("euler_a", "Euler a", "DDIM"),
        ("dpm2", "DPM2", "DDIM"),
        ("dpm2_a", "DPM2 a", "DDIM"),
        # DPM-Solver's "leading" steps 1000 // 21 apart: no A1111 schedule does; DDIM is nearest
        ("dpmpp_2m", "DPM++ 2M", "DDIM"),
        ("dpmpp_2m_sde", "DPM++ 2M SDE", "DDIM"),
        ("dpmpp_2m_karras", "DPM++ 2M", "Karras"),
        ("dpmpp_2m_sde_exponential", "DPM++ 2M SDE", "Exponential"),
        ("lms_karras", "LMS", "Karras"),
        ("pndm", "PLMS", None),  # SD's PNDM skips its Runge-Kutta warm-up: latent diffusion's PLMS
        ("ddim", "DDIM", None),
        ("unipc", "UniPC", None),
    ],
)
def test_a1111_names_on_sd(name: str, sampler: str, schedule: str | None) -> None:
    a1111 = _written(_SD_FOLDER_SCHEDULER)[name]
    assert (a1111.sampler, a1111.schedule_type, a1111.exact) == (sampler, schedule, True)


@pytest.mark.slow
def test_sd_hub_config_swaps_get_their_own_default_spacing() -> None:
    # SD 1.5's hub config says no timestep_spacing, so a swapped-in class keeps its own default "linspace"
    written = _written(_SD_SCHEDULER)
    assert (written["euler"].sampler, written["euler"].schedule_type) == ("Euler", "Uniform")
    assert (written["dpmpp_2m"].sampler, written["dpmpp_2m"].schedule_type) == ("DPM++ 2M", "SGM Uniform")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deis", "dpmpp_sde", "dpmpp_2s_a", "dpmpp_2s_a_karras", "ddpm", "edm_euler"])
def test_schedulers_a1111_lacks_say_so(name: str) -> None:
    # DEIS, DDPM and EDM are not A1111 samplers; DPMSolverSinglestep is neither A1111's stochastic DPM++ SDE
    # nor its ancestral DPM++ 2S a (two model calls a step), whatever diffusers' docs call "very similar".
    a1111 = _written(_SD_FOLDER_SCHEDULER)[name]
    assert not a1111.exact and f"(promptlab {name}; not an A1111 sampler)" in a1111.sampler


def test_micro_default_scheduler_in_a1111_terms() -> None:
    from promptlab.render.schedulers import a1111_sampler

    micro = _micro_scheduler()
    a1111 = a1111_sampler(type(micro).__name__, dict(micro.config), 20, "dpm_solver_multistep")
    assert (a1111.sampler, a1111.schedule_type) == ("DPM++ 2M", "SGM Uniform")
    # micro's betas are rescaled to zero terminal SNR: A1111's "Noise Schedule" setting does the same
    assert a1111.settings == {"Noise Schedule": "Zero Terminal SNR"}


def test_unipc_settings_are_diffusers_own() -> None:
    from promptlab.render.schedulers import a1111_sampler

    config = {"solver_type": "bh2", "solver_order": 2, "lower_order_final": True, "timestep_spacing": "leading"}
    settings = a1111_sampler("UniPCMultistepScheduler", config, 20).settings
    # A1111's own defaults are bh1, order 3; these keys set its options when the text is pasted
    assert settings == {"UniPC variant": "bh2", "UniPC order": "2", "UniPC lower order final": "True"}


def _a1111_timesteps(schedule: str, n: int) -> np.ndarray:
    """The timesteps whose sigmas A1111's schedule takes (modules/sd_schedulers.py), for a 1000-step model."""
    if schedule == "Uniform":  # k-diffusion DiscreteSchedule.get_sigmas
        return np.linspace(999, 0, n)
    if schedule == "DDIM":  # ddim_scheduler: sigmas[1], sigmas[1 + ss], ... reversed
        return np.arange(1, 1000, max(1000 // n, 1))[::-1].astype(float)
    if schedule == "SGM Uniform":  # sgm_uniform: linspace(t(sigma_max), t(sigma_min), n + 1)[:-1]
        return np.linspace(999, 0, n + 1)[:-1]
    raise ValueError(schedule)


@pytest.mark.parametrize("steps", [10, 20, 25, 30, 50])
@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("class_name", ["EulerDiscreteScheduler", "HeunDiscreteScheduler", "DDIMScheduler",
                                        "DPMSolverMultistepScheduler", "UniPCMultistepScheduler"])  # fmt: skip
def test_schedule_type_takes_the_timesteps_diffusers_takes(class_name: str, spacing: str, steps: int) -> None:
    import diffusers

    from promptlab.render.schedulers import a1111_spacing

    scheduler = getattr(diffusers, class_name)(timestep_spacing=spacing, steps_offset=1)
    scheduler.set_timesteps(steps)
    ours = scheduler.timesteps.numpy().astype(float)
    ours = ours[np.sort(np.unique(ours, return_index=True)[1])]  # Heun takes each timestep twice
    schedule = a1111_spacing(class_name, dict(scheduler.config), steps)
    theirs = _a1111_timesteps(schedule, steps)
    multistep = class_name in ("DPMSolverMultistepScheduler", "UniPCMultistepScheduler")
    if multistep and spacing == "leading":
        # 1000 // (n + 1) apart: no A1111 schedule, so the nearest one
        assert schedule == "DDIM"
    elif spacing == "leading" and 1000 % steps:
        # A1111's DDIM schedule steps 1000 // n apart from 1 and takes as many as fit: one more, above ours
        assert schedule == "DDIM" and len(theirs) == steps + 1 and np.array_equal(theirs[1:], ours)
    else:
        # whole timesteps against SGM Uniform's fractional ones: within rounding
        assert np.abs(ours - theirs).max() <= 1.5, (schedule, ours, theirs)
