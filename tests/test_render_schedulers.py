"""Every scheduler name swaps on the tiny pipeline and renders; lookups and errors."""

from __future__ import annotations

import importlib.util

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
