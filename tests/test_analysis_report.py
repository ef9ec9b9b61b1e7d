"""`promptlab analyze` and the dashboard's Insights page show the same analysis, say what its
numbers mean, and say so in one line when there is nothing to analyse.

The runs are recorded straight into a real SQLite store with known scores (no rendering: the
statistics, not the pictures, are under test here; tests/test_dashboard.py renders).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from promptlab.analysis import analyze, effect_name, format_level, format_report, planned_cells
from promptlab.cli import app
from promptlab.experiment import Variant, cells, parse_experiment
from promptlab.metadata import run_png
from promptlab.runner import run_record
from promptlab.store import ScoreRecord, open_store

runner = CliRunner()
EXPERIMENT = """
name = "{name}"
model = "tiny-sd"
seeds = 4
scorer = "tiny-clip"

[prompt]
subject = "a squirrel"

[axes]
style = ["", "pop-art", "art nouveau"]
guidance_scale = [5.0, 7.5]
"""


def _record(name: str, score: Callable[[Variant, int], float], cells_done: int | None = None) -> None:
    """Record the experiment's cells (the first ``cells_done``, or all) with ``score(variant, seed)``; NaN records a failure."""
    spec = parse_experiment(EXPERIMENT.format(name=name), Path(f"{name}.toml"))
    with open_store() as store:
        experiment = store.get_or_create_experiment(spec.name, spec.raw, spec.path, subject=spec.subject)
        for number, cell in enumerate(cells(spec)[:cells_done]):
            record = run_record(experiment.id, cell.variant, cell.seed)
            value = score(cell.variant, cell.seed)
            if math.isnan(value):
                store.record_failure(record, "CUDA out of memory")
            else:
                image = Image.new("RGB", (8, 8), (number * 9 % 256, 80, 40))
                scores = [ScoreRecord("intent", "tiny-clip", value, "a squirrel")]
                store.record_run(record, run_png(record, image, scores, spec.name), scores)


def _scores(variant: Variant, seed: int) -> float:
    style = variant.axis_values["style"]
    if style == "art nouveau" and variant.axis_values["guidance_scale"] == 7.5:
        return math.nan
    rng = np.random.default_rng([seed, zlib.crc32(variant.label.encode())])
    return 20.0 + 3.0 * seed + (10.0 if style == "pop-art" else 0.0) + float(rng.normal(0, 1))


def _insights(name: str) -> AppTest:
    at = AppTest.from_string("from promptlab.dashboard import insights\ninsights.page()", default_timeout=60).run()
    at.selectbox(key="insights_experiment").select(name).run()
    return at


@pytest.mark.slow
def test_cli_and_insights_show_the_same_numbers_and_every_variant() -> None:
    _record("mixed", _scores)
    printed = runner.invoke(app, ["analyze", "mixed"])
    assert printed.exit_code == 0, printed.output
    with open_store() as store:
        row = store.get_experiment("mixed")
        frame = store.runs_frame("mixed", "intent")
    expected = format_report(analyze(frame, experiment="mixed", planned=planned_cells(row.spec, row.source_path)))
    assert printed.stdout.splitlines() == expected
    # the variant whose every run failed is there, with its count and why it has no number
    assert any("no score: every run failed (4 of 4): CUDA out of memory" in line for line in expected)
    assert expected[0] == "Incomplete: 20 of 24 cells done, 4 failed"
    assert "4 of 24 runs without a score" in expected[1]
    # every interval printed states its level
    assert all("% CI" in line or "no score" in line for line in expected[1:] if ".." in line or "no score" in line)

    at = _insights("mixed")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.subheader] == ["Term and parameter effects", "Score distributions per variant", "Best prompts", "Your votes"]
    assert at.code[0].value.splitlines() == expected
    variants = at.dataframe[1].value
    assert len(variants) == 6 and variants["note"].str.startswith("no score: every run failed").sum() == 1
    effects = at.dataframe[0].value
    starred = effects[effects[""] == "*"]["effect"].tolist()
    assert starred == ["style: pop-art vs no style"]
    assert [w.value for w in at.warning] == ["Incomplete: 20 of 24 cells done, 4 failed: the numbers below are from the cells done so far."]
    assert "How to read this" in [e.label for e in at.expander]
    note = next(m.value for m in at.markdown if "A star means" in m.value)
    assert "Seeds needed" in note


def test_no_usable_scores_is_one_line_in_the_cli_and_the_dashboard() -> None:
    _record("broken", lambda variant, seed: math.nan)
    result = runner.invoke(app, ["analyze", "broken"])
    assert result.exit_code == 1
    message = str(result.exception)
    assert message == (
        "experiment 'broken' has no usable intent scores: 24 runs, 24 failed, 0 with no intent score; "
        "first error: CUDA out of memory"
    )
    at = _insights("broken")
    assert [e.value for e in at.error] == [message]
    assert not at.exception


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cli_analyze_of_an_unknown_experiment_is_an_error(fmt: str) -> None:
    result = runner.invoke(app, ["analyze", "nope", "--format", fmt])
    assert result.exit_code == 1 and "nope" in str(result.exception)


def _chart(at: AppTest, index: int = 0) -> tuple[dict, pd.DataFrame]:
    """The spec and the data of the page's ``index``-th chart, as the browser gets them."""
    chart = at.get("vega_lite_chart")[index].proto
    (dataset,) = chart.datasets
    return json.loads(chart.spec), pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()


def test_insights_effects_chart_gives_every_effect_its_own_labelled_row() -> None:
    # three effects as on the demo: two of one axis, one of another whose reference is "no term"
    _record("rows", _scores)
    at = _insights("rows")
    assert not at.exception and not at.error
    spec, rows = _chart(at)
    with open_store() as store:
        result = analyze(store.runs_frame("rows", "intent"))
    labels = rows["row"].tolist()
    assert len(labels) == len(set(labels)) == len(result.effects) == 3
    # each row states its CI's level (Holm's: 98.3%, 97.5%, 95% for three tested effects)
    for label, effect in zip(labels, result.effects):
        assert label == f"{effect_name(effect)} ({format_level(effect.ci_level)} CI)"
        row = rows[rows["row"] == label].iloc[0]
        assert row["estimate"] == pytest.approx(effect.mean_diff, abs=0.005)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((effect.ci_low, effect.ci_high), abs=0.005)
    # every layer puts its marks on the same rows: y is the label itself, in this order, with no sort Vega could drop
    layers = [layer for layer in spec["layer"] if "y" in layer["encoding"]]
    assert len(layers) == 2
    for layer in layers:
        y = layer["encoding"]["y"]
        assert y["field"] == "row" and y["sort"] == labels and y["scale"]["domain"] == labels
        assert y["axis"]["labelOverlap"] is False
        for channel in ("x", "x2", "color"):
            field = layer["encoding"].get(channel, {}).get("field")
            assert field is None or field in rows.columns
    assert "at the level Holm tested it at" in spec["title"]["subtitle"]
    # the rows' own height, fitted in width only: fitting the height too let the title and axes squeeze
    # three rows into one (the bug in issue 23)
    assert spec["height"] == 40 * len(labels) and spec["autosize"]["type"] == "fit-x"


def test_an_interrupted_experiment_is_said_to_be_incomplete_in_analyze_and_on_insights() -> None:
    _record("half", _scores, cells_done=10)
    printed = runner.invoke(app, ["analyze", "half"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.splitlines()[0] == "Incomplete: 10 of 24 cells done, 14 not run yet"
    data = json.loads(runner.invoke(app, ["analyze", "half", "--format", "json"]).stdout)
    assert data["cells"] == {"planned": 24, "done": 10, "failed": 0, "note": "", "not_run": 14, "incomplete": True}
    at = _insights("half")
    assert [w.value for w in at.warning] == [
        "Incomplete: 10 of 24 cells done, 14 not run yet: the numbers below are from the cells done so far."
    ]
    assert at.code[0].value.splitlines() == printed.stdout.splitlines()
    # scores on the page have two decimals at most, and no raw nan anywhere
    variants = at.dataframe[1].value
    assert all(v is None or round(v, 2) == v for v in variants["mean"].where(variants["mean"].notna(), None))
    shown = " ".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [at.code[0].value])
    assert "nan" not in shown.lower().split()


def test_a_complete_experiment_says_so() -> None:
    _record("whole", lambda variant, seed: 20.0 + seed + (5.0 if variant.axis_values["style"] == "pop-art" else 0.0))
    printed = runner.invoke(app, ["analyze", "whole"])
    assert printed.stdout.splitlines()[0] == "Complete: 24 of 24 cells done"
    at = _insights("whole")
    assert not at.warning and "Complete: 24 of 24 cells done" in [c.value for c in at.caption]


def test_an_effect_without_a_number_keeps_its_row_and_says_why() -> None:
    def scores(variant: Variant, seed: int) -> float:
        return math.nan if variant.axis_values["style"] == "art nouveau" else _scores(variant, seed)

    _record("gone", scores)
    at = _insights("gone")
    assert not at.exception and not at.error
    _, rows = _chart(at)
    lost = rows[rows["row"] == "style: art nouveau vs no style (no score)"].iloc[0]
    assert lost["estimate"] is None or math.isnan(lost["estimate"])
    assert lost["interval"] == "art nouveau has no scored run (8 failed or unscored)"
    effects = at.dataframe[0].value
    row = effects[effects["effect"] == "style: art nouveau vs no style"].iloc[0]
    assert (row["interval"], row["p (Holm)"], row["wins"]) == ("art nouveau has no scored run (8 failed or unscored)", "not tested", "")
    printed = at.code[0].value.splitlines()
    assert printed[0] == "Incomplete: 16 of 24 cells done, 8 failed"
    assert not [line for line in printed if "nan" in line.lower().split()]
