"""`promptlab analyze` and the dashboard's Insights page show the same analysis, say what its
numbers mean, and say so in one line when there is nothing to analyse.

The runs are recorded straight into a real SQLite store with known scores (no rendering: the
statistics, not the pictures, are under test here; tests/test_dashboard.py renders).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from promptlab.analysis import analyze, format_report
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


def _record(name: str, score: Callable[[Variant, int], float]) -> None:
    """Record every cell of the experiment with ``score(variant, seed)``; NaN records a failure."""
    spec = parse_experiment(EXPERIMENT.format(name=name), Path(f"{name}.toml"))
    with open_store() as store:
        experiment = store.get_or_create_experiment(spec.name, spec.raw, spec.path, subject=spec.subject)
        for number, cell in enumerate(cells(spec)):
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
        expected = format_report(analyze(store.runs_frame("mixed", "intent"), experiment="mixed"))
    assert printed.stdout.splitlines() == expected
    # the variant whose every run failed is there, with its count and why it has no number
    assert any("no score: every run failed (4 of 4): CUDA out of memory" in line for line in expected)
    assert "4 of 24 runs without a score" in expected[0]
    # every interval printed states its level
    assert all("% CI" in line or "no score" in line for line in expected[1:] if ".." in line or "no score" in line)

    at = _insights("mixed")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.subheader] == ["Term and parameter effects", "Score distributions per variant", "Best prompts"]
    assert at.code[0].value.splitlines() == expected
    variants = at.dataframe[1].value
    assert len(variants) == 6 and variants["note"].str.startswith("no score: every run failed").sum() == 1
    effects = at.dataframe[0].value
    starred = effects[effects[""] == "*"]["effect"].tolist()
    assert len(starred) == 1 and starred[0].startswith("pop-art vs no style: +")
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
