"""Quality gates on the shipped micro and micro-clip weights: the micro-world's known truths hold."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from promptlab.cli import app
from promptlab.micro import MICRO_CLIP_DIR, MICRO_CLIP_WEIGHTS, MICRO_MODELS, RETRAIN_COMMAND
from promptlab.micro.gates import caption_choice_accuracy, held_out_agreement, redness, render_images
from promptlab.micro.train import RECORD

runner = CliRunner()
SEEDS = list(range(100, 108))


def test_shipped_weights_are_small_and_record_how_they_were_made() -> None:
    """How long training took and at which revision are measurements: ``bench/micro.py`` prints them."""
    files = [p for p in (MICRO_MODELS["micro"].rglob("*.safetensors"))] + [MICRO_CLIP_WEIGHTS]
    assert sum(p.stat().st_size for p in files) <= 25 * 1024 * 1024
    records = [json.loads((folder / RECORD).read_text()) for folder in (MICRO_MODELS["micro"], MICRO_CLIP_DIR)]
    for record in records:
        assert record["command"].startswith(RETRAIN_COMMAND)
        assert record["null_words"] and record["held_out"]
        assert {"revision", "config", "seconds", "cpu_seconds", "torch_threads", "versions"} <= set(record)


@pytest.mark.slow
def test_held_out_combinations_render_as_captioned() -> None:
    result = held_out_agreement(64)
    assert result.count == 64
    assert result.color >= 0.85, result
    assert result.background >= 0.85, result
    assert result.position >= 0.80, result
    assert result.shape >= 0.70, result


@pytest.mark.slow
def test_micro_clip_picks_the_true_caption_among_eight() -> None:
    assert caption_choice_accuracy(200) >= 0.90


@pytest.mark.slow
def test_weights_act() -> None:
    strong = render_images(["(red)1.5 circle"] * len(SEEDS), SEEDS)
    weak = render_images(["(red)0.6 circle"] * len(SEEDS), SEEDS)
    assert sum(map(redness, strong)) > sum(map(redness, weak)) * 1.2 + 1


@pytest.mark.slow
def test_negative_prompt_lowers_redness() -> None:
    prompts = ["a circle on a black background"] * len(SEEDS)
    plain = render_images(prompts, SEEDS)
    avoided = render_images(prompts, SEEDS, negative_prompt="red")
    assert sum(map(redness, avoided)) < sum(map(redness, plain)) * 0.8


EXPERIMENT = """
name = "micro-colors"
model = "micro"
seeds = 8
scorer = "micro-clip"
batch_size = 24

[params]
num_inference_steps = 20
guidance_scale = 7.5
width = 64
height = 64

[prompt]
subject = "a circle on a black background"
intent = "a red circle on a black background"

[axes]
color = ["red", "blue", "green"]
artist = ["", "Greg Rutkowski", "Alphonse Mucha"]
"""


@pytest.fixture(scope="module")
def colors_analysis(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`promptlab run` then `promptlab analyze` on a colour x artist experiment, once for the module."""
    folder = tmp_path_factory.mktemp("micro-colors")
    experiment = folder / "micro-colors.toml"
    experiment.write_text(EXPERIMENT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMPTLAB_HOME", str(folder / "home"))
        result = runner.invoke(app, ["run", str(experiment), "--format", "json"])
        assert result.exit_code == 0, result.output
        return json.loads(runner.invoke(app, ["analyze", "micro-colors", "--format", "json"]).stdout)


@pytest.mark.slow
def test_run_and_analyze_rank_the_asked_colour_first(colors_analysis: dict) -> None:
    by_color: dict[str, list[float]] = {}
    for variant in colors_analysis["variants"]:
        by_color.setdefault(variant["axes"]["color"], []).append(variant["mean"])
    means = {color: sum(values) / len(values) for color, values in by_color.items()}
    assert max(means, key=means.get) == "red", means
    effects = {(e["axis"], e["level"]): e for e in colors_analysis["effects"]}
    # Red is the reference level of the colour axis (its first): every other colour scores lower, surely.
    for color in ("blue", "green"):
        effect = effects[("color", color)]
        assert effect["reference"] == "red" and effect["ci_high"] < 0, effect


@pytest.mark.slow
@pytest.mark.parametrize("artist", ["Greg Rutkowski", "Alphonse Mucha"])
def test_run_and_analyze_find_artists_null(colors_analysis: dict, artist: str) -> None:
    effects = {(e["axis"], e["level"]): e for e in colors_analysis["effects"]}
    # Artists are known-null words: their effects' intervals hold zero.
    effect = effects[("artist", artist)]
    assert effect["ci_low"] <= 0 <= effect["ci_high"], effect
