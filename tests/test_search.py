"""The search (issue 26): its file checked up front, its candidates, its rounds recorded as an experiment's runs,
resuming by running again, the winner confirmed on fresh seeds, the CLI, and its truth in the micro-world."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptlab.analysis.progress import planned_cells
from promptlab.cli import app
from promptlab.errors import ExperimentError, SearchError
from promptlab.experiment import parse_experiment
from promptlab.micro.data import null_words
from promptlab.search import (
    Space,
    format_search,
    load_search,
    parse_search,
    run_search,
    search_seeds,
)
from promptlab.search.truth import search_truth
from promptlab.store import open_store

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

SMALL = """
name = "{name}"
model = "micro"
batch_size = 16

[params]
num_inference_steps = {steps}

[prompt]
subject = "a star"
intent = "{intent}"

[search]
budget = {budget}
scorer = "micro-judge"
method = "{method}"
seed = {seed}
population = {population}
round_seeds = {round_seeds}
confirm_seeds = {confirm_seeds}
categories = ["artist"]
max_terms = 5
weights = [0.8, 1.2]

[search.terms]
color = ["red", "blue", "green"]
background = ["on a sky blue background", "on a black background"]
size = ["large", "small"]
position = ["left", "right"]
"""
INTENT = "a red star on a sky blue background, large, left"


def small(**changes: object) -> str:
    values: dict[str, object] = {
        "name": "star-search", "steps": 2, "intent": INTENT, "budget": 16, "method": "halving", "seed": 0,
        "population": 4, "round_seeds": 1, "confirm_seeds": 2,
    }  # fmt: skip
    values.update(changes)
    return SMALL.format(**values)


def test_the_example_file_reads() -> None:
    spec = load_search(ROOT / "examples" / "star-search.toml")
    assert spec.budget == 400 and spec.scorer == "micro-judge" and spec.method == "halving"
    assert spec.weights == (0.8, 0.9, 1.0, 1.1, 1.2)
    assert set(spec.groups) == {"artist", "site", "resolution", "color", "background", "size", "position"}
    # An experiment file with a [search] table still reads as an experiment (Insights re-reads the stored file).
    assert parse_experiment((ROOT / "examples" / "star-search.toml").read_text()).name == "star-search"
    # Its cells are planned round by round: Insights and Compare count the done ones and say why no more.
    planned = planned_cells(spec.experiment.raw)
    assert planned.count is None and "round by round" in planned.note


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('categories = ["artist"]', "the pool of terms is empty"),
        ("budget = 16", "budget = 7: smaller than one round"),
        ("intent", "tokens: the scorer reads 75"),
    ],
)
def test_errors_are_one_line_naming_the_input_and_the_fix(change: str, message: str) -> None:
    text = small()
    if change.startswith("categories"):
        text = text.replace(change, "").split("[search.terms]")[0]
    elif change.startswith("budget"):
        text = text.replace(change, "budget = 7")
    else:
        text = text.replace(INTENT, ", ".join(["a red star on a sky blue background"] * 12))
    with pytest.raises(SearchError, match=message) as error:
        parse_search(text, "star.toml")
    assert "\n" not in str(error.value) and str(error.value).startswith("star.toml: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[axes]\ncolor = ['red']\n", "axes: not in a search file"),
        ("", "unknown key 'budgets' in \\[search\\]"),
        ("", "weights"),
    ],
)
def test_keys_a_search_decides_itself_are_refused(text: str, message: str) -> None:
    source = small() + text
    if "budgets" in message:
        source = source.replace("budget =", "budgets =")
    if message == "weights":
        source = source.replace("weights = [0.8, 1.2]", "weights = [1.2, 0.8]")
    with pytest.raises(ExperimentError, match=message):
        parse_search(source, "star.toml")


def test_cli_refuses_before_rendering_anything(tmp_path: Path) -> None:
    file = tmp_path / "star.toml"
    file.write_text(small(budget=5))
    code = "from promptlab.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code, "search", str(file)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {file}: [search] budget = 5: smaller than one round")
    assert "set budget >= 8" in result.stderr
    with open_store() as store:
        assert store.list_experiments() == []


def test_candidates_stay_in_the_pool() -> None:
    spec = parse_search(small(), "star.toml")
    space = Space(spec)
    rng = random.Random(1)
    tried: set[object] = set()
    for _ in range(200):
        candidate = space.random(rng)
        child = space.mutate(candidate, rng, tried)
        for made in (candidate, child):
            if made is None:
                continue
            groups = [t.category for t in made.terms]
            assert len(groups) == len(set(groups)) <= spec.max_terms
            assert all(t.text in spec.groups[t.category] and t.weight in spec.weights for t in made.terms)
            variant = space.variant(made)
            assert set(variant.axis_values) == set(spec.groups) and variant.intent == INTENT
        if child is not None:
            assert child.key not in tried
            tried.add(child.key)


def test_each_term_of_a_group_is_tried_before_any_is_tried_twice() -> None:
    """A pool of 3 colours and every artist: random candidates draw each colour, and each artist, in turn
    (counts never differ by more than one), so the few terms of a small group are not left to chance."""
    from collections import Counter

    spec = parse_search(small(), "star.toml")
    space = Space(spec)
    rng = random.Random(7)
    drawn: Counter[tuple[str, str]] = Counter()
    for _ in range(300):
        drawn.update((t.category or "", t.text) for t in space.random(rng).terms)
    for group, texts in spec.groups.items():
        counts = [drawn[(group, text)] for text in texts]
        assert max(counts) - min(counts) <= 1, (group, counts)
    assert min(drawn[("color", text)] for text in spec.groups["color"]) > 20


def test_selection_and_confirmation_seeds_never_meet() -> None:
    spec = parse_search(small(budget=400, confirm_seeds=16), "star.toml")
    selection, confirm = search_seeds(spec)
    assert len(set(selection)) == 400 and len(set(confirm)) == 16 and not set(selection) & set(confirm)
    assert search_seeds(spec) == (selection, confirm)
    other = parse_search(small(budget=400, confirm_seeds=16, seed=1), "star.toml")
    assert search_seeds(other) != (selection, confirm)


@pytest.mark.slow
def test_a_search_records_runs_confirms_on_fresh_seeds_and_resumes() -> None:
    spec = parse_search(small(), "star.toml")
    seen = []
    with open_store() as store:
        result = run_search(spec, store, progress=seen.append)
        frame = store.runs_frame("star-search", "intent")
        # Every image is a run of the experiment, every spend counted, nothing past the budget.
        assert len(frame) == result.spent == result.rendered <= spec.budget
        assert frame["status"].eq("ok").all() and {"axis:color", "axis:artist"} <= set(frame.columns)
        assert not set(result.confirm_seeds) & set(result.selection_seeds)
        assert set(frame[frame["seed"].isin(result.confirm_seeds)]["variant_key"]) <= {result.winner_key, result.start_key}
        assert seen[-1].phase == "confirm" and seen[-1].spent == result.spent and seen[0].budget == 16
        if result.winner_key != result.start_key:
            assert result.gain is not None and result.gain.axis == "prompt" and result.gain.n_seeds == 2
        lines = format_search(result)
        assert lines[0].startswith("Winner (halving") and "A1111 syntax" in lines[1] and "Budget:" in "\n".join(lines)
        json.dumps(result.to_dict())
        # Running it again renders nothing and finds the same winner.
        again = run_search(spec, store)
        assert again.rendered == 0 and again.winner_key == result.winner_key and again.spent == result.spent
        assert len(store.runs_frame("star-search", "intent")) == len(frame)


@pytest.mark.slow
def test_cli_search_json(tmp_path: Path) -> None:
    file = tmp_path / "star.toml"
    file.write_text(small(method="random"))
    result = runner.invoke(app, ["search", str(file), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["method"] == "random" and data["spent"] <= 16 and len(data["confirm_seeds"]) == 2
    assert data["winner_prompt"].startswith("a star") and data["experiment"] == "star-search"
    text = runner.invoke(app, ["search", str(file)])
    assert text.exit_code == 0 and "Budget: 16 of 16 images spent (0 rendered now)" in text.stdout


@pytest.mark.slow
def test_truth_in_the_micro_world_fast() -> None:
    """bench/search.py's measurement at a small budget: the judge reads each winner's confirmation images,
    and both searches' winners beat the bare subject on the fresh seeds."""
    with open_store() as store:
        for method in ("halving", "random"):
            spec = parse_search(small(name=f"star-{method}", method=method, budget=32, round_seeds=2, confirm_seeds=4),
                                "star.toml")  # fmt: skip
            result = run_search(spec, store)
            truth = search_truth(store, result)
            assert truth.images == 4 and 0 <= truth.rate <= 1 and result.spent <= 32
            assert set(truth.null_terms) <= set(null_words()) and set(truth.null_terms) <= set(result.winner_terms)
            assert result.gain is not None and result.gain.mean_diff > 0, format_search(result)


@pytest.mark.slow
def test_the_last_round_judges_each_word_on_shared_seeds_and_the_path_says_so() -> None:
    """Every term of the winner was measured on the last round's shared seeds and made at least TERM_COST
    there; terms of earlier rounds carry no number (their averages over the rounds would describe their company)."""
    from promptlab.search import TERM_COST

    spec = parse_search(small(name="star-last", budget=96, population=4, round_seeds=1), "star.toml")
    with open_store() as store:
        result = run_search(spec, store)
    seeds = len(result.rounds[-1].seeds)
    measured = {step.term: step for step in result.path if step.n_seeds}
    assert seeds >= 6 and all(step.n_seeds == seeds for step in measured.values())
    assert {step.term for step in result.path if step.kept} == set(result.winner_label.split(", ")) - {"(subject only)"}
    for step in result.path:
        if step.kept:
            assert step.term in measured and step.effect >= TERM_COST, step
    lines = format_search(result)
    assert any(line.startswith("Kept: ") and "shared seeds" in line for line in lines) or not measured
