"""Every page tells the state (issue 23): planned, done and failed cells and the best image on Home,
thumbnails and clickable rows on History, an incomplete experiment marked on Home, History, Export
and Run; never a raw ``nan``; scores with two decimals."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from promptlab.analysis.progress import BestImage, experiment_state, format_cells
from promptlab.prompt import Prompt
from promptlab.store import NewRun, RunRecord, ScoreRecord, Store, open_store

TIMEOUT = 60
#: Two colours on two seeds: 4 cells planned.
SPEC = {"name": "circles", "model": "micro", "seeds": 2, "prompt": {"subject": "a circle"},
        "axes": {"color": ["red", "blue"]}}  # fmt: skip


def _png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _record(store: Store, experiment_id: int, color: str, seed: int) -> RunRecord:
    return RunRecord(experiment_id, f"color={color}", seed, Prompt(f"a circle, {color}"), "micro",
                     label=f"color = {color}", axes={"color": color}, intent="a red circle")  # fmt: skip


def fill(store: Store, name: str = "circles", *, finished: bool = False) -> None:
    """``name`` as recorded by a real store: red on seeds 1 and 2 scored, blue seed 1 failed, blue
    seed 2 not run (or, ``finished``, all four cells scored)."""
    experiment = store.add_experiment(name, {**SPEC, "name": name}, subject="a circle", intent="a red circle")
    scores = {("red", 1): 70.123, ("red", 2): 81.456, ("blue", 1): 40.0, ("blue", 2): 42.5}
    for (color, seed), value in scores.items():
        record = _record(store, experiment.id, color, seed)
        if finished or color == "red":
            score = ScoreRecord("intent", "micro-clip", value, "a red circle")
            store.record_runs([NewRun(record, _png(color), (score,))])
        elif seed == 1:
            store.record_failure(record, "out of memory")


@pytest.fixture
def store(promptlab_home: Path) -> Store:
    with open_store() as opened:
        fill(opened)
        fill(opened, "finished", finished=True)
        yield opened


def test_experiment_state_counts_planned_done_failed_cells_and_finds_the_best_image(store: Store) -> None:
    state = experiment_state(store, "circles")
    assert (state.cells.planned, state.cells.done, state.cells.failed, state.cells.not_run) == (4, 2, 1, 1)
    assert state.incomplete
    assert format_cells(state.cells) == "Incomplete: 2 of 4 cells done, 1 failed, 1 not run yet"
    best = state.best
    assert isinstance(best, BestImage)
    assert (best.label, best.seed, best.score) == ("color = red", 2, pytest.approx(81.456))
    assert Path(best.image).is_file()
    finished = experiment_state(store, "finished")
    assert not finished.incomplete and format_cells(finished.cells) == "Complete: 4 of 4 cells done"


def test_an_experiment_without_a_scored_image_has_no_best(promptlab_home: Path) -> None:
    with open_store() as store:
        experiment = store.add_experiment("failed", SPEC)
        store.record_failure(_record(store, experiment.id, "red", 1), "out of memory")
        state = experiment_state(store, "failed")
    assert state.best is None and state.incomplete and state.cells.failed == 1


def page(name: str) -> AppTest:
    return AppTest.from_string(f"from promptlab.dashboard import {name}\n{name}.page()", default_timeout=TIMEOUT).run()


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def no_nan(at: AppTest) -> None:
    """No raw ``nan`` in any text, table cell or caption the page shows (an image cell may be empty)."""
    for frame in at.dataframe:
        shown = frame.value.drop(columns=[c for c in ("image", "best image") if c in frame.value.columns])
        assert not shown.isna().any().any(), shown
        assert not shown.astype(str).map(lambda cell: "nan" in cell.lower().split()).any().any(), shown
    texts = [e.value for kind in ("markdown", "caption", "warning", "info", "success", "text") for e in at.get(kind)]
    assert not any("nan" in str(t).lower().split() for t in texts), texts


def test_home_shows_planned_done_failed_the_best_image_and_its_score(store: Store) -> None:
    at = page("home")
    no_errors(at)
    no_nan(at)
    table = at.dataframe[0].value.set_index("experiment")
    circles, finished = table.loc["circles"], table.loc["finished"]
    assert (circles["state"], circles["planned"], circles["done"], circles["failed"]) == ("incomplete", "4", 2, 1)
    assert circles["best score"] == "81.46"
    assert circles["best image"].startswith("data:image/png;base64,")
    assert circles["cells"] == "Incomplete: 2 of 4 cells done, 1 failed, 1 not run yet"
    assert (finished["state"], finished["done"], finished["best score"]) == ("complete", 4, "81.46")
    assert any("Incomplete: circles" in w.value for w in at.warning)
    assert "finished" not in " ".join(w.value for w in at.warning)


def test_history_marks_the_incomplete_experiment_and_shows_thumbnails(store: Store) -> None:
    at = page("history")
    no_errors(at)
    box = at.selectbox(key="history_experiment")
    assert "circles (incomplete)" in box.options and "finished" in box.options
    box.select("circles").run()
    no_errors(at)
    no_nan(at)
    assert any("Incomplete: 2 of 4 cells done" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert len(table) == 3
    ok = table[table["status"] == "ok"]
    assert ok["image"].str.startswith("data:image/png;base64,").all()
    assert table.loc[table["status"] == "failed", "score"].tolist() == ["no score"]
    assert set(ok["score"]) == {"70.12", "81.46"}


def test_clicking_a_history_row_opens_its_run(store: Store) -> None:
    at = page("history")
    at.selectbox(key="history_experiment").select("circles").run()
    table = at.dataframe[0].value
    row = int((table["status"] == "ok").to_numpy().argmax())
    # What a click on a row sends back: streamlit's dataframe selection state.
    at.session_state["history_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    no_errors(at)
    assert at.subheader[0].value == f"Run #{int(table['id'].iloc[row])}"
    assert len(at.get("image")) == 1


def test_export_marks_an_incomplete_experiment(store: Store) -> None:
    at = page("export")
    at.selectbox(key="export_experiment").select("circles").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(w.value.startswith("Incomplete: 2 of 4 cells done") for w in at.warning)
    at.selectbox(key="export_experiment").select("finished").run()
    assert not any("Incomplete" in w.value for w in at.warning)
    assert any(c.value == "Complete: 4 of 4 cells done" for c in at.caption)


def test_run_marks_an_incomplete_experiment_before_it_runs_again(store: Store, promptlab_home: Path) -> None:
    from promptlab.experiment import to_toml

    saved = promptlab_home / "experiments" / "circles.toml"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(to_toml(SPEC), encoding="utf-8")
    at = page("run")
    at.selectbox(key="run_source").select(str(saved)).run()
    no_errors(at)
    assert any(w.value.startswith("circles in the store: Incomplete: 2 of 4 cells done") for w in at.warning)
