"""The store: ``open_store`` and ``Store``, which adds to the reads (``queries.py``) every write.

Writing a cell: the image file first, durable under its final name, then its rows in one short
transaction, so a crash never leaves a row naming no file. Runners sharing a store claim cells
before rendering them, so each is rendered once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, select

from promptlab.errors import CellTakenError, StoreError
from promptlab.paths import home_dir
from promptlab.store.claims import CLAIM_TTL_S, claim, delete_claims, release, renew
from promptlab.store.connection import connect, database_reason
from promptlab.store.files import (
    INPUT_SUFFIX,
    MAX_PARALLEL_WRITES,
    abandoned,
    file_problem,
    fsync_dir,
    png_size,
    write_file_atomically,
)
from promptlab.store.queries import StoreReader
from promptlab.store.records import Claim, NewRun, RunRecord, ScoreRecord, check_json, check_score, check_score_value, embedding_rows, lora_rows, run_row
from promptlab.store.schema import Experiment, Image, Run, RunEmbedding, RunLora, RunTerm, Score
from promptlab.store.votes import VoteView, default_voter, insert_vote, vote_view, votes_query_by_id



def open_store(url: str | None = None, *, read_only: bool = False) -> Store:
    """Open the store at ``url`` (default ``paths.database_url()``), creating and migrating it as needed.

    ``read_only`` reads it without writing anything (SQLite ``mode=ro``; a PostgreSQL read-only
    session): no file, table or migration is made, so a store on a read-only disk or in someone
    else's folder can be browsed, and a write raises StoreError saying so. A SQLite file that does
    not exist yet is created as usual, since there is nothing to read.
    """
    connected = connect(url, read_only=read_only)
    return Store(connected.engine, home_dir().resolve(), read_only=connected.read_only)


@dataclass
class _Prepared:
    """A cell checked and ready to write: its rows, and its PNG bytes (none for a failure)."""

    record: RunRecord
    run: Run
    scores: tuple[ScoreRecord, ...]
    image: Image | None
    data: bytes


class Store(StoreReader):
    """The run store. Each method runs its own short session; the object is cheap to keep open."""

    def __init__(self, engine: Engine, home: Path, *, read_only: bool = False) -> None:
        super().__init__(engine, home, read_only=read_only)
        # Experiments are never deleted, so one seen once needs no second look (a foreign key still checks).
        self._known_experiments: set[int] = set()

    def __enter__(self) -> Store:
        return self

    def add_experiment(
        self,
        name: str,
        spec: Mapping[str, Any],
        source_path: str | Path | None = None,
        *,
        subject: str = "",
        intent: str = "",
    ) -> Experiment:
        """Record a new experiment; StoreError if the name is taken."""
        row = Experiment(
            name=name,
            spec=check_json(dict(spec), f"experiment {name!r} spec"),
            source_path=str(source_path) if source_path is not None else None,
            subject=subject,
            intent=intent,
        )
        try:
            with self._session(write=True) as session:
                session.add(row)
                session.commit()
        except IntegrityError as exc:
            raise StoreError(f"experiment {name!r} already exists in {self.url}") from exc
        return row

    def get_or_create_experiment(
        self,
        name: str,
        spec: Mapping[str, Any],
        source_path: str | Path | None = None,
        *,
        subject: str = "",
        intent: str = "",
    ) -> Experiment:
        """The experiment called ``name``, created if new; an existing one takes the given spec.

        Running an edited file again keeps its recorded cells and adds the new ones, so the
        stored spec is the latest file's.
        """
        spec = check_json(dict(spec), f"experiment {name!r} spec")
        source = str(source_path) if source_path is not None else None
        try:
            with self._session(write=True) as session:
                row = session.exec(select(Experiment).where(Experiment.name == name)).first()
                if row is None:
                    row = Experiment(name=name, spec=spec, source_path=source, subject=subject, intent=intent)
                else:
                    row.spec, row.source_path, row.subject, row.intent = spec, source, subject, intent
                session.add(row)
                session.commit()
                return row
        except IntegrityError:
            # Another process created it between our read and our write.
            return self.get_or_create_experiment(name, spec, source_path, subject=subject, intent=intent)

    def drop_empty_experiment(self, experiment_id: int) -> bool:
        """Delete the experiment's row if it holds no runs (a run whose setup failed made it); whether it went."""
        with self._session(write=True) as session:
            if session.exec(select(Run.id).where(Run.experiment_id == experiment_id).limit(1)).first() is not None:
                return False
            row = session.get(Experiment, experiment_id)
            if row is None:
                return False
            session.delete(row)
            session.commit()
            return True

    def record_run(
        self, record: RunRecord, image: bytes, scores: Sequence[ScoreRecord] = (), *, replace: Collection[int] = ()
    ) -> Run:
        """Record a rendered cell: image file first, then its rows in one transaction.

        ``image`` is the finished PNG file, stored as given (``promptlab.metadata.run_png`` makes
        it with A1111's ``parameters`` chunk and a ``promptlab`` chunk holding the record and its
        scores). ``replace`` as in ``record_runs``.
        """
        return self.record_runs([NewRun(record, image, tuple(scores))], replace=replace)[0]

    def record_runs(self, runs: Sequence[NewRun], *, replace: Collection[int] = ()) -> list[Run]:
        """Record rendered cells together: every image file first, then all their rows in one transaction.

        What ``record_run`` does for each cell, at about the cost of one: the files are written
        side by side (each fsynced, then their folder once), then the rows go in with one
        statement per table. Either every row is written or none is; a file no row names is
        harmless, and writing it again costs nothing. A cell already recorded as ok refuses the
        lot with ``CellTakenError``, unless its run is in ``replace`` (its image was lost).
        """
        if not runs:
            return []
        self._check_writable()
        # 1. Check everything before touching the disk.
        self._check_experiments([new.record for new in runs])
        prepared = [self._prepare(new) for new in runs]
        # 2. The files, durable under their final names, before any row names them.
        self._write_images({p.image.sha256: p.data for p in prepared if p.image is not None})
        # 3. The rows, in one transaction.
        return self._insert_runs(prepared, replace)

    def add_scores(self, scores: Mapping[int, Sequence[ScoreRecord]]) -> int:
        """Add scores to recorded runs (run id -> its new scores) in one transaction; the number added.

        A score a run already has (same kind and scorer) is kept as it is and not counted; a run id
        the store does not hold (deleted) is refused with StoreError, and then nothing is written.
        """
        for run_id, new in scores.items():
            for score in new:
                check_score_value(score, f"run {run_id}")
        ids = sorted(scores)
        if not ids:
            return 0
        with self._session(write=True) as session:
            held = set(session.exec(select(Run.id).where(Run.id.in_(ids))).all())
            missing = [run_id for run_id in ids if run_id not in held]
            if missing:
                raise StoreError(f"run {missing[0]} is not in {self.url} (deleted?); score only recorded runs")
            had = select(Score.run_id, Score.kind, Score.scorer).where(Score.run_id.in_(ids))
            seen = {tuple(row) for row in session.exec(had).all()}
            rows = []
            for run_id in ids:
                for score in scores[run_id]:
                    if (run_id, score.kind, score.scorer) not in seen:
                        seen.add((run_id, score.kind, score.scorer))
                        rows.append({"run_id": run_id, **score.__dict__})
            if rows:
                session.connection().execute(insert(Score.__table__), rows)
            session.commit()
        return len(rows)

    def record_failure(self, record: RunRecord, error: str) -> Run:
        """Record a cell that could not be rendered or scored, with its error text."""
        return self._insert_runs([_Prepared(record, run_row(record, "failed", error, None), (), None, b"")])[0]

    def record_vote(self, left_run_id: int, right_run_id: int, choice: str, *, voter: str | None = None) -> VoteView:
        """Record a person's vote between two runs as they were shown (left, right): ``left``, ``right`` or ``tie``.

        The runs must be finished runs of one experiment, seed and subject from two variants;
        ``voter`` defaults to the operating system's user name. Checked and written in one
        transaction: a run deleted meanwhile is refused with StoreError naming it, and nothing is written.
        """
        with self._transaction() as conn:
            vote_id = insert_vote(conn, left_run_id, right_run_id, choice, voter or default_voter(), self.url)
            return vote_view(conn.execute(votes_query_by_id(vote_id)).one())

    def claim_cells(
        self,
        experiment_id: int,
        cells: Sequence[tuple[str, int]],
        owner: str,
        *,
        ttl_s: float = CLAIM_TTL_S,
        redo: Collection[int] = (),
    ) -> Claim:
        """Claim ``cells`` (variant key, seed) for ``owner`` (``runner_id()``) for ``ttl_s`` seconds.

        A cell recorded as ok meanwhile is done (unless its run is in ``redo``, one whose image is
        to be made again); one another runner claims is taken, unless that claim has lapsed or its
        process, on this machine, is gone (killed): then it is the caller's.
        """
        if not cells:
            return Claim((), (), ())
        with self._transaction() as conn:
            return claim(conn, experiment_id, cells, owner, ttl_s=ttl_s, redo=redo)

    def renew_claims(self, owner: str, *, ttl_s: float = CLAIM_TTL_S) -> None:
        """Keep ``owner``'s claims for another ``ttl_s`` seconds (a runner's heartbeat)."""
        with self._transaction() as conn:
            renew(conn, owner, ttl_s=ttl_s)

    def release_claims(self, owner: str) -> None:
        """Drop ``owner``'s claims (a runner that stops: its unrendered cells are free again)."""
        with self._transaction() as conn:
            release(conn, owner)

    def save_input(self, data: bytes, suffix: str) -> Path:
        """Keep an input image (an img2img or inpaint upload) by content: ``inputs/<sha256><suffix>``; return its path.

        Written whole or not at all, like an image; the same bytes twice are one file. ``suffix`` is
        the file's extension with its dot (``.png``, ``.jpg``), kept lower-case so a later run can
        name the file again.
        """
        self._check_writable()
        suffix = suffix.lower()
        if not INPUT_SUFFIX.fullmatch(suffix):
            raise StoreError(f"input image suffix {suffix!r}: expected a dot and 1 to 8 letters or digits, e.g. '.png'")
        if not data:
            raise StoreError("input image is empty (0 bytes); upload the image file again")
        path = self.inputs_dir / f"{hashlib.sha256(data).hexdigest()}{suffix}"
        if path.is_file() and path.stat().st_size == len(data):
            return path
        try:
            self.inputs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the input folder {self.inputs_dir}: {exc}") from exc
        write_file_atomically(path, data, "input image")
        try:
            fsync_dir(self.inputs_dir)
        except OSError as exc:
            raise StoreError(f"cannot write input folder {self.inputs_dir}: {exc}") from exc
        return path

    def clean_partials(self) -> int:
        """Remove the ``.partial`` image files that writers killed mid-write left behind; return how many.

        A file of a live writer is kept: its name holds its machine and process id, and one from
        another machine (or an older promptlab) goes only once it is ``PARTIAL_MAX_AGE_S`` old.
        """
        removed = 0
        try:
            leftovers = list(self.images_dir.glob(".*.partial"))
        except OSError:
            return 0
        for path in leftovers:
            try:
                if abandoned(path):
                    path.unlink()
                    removed += 1
            except OSError:
                continue  # gone already, or not ours to remove: never worth stopping a run for
        return removed

    def _check_experiments(self, records: Sequence[RunRecord]) -> None:
        """StoreError naming a record whose experiment is not in the store (one query for a batch, none once seen)."""
        ids = {record.experiment_id for record in records} - self._known_experiments
        if not ids:
            return
        with self._session() as session:
            self._known_experiments.update(session.exec(select(Experiment.id).where(Experiment.id.in_(ids))).all())
        for record in records:
            if record.experiment_id not in self._known_experiments:
                raise StoreError(f"cannot record run ({record.cell}): no experiment {record.experiment_id} in {self.url}")

    def _prepare(self, new: NewRun) -> _Prepared:
        record = new.record
        for score in new.scores:
            check_score(score, record)
        run = run_row(record, "ok", None, None)
        if not isinstance(new.image, (bytes, bytearray)):
            raise StoreError(
                f"run ({record.cell}): the image is a {type(new.image).__name__}, not PNG bytes; "
                "encode it with promptlab.metadata.run_png(record, image, scores, experiment)"
            )
        data = bytes(new.image)
        width, height = png_size(data, f"run ({record.cell})")
        sha256 = hashlib.sha256(data).hexdigest()
        image = Image(
            sha256=sha256,
            path=self.image_path(sha256).relative_to(self.home).as_posix(),
            width=width,
            height=height,
            size_bytes=len(data),
        )
        run.image_sha256 = sha256
        return _Prepared(record, run, tuple(new.scores), image, data)

    def _write_images(self, files: Mapping[str, bytes]) -> None:
        """Write each file to ``images/<sha256>.png`` whole or not at all, then fsync the folder once.

        The files are written in parallel: the filesystem commits concurrent fsyncs together,
        so a batch costs about what one file does.
        """
        todo = {sha256: data for sha256, data in files.items() if not self._has_image(sha256, len(data))}
        if not todo:
            return
        self._check_writable()
        try:
            self.images_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the image folder {self.images_dir}: {exc}") from exc
        if len(todo) == 1:
            self._write_image(*next(iter(todo.items())))
        else:
            with ThreadPoolExecutor(max_workers=min(len(todo), MAX_PARALLEL_WRITES)) as pool:
                # list() re-raises the first failure once every write has finished.
                list(pool.map(self._write_image, todo, todo.values()))
        try:
            fsync_dir(self.images_dir)
        except OSError as exc:
            raise StoreError(f"cannot write image folder {self.images_dir}: {exc}") from exc

    def _has_image(self, sha256: str, size: int) -> bool:
        # A file already there is checked whole: a damaged one is written again.
        path = self.image_path(sha256)
        return path.is_file() and path.stat().st_size == size and file_problem(path, sha256) is None

    def _write_image(self, sha256: str, data: bytes) -> None:
        """Write ``data`` to ``images/<sha256>.png`` whole or not at all: temp file, fsync, rename."""
        write_file_atomically(self.image_path(sha256), data, "image")

    def _insert_runs(self, prepared: Sequence[_Prepared], replace: Collection[int] = ()) -> list[Run]:
        """Write the rows of ``prepared`` in one transaction; return their runs, ids filled in."""
        first = prepared[0].record
        what = f"run ({first.cell})" if len(prepared) == 1 else f"{len(prepared)} runs (the first: {first.cell})"
        try:
            with self._transaction() as conn:
                records = [p.record for p in prepared]
                # 1. Earlier failed attempts at these cells give way; a cell recorded as ok refuses the lot.
                _delete_runs(conn, self._previous_failures(conn, records, replace))
                # 2. The images not stored yet, the runs, then their terms and scores.
                _insert_images(conn, [p.image for p in prepared if p.image is not None])
                _insert_run_rows(conn, prepared)
                # 3. The cells are recorded: whoever claimed them is done with them.
                delete_claims(conn, records)
        except IntegrityError as exc:
            raise StoreError(f"cannot record {what} in {self.url}: {database_reason(exc)}") from exc
        return [p.run for p in prepared]

    def _previous_failures(self, conn: Connection, records: Sequence[RunRecord], replace: Collection[int] = ()) -> list[int]:
        """Ids of earlier failed runs of these cells (and of the ok runs in ``replace``); CellTakenError
        naming every cell recorded as ok by another run."""
        cells = {(r.experiment_id, r.variant_key, r.seed): r for r in records}
        if len(records) == 1:
            # The common case (record_run) by equality: no IN list to expand.
            one = records[0]
            found = conn.execute(_PREVIOUS_RUN, {"experiment": one.experiment_id, "key": one.variant_key, "seed": one.seed})
        else:
            found = conn.execute(
                _PREVIOUS_RUNS,
                {
                    "experiments": list({r.experiment_id for r in records}),
                    "keys": list({r.variant_key for r in records}),
                    "seeds": list({r.seed for r in records}),
                },
            )
        stale = []
        taken: dict[tuple[int, str, int], int] = {}
        for run_id, experiment_id, variant_key, seed, status in found:
            cell = (experiment_id, variant_key, seed)
            if cell not in cells:
                continue
            if status == "ok" and run_id not in replace:
                taken[cell] = run_id
            else:
                stale.append(run_id)
        if taken:
            cell, run_id = next(iter(taken.items()))
            record = cells[cell]
            more = f" (and {len(taken) - 1} more cells)" if len(taken) > 1 else ""
            raise CellTakenError(
                f"cannot record run ({record.cell}) in {self.url}: the cell is already recorded as run {run_id}{more}",
                cells=tuple((key, seed) for _, key, seed in taken),
            )
        return stale


_run = Run.__table__.c  # type: ignore[attr-defined]
# Built once: a statement per record would cost more to build than to run.
_PREVIOUS_RUNS = select(_run.id, _run.experiment_id, _run.variant_key, _run.seed, _run.status).where(
    _run.experiment_id.in_(bindparam("experiments", expanding=True)),
    _run.variant_key.in_(bindparam("keys", expanding=True)),
    _run.seed.in_(bindparam("seeds", expanding=True)),
)
_PREVIOUS_RUN = select(_run.id, _run.experiment_id, _run.variant_key, _run.seed, _run.status).where(
    _run.experiment_id == bindparam("experiment"), _run.variant_key == bindparam("key"), _run.seed == bindparam("seed")
)
_INSERT_RUNS = insert(Run.__table__).returning(_run.id, _run.experiment_id, _run.variant_key, _run.seed)
_UPSERTS = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


def _delete_runs(conn: Connection, ids: Sequence[int]) -> None:
    if not ids:
        return
    for child in (RunTerm.__table__, RunEmbedding.__table__, RunLora.__table__, Score.__table__):
        conn.execute(delete(child).where(child.c.run_id.in_(ids)))  # type: ignore[attr-defined]
    conn.execute(delete(Run.__table__).where(Run.__table__.c.id.in_(ids)))  # type: ignore[attr-defined]


def _insert_images(conn: Connection, images: Sequence[Image]) -> None:
    """Insert the image rows not there yet (an image shared by several runs is one row)."""
    table = Image.__table__
    wanted = {image.sha256: image for image in images}
    if not wanted:
        return
    dialect = conn.dialect.name
    if dialect in _UPSERTS:
        # One statement: the database skips the rows it has.
        conn.execute(_UPSERTS[dialect](table).on_conflict_do_nothing(index_elements=["sha256"]), [_columns(i) for i in wanted.values()])
        return
    known = set(conn.execute(select(table.c.sha256).where(table.c.sha256.in_(wanted))).scalars())  # type: ignore[attr-defined]
    new = [_columns(image) for sha256, image in wanted.items() if sha256 not in known]
    if new:
        conn.execute(insert(table), new)


def _insert_run_rows(conn: Connection, prepared: Sequence[_Prepared]) -> None:
    """Insert the runs, fill in their ids, then insert their terms and scores."""
    # Ids are matched back by cell (unique), not by row order, so SQLite too inserts in one statement.
    inserted = conn.execute(_INSERT_RUNS, [_columns(p.run, skip="id") for p in prepared])
    ids = {(experiment_id, key, seed): run_id for run_id, experiment_id, key, seed in inserted}
    terms: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    embeddings: list[dict[str, Any]] = []
    loras: list[dict[str, Any]] = []
    for p in prepared:
        record = p.record
        run_id = p.run.id = ids[record.experiment_id, record.variant_key, record.seed]
        terms += [
            {"run_id": run_id, "position": position, "category": t.category, "text": t.text, "weight": t.weight}
            for position, t in enumerate(record.prompt.terms)
        ]
        scores += [{"run_id": run_id, **score.__dict__} for score in p.scores]
        embeddings += embedding_rows(run_id, record.params)
        loras += lora_rows(run_id, record.params)
    if terms:
        conn.execute(insert(RunTerm.__table__), terms)
    if embeddings:
        conn.execute(insert(RunEmbedding.__table__), embeddings)
    if loras:
        conn.execute(insert(RunLora.__table__), loras)
    if scores:
        conn.execute(insert(Score.__table__), scores)


def _columns(row: SQLModel, skip: str = "") -> dict[str, Any]:
    """A table row's column values, for a Core insert."""
    return {c.name: getattr(row, c.name) for c in row.__table__.columns if c.name != skip}  # type: ignore[attr-defined]

