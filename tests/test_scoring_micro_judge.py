"""The micro-judge scorer: the share of a caption's named attributes the micro-world judge reads, 0..100."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from promptlab.cli import app
from promptlab.errors import ScoringError
from promptlab.micro.world import ADAPTER_COLORS, BACKGROUNDS, FLAT_COLORS, Scene, draw
from promptlab.scoring import MicroJudgeScorer, judge_score, load_scorer, parse_scorer_spec

runner = CliRunner()


def test_a_drawn_scene_scores_100_against_its_own_caption() -> None:
    for scene in (
        Scene("circle", "teal", "black", "large", "center"),
        Scene("star", "gold", "sky blue", "large", "left"),
        Scene("triangle", "red", "gray", "small", "right"),
    ):
        result = judge_score(draw(scene, 3), scene.caption())
        assert result.value == pytest.approx(100, abs=0.1)
        assert set(result.named) == {"shape", "color", "background", "size", "position"}


def test_the_score_is_the_share_of_named_attributes_the_judge_reads() -> None:
    picture = draw(Scene("circle", "red", "black", "large", "center"))
    wrong_shape = judge_score(picture, "a red square on a black background")
    assert wrong_shape.agreed == pytest.approx({"shape": 0.0, "color": 1.0, "background": 1.0}, abs=1e-3)
    assert wrong_shape.value == pytest.approx(200 / 3, abs=0.1)
    # Only what the caption names counts: a shape alone, then shape and place.
    assert judge_score(picture, "a circle").value == pytest.approx(100)
    assert judge_score(picture, "a circle, left").value == pytest.approx(50)
    # A light term is not judged and does not count.
    assert judge_score(picture, "a circle, sunlight").named == {"shape": "circle"}


def test_the_colour_counts_gradually_between_teal_and_green() -> None:
    """A shape whose colour moves from teal to green scores a falling teal share, not a step."""
    teal, green = np.array(ADAPTER_COLORS["teal"]), np.array(FLAT_COLORS["green"])
    values = []
    for share in np.linspace(0, 1, 7):
        picture = Image.new("RGB", (64, 64), BACKGROUNDS["black"])
        picture.paste(tuple(int(round(c)) for c in teal + (green - teal) * share), (16, 16, 48, 48))
        values.append(judge_score(picture, "a teal square").agreed["color"])
    assert values[0] > 0.99 and values[-1] < 0.01
    assert all(a > b for a, b in zip(values, values[1:]))
    assert any(0.2 < v < 0.8 for v in values)


def test_an_empty_picture_agrees_only_on_its_background() -> None:
    result = judge_score(Image.new("RGB", (64, 64), BACKGROUNDS["gray"]), "a red circle on a gray background")
    assert result.agreed == {"shape": 0.0, "color": 0.0, "background": 1.0}


def test_a_caption_naming_nothing_the_judge_reads_is_refused() -> None:
    with pytest.raises(ScoringError, match=r"'a squirrel, oil painting' names no shape.*micro-clip"):
        judge_score(draw(Scene("circle", "red", "black", "large", "center")), "a squirrel, oil painting")


def test_the_spec_loads_the_judge_scorer() -> None:
    parsed = parse_scorer_spec(" micro-judge ")
    assert (parsed.name, parsed.model, parsed.pretrained, parsed.kind) == ("micro-judge", "micro-judge", None, "micro-judge")
    scorer = load_scorer("micro-judge")
    assert isinstance(scorer, MicroJudgeScorer) and scorer is load_scorer("micro-judge")
    scene = Scene("square", "blue", "white", "small", "top")
    [score] = scorer.score([draw(scene)], [scene.caption()])
    assert (score.scorer, score.model, score.pretrained, score.weights_sha256) == ("micro-judge", "micro-judge", None, None)
    [pair] = scorer.score_pairs([draw(scene)], ["a red square"], [scene.caption()])
    assert pair.intent.value == pytest.approx(50, abs=0.1) and pair.prompt.value == pytest.approx(100, abs=0.1)


def test_bad_inputs_name_the_problem() -> None:
    scorer = load_scorer("micro-judge")
    picture = draw(Scene("circle", "red", "black", "large", "center"))
    with pytest.raises(ScoringError, match="2 images but 1 texts"):
        scorer.score([picture, picture], ["a circle"])
    with pytest.raises(ScoringError, match="image 0: expected a PIL image, got ndarray"):
        scorer.score([np.zeros((8, 8, 3))], ["a circle"])  # type: ignore[list-item]
    with pytest.raises(ScoringError, match="batch_size 0"):
        scorer.score([picture], ["a circle"], batch_size=0)
    with pytest.raises(ScoringError, match="1 images, 2 intents and 1 prompts"):
        scorer.score_pairs([picture], ["a circle", "a star"], ["a circle"])


def test_cli_scores_files_with_the_judge(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "teal.png"
    draw(Scene("circle", "teal", "black", "large", "center")).save(path)
    result = runner.invoke(
        app, ["score", str(path), "--prompt", "a teal circle on a black background", "--model", "micro-judge", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["scorer"] == "micro-judge" and row["value"] == pytest.approx(100, abs=0.1)
    refused = runner.invoke(app, ["score", str(path), "--prompt", "a squirrel", "--model", "micro-judge"])
    assert refused.exit_code == 1 and "names no shape" in str(refused.exception)


EXPERIMENT = """
name = "judged-colours"
model = "micro"
seeds = 2
scorer = "micro-judge"

[params]
num_inference_steps = 8
width = 64
height = 64

[prompt]
subject = "a circle on a black background"
intent = "a red circle on a black background"

[axes]
color = ["red", "blue"]
"""


@pytest.mark.slow
def test_an_experiment_file_scores_with_the_judge(tmp_path) -> None:  # type: ignore[no-untyped-def]
    experiment = tmp_path / "judged.toml"
    experiment.write_text(EXPERIMENT)
    result = runner.invoke(app, ["run", str(experiment), "--format", "json"])
    assert result.exit_code == 0, result.output
    from promptlab.store import open_store

    with open_store(read_only=True) as store:
        frame = store.runs_frame("judged-colours", "intent")
    assert len(frame) == 4 and frame["score"].between(0, 100).all()
    means = frame.groupby("axis:color")["score"].mean()
    assert means["red"] > means["blue"]
