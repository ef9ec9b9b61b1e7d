"""The run store on a real SQLite file (and a real PostgreSQL server when PROMPTLAB_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image as PILImage
from sqlalchemy import create_engine, event, insert, inspect, text
from sqlmodel import Session, SQLModel, select

from promptlab.analysis import REQUIRED_COLUMNS, analyze
from promptlab.errors import CellTakenError, StoreError
from promptlab.experiment import cells, load_experiment
from promptlab.metadata import read_image_metadata, run_png
from promptlab.prompt import Prompt, Term
from promptlab.runner import run_record
import promptlab.store.writes as store_writes
from promptlab.store.files import writer_tag
from promptlab.store import (
    MIGRATIONS,
    Image,
    NewRun,
    Run,
    RunRecord,
    RunTerm,
    Score,
    ScoreRecord,
    Store,
    migrate,
    open_store,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "squirrel-styles.toml"
class Crash(BaseException):
    """Stands in for the process dying: nothing catches it."""


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    with open_store(url) as opened:
        yield opened


@pytest.fixture
def sqlite_store() -> Iterator[Store]:
    with open_store() as opened:
        yield opened


@contextmanager
def crash_on_commit(store: Store) -> Iterator[None]:
    """The process dies as the database commits: the transaction never lands."""

    def crash(conn: Any) -> None:
        raise Crash()

    event.listen(store.engine, "commit", crash)
    try:
        yield
    finally:
        event.remove(store.engine, "commit", crash)


def picture(shade: int, size: tuple[int, int] = (8, 6)) -> PILImage.Image:
    return PILImage.new("RGB", size, (shade, 255 - shade, 40))


def png(shade: int, size: tuple[int, int] = (8, 6)) -> bytes:
    """A plain PNG file: the store keeps the bytes it is given (a run's metadata is run_png's job)."""
    buffer = io.BytesIO()
    picture(shade, size).save(buffer, format="PNG")
    return buffer.getvalue()


def make_record(experiment_id: int, seed: int = 1, *terms: Term, key: str = "v1", model: str = "tiny-sd", **extra: Any) -> RunRecord:
    prompt = Prompt("a squirrel", terms or (Term("oil painting", 1.2, "medium"),))
    params = {"num_inference_steps": 4, "guidance_scale": 7.5, "width": 8, "height": 6, "dtype": "float32"}
    return RunRecord(
        experiment_id=experiment_id,
        variant_key=key,
        seed=seed,
        prompt=prompt,
        model=model,
        negative_prompt="ugly",
        params=params,
        label=f"variant {key}",
        axes={"style": key},
        **extra,
    )


def intent(value: float, scorer: str = "tiny-clip") -> ScoreRecord:
    return ScoreRecord("intent", scorer, value, "a squirrel", model="tiny", pretrained=None, weights_sha256="ab" * 32)


def rows(store: Store, model: type[SQLModel]) -> list[Any]:
    with Session(store.engine) as session:
        return list(session.exec(select(model)).all())


def assert_no_row_points_at_nothing(store: Store) -> None:
    images = {image.sha256: image for image in rows(store, Image)}
    for image in images.values():
        assert (store.home / image.path).is_file()
    for run in rows(store, Run):
        assert run.image_sha256 is None or run.image_sha256 in images


# Opening: SQLite file, WAL, migrations.


def test_default_store_is_a_sqlite_file_under_home_in_wal_mode(sqlite_store: Store, promptlab_home: Path) -> None:
    assert sqlite_store.db_path() == (promptlab_home / "promptlab.db").resolve()
    assert sqlite_store.url.startswith("sqlite:///")
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    with sqlite3.connect(sqlite_store.db_path()) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_promptlab_db_overrides_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTLAB_DB", f"sqlite:///{tmp_path / 'elsewhere' / 'runs.db'}")
    with open_store() as opened:
        assert opened.db_path() == tmp_path / "elsewhere" / "runs.db"
        assert opened.db_path().is_file()


def test_reader_sees_committed_rows_while_a_writer_holds_the_lock(sqlite_store: Store) -> None:
    experiment = sqlite_store.add_experiment("e", {})
    sqlite_store.record_run(make_record(experiment.id), png(1))
    writer = sqlite3.connect(sqlite_store.db_path(), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE experiment SET subject = 'changing'")
    try:
        assert [run.seed for run in sqlite_store.list_runs()] == [1]
        assert sqlite_store.get_experiment("e").subject == ""
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_migrations_are_recorded_and_safe_to_repeat(store: Store) -> None:
    experiment = store.add_experiment("e", {"a": 1})
    store.record_run(make_record(experiment.id), png(1))
    with store.engine.connect() as conn:
        names = [row[0] for row in conn.execute(text("SELECT name FROM _migration ORDER BY name"))]
    assert names == list(MIGRATIONS)
    assert migrate(store.engine) == []
    with open_store(store.engine.url.render_as_string(hide_password=False)) as again:
        assert [run.id for run in again.list_runs()] == [run.id for run in store.list_runs()]
        assert again.list_experiments()[0].ok == 1


def test_migrated_schema_matches_the_models(store: Store) -> None:
    found = inspect(store.engine)
    for name, model_table in SQLModel.metadata.tables.items():
        if name not in {"experiment", "image", "run", "run_term", "score", "cell_claim"}:
            continue
        columns = {c["name"]: c["nullable"] for c in found.get_columns(name)}
        assert columns == {c.name: c.nullable for c in model_table.columns}, name
        indexes = {i["name"]: (tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(name) if not i.get("duplicates_constraint")}
        assert indexes == {i.name: (tuple(c.name for c in i.columns), bool(i.unique)) for i in model_table.indexes}, name
        uniques = {u["name"]: tuple(u["column_names"]) for u in found.get_unique_constraints(name)}
        expected = {c.name: tuple(col.name for col in c.columns) for c in model_table.constraints if c.__class__.__name__ == "UniqueConstraint"}
        assert uniques == expected, name


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "invalid database URL 'not a url'"),
        ("nosuchdialect://x/y", "cannot open database nosuchdialect://x/y"),
        ("sqlite:////proc/promptlab/x.db", "sqlite:////proc/promptlab/x.db"),
    ],
)
def test_unopenable_database_names_the_url(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=re.escape(message)):
        open_store(url)


# Experiments.


def test_get_or_create_experiment_keeps_one_row_and_the_latest_spec(store: Store) -> None:
    first = store.get_or_create_experiment("squirrels", {"seeds": [1]}, "/x/squirrels.toml", subject="a squirrel")
    again = store.get_or_create_experiment("squirrels", {"seeds": [1, 2]}, "/x/squirrels.toml", subject="a squirrel")
    assert again.id == first.id
    assert store.get_experiment("squirrels").spec == {"seeds": [1, 2]}
    assert store.get_experiment(first.id).source_path == "/x/squirrels.toml"
    with pytest.raises(StoreError, match="experiment 'squirrels' already exists in sqlite|experiment 'squirrels' already exists in postgresql"):
        store.add_experiment("squirrels", {})
    with pytest.raises(StoreError, match="no experiment 'nope' in"):
        store.get_experiment("nope")


def test_list_experiments_counts_runs_and_models(store: Store) -> None:
    older = store.add_experiment("older", {})
    newer = store.add_experiment("newer", {}, subject="a fox")
    store.record_run(make_record(newer.id, 1), png(1))
    store.record_run(make_record(newer.id, 2, model="sd15"), png(2))
    store.record_failure(make_record(newer.id, 3), "out of memory")
    summaries = store.list_experiments()
    assert [s.name for s in summaries] == ["newer", "older"]
    assert (summaries[0].runs, summaries[0].ok, summaries[0].failed) == (3, 2, 1)
    assert summaries[0].models == ["sd15", "tiny-sd"]
    assert summaries[0].subject == "a fox"
    assert summaries[0].last_run_at is not None and summaries[0].last_run_at.tzinfo is not None
    assert (summaries[1].runs, summaries[1].models, summaries[1].last_run_at) == (0, [], None)
    assert summaries[1].id == older.id


# Recording runs.


def test_record_run_writes_a_content_addressed_png_then_its_rows(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    record, scores = make_record(experiment.id, render_s=1.5, score_s=0.25), [intent(0.31)]
    run = store.record_run(record, run_png(record, picture(10), scores, "e"), scores)
    path = store.home / "images" / f"{run.image_sha256}.png"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == run.image_sha256
    (image,) = rows(store, Image)
    assert (image.path, image.width, image.height, image.size_bytes) == (f"images/{run.image_sha256}.png", 8, 6, len(data))
    meta = read_image_metadata(path)
    assert meta.parameters.prompt == "a squirrel, (oil painting:1.2)"
    assert (meta.parameters.steps, meta.parameters.cfg_scale, meta.parameters.seed) == (4, 7.5, 1)
    assert meta.promptlab_record is not None
    assert meta.promptlab_record["experiment"] == "e"
    assert meta.promptlab_record["scores"][0]["value"] == 0.31
    assert meta.promptlab_record["params"]["dtype"] == "float32"
    view = store.get_run(run.id)
    assert view.image_path == path
    assert view.status == "ok" and view.error is None
    assert (view.render_s, view.score_s) == (1.5, 0.25)
    assert [(t.text, t.weight, t.position) for t in rows(store, RunTerm)] == [("oil painting", 1.2, 0)]


def test_png_bytes_are_stored_as_given_and_other_bytes_refused(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    run = store.record_run(make_record(experiment.id), png(3))
    assert (store.home / "images" / f"{run.image_sha256}.png").read_bytes() == png(3)
    assert (rows(store, Image)[0].width, rows(store, Image)[0].height) == (8, 6)
    with pytest.raises(StoreError, match=r"run \(experiment \d+, variant v1, seed 2\): the image bytes are not a PNG"):
        store.record_run(make_record(experiment.id, 2), b"GIF89a...")
    with pytest.raises(StoreError, match=r"seed 2\): the image bytes are not a readable PNG: no IHDR"):
        store.record_run(make_record(experiment.id, 2), png(3)[:12])
    with pytest.raises(StoreError, match=r"seed 2\): the image is a Image, not PNG bytes; encode it with promptlab.metadata.run_png"):
        store.record_run(make_record(experiment.id, 2), picture(3))  # type: ignore[arg-type]
    assert len(rows(store, Run)) == 1


def test_the_same_image_twice_is_one_file_and_one_image_row(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    first = store.record_run(make_record(experiment.id, 1), png(3))
    second = store.record_run(make_record(experiment.id, 2), png(3))
    assert first.image_sha256 == second.image_sha256
    assert len(rows(store, Image)) == 1
    assert len(list((store.home / "images").iterdir())) == 1


def test_the_image_file_exists_before_the_run_row_is_written(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    seen: list[bool] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def check(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith(("INSERT INTO RUN ", "INSERT INTO IMAGE ")):
            seen.append(any((store.home / "images").glob("*.png")))

    store.record_run(make_record(experiment.id), png(5))
    assert seen == [True, True]


def test_a_crash_after_the_file_write_leaves_no_row_pointing_at_nothing(store: Store) -> None:
    experiment = store.add_experiment("e", {})

    with crash_on_commit(store):
        with pytest.raises(Crash):
            store.record_run(make_record(experiment.id), png(7), [intent(0.2)])
    assert len(list((store.home / "images").glob("*.png"))) == 1
    assert rows(store, Run) == [] and rows(store, Image) == [] and rows(store, Score) == []
    assert store.existing_cells(experiment.id) == set()
    # The rerun finds the file already there and writes the rows.
    run = store.record_run(make_record(experiment.id), png(7), [intent(0.2)])
    assert store.get_run(run.id).score() == 0.2
    assert_no_row_points_at_nothing(store)


def test_a_crash_during_the_file_write_leaves_no_file_and_no_row(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = store.add_experiment("e", {})

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", fail)
        with pytest.raises(StoreError, match=r"cannot write image .*images/[0-9a-f]{64}\.png: .*No space left"):
            store.record_run(make_record(experiment.id), png(7))
    assert list((store.home / "images").iterdir()) == []
    assert rows(store, Run) == []


def test_a_cell_exists_once(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    first = store.record_run(make_record(experiment.id, 1), png(1))
    with pytest.raises(StoreError, match=rf"variant v1, seed 1\) in .*: the cell is already recorded as run {first.id}"):
        store.record_run(make_record(experiment.id, 1), png(2))
    with pytest.raises(StoreError, match="already recorded"):
        store.record_failure(make_record(experiment.id, 1), "late failure")
    # The database itself refuses a second row for the cell, whatever writes it.
    row = {c.name: getattr(rows(store, Run)[0], c.name) for c in Run.__table__.columns if c.name != "id"}
    with pytest.raises(Exception, match="(?i)unique"):
        with store.engine.begin() as conn:
            conn.execute(insert(Run.__table__), row)
    assert len(rows(store, Run)) == 1
    assert store.existing_cells(experiment.id) == {("v1", 1)}
    found = store.find_run(experiment.id, "v1", 1)
    assert found is not None and found.id == first.id
    assert store.find_run(experiment.id, "v1", 2) is None


def test_a_failed_cell_is_retried_and_replaced(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    failed = store.record_failure(make_record(experiment.id, 1), "CUDA out of memory")
    assert store.get_run(failed.id).error == "CUDA out of memory"
    assert store.get_run(failed.id).image_path is None
    assert store.existing_cells(experiment.id) == set()
    assert store.existing_cells(experiment.id, include_failed=True) == {("v1", 1)}
    again = store.record_failure(make_record(experiment.id, 1), "still out of memory")
    done = store.record_run(make_record(experiment.id, 1), png(1), [intent(0.4)])
    assert [run.id for run in rows(store, Run)] == [done.id]
    assert {term.run_id for term in rows(store, RunTerm)} == {done.id}
    assert again.id != done.id
    assert store.existing_cells(experiment.id) == {("v1", 1)}
    assert store.count_runs(search="oil painting") == 1


def test_failure_of_a_prompt_compel_cannot_hold_is_still_recorded(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    run = store.record_failure(make_record(experiment.id, 1, Term("c++", 1.0, "medium")), "PromptSyntaxError: c++")
    view = store.get_run(run.id)
    assert view.prompt == "a squirrel, c++" == view.prompt_plain
    assert view.status == "failed"


@pytest.mark.parametrize(
    ("record_changes", "scores", "message"),
    [
        ({}, [intent(math.nan)], r"intent score from 'tiny-clip' = nan: expected a finite number"),
        ({}, [ScoreRecord("beauty", "x", 0.1, "t")], r"score kind 'beauty': expected one of intent, prompt"),
        ({"params": {"dtype": object()}}, [], r"params cannot be stored as JSON"),
        ({"experiment_id": 999}, [], r"no experiment 999 in"),
    ],
)
def test_bad_records_are_refused_and_nothing_is_kept(
    store: Store, record_changes: dict[str, Any], scores: list[ScoreRecord], message: str
) -> None:
    experiment = store.add_experiment("e", {})
    record = make_record(experiment.id)
    record = RunRecord(**{**record.__dict__, **record_changes})
    with pytest.raises(StoreError, match=message):
        store.record_run(record, png(1), scores)
    assert rows(store, Run) == [] and rows(store, Score) == []


def test_record_runs_writes_every_file_then_all_rows_with_one_folder_fsync(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = store.add_experiment("e", {})
    synced: list[Path] = []
    monkeypatch.setattr(store_writes, "fsync_dir", synced.append)
    files_at_insert: list[int] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def check(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RUN "):
            files_at_insert.append(len(list((store.home / "images").glob("*.png"))))

    records = [(make_record(experiment.id, seed), [intent(seed / 10)]) for seed in range(1, 6)]
    batch = [NewRun(record, run_png(record, picture(record.seed * 20), scores, "e"), scores) for record, scores in records]
    runs = store.record_runs(batch)
    assert files_at_insert == [5]
    assert synced == [store.images_dir]
    assert len({run.id for run in runs}) == 5
    for seed, run in enumerate(runs, start=1):
        view = store.get_run(run.id)
        assert (view.seed, view.score(), view.image_sha256) == (seed, seed / 10, run.image_sha256)
        assert view.image_path is not None and view.image_path.is_file()
        assert read_image_metadata(view.image_path).promptlab_record["seed"] == seed  # type: ignore[index]
    assert len(rows(store, RunTerm)) == 5
    assert list((store.home / "images").glob(".*.partial")) == []


def test_a_crash_before_a_batch_commits_leaves_files_and_no_rows(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    batch = [NewRun(make_record(experiment.id, seed), png(seed), [intent(0.3)]) for seed in (1, 2, 3)]

    with crash_on_commit(store):
        with pytest.raises(Crash):
            store.record_runs(batch)
    assert len(list((store.home / "images").glob("*.png"))) == 3
    assert rows(store, Run) == [] and rows(store, Image) == [] and rows(store, Score) == []
    assert len(store.record_runs(batch)) == 3
    assert_no_row_points_at_nothing(store)


def test_a_batch_replaces_failed_cells_and_is_refused_whole_for_a_recorded_one(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    store.record_failure(make_record(experiment.id, 1), "out of memory")
    done = store.record_runs([NewRun(make_record(experiment.id, seed), png(seed)) for seed in (1, 2)])
    assert sorted(run.id for run in rows(store, Run)) == sorted(run.id for run in done)
    assert store.existing_cells(experiment.id) == {("v1", 1), ("v1", 2)}
    late = [NewRun(make_record(experiment.id, 3), png(3)), NewRun(make_record(experiment.id, 2), png(4))]
    with pytest.raises(StoreError, match=rf"seed 2\) in .*: the cell is already recorded as run {done[1].id}"):
        store.record_runs(late)
    assert store.existing_cells(experiment.id) == {("v1", 1), ("v1", 2)}


# Reading runs.


@pytest.fixture
def filled(store: Store) -> tuple[Store, dict[str, int]]:
    """Two experiments; runs made in a known order with known terms, models and times."""
    a = store.add_experiment("a", {})
    b = store.add_experiment("b", {})
    ids = {}
    ids["pop"] = store.record_run(make_record(a.id, 1, Term("Pop-Art", 1.0, "style"), key="pop"), png(1), [intent(0.5)]).id
    ids["nouveau"] = store.record_run(make_record(a.id, 1, Term("art nouveau", 1.3, "style"), key="nouveau"), png(2), [intent(0.1)]).id
    ids["percent"] = store.record_run(make_record(a.id, 1, Term("100% cotton", 1.0, "medium"), key="pct"), png(3)).id
    ids["sd15"] = store.record_run(make_record(b.id, 1, Term("pop-art", 1.0, "style"), key="pop", model="sd15"), png(4)).id
    ids["failed"] = store.record_failure(make_record(b.id, 2, Term("steampunk", 1.0, "style"), key="steam"), "boom").id
    return store, ids


def test_list_runs_newest_first_with_limit_and_offset(filled: tuple[Store, dict[str, int]]) -> None:
    store, ids = filled
    everything = [ids[k] for k in ("failed", "sd15", "percent", "nouveau", "pop")]
    assert [r.id for r in store.list_runs()] == everything
    assert [r.id for r in store.list_runs(limit=2, offset=1)] == everything[1:3]
    assert store.count_runs() == 5
    with pytest.raises(StoreError, match="limit = -1"):
        store.list_runs(limit=-1)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("pop-art", {"pop", "sd15"}),
        ("POP-ART", {"pop", "sd15"}),
        ("nouv", {"nouveau"}),
        ("t n", {"nouveau"}),
        ("a squirrel, art", {"nouveau"}),
        ("op", {"pop", "sd15"}),
        ("100%", {"percent"}),
        ("%", {"percent"}),
        ("_", set()),
        ('"', set()),
        ('pop"-art', set()),
        ("watercolor", set()),
        ("   ", {"pop", "nouveau", "percent", "sd15", "failed"}),
    ],
)
def test_search_is_a_case_insensitive_substring_of_the_prompt(filled: tuple[Store, dict[str, int]], search: str, expected: set[str]) -> None:
    store, ids = filled
    names = {ids[name]: name for name in ids}
    assert {names[r.id] for r in store.list_runs(search=search)} == expected
    assert store.count_runs(search=search) == len(expected)


def test_filters_combine(filled: tuple[Store, dict[str, int]]) -> None:
    store, ids = filled
    experiment_b = store.get_experiment("b").id
    assert [r.id for r in store.list_runs(experiment="a", search="pop")] == [ids["pop"]]
    assert [r.id for r in store.list_runs(experiment=experiment_b)] == [ids["failed"], ids["sd15"]]
    assert [r.id for r in store.list_runs(model="sd15")] == [ids["sd15"]]
    assert [r.id for r in store.list_runs(term="pop-art")] == [ids["sd15"]]
    assert [r.id for r in store.list_runs(term="art nouveau", experiment="a")] == [ids["nouveau"]]
    assert [r.id for r in store.list_runs(status="failed")] == [ids["failed"]]
    assert store.count_runs(experiment="a", status="ok") == 3
    with pytest.raises(StoreError, match="no experiment 'c'"):
        store.list_runs(experiment="c")
    with pytest.raises(StoreError, match="status 'done': expected one of ok, failed"):
        store.list_runs(status="done")


def test_since_and_until_bound_the_creation_time(filled: tuple[Store, dict[str, int]]) -> None:
    store, ids = filled
    runs = store.list_runs()
    middle = store.get_run(ids["percent"]).created_at
    assert middle.tzinfo is not None
    assert {r.id for r in store.list_runs(since=middle)} == {ids["percent"], ids["sd15"], ids["failed"]}
    assert {r.id for r in store.list_runs(until=middle)} == {ids["pop"], ids["nouveau"]}
    # Another zone, and a naive datetime (UTC), mean the same instant.
    elsewhere = middle.astimezone(timezone(timedelta(hours=-5)))
    assert {r.id for r in store.list_runs(since=elsewhere)} == {r.id for r in store.list_runs(since=middle)}
    naive = middle.replace(tzinfo=None)
    assert {r.id for r in store.list_runs(until=naive)} == {ids["pop"], ids["nouveau"]}
    assert store.list_runs(since=datetime.now(timezone.utc) + timedelta(days=1)) == []
    assert len(runs) == 5


def test_run_view_is_typed_and_json_able(filled: tuple[Store, dict[str, int]]) -> None:
    store, ids = filled
    view = store.get_run(ids["nouveau"])
    assert view.experiment == "a"
    assert view.prompt == "a squirrel, (art nouveau)1.3"
    assert view.prompt_a1111 == "a squirrel, (art nouveau:1.3)"
    assert view.params == {"num_inference_steps": 4, "guidance_scale": 7.5, "width": 8, "height": 6, "dtype": "float32"}
    assert view.terms == [{"text": "art nouveau", "weight": 1.3, "category": "style"}]
    assert view.axes == {"style": "nouveau"}
    assert view.score("intent") == 0.1 and view.score("prompt") is None
    assert view.scores[0].weights_sha256 == "ab" * 32
    data = json.loads(json.dumps(view.model_dump(mode="json")))
    assert data["image_path"] == str(view.image_path)
    assert data["seed"] == 1
    with pytest.raises(StoreError, match=r"no run 12345 in (sqlite|postgresql)"):
        store.get_run(12345)


# The analysis frame.


def test_runs_frame_has_one_row_per_run_and_what_analysis_needs(store: Store) -> None:
    spec = load_experiment(EXAMPLE)
    experiment = store.get_or_create_experiment(spec.name, spec.raw, spec.path, subject=spec.subject)
    chosen = cells(spec)[:12]
    for number, cell in enumerate(chosen):
        record = run_record(experiment.id, cell.variant, cell.seed, render_s=0.1)
        if number == 5:
            store.record_failure(record, "boom")
        else:
            store.record_run(record, png(number), [intent(number / 100), ScoreRecord("prompt", "tiny-clip", 0.5, "p")])
    frame = store.runs_frame(spec.name)
    assert set(REQUIRED_COLUMNS) <= set(frame.columns)
    assert len(frame) == len(chosen)
    assert list(frame["run_id"]) == sorted(frame["run_id"])
    assert list(frame["seed"]) == [cell.seed for cell in chosen]
    assert list(frame["variant_key"]) == [cell.variant.key for cell in chosen]
    assert [c for c in frame.columns if c.startswith("axis:")] == ["axis:style", "axis:artist", "axis:guidance_scale"]
    assert list(frame["axis:guidance_scale"][:4]) == [5.0, 5.0, 5.0, 5.0]
    assert math.isnan(frame["score"][5]) and frame["status"][5] == "failed" and pd.isna(frame["image"][5])
    assert frame["score"][6] == 0.06
    assert Path(frame["image"][0]).is_file()
    assert frame["guidance_scale"][4] == 7.5
    assert frame["params"][0]["long_prompt"] == "truncate"
    assert (store.runs_frame(spec.name, "prompt")["score"].dropna() == 0.5).all()
    # The analysis reads it as it comes.
    result = analyze(frame, score_kind="intent")
    assert {effect.axis for effect in result.effects} <= {"style", "artist", "guidance_scale"}


def test_runs_frame_is_one_query_whatever_the_number_of_runs(store: Store) -> None:
    experiment = store.add_experiment("e", {})

    def statements() -> int:
        count = 0

        def counter(*args: Any) -> None:
            nonlocal count
            count += 1

        event.listen(store.engine, "before_cursor_execute", counter)
        store.runs_frame("e")
        event.remove(store.engine, "before_cursor_execute", counter)
        return count

    store.record_run(make_record(experiment.id, 1), png(1), [intent(0.1)])
    few = statements()
    for seed in range(2, 8):
        store.record_run(make_record(experiment.id, seed), png(seed), [intent(0.1)])
    assert statements() == few


def test_runs_frame_ranks_by_the_files_first_scorer_and_gives_any_other_asked(store: Store) -> None:
    experiment = store.add_experiment("e", {"scorers": ["tiny-clip", "clip"]})
    store.record_run(make_record(experiment.id, 1), png(1), [intent(0.1, "clip"), intent(0.2, "tiny-clip")])
    assert list(store.runs_frame("e")["score"]) == [0.2]
    assert store.scorers("e") == ["tiny-clip", "clip"]
    assert list(store.runs_frame("e", scorer="clip")["score"]) == [0.1]
    with pytest.raises(StoreError, match=r"scorer 'pickscore': experiment 'e' has no intent scores from it; it has scores from clip, tiny-clip"):
        store.runs_frame("e", scorer="pickscore")
    with pytest.raises(StoreError, match="score kind 'beauty'"):
        store.runs_frame("e", "beauty")
    # A file that names no scorer (or one with no scores): the first scorer that scored a run ranks.
    other = store.add_experiment("f", {})
    store.record_run(make_record(other.id, 1), png(2), [intent(0.3, "clip"), intent(0.4, "tiny-clip")])
    assert store.scorers("f") == ["clip", "tiny-clip"] and list(store.runs_frame("f")["score"]) == [0.3]


def test_runs_frame_of_an_empty_experiment_has_the_columns(store: Store) -> None:
    store.add_experiment("empty", {})
    frame = store.runs_frame("empty")
    assert frame.empty
    assert set(REQUIRED_COLUMNS) <= set(frame.columns)


# Reliability (issue 22): newer schemas, one-line errors, read-only stores, claims, lost images, leftovers.


def test_a_schema_from_a_newer_promptlab_is_refused(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO _migration (name, applied_at) VALUES ('m999_future', :now)"), {"now": datetime.now(timezone.utc)})
    with pytest.raises(StoreError, match=r"has a newer schema than this promptlab \(migrations m999_future are unknown to it\); upgrade promptlab"):
        open_store(url)
    with pytest.raises(StoreError, match="upgrade promptlab"):
        open_store(url, read_only=True)


def test_database_errors_are_one_line_without_sql(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{corrupt}")
    message = str(caught.value)
    assert "\n" not in message and "[SQL" not in message and "sqlalche.me" not in message
    assert "file is not a database" in message or "malformed" in message
    # The SQL and SQLAlchemy's link stay on the cause, for --debug.
    assert caught.value.__cause__ is not None


def test_a_nul_character_is_a_one_line_error_or_kept(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    record = make_record(experiment.id, 1, Term("oil\x00painting", 1.0, "medium"))
    try:
        store.record_run(record, png(1))
    except StoreError as error:  # PostgreSQL's text holds no NUL
        assert "\n" not in str(error) and "NUL" in str(error)
    else:
        assert store.list_runs()[0].terms[0]["text"] == "oil\x00painting"


def test_read_only_opening_reads_and_writes_nothing(store: Store) -> None:
    experiment = store.add_experiment("e", {"a": 1})
    store.record_run(make_record(experiment.id), png(1))
    url = store.engine.url.render_as_string(hide_password=False)
    path = store.db_path()
    before = path.read_bytes() if path else None
    with open_store(url, read_only=True) as reader:
        assert reader.read_only
        assert [e.name for e in reader.list_experiments()] == ["e"]
        assert len(reader.runs_frame("e")) == 1
        with pytest.raises(StoreError, match="is open read-only, so nothing can be written"):
            reader.record_run(make_record(experiment.id, 2), png(2))
        with pytest.raises(StoreError, match="open read-only"):
            reader.add_experiment("f", {})
    if path is not None:
        assert path.read_bytes() == before


def test_read_only_opening_of_a_missing_file_makes_the_store(promptlab_home: Path) -> None:
    with open_store(read_only=True) as opened:
        assert not opened.read_only and opened.list_experiments() == []


def test_read_only_wal_file_in_a_read_only_folder_opens_immutable(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = sqlite_store.add_experiment("e", {})
    sqlite_store.record_run(make_record(experiment.id), png(1))
    path = sqlite_store.db_path()
    sqlite_store.close()
    connect = sqlite3.connect
    opened: list[str] = []

    def no_shm_possible(database: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        # What SQLite answers in a read-only folder without the -shm index: it cannot make one.
        opened.append(database)
        if "immutable=1" not in database:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", no_shm_possible)
    with open_store(f"sqlite:///{path}", read_only=True) as reader:
        assert reader.list_runs()[0].seed == 1
    assert opened[0].endswith("?mode=ro") and opened[-1].endswith("?mode=ro&immutable=1")


def test_claims_split_cells_between_runners(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    cells_ = [("v1", 1), ("v1", 2), ("v2", 1)]
    first = store.claim_cells(experiment.id, cells_[:2], "host:1:a")
    assert first.claimed == (("v1", 1), ("v1", 2)) and not first.taken
    second = store.claim_cells(experiment.id, cells_, "otherhost:2:b")
    assert second.claimed == (("v2", 1),) and second.taken == (("v1", 1), ("v1", 2))
    # Recording a cell drops its claim and makes it done for everyone.
    store.record_run(make_record(experiment.id, 1, key="v1"), png(1))
    third = store.claim_cells(experiment.id, cells_, "otherhost:3:c")
    assert third.done == (("v1", 1),) and third.taken == (("v1", 2), ("v2", 1)) and not third.claimed
    store.release_claims("host:1:a")
    assert store.claim_cells(experiment.id, [("v1", 2)], "otherhost:3:c").claimed == (("v1", 2),)


def test_a_claim_lapses_without_renewal_or_when_its_process_is_gone(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    store.claim_cells(experiment.id, [("v", 1)], "elsewhere:1:a", ttl_s=-1)
    assert store.claim_cells(experiment.id, [("v", 1)], "elsewhere:2:b").claimed == (("v", 1),)
    # A process of this machine that is gone (killed) holds nothing.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.claim_cells(experiment.id, [("v", 2)], f"{socket.gethostname()}:{dead.pid}:c")
    assert store.claim_cells(experiment.id, [("v", 2)], "elsewhere:2:b").claimed == (("v", 2),)
    # A live one keeps its claim, and renewing keeps it past its first time.
    store.claim_cells(experiment.id, [("v", 3)], f"{socket.gethostname()}:{os.getpid()}:d", ttl_s=60)
    store.renew_claims(f"{socket.gethostname()}:{os.getpid()}:d", ttl_s=60)
    assert store.claim_cells(experiment.id, [("v", 3)], "elsewhere:2:b").taken == (("v", 3),)


def test_a_cell_recorded_by_another_runner_is_named_in_the_error(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    store.record_run(make_record(experiment.id, 1), png(1))
    with pytest.raises(CellTakenError) as caught:
        store.record_runs([NewRun(make_record(experiment.id, 1), png(2)), NewRun(make_record(experiment.id, 2), png(3))])
    assert caught.value.cells == (("v1", 1),)
    assert len(store.list_runs()) == 1


def test_lost_and_changed_image_files_are_found_and_a_new_image_replaces_their_run(store: Store) -> None:
    experiment = store.add_experiment("e", {})
    runs = store.record_runs([NewRun(make_record(experiment.id, seed), png(seed)) for seed in (1, 2, 3)])
    assert store.broken_images(experiment.id) == []
    store.image_path(runs[0].image_sha256).unlink()
    store.image_path(runs[1].image_sha256).write_bytes(b"\x89PNG\r\n\x1a\nnot the same bytes")
    broken = store.broken_images(experiment.id)
    assert [(b.run_id, b.seed, b.problem) for b in broken] == [(runs[0].id, 1, "missing"), (runs[1].id, 2, "changed")]
    assert store.image_problem(runs[0].image_sha256) == "missing"
    # The same image again rewrites the damaged file (its bytes are checked, not only its size).
    again = store.record_runs(
        [NewRun(make_record(experiment.id, 1), png(1)), NewRun(make_record(experiment.id, 2), png(2))],
        replace=[b.run_id for b in broken],
    )
    assert store.broken_images(experiment.id) == []
    assert {run.seed for run in store.list_runs()} == {1, 2, 3} and len(store.list_runs()) == 3
    assert {run.id for run in again}.isdisjoint({runs[0].id, runs[1].id})
    assert_no_row_points_at_nothing(store)


def test_partial_files_of_dead_writers_are_cleaned_and_live_ones_kept(sqlite_store: Store) -> None:
    images = sqlite_store.images_dir
    images.mkdir(parents=True)
    tag = writer_tag()
    host = tag.partition("-")[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = images / f".{'a' * 64}.{tag}.x1y2.partial"
    killed = images / f".{'b' * 64}.{host}-{dead.pid}.x1y2.partial"
    elsewhere = images / f".{'c' * 64}.00000000-{dead.pid}.x1y2.partial"
    old_style = images / f".{'d' * 64}.x1y2.partial"
    stale_old_style = images / f".{'e' * 64}.z9.partial"
    for path in (mine, killed, elsewhere, old_style, stale_old_style):
        path.write_bytes(b"half a png")
    hour_ago = datetime.now().timestamp() - 3600
    os.utime(stale_old_style, (hour_ago, hour_ago))
    assert sqlite_store.clean_partials() == 2
    assert sorted(p.name for p in images.iterdir()) == sorted(p.name for p in (mine, elsewhere, old_style))


def test_a_seed_past_the_seed_column_is_a_one_line_error(store: Store) -> None:
    # ComfyUI writes seeds up to 2**64 - 1; the column holds a signed 64-bit integer.
    experiment = store.add_experiment("e", {})
    same_words = r"must be a whole number from 0 to 2\*\*63 - 1 \(the store keeps seeds as signed 64-bit integers\)"
    with pytest.raises(StoreError, match=r"seed 9223372036854775808 cannot be stored: a seed " + same_words):
        store.record_run(make_record(experiment.id, 2**63), png(1))
    with pytest.raises(StoreError, match=r"seed -2 cannot be stored: a seed " + same_words + ", or -1 when unknown"):
        store.record_run(make_record(experiment.id, -2), png(1))
    assert store.record_run(make_record(experiment.id, 2**63 - 1), png(1)).seed == 2**63 - 1


def test_an_uploaded_input_is_kept_by_content_under_home(sqlite_store: Store) -> None:
    data = b"\x89PNG\r\n\x1a\n not really a picture, but bytes are bytes"
    path = sqlite_store.save_input(data, ".PNG")
    assert path == sqlite_store.home / "inputs" / f"{hashlib.sha256(data).hexdigest()}.png"
    assert path.read_bytes() == data
    assert sqlite_store.save_input(data, ".png") == path
    assert not list(path.parent.glob(".*.partial"))
    with pytest.raises(StoreError, match=r"suffix '/\.\./x': expected a dot"):
        sqlite_store.save_input(data, "/../x")
    with pytest.raises(StoreError, match="input image is empty"):
        sqlite_store.save_input(b"", ".png")


def test_a_crash_while_keeping_an_input_leaves_no_file(sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: Any) -> None:
        raise Crash

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Crash):
        sqlite_store.save_input(b"abc", ".jpg")
    assert list((sqlite_store.home / "inputs").iterdir()) == []


def test_a_read_only_store_keeps_no_input(sqlite_store: Store) -> None:
    experiment = sqlite_store.add_experiment("e", {})
    sqlite_store.record_run(make_record(experiment.id), png(1))
    with open_store(sqlite_store.engine.url.render_as_string(hide_password=False), read_only=True) as reader:
        with pytest.raises(StoreError, match="is open read-only, so nothing can be written"):
            reader.save_input(b"abc", ".png")
    assert not (sqlite_store.home / "inputs").exists()


def test_the_experiments_list_and_a_search_page_read_indexes_not_every_run(sqlite_store: Store) -> None:
    """At 100,000 runs, reading every run row made these 324 and 329 ms (bench/store.py); the plans say they do not."""
    experiment = sqlite_store.add_experiment("e", {})
    sqlite_store.record_run(make_record(experiment.id), png(1))
    plans: list[str] = []

    @event.listens_for(sqlite_store.engine, "before_cursor_execute")
    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM run" in statement and "run.prompt" not in statement:
            plan = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            plans.append(" / ".join(row[-1] for row in plan))

    assert sqlite_store.list_experiments()[0].runs == 1
    assert sqlite_store.list_runs(search="oil painting", limit=5)[0].seed == 1
    assert sqlite_store.count_runs(search="oil painting") == 1
    counts, page, matches = plans
    assert counts == "SCAN run USING COVERING INDEX ix_run_experiment_model_status"
    assert page.startswith("SCAN run USING COVERING INDEX ix_run_created_at") and "TEMP B-TREE" not in page
    assert matches.startswith("SCAN run_fts VIRTUAL TABLE")
