"""micro's teal LoRA: teal stays outside micro's palette, the shipped adapter loads with diffusers, and
the measured claim holds on the shipped weights (the judged teal share rises with the strength, the
paired effect of 1 against 0 is large and sure, and prompts without teal change little)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from promptlab.builtin import MICRO_MODELS, MICRO_TEAL_LORA
from promptlab.cli import app
from promptlab.micro.data import training_scenes
from promptlab.micro.lora import LORA_WEIGHTS, LoraConfig, color_scenes, save_lora, train_and_save, train_lora
from promptlab.micro.lora_sweep import STRENGTHS, TEAL_PROMPT, UNCHANGED_PROMPTS, lora_pipeline, measure, paired_effect, render_at
from promptlab.micro.train import RECORD
from promptlab.micro.world import (
    ADAPTER_COLORS,
    ATTRIBUTES,
    BACKGROUNDS,
    COLORS,
    SHAPES,
    Scene,
    SceneError,
    caption_attributes,
    draw,
    judge,
    sample_scene,
)

runner = CliRunner()
SEEDS = tuple(range(12))


def test_teal_is_outside_micro_palette_and_never_sampled_for_training() -> None:
    """A retrain of micro draws the same scenes as before teal existed: teal is no palette colour."""
    assert "teal" in ADAPTER_COLORS and "teal" not in COLORS and ATTRIBUTES["color"] == COLORS
    assert not [scene for scene in training_scenes(2000, seed=0) if scene.color == "teal"]
    rng = random.Random(1)
    assert {sample_scene(rng).color for _ in range(500)} == set(COLORS)
    assert caption_attributes("a teal circle on a black background")["color"] == "teal"
    assert caption_attributes("a circle, teal")["color"] == "teal"


def test_the_judge_reads_drawn_teal_as_teal_and_the_palette_as_before() -> None:
    for shape in SHAPES:
        for background in BACKGROUNDS:
            scene = Scene(shape, "teal", background, "large", "center")
            assert judge(draw(scene, 2)).color == "teal", scene
    # The colours nearest teal in the judge's features stay themselves.
    for color in ("green", "blue", "purple", "silver"):
        for background in ("black", "gray"):
            assert judge(draw(Scene("circle", color, background, "large", "left"))).color == color


def test_only_adapter_colours_are_trained_as_loras() -> None:
    assert {scene.color for scene in color_scenes("teal", 50, 0)} == {"teal"}
    with pytest.raises(SceneError, match="cannot train a LoRA for colour 'red': choose one of teal"):
        color_scenes("red", 5, 0)


def test_paired_effect_is_scipys_paired_t_interval() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    before = rng.normal(0.2, 0.1, 12)
    after = before + rng.normal(0.5, 0.2, 12)
    effect = paired_effect(list(after), list(before))
    interval = stats.ttest_rel(after, before).confidence_interval(0.95)
    assert (effect.low, effect.high) == pytest.approx((interval.low, interval.high))
    assert effect.mean == pytest.approx(float(np.mean(after - before)))
    assert effect.dz == pytest.approx(float(np.mean(after - before) / np.std(after - before, ddof=1)))


def test_the_shipped_lora_is_a_diffusers_file_with_its_training_record() -> None:
    from safetensors import safe_open

    weights = MICRO_TEAL_LORA / LORA_WEIGHTS
    assert weights.is_file() and weights.stat().st_size < 1024 * 1024
    with safe_open(str(weights), framework="pt") as handle:
        keys = list(handle.keys())
    assert {key.split(".")[0] for key in keys} == {"unet", "text_encoder"}
    assert all("lora" in key for key in keys)
    record = json.loads((MICRO_TEAL_LORA / RECORD).read_text())
    assert record["command"].startswith("promptlab micro train-lora")
    assert {"revision", "config", "base", "losses", "seconds", "cpu_seconds", "torch_threads", "versions"} <= set(record)
    assert record["config"]["color"] == "teal"
    # What training measured on it, as the slow test below measures it again.
    measured = record["measured"]
    assert [level["strength"] for level in measured["levels"]] == list(STRENGTHS)
    assert measured["teal_effect"]["low"] > 0
    assert [row["prompt"] for row in measured["unchanged"]] == list(UNCHANGED_PROMPTS)


@pytest.mark.slow
def test_the_shipped_lora_loads_with_diffusers_and_strength_0_is_micro_itself() -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    from promptlab.render.models import load_model

    cached = load_model("micro").pipe
    adapters = set(getattr(cached.unet, "peft_config", None) or {})  # other tests' LoRAs may be loaded on it
    pipe = lora_pipeline(MICRO_TEAL_LORA)
    plain = StableDiffusionPipeline.from_pretrained(
        str(MICRO_MODELS["micro"]), dtype=torch.float32, safety_checker=None, requires_safety_checker=False
    )
    plain.set_progress_bar_config(disable=True)
    seeds = (0, 1, 2)
    with torch.inference_mode():
        base = plain(
            prompt=[TEAL_PROMPT] * 3,
            generator=[torch.Generator().manual_seed(s) for s in seeds],
            num_inference_steps=20,
            guidance_scale=7.5,
            height=64,
            width=64,
        ).images
    off = render_at(pipe, TEAL_PROMPT, seeds, 0.0)
    assert max(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() for a, b in zip(base, off)) <= 1
    # At full strength teal on most seeds (the sweep below measures how many).
    assert [judge(image).color for image in render_at(pipe, TEAL_PROMPT, seeds, 1.0)].count("teal") >= 2
    # The renderer's cached micro pipeline never saw the adapter.
    assert set(getattr(cached.unet, "peft_config", None) or {}) == adapters


@pytest.mark.slow
def test_the_strength_sweep_holds_on_the_shipped_lora() -> None:
    """The issue's claim, measured on the shipped weights over 12 seeds."""
    sweep = measure(MICRO_TEAL_LORA, SEEDS)
    matches = [level.teal_match for level in sweep.levels]
    shares = [level.judged_teal for level in sweep.levels]
    # The judged teal share rises with the strength: none at 0, most seeds at 1.
    assert all(b >= a - 0.02 for a, b in zip(matches, matches[1:])), matches
    assert shares[0] == 0 and shares[-1] >= 0.7, shares
    assert matches[-1] - matches[0] >= 0.6, matches
    # Strength 1 against 0, paired by seed: large, and its 95% interval far from 0.
    assert sweep.teal_effect.low >= 0.4 and sweep.teal_effect.dz >= 1.5, sweep.teal_effect
    assert sweep.score_effect.low > 10, sweep.score_effect
    # Prompts without teal change little: at most half the teal prompt's own change per pixel, and
    # the judge reads a red circle on black as before on (nearly) every seed. What does spill over is
    # measured too: micro alone draws "a blue square on a gray background" as a circle on most seeds,
    # and with the LoRA (trained on teal squares among other shapes) as a square, so that prompt's
    # score rises; yellow stars drift towards orange, which costs about 10 points.
    by_prompt = {row.prompt: row for row in sweep.unchanged}
    assert by_prompt["a red circle on a black background"].judgement_changed <= 1, by_prompt
    for row in sweep.unchanged:
        assert row.pixel_difference <= 0.5 * sweep.teal_pixel_difference, row
        assert row.score_with >= row.score_without - 15, row


@pytest.mark.slow
def test_lora_sweep_cli_prints_the_sweep_and_writes_the_grid(tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    result = runner.invoke(app, ["micro", "lora-sweep", "--seeds", "2", "--grid", str(grid), "--format", "json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [level["strength"] for level in found["levels"]] == list(STRENGTHS) and found["seeds"] == [0, 1]
    from PIL import Image

    with Image.open(grid) as image:
        assert image.size == (64 + 5 * (128 + 4), 22 + 2 * (128 + 4))
    missing = runner.invoke(app, ["micro", "lora-sweep", "--lora", str(tmp_path)])
    assert missing.exit_code == 1 and "holds no pytorch_lora_weights.safetensors" in str(missing.exception)


TINY = LoraConfig(scenes=4, prior_scenes=8, invert_steps=2, invert_batch=4, steps=3, batch=4, rank=2)


@pytest.mark.slow
def test_training_saves_a_loadable_lora_with_its_record_and_is_deterministic(tmp_path: Path) -> None:
    report = train_and_save(tmp_path / "teal", TINY, "promptlab micro train-lora --test", seeds=2)
    folder = tmp_path / "teal"
    assert report.folder == folder and (folder / LORA_WEIGHTS).is_file()
    record = json.loads((folder / RECORD).read_text())
    assert record["command"] == "promptlab micro train-lora --test" and record["config"]["steps"] == 3
    assert set(record["losses"]) == {"color", "prior", "text_prior"}
    assert record["measured"]["seeds"] == [0, 1] and record["measured"]["lora"] == "teal"
    assert {"latents", "train", "measure", "total"} <= set(record["seconds"])
    # Nothing else is left beside it (the work folder is swapped into place).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teal"]
    # The same seeds give the same adapter, byte for byte.
    unet, text_encoder = train_lora(TINY)
    save_lora(tmp_path / "again", unet, text_encoder)
    assert (tmp_path / "again" / LORA_WEIGHTS).read_bytes() == (folder / LORA_WEIGHTS).read_bytes()


EXPERIMENT = """
name = "teal-strength"
model = "micro"
seeds = 8
scorer = "micro-judge"
loras = ["micro-teal"]

[params]
num_inference_steps = 20
guidance_scale = 7.5
width = 64
height = 64

[prompt]
subject = "a teal circle on a black background"

[axes]
lora_strength = [0, 0.5, 1.0]
"""


@pytest.mark.slow
def test_an_experiment_sweeping_the_strength_measures_teal_with_the_judge(tmp_path: Path) -> None:
    """The claim through promptlab itself: run the file, then analyze's paired effect of strength 1 against 0."""
    experiment = tmp_path / "teal-strength.toml"
    experiment.write_text(EXPERIMENT)
    ran = runner.invoke(app, ["run", str(experiment), "--format", "json"])
    assert ran.exit_code == 0, ran.output
    analysis = json.loads(runner.invoke(app, ["analyze", "teal-strength", "--format", "json"]).stdout)
    effects = {float(e["level"]): e for e in analysis["effects"] if e["axis"] == "lora_strength"}
    strongest = effects[max(effects)]
    assert float(strongest["reference"]) == 0 and strongest["n_seeds"] == 8
    # The micro-judge score against "a teal circle on a black background" (0..100): the colour is
    # one of its three attributes, so teal read surely on every seed adds about 33 points.
    assert strongest["ci_low"] > 10 and strongest["mean_diff"] > 20, strongest
    assert effects[0.5]["mean_diff"] < strongest["mean_diff"]
