"""RenderParams/RenderItem validation and the size parser: pure Python, no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptlab.errors import RenderError
from promptlab.render.models import PIPELINE_CLASSES
from promptlab.render.params import (
    INPUT_IMAGES,
    LONG_PROMPT_POLICIES,
    MAX_SEED,
    TASK_INPUTS,
    TASKS,
    RenderItem,
    RenderParams,
    Size,
    parse_size,
)


def test_defaults_are_valid_txt2img() -> None:
    params = RenderParams()
    assert (params.task, params.scheduler, params.long_prompt) == ("txt2img", None, "truncate")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"num_inference_steps": 0}, "num_inference_steps 0"),
        ({"num_inference_steps": 2.5}, "num_inference_steps 2.5"),
        ({"num_inference_steps": True}, "num_inference_steps True"),
        ({"guidance_scale": -0.5}, "guidance_scale -0.5"),
        ({"guidance_scale": float("nan")}, "guidance_scale nan"),
        ({"height": 500}, "height 500"),
        ({"width": 0}, "width 0"),
        ({"width": -64}, "width -64"),
        ({"strength": 0.0}, "strength 0.0"),
        ({"strength": 1.5}, "strength 1.5"),
        ({"long_prompt": "wrap"}, "long_prompt 'wrap'"),
        ({"task": "upscale"}, "task 'upscale'"),
        ({"task": "img2img"}, "needs image"),
        ({"task": "inpaint", "image": "a.png"}, "needs mask_image"),
        ({"task": "txt2img", "image": "a.png"}, "takes no image"),
        ({"task": "img2img", "image": "a.png", "mask_image": "m.png"}, "takes no mask_image"),
        ({"task": "img2img", "image": "a.png", "depth_map": "d.png"}, "takes no depth_map"),
        ({"task": "img2img", "image": "a.png", "num_inference_steps": 2, "strength": 0.3}, "strength 0.3"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict, named: str) -> None:
    with pytest.raises(RenderError, match=named.replace("(", r"\(").replace(".", r"\.")):
        RenderParams(**kwargs)


def test_guidance_zero_and_full_strength_are_allowed() -> None:
    params = RenderParams(task="depth2img", image="a.png", depth_map="d.png", guidance_scale=0, strength=1.0)
    assert params.guidance_scale == 0


@pytest.mark.parametrize("seed", [-1, 2**63, 2**64, 1.0, "7", None, False])
def test_bad_seeds_are_named(seed: object) -> None:
    with pytest.raises(RenderError, match=f"seed {seed!r}"):
        RenderItem("a cat", seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [0, MAX_SEED])
def test_seed_range_edges(seed: int) -> None:
    assert RenderItem("a cat", seed).seed == seed


def test_seed_range_is_what_the_store_holds() -> None:
    """One seed range everywhere: a signed 64-bit column's, in SQLite and PostgreSQL alike."""
    assert MAX_SEED == 2**63 - 1


def test_task_facts_agree() -> None:
    assert TASKS == tuple(TASK_INPUTS) == tuple(PIPELINE_CLASSES)
    for task, (needs, takes) in TASK_INPUTS.items():
        assert set(needs) <= set(takes) <= set(INPUT_IMAGES), task
    assert RenderParams().task == TASKS[0]


@given(st.integers(1, 512), st.integers(1, 512), st.sampled_from(["x", "X", "×"]))
def test_parse_size_round_trip(w: int, h: int, sep: str) -> None:
    width, height = w * 8, h * 8
    assert parse_size(f"{width}{sep}{height}") == Size(width, height)
    assert parse_size(f" {width} {sep} {height} ") == (width, height)


@pytest.mark.parametrize("text", ["1048576x1048576", "8200x64", "8192x4096"])
def test_a_size_no_machine_can_render_is_refused_before_loading(text: str) -> None:
    with pytest.raises(RenderError, match="too large: at most 8192 pixels a side and 16,777,216 pixels in all"):
        parse_size(text)
    width, height = (int(v) for v in text.split("x"))
    with pytest.raises(RenderError, match="too large"):
        RenderParams(width=width, height=height)


def test_steps_past_the_training_timesteps_are_refused() -> None:
    with pytest.raises(RenderError, match="num_inference_steps 1000000 must be a whole number from 1 to 1000"):
        RenderParams(num_inference_steps=1_000_000)


def test_prompt_limits_on_length_and_weights() -> None:
    from promptlab.render.params import check_prompt

    check_prompt("a (red)1.5 circle, (blue)100")
    with pytest.raises(RenderError, match="prompt: 'red': weight 101 is out of range: weights go from 0 to 100"):
        check_prompt("a (red)101 circle")
    with pytest.raises(RenderError, match="prompt is 10,001 characters long: at most 10,000"):
        check_prompt("a" * 10_001)


@pytest.mark.parametrize(
    ("text", "named"),
    [("512", "WIDTHxHEIGHT"), ("512x", "WIDTHxHEIGHT"), ("-512x512", "WIDTHxHEIGHT"), ("500x512", "width 500"),
     ("512x0", "height 0"), ("512 by 768", "WIDTHxHEIGHT")],
)
def test_parse_size_errors(text: str, named: str) -> None:
    with pytest.raises(RenderError, match=named):
        parse_size(text)


def test_long_prompt_policies_are_described() -> None:
    assert set(LONG_PROMPT_POLICIES) == {"truncate", "chunk"}


def test_importing_render_does_not_import_torch() -> None:
    code = "import sys, promptlab.render; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", ["-1", str(2**63), str(2**64)])
def test_cli_refuses_a_seed_past_the_store_in_one_line(seed: str, tmp_path: Path) -> None:
    """2**63 used to pass the check and fail in SQLite with a raw OverflowError."""
    code = "from promptlab.cli import main; main()"
    args = ["render", "a cat", "--model", "tiny-sd", "--seed", seed, "--out", str(tmp_path / "out")]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: seed {seed} must be a whole number from 0 to 2**63 - 1 (the store keeps seeds as signed 64-bit integers)\n"
    )
    assert not (tmp_path / "out").exists()
