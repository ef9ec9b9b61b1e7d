"""Several scorers in one experiment: every image gets every score, the first ranks, any other is asked for by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlab.errors import ExperimentError
from promptlab.experiment import parse_experiment
from promptlab.runner import run_experiment
from promptlab.runner.rescore import score_runs
from promptlab.scoring import load_scorer
from promptlab.store import Store, open_store

RUN = """
name = "two-judges"
model = "micro"
SCORERS
seeds = 2
[params]
width = 64
height = 64
[prompt]
subject = "a circle on a black background"
[axes]
color = ["red", "blue"]
"""


def parse(text: str):  # noqa: ANN201 - an ExperimentSpec
    return parse_experiment(text, "t.toml")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with open_store(f"sqlite:///{tmp_path / 'p.db'}") as opened:
        yield opened


def _scores(store: Store, name: str) -> dict[str, list[float]]:
    by: dict[str, list[float]] = {}
    for run in store.list_runs(name):
        for score in run.scores:
            if score.kind == "intent":
                by.setdefault(score.scorer, []).append(score.value)
    return by


def test_every_image_gets_every_scorer_and_the_first_ranks(store: Store) -> None:
    spec = parse(RUN.replace("SCORERS", 'scorers = ["micro-judge", "micro-clip"]'))
    assert spec.scorer == "micro-judge" and spec.scorers == ("micro-judge", "micro-clip")
    summary = run_experiment(spec, store)
    assert summary.rendered == 4
    by = _scores(store, "two-judges")
    assert sorted(by) == ["micro-clip", "micro-judge"] and all(len(v) == 4 for v in by.values())
    assert store.scorers("two-judges") == ["micro-judge", "micro-clip"]
    judge, clip = store.runs_frame("two-judges"), store.runs_frame("two-judges", scorer="micro-clip")
    assert sorted(judge["score"]) == sorted(by["micro-judge"]) and sorted(clip["score"]) == sorted(by["micro-clip"])
    # The progress a run reports shows the ranking scorer's scores.
    assert {o.scores["intent"] for o in summary.outcomes} <= set(by["micro-judge"])


def test_a_scorer_added_to_the_file_scores_the_recorded_images_on_the_next_run(store: Store) -> None:
    run_experiment(parse(RUN.replace("SCORERS", 'scorer = "micro-clip"')), store)
    assert sorted(_scores(store, "two-judges")) == ["micro-clip"]
    again = run_experiment(parse(RUN.replace("SCORERS", 'scorers = ["micro-clip", "micro-judge"]')), store)
    assert again.rendered == 0 and again.skipped == 4
    by = _scores(store, "two-judges")
    assert sorted(by) == ["micro-clip", "micro-judge"] and all(len(v) == 4 for v in by.values())


def test_score_runs_scores_only_what_is_missing_and_says_so(store: Store) -> None:
    run_experiment(parse(RUN.replace("SCORERS", 'scorer = "micro-clip"')), store)
    judge = load_scorer("micro-judge")
    first = score_runs(store, "two-judges", judge, batch_size=3)
    assert (first.scored, first.missing) == (4, 4)
    second = score_runs(store, "two-judges", judge)
    assert (second.scored, second.missing) == (0, 0)
    # Both kinds, each against its own text: the intent, and the image's plain prompt.
    run = store.list_runs("two-judges")[0]
    texts = {s.kind: s.text for s in run.scores if s.scorer == "micro-judge"}
    assert texts == {"intent": run.intent, "prompt": run.prompt_plain}


def test_add_scores_refuses_a_run_that_is_not_there_and_writes_nothing(store: Store) -> None:
    from promptlab.errors import StoreError
    from promptlab.store import ScoreRecord

    run_experiment(parse(RUN.replace("SCORERS", 'scorer = "micro-clip"')), store)
    run_id = store.list_runs("two-judges")[0].id
    new = ScoreRecord(kind="intent", scorer="other", value=1.0, text="x")
    with pytest.raises(StoreError, match=r"run 999999 is not in .*\(deleted\?\)"):
        store.add_scores({run_id: [new], 999999: [new]})
    assert "other" not in _scores(store, "two-judges")
    assert store.add_scores({run_id: [new, new]}) == 1
    assert store.add_scores({run_id: [new]}) == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('scorer = "clip"\nscorers = ["micro-clip"]', "either scorer or scorers, not both"),
        ("scorers = []", "a non-empty list of scorer names"),
        ('scorers = ["micro-clip", "micro-clip"]', "each scorer once (micro-clip given twice)"),
        ("scorers = [1]", "a list of non-empty strings"),
    ],
)
def test_bad_scorers_are_named(line: str, message: str) -> None:
    with pytest.raises(ExperimentError, match="scorers") as raised:
        parse(RUN.replace("SCORERS", line))
    assert message in str(raised.value)


def test_cli_scores_an_experiment_with_another_scorer_and_analyses_by_it(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from promptlab.cli import app

    runner = CliRunner()
    path = tmp_path / "two.toml"
    path.write_text(RUN.replace("SCORERS", 'scorer = "micro-clip"'))
    assert runner.invoke(app, ["run", str(path), "--format", "json"]).exit_code == 0
    scored = runner.invoke(app, ["score", "--experiment", "two-judges", "--scorer", "micro-judge", "--format", "json"])
    assert scored.exit_code == 0, scored.output
    assert {k: json.loads(scored.stdout)[k] for k in ("scorer", "scored", "missing")} == {"scorer": "micro-judge", "scored": 4, "missing": 4}
    again = runner.invoke(app, ["score", "--experiment", "two-judges", "--scorer", "micro-judge"])
    assert "0 images scored by micro-judge" in again.stdout and "every image had its scores already" in again.stdout
    by_judge = json.loads(runner.invoke(app, ["analyze", "two-judges", "--scorer", "micro-judge", "--format", "json"]).stdout)
    by_clip = json.loads(runner.invoke(app, ["analyze", "two-judges", "--format", "json"]).stdout)
    assert (by_judge["scorer"], by_clip["scorer"]) == ("micro-judge", "micro-clip")
    assert by_judge["variants"] != by_clip["variants"]
    text = runner.invoke(app, ["analyze", "two-judges", "--scorer", "micro-judge"]).stdout
    assert "intent score from micro-judge" in text
    unknown = runner.invoke(app, ["analyze", "two-judges", "--scorer", "pickscore"])
    assert unknown.exit_code == 1 and "has scores from micro-clip, micro-judge" in str(unknown.exception)
    exported = runner.invoke(app, ["export", "two-judges", "--scorer", "micro-judge", "--to", "json"])
    assert exported.exit_code == 0, exported.output


def test_a_within_prompt_scorer_is_analysed_on_one_text_and_says_so() -> None:
    import pandas as pd

    from promptlab.analysis import analyze, scorer_note
    from promptlab.errors import PromptlabError

    rows = [
        {"run_id": i, "variant_key": k, "label": f"color={c}", "seed": s, "subject": "x", "score": v, "status": "ok", "prompt": f"{c} x", "negative_prompt": "",
         "axis:color": c, "scorer": "pickscore", "image": None, "error": None}
        for i, (k, c, s, v) in enumerate([("a", "red", 1, 20.0), ("b", "blue", 1, 21.0), ("a", "red", 2, 19.0), ("b", "blue", 2, 21.5)])
    ]
    result = analyze(pd.DataFrame(rows), score_kind="intent")
    assert result.scorer == "pickscore" and "compares images only against one text" in result.scorer_note
    with pytest.raises(PromptlabError, match=r"pickscore compares images only against one text.*--score intent"):
        analyze(pd.DataFrame(rows), score_kind="prompt")
    assert scorer_note("aesthetic", "prompt") == "aesthetic reads no text: its intent and prompt scores are the same"
    assert scorer_note("micro-clip", "prompt") == ""


@pytest.mark.slow
def test_compare_insights_and_export_rank_by_the_scorer_picked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PROMPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("PROMPTLAB_DB", raising=False)
    with open_store() as store:
        run_experiment(parse(RUN.replace("SCORERS", 'scorers = ["micro-clip", "micro-judge"]')), store)
        by_clip, by_judge = store.runs_frame("two-judges"), store.runs_frame("two-judges", scorer="micro-judge")

    def shown(at: AppTest) -> list[str]:
        return sorted(c.value.split(" ")[1] for c in at.caption if c.value.startswith("score "))

    for page in ("compare", "insights", "export"):
        at = AppTest.from_string(f"from promptlab.dashboard import {page}\n{page}.page()", default_timeout=120).run()
        at.selectbox(key=f"{page}_experiment").select("two-judges").run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        assert at.selectbox(key=f"{page}_scorer").options == ["micro-clip", "micro-judge"]
        # Compare's grid: colour by seed, one run per cell.
        if page == "compare":
            assert shown(at) == sorted(f"{v:.2f}" for v in by_clip["score"])
        at.selectbox(key=f"{page}_scorer").select("micro-judge").run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        if page == "compare":
            assert shown(at) == sorted(f"{v:.2f}" for v in by_judge["score"])
        if page == "insights":
            report = next(c.value for c in at.code if "Variants (" in c.value)
            assert "intent score from micro-judge" in report
        assert any("micro-world judge" in c.value for c in at.caption)
