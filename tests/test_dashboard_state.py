"""Every page tells the state (issue 23): planned, done and failed cells and the best image on Home,
thumbnails and clickable rows on History, an incomplete experiment marked on Home, History, Export
and Run; never a raw ``nan``; scores with two decimals."""

from __future__ import annotations

import io
import re
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
    """No raw ``nan`` (nor an empty cell, shown as "None") in any text, table cell or caption the page shows."""
    for frame in at.dataframe:
        shown = frame.value
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
    assert circles["not run"] == "1" and finished["not run"] == "0"
    assert (finished["state"], finished["done"], finished["best score"]) == ("complete", 4, "81.46")
    assert any("Incomplete: circles" in w.value for w in at.warning)
    assert "finished" not in " ".join(w.value for w in at.warning)


def test_home_says_why_a_plan_is_not_known_and_marks_a_lost_image(store: Store) -> None:
    experiment = store.add_experiment("unplanned", {})
    store.record_runs([NewRun(_record(store, experiment.id, "red", 1), _png("red"),
                              (ScoreRecord("intent", "micro-clip", 55.0, "a red circle"),))])  # fmt: skip
    for image in (store.home / "images").glob("*.png"):
        image.unlink()
    at = page("home")
    no_errors(at)
    no_nan(at)
    table = at.dataframe[0].value.set_index("experiment")
    unplanned = table.loc["unplanned"]
    assert (unplanned["state"], unplanned["planned"], unplanned["not run"]) == ("plan not known", "not known", "")
    assert "no stored file" in unplanned["note"] and table.loc["circles", "note"] == ""
    assert "file%20missing" in unplanned["best image"] and unplanned["best score"] == "55.00"


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
    failed = table[table["status"] == "failed"]
    assert failed["score"].tolist() == ["no score"]
    assert failed["image"].iloc[0].startswith("data:image/svg+xml;utf8,") and "failed" in failed["image"].iloc[0]
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


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
BROWSER_TIMEOUT_S = 90


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)")
def test_in_a_browser_home_shows_the_state_and_a_click_on_a_history_row_opens_the_run(
    store: Store, promptlab_home: Path, tmp_path: Path
) -> None:
    import os
    import socket
    import subprocess
    import time
    import urllib.request

    pytest.importorskip("playwright")
    from playwright.sync_api import expect, sync_playwright

    from promptlab.dashboard import dashboard_command

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "PROMPTLAB_HOME": str(promptlab_home)}
    with log.open("wb") as out:
        server = subprocess.Popen(dashboard_command(port), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/home")
                expect(page.get_by_text("Incomplete: circles")).to_be_visible(timeout=BROWSER_TIMEOUT_S * 1000)
                expect(page.get_by_test_id("stDataFrame")).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / "state-home.png"), full_page=True)
                page.goto(f"{url}/history")
                grid = page.get_by_test_id("stDataFrame")
                expect(grid).to_be_visible(timeout=BROWSER_TIMEOUT_S * 1000)
                expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=BROWSER_TIMEOUT_S * 1000)
                # The grid is drawn on a canvas: click the first row's selection box (left edge, below the header).
                box = grid.bounding_box()
                assert box is not None
                page.mouse.click(box["x"] + 12, box["y"] + 35 + 32)
                expect(page.get_by_role("heading", name=re.compile(r"^Run #\d+"))).to_be_visible(
                    timeout=BROWSER_TIMEOUT_S * 1000
                )
                page.screenshot(path=str(ARTIFACTS / "state-history-open.png"), full_page=True)
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert not re.search(r"Traceback|Error|Exception|ArrowInvalid|Serialization of dataframe", text), text
