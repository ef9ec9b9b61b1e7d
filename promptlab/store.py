"""The run store: every experiment, run, image and score, in SQL through sqlmodel.

    store = open_store()            # PROMPTLAB_DB, else PROMPTLAB_HOME/promptlab.db
    experiment = store.get_or_create_experiment(spec.name, spec.raw, spec.path, subject=spec.subject)
    done = store.existing_cells(experiment.id)
    for cell in cells(spec):
        if cell.key in done:
            continue
        record = RunRecord.for_variant(experiment.id, cell.variant, cell.seed, render_s=1.2)
        store.record_run(record, image, [ScoreRecord("intent", "clip", 0.31, "a squirrel")])
    store.record_runs([NewRun(record, image, scores), ...])   # a batch: its files, then its rows at once
    store.list_runs(search="oil painting", limit=50)
    store.runs_frame("squirrel-styles")      # one row per run, for promptlab.analysis

How it stays safe:

1. SQLite runs in WAL mode (``synchronous=NORMAL``, a busy timeout), so the dashboard reads
   while a sweep writes. Transactions that write start with ``BEGIN IMMEDIATE``: a writer waits
   for another rather than failing half-way.
2. An image is a content-addressed file ``images/<sha256>.png`` under ``PROMPTLAB_HOME``,
   written to a temporary name, fsynced and renamed (a batch's files side by side, then their
   folder fsynced once) before the rows that name it are written in one short transaction.
   A crash leaves at worst a file no row names, never a row naming no file.
3. A cell (experiment, variant key, seed) exists once: a unique constraint. A failed cell is
   recorded with its error, and a later success or failure of the same cell replaces it, as
   does a success replacing a run whose image file is missing or changed (``broken_images``).
   Runners sharing a store claim cells before rendering them (``claim_cells``), so each cell
   is rendered once; a claim lapses when its runner stops renewing it or its process is gone.
4. Schema changes are numbered migrations (``MIGRATIONS``) recorded in ``_migration`` and
   applied on open, each under the database's write lock, so processes opening a new store at
   once take turns; opening twice changes nothing. A schema from a newer promptlab is refused.
5. Text search is a case-insensitive substring match on the prompt's plain text: on SQLite an
   FTS5 trigram index (3 characters or more), otherwise ``ILIKE``.
6. Any failure to read or write raises ``StoreError`` naming the database, in one line (the
   database's own message; the SQL stays on the exception's cause); nothing is swallowed.
7. ``open_store(read_only=True)`` reads a store it may not write (SQLite ``mode=ro``, a
   PostgreSQL read-only session): nothing is created or migrated, and a write says why not.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import socket
import sqlite3
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    case,
    column,
    delete,
    event,
    func,
    inspect,
    insert,
    literal,
    table,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, create_engine, select

from promptlab.errors import CellTakenError, PromptSyntaxError, StoreError
from promptlab.paths import database_url, home_dir
from promptlab.prompt import Prompt, convert

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from promptlab.experiment import Variant

STATUSES = ("ok", "failed")
SCORE_KINDS = ("intent", "prompt")
# Parameters with a column of their own on Run (diffusers' names); the rest go to Run.params.
PARAM_COLUMNS = ("num_inference_steps", "guidance_scale", "width", "height", "scheduler", "strength")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# The seed column is a signed 64-bit integer in every database promptlab supports.
MAX_STORED_SEED = 2**63 - 1
# Image files of a batch written at once (their fsyncs overlap).
MAX_PARALLEL_WRITES = 16
# FTS5's trigram tokenizer matches substrings of 3 characters or more.
FTS_MIN_CHARS = 3
# A runner renews its claims every third of this; a claim not renewed for this long has lapsed.
CLAIM_TTL_S = 120.0
# A ``.partial`` image file whose writer cannot be told alive (another machine, an older name) is
# left this long: every write finishes within seconds, so one this old was abandoned.
PARTIAL_MAX_AGE_S = 600.0
# PostgreSQL advisory lock keys (any fixed numbers): migrations, and claims (per experiment).
MIGRATION_LOCK_KEY = 0x70726F6D70746C61
CLAIM_LOCK_KEY = 0x7072
# An input image's extension: a dot and a few letters or digits, never a path.
INPUT_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Experiment(SQLModel, table=True):
    """An experiment: its file's parsed contents, where it came from, what it draws."""

    __tablename__ = "experiment"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    spec: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    source_path: str | None = None
    subject: str = ""
    intent: str = ""
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))


class Image(SQLModel, table=True):
    """A content-addressed PNG file under the home folder."""

    __tablename__ = "image"

    sha256: str = Field(primary_key=True, max_length=64)
    path: str
    width: int
    height: int
    size_bytes: int
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True))


class Run(SQLModel, table=True):
    """One image of one cell (experiment, variant, seed), or the error that prevented it."""

    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("experiment_id", "variant_key", "seed", name="uq_run_cell"),
        # Listings filter by experiment or model and show the newest first.
        Index("ix_run_experiment_id_created_at", "experiment_id", "created_at"),
        Index("ix_run_model_created_at", "model", "created_at"),
        # Run ids are never reused, even after a failed run is replaced: links stay true.
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id")
    variant_key: str = Field(index=True)
    label: str = ""
    seed: int = Field(sa_type=BigInteger)
    prompt: str
    prompt_a1111: str = ""
    prompt_plain: str = ""
    subject: str = ""
    intent: str = ""
    negative_prompt: str = ""
    model: str
    task: str = "txt2img"
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    width: int | None = None
    height: int | None = None
    scheduler: str | None = None
    strength: float | None = None
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    axes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    terms: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    status: str = "ok"
    error: str | None = Field(default=None, sa_type=Text)
    render_s: float | None = None
    score_s: float | None = None
    created_at: datetime = Field(default_factory=_now, sa_type=DateTime(timezone=True), index=True)
    image_sha256: str | None = Field(default=None, foreign_key="image.sha256")


class RunTerm(SQLModel, table=True):
    """One term of a run's prompt, so "runs with term X" is an indexed query."""

    __tablename__ = "run_term"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    position: int
    category: str | None = None
    text: str = Field(index=True)
    weight: float = 1.0


class Score(SQLModel, table=True):
    """A score of a run's image against a text: ``intent`` (what it should show) or ``prompt``."""

    __tablename__ = "score"
    __table_args__ = (UniqueConstraint("run_id", "kind", "scorer", name="uq_score_run_kind_scorer"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    kind: str
    scorer: str
    model: str = ""
    pretrained: str | None = None
    weights_sha256: str | None = None
    text: str = ""
    value: float


class CellClaim(SQLModel, table=True):
    """A runner's claim on a cell it is about to render, so runners sharing a store never render a cell twice.

    ``owner`` is ``host:pid:token``; the claim holds until ``expires_at`` while its runner renews it.
    """

    __tablename__ = "cell_claim"

    experiment_id: int = Field(foreign_key="experiment.id", primary_key=True)
    variant_key: str = Field(primary_key=True)
    seed: int = Field(sa_type=BigInteger, primary_key=True)
    owner: str
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))


# 1. Migrations: each builds its schema from its own frozen definitions, never from the models.

_migration_table = Table(
    "_migration",
    MetaData(),
    Column("name", String, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def m001_initial(conn: Connection) -> None:
    """Experiment, Image, Run, RunTerm and Score with the dashboard's indexes."""
    meta = MetaData()
    stamp = DateTime(timezone=True)
    Table(
        "experiment", meta,
        Column("id", Integer, primary_key=True),
        Column("name", String, nullable=False),
        Column("spec", JSON, nullable=False),
        Column("source_path", String),
        Column("subject", String, nullable=False),
        Column("intent", String, nullable=False),
        Column("created_at", stamp, nullable=False),
        Index("ix_experiment_name", "name", unique=True),
    )  # fmt: skip
    Table(
        "image", meta,
        Column("sha256", String(64), primary_key=True),
        Column("path", String, nullable=False),
        Column("width", Integer, nullable=False),
        Column("height", Integer, nullable=False),
        Column("size_bytes", Integer, nullable=False),
        Column("created_at", stamp, nullable=False),
    )  # fmt: skip
    Table(
        "run", meta,
        Column("id", Integer, primary_key=True),
        Column("experiment_id", Integer, ForeignKey("experiment.id"), nullable=False),
        Column("variant_key", String, nullable=False),
        Column("label", String, nullable=False),
        Column("seed", BigInteger, nullable=False),
        Column("prompt", String, nullable=False),
        Column("prompt_a1111", String, nullable=False),
        Column("prompt_plain", String, nullable=False),
        Column("subject", String, nullable=False),
        Column("intent", String, nullable=False),
        Column("negative_prompt", String, nullable=False),
        Column("model", String, nullable=False),
        Column("task", String, nullable=False),
        Column("num_inference_steps", Integer),
        Column("guidance_scale", Float),
        Column("width", Integer),
        Column("height", Integer),
        Column("scheduler", String),
        Column("strength", Float),
        Column("params", JSON, nullable=False),
        Column("axes", JSON, nullable=False),
        Column("terms", JSON, nullable=False),
        Column("status", String, nullable=False),
        Column("error", Text),
        Column("render_s", Float),
        Column("score_s", Float),
        Column("created_at", stamp, nullable=False),
        Column("image_sha256", String, ForeignKey("image.sha256")),
        UniqueConstraint("experiment_id", "variant_key", "seed", name="uq_run_cell"),
        Index("ix_run_experiment_id_created_at", "experiment_id", "created_at"),
        Index("ix_run_model_created_at", "model", "created_at"),
        Index("ix_run_variant_key", "variant_key"),
        Index("ix_run_created_at", "created_at"),
        sqlite_autoincrement=True,
    )  # fmt: skip
    Table(
        "run_term", meta,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("run.id"), nullable=False),
        Column("position", Integer, nullable=False),
        Column("category", String),
        Column("text", String, nullable=False),
        Column("weight", Float, nullable=False),
        Index("ix_run_term_run_id", "run_id"),
        Index("ix_run_term_text", "text"),
    )  # fmt: skip
    Table(
        "score", meta,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("run.id"), nullable=False),
        Column("kind", String, nullable=False),
        Column("scorer", String, nullable=False),
        Column("model", String, nullable=False),
        Column("pretrained", String),
        Column("weights_sha256", String),
        Column("text", String, nullable=False),
        Column("value", Float, nullable=False),
        UniqueConstraint("run_id", "kind", "scorer", name="uq_score_run_kind_scorer"),
        Index("ix_score_run_id", "run_id"),
    )  # fmt: skip
    meta.create_all(conn, checkfirst=True)


def m002_run_search(conn: Connection) -> None:
    """SQLite: an FTS5 trigram index of the runs' plain prompts, kept in sync by triggers."""
    if conn.dialect.name != "sqlite":
        return
    conn.exec_driver_sql(
        "CREATE VIRTUAL TABLE IF NOT EXISTS run_fts USING fts5("
        "prompt_plain, content='run', content_rowid='id', tokenize='trigram')"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER IF NOT EXISTS run_fts_insert AFTER INSERT ON run BEGIN "
        "INSERT INTO run_fts(rowid, prompt_plain) VALUES (new.id, new.prompt_plain); END"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER IF NOT EXISTS run_fts_delete AFTER DELETE ON run BEGIN "
        "INSERT INTO run_fts(run_fts, rowid, prompt_plain) VALUES ('delete', old.id, old.prompt_plain); END"
    )
    conn.exec_driver_sql(
        "CREATE TRIGGER IF NOT EXISTS run_fts_update AFTER UPDATE OF prompt_plain ON run BEGIN "
        "INSERT INTO run_fts(run_fts, rowid, prompt_plain) VALUES ('delete', old.id, old.prompt_plain); "
        "INSERT INTO run_fts(rowid, prompt_plain) VALUES (new.id, new.prompt_plain); END"
    )
    conn.exec_driver_sql("INSERT INTO run_fts(run_fts) VALUES ('rebuild')")


def m003_cell_claim(conn: Connection) -> None:
    """CellClaim: the cells runners sharing the store are rendering now."""
    meta = MetaData()
    # The table its foreign key names, as m001 made it (only its key matters here).
    Table("experiment", meta, Column("id", Integer, primary_key=True))
    claims = Table(
        "cell_claim", meta,
        Column("experiment_id", Integer, ForeignKey("experiment.id"), primary_key=True),
        Column("variant_key", String, primary_key=True),
        Column("seed", BigInteger, primary_key=True),
        Column("owner", String, nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
    )  # fmt: skip
    claims.create(conn, checkfirst=True)


#: Applied in order on open; a name, once released, never changes meaning.
MIGRATIONS: dict[str, Callable[[Connection], None]] = {
    "m001_initial": m001_initial,
    "m002_run_search": m002_run_search,
    "m003_cell_claim": m003_cell_claim,
}


def migrate(engine: Engine, *, read_only: bool = False) -> list[str]:
    """Apply the migrations ``_migration`` does not list, each in its own transaction; return their names.

    Each runs under the database's write lock (``_migration_lock``) and first looks again whether
    another process applied it meanwhile, so processes opening a new store at once take turns.
    A schema with migrations this code does not know (a newer promptlab's) raises StoreError;
    ``read_only`` applies nothing.
    """
    applied = _applied_migrations(engine)
    unknown = sorted(applied - set(MIGRATIONS))
    if unknown:
        raise StoreError(
            f"database {engine.url.render_as_string(hide_password=True)} has a newer schema than this promptlab "
            f"(migrations {', '.join(unknown)} are unknown to it); upgrade promptlab (pip install -U promptlab)"
        )
    if read_only or applied.issuperset(MIGRATIONS):
        return []
    done: list[str] = []
    for name, step in MIGRATIONS.items():
        with _migration_lock(engine) as conn:
            _migration_table.create(conn, checkfirst=True)
            if conn.execute(select(_migration_table.c.name).where(_migration_table.c.name == name)).first():
                continue
            step(conn)
            conn.execute(insert(_migration_table).values(name=name, applied_at=_now()))
            done.append(name)
    return done


def _applied_migrations(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if not inspect(conn).has_table(_migration_table.name):
            return set()
        return set(conn.execute(select(_migration_table.c.name)).scalars())


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the database's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock).

    Others wait for it (SQLite's busy timeout; PostgreSQL blocks) rather than race on CREATE TABLE.
    """
    dialect = engine.dialect.name
    writer = engine.execution_options(promptlab_write=True) if dialect == "sqlite" else engine
    with writer.begin() as conn:
        if dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        yield conn


# 2. What goes in and what comes out.


@dataclass(frozen=True)
class ScoreRecord:
    """A score to record with a run."""

    kind: str
    scorer: str
    value: float
    text: str
    model: str = ""
    pretrained: str | None = None
    weights_sha256: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """Everything about one cell but its image and scores; ``params`` uses diffusers' names.

    ``params`` holds the generation parameters and whatever else describes the render (model
    family, dtype, device, scheduler class and config, library versions): the names in
    ``PARAM_COLUMNS`` get columns of their own, the rest is kept as JSON.
    """

    experiment_id: int
    variant_key: str
    seed: int
    prompt: Prompt
    model: str
    negative_prompt: str = ""
    task: str = "txt2img"
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    axes: Mapping[str, Any] = field(default_factory=dict)
    intent: str = ""
    render_s: float | None = None
    score_s: float | None = None
    # The compel text as rendered, where the user wrote it (``promptlab render``): kept verbatim,
    # since the prompt model's own text may differ in ways that matter (a BREAK, a weighted comma).
    prompt_text: str | None = None

    @classmethod
    def for_variant(cls, experiment_id: int, variant: Variant, seed: int, **extra: Any) -> RunRecord:
        """The record of ``variant`` at ``seed``; ``extra`` sets timings, and ``params`` adds to the variant's."""
        params = {**variant.params, "long_prompt": variant.long_prompt, **extra.pop("params", {})}
        return cls(
            experiment_id=experiment_id,
            variant_key=variant.key,
            seed=seed,
            prompt=variant.prompt,
            model=variant.model,
            negative_prompt=variant.negative_prompt,
            task=variant.task,
            params=params,
            label=variant.label,
            axes=dict(variant.axis_values),
            intent=variant.intent,
            **extra,
        )

    @property
    def cell(self) -> str:
        return f"experiment {self.experiment_id}, variant {self.variant_key}, seed {self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape stored in the image's ``promptlab`` chunk."""
        compel, a1111, plain = _prompt_texts(self, strict=False)
        return {
            "experiment_id": self.experiment_id,
            "variant_key": self.variant_key,
            "label": self.label,
            "seed": self.seed,
            "subject": self.prompt.subject,
            "prompt": compel,
            "prompt_a1111": a1111,
            "prompt_plain": plain,
            "terms": _terms_json(self.prompt),
            "negative_prompt": self.negative_prompt,
            "intent": self.intent or self.prompt.subject,
            "model": self.model,
            "task": self.task,
            "params": dict(self.params),
            "axes": dict(self.axes),
        }


@dataclass(frozen=True)
class NewRun:
    """A rendered cell for ``Store.record_runs``: its record, its image (PNG bytes or a PIL image), its scores."""

    record: RunRecord
    image: bytes | PILImage
    scores: Sequence[ScoreRecord] = ()


@dataclass
class _Prepared:
    """A cell checked and ready to write: its rows, and its PNG bytes (none for a failure)."""

    record: RunRecord
    run: Run
    scores: tuple[ScoreRecord, ...]
    image: Image | None
    data: bytes


class ScoreView(BaseModel):
    """A recorded score."""

    kind: str
    scorer: str
    model: str
    pretrained: str | None
    weights_sha256: str | None
    text: str
    value: float


class RunView(BaseModel):
    """A recorded run as the dashboard and CLI show it; ``model_dump(mode="json")`` is its JSON."""

    id: int
    experiment_id: int
    experiment: str
    variant_key: str
    label: str
    seed: int
    prompt: str
    prompt_a1111: str
    prompt_plain: str
    negative_prompt: str
    subject: str
    intent: str
    model: str
    task: str
    params: dict[str, Any]
    terms: list[dict[str, Any]]
    axes: dict[str, Any]
    status: str
    error: str | None
    image_sha256: str | None
    image_path: Path | None
    render_s: float | None
    score_s: float | None
    created_at: datetime
    scores: list[ScoreView]

    def score(self, kind: str = "intent", scorer: str | None = None) -> float | None:
        """The value of the first score of ``kind`` (from ``scorer`` if given), or None."""
        return next((s.value for s in self.scores if s.kind == kind and scorer in (None, s.scorer)), None)


class ExperimentSummary(BaseModel):
    """An experiment with its run counts, for listings."""

    id: int
    name: str
    source_path: str | None
    subject: str
    intent: str
    created_at: datetime
    runs: int
    ok: int
    failed: int
    models: list[str]
    last_run_at: datetime | None


@dataclass(frozen=True)
class Claim:
    """What ``Store.claim_cells`` found for each cell (variant key, seed): now the caller's, recorded
    meanwhile (done), or being rendered by another runner (taken)."""

    claimed: tuple[tuple[str, int], ...]
    done: tuple[tuple[str, int], ...]
    taken: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class BrokenImage:
    """A run recorded as ok whose image file is ``missing``, or ``changed`` (its sha256 is not the recorded one)."""

    run_id: int
    variant_key: str
    seed: int
    path: Path
    problem: str


# 3. The store.


def open_store(url: str | None = None, *, read_only: bool = False) -> Store:
    """Open the store at ``url`` (default ``paths.database_url()``), creating and migrating it as needed.

    ``read_only`` reads it without writing anything (SQLite ``mode=ro``; a PostgreSQL read-only
    session): no file, table or migration is made, so a store on a read-only disk or in someone
    else's folder can be browsed, and a write raises StoreError saying so. A SQLite file that does
    not exist yet is created as usual, since there is nothing to read.
    """
    url = url or database_url()
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {url!r}: {exc}; expected e.g. sqlite:///path/to/promptlab.db") from exc
    display = parsed.render_as_string(hide_password=True)
    sqlite = parsed.get_backend_name() == "sqlite"
    path = Path(parsed.database) if sqlite and parsed.database not in (None, "", ":memory:") else None
    if read_only and sqlite and (path is None or not path.is_file()):
        # Nothing to read yet: a new file is made as usual.
        read_only = False
    if path is not None and not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of database {display}: {exc}") from exc
    try:
        extra = {"creator": _sqlite_reader(path)} if read_only and path is not None else {}
        engine = create_engine(parsed, pool_pre_ping=not sqlite, **extra)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"cannot open database {display}: {_reason(exc)}") from exc
    if sqlite:
        _configure_sqlite(engine, read_only=read_only)
    elif read_only and engine.dialect.name == "postgresql":
        _configure_postgres_reader(engine)
    try:
        migrate(engine, read_only=read_only)
        if read_only and not _applied_migrations(engine):
            raise StoreError(f"database {display} holds no promptlab store yet; run promptlab once where it may write")
    except SQLAlchemyError as exc:
        engine.dispose()
        hint = "" if read_only else _READ_ONLY_HINT if _looks_read_only(exc) else ""
        raise StoreError(f"cannot open database {display}: {_reason(exc)}{hint}") from exc
    except StoreError:
        engine.dispose()
        raise
    return Store(engine, home_dir().resolve(), read_only=read_only)


_READ_ONLY_HINT = (
    "; it cannot be written here (a read-only folder or file?): browse it with experiments list, runs, "
    "analyze, export or the dashboard, which only read, or set PROMPTLAB_HOME to a folder you may write"
)


def _looks_read_only(exc: BaseException) -> bool:
    reason = _reason(exc).lower()
    return any(words in reason for words in ("readonly", "read-only", "unable to open database file"))


def _reason(exc: BaseException) -> str:
    """The database's own message in one line: SQLAlchemy's adds the SQL, its parameters and a link,
    which stay on the exception (``promptlab --debug`` shows them)."""
    orig = getattr(exc, "orig", None)
    message = str(orig if orig is not None else exc).strip()
    return message.splitlines()[0].strip() if message else type(exc).__name__


def _sqlite_reader(path: Path) -> Callable[[], sqlite3.Connection]:
    """Connections that open the file with ``mode=ro``.

    A WAL file needs its ``-shm`` index to be read; where the folder is read-only and no index is
    there, SQLite cannot make one, so the file is opened ``immutable``. That is safe there: no writer
    can open it in WAL mode either.
    """
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    try:
        probe = sqlite3.connect(uri, uri=True)
        try:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            probe.close()
    except sqlite3.Error:
        uri += "&immutable=1"
    return lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)


def _configure_sqlite(engine: Engine, *, read_only: bool = False) -> None:
    """WAL, and transactions begun by us (pysqlite's own leave DDL outside any transaction)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: processes opening a new file at once then wait for its switch to WAL.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        else:
            # synchronous before WAL: a new file then switches to WAL with one fsync less.
            cursor.execute("PRAGMA synchronous=NORMAL")
            _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front, so busy_timeout applies instead of a mid-way failure.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("promptlab_write") else "BEGIN")


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """WAL mode, waiting out other processes that are switching a new file at the same moment.

    SQLite answers "database is locked" to a journal-mode change without calling the busy handler,
    so the wait is here.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _configure_postgres_reader(engine: Engine) -> None:
    """Every session read-only: the server itself refuses a write."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.close()
        dbapi_connection.commit()


class Store:
    """The run store. Each method runs its own short session; the object is cheap to keep open."""

    def __init__(self, engine: Engine, home: Path, *, read_only: bool = False) -> None:
        self.engine = engine
        self.home = Path(home)
        self.url = engine.url.render_as_string(hide_password=True)
        self.read_only = read_only
        self._writer = engine.execution_options(promptlab_write=True)
        self._fts = engine.dialect.name == "sqlite" and inspect(engine).has_table("run_fts")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def db_path(self) -> Path | None:
        """The SQLite file, or None for another database (see ``url``)."""
        if self.engine.dialect.name != "sqlite" or self.engine.url.database in (None, "", ":memory:"):
            return None
        return Path(self.engine.url.database)

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    def image_path(self, sha256: str) -> Path:
        """Where the image with this hash lives."""
        return self.images_dir / f"{sha256}.png"

    @property
    def inputs_dir(self) -> Path:
        return self.home / "inputs"

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
        _write_file_atomically(path, data, "input image")
        try:
            _fsync_dir(self.inputs_dir)
        except OSError as exc:
            raise StoreError(f"cannot write input folder {self.inputs_dir}: {exc}") from exc
        return path

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(
                f"database {self.url} is open read-only, so nothing can be written to it; "
                "open it where it may be written (promptlab run, render and import do)"
            )

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        """A short session; database errors become one-line StoreError naming the database."""
        if write:
            self._check_writable()
        try:
            with Session(self._writer if write else self.engine, expire_on_commit=False) as session:
                yield session
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            action = "write to" if write else "read"
            hint = _READ_ONLY_HINT if write and _looks_read_only(exc) else ""
            raise StoreError(f"cannot {action} database {self.url}: {_reason(exc)}{hint}") from exc

    # Experiments.

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
            spec=_check_json(dict(spec), f"experiment {name!r} spec"),
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
        spec = _check_json(dict(spec), f"experiment {name!r} spec")
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

    def get_experiment(self, experiment: str | int) -> Experiment:
        """The experiment with this name or id; StoreError if there is none."""
        with self._session() as session:
            column_ = Experiment.id if isinstance(experiment, int) else Experiment.name
            row = session.exec(select(Experiment).where(column_ == experiment)).first()
        if row is None:
            raise StoreError(f"no experiment {experiment!r} in {self.url}")
        return row

    def list_experiments(self) -> list[ExperimentSummary]:
        """Every experiment, newest first, with its run counts and models."""
        counts = (
            select(
                Experiment,
                func.count(Run.id),
                func.coalesce(func.sum(case((Run.status == "ok", 1), else_=0)), 0),
                func.coalesce(func.sum(case((Run.status == "failed", 1), else_=0)), 0),
                func.max(Run.created_at),
            )
            .outerjoin(Run, Run.experiment_id == Experiment.id)
            .group_by(Experiment.id)
            .order_by(Experiment.created_at.desc(), Experiment.id.desc())
        )
        with self._session() as session:
            rows = session.exec(counts).all()
            models: dict[int, list[str]] = {}
            for experiment_id, model in session.exec(
                select(Run.experiment_id, Run.model).distinct().order_by(Run.experiment_id, Run.model)
            ):
                models.setdefault(experiment_id, []).append(model)
        return [
            ExperimentSummary(
                id=row.id,
                name=row.name,
                source_path=row.source_path,
                subject=row.subject,
                intent=row.intent,
                created_at=_utc(row.created_at),
                runs=runs,
                ok=ok,
                failed=failed,
                models=models.get(row.id, []),
                last_run_at=_utc(last) if last is not None else None,
            )
            for row, runs, ok, failed, last in rows
        ]

    # Writing runs.

    def existing_cells(self, experiment_id: int, *, include_failed: bool = False) -> set[tuple[str, int]]:
        """The (variant key, seed) cells already recorded; failed ones only with ``include_failed``.

        A runner skips these; failed cells are left out by default so a rerun retries them.
        """
        query = select(Run.variant_key, Run.seed).where(Run.experiment_id == experiment_id)
        if not include_failed:
            query = query.where(Run.status == "ok")
        with self._session() as session:
            return {(key, seed) for key, seed in session.exec(query)}

    def find_run(self, experiment_id: int, variant_key: str, seed: int) -> Run | None:
        """The run recorded for a cell, ok or failed, or None."""
        query = select(Run).where(Run.experiment_id == experiment_id, Run.variant_key == variant_key, Run.seed == seed)
        with self._session() as session:
            return session.exec(query).first()

    def record_run(
        self, record: RunRecord, image: bytes | PILImage, scores: Sequence[ScoreRecord] = (), *, replace: Collection[int] = ()
    ) -> Run:
        """Record a rendered cell: image file first, then its rows in one transaction.

        ``image`` is PNG bytes, stored as given, or a PIL image, saved as PNG with A1111's
        ``parameters`` chunk and a ``promptlab`` chunk holding the record and its scores.
        ``replace`` as in ``record_runs``.
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
        # 1. Check everything and encode the PNGs before touching the disk.
        names = self._experiment_names([new.record for new in runs])
        prepared = [self._prepare(new, names) for new in runs]
        # 2. The files, durable under their final names, before any row names them.
        self._write_images({p.image.sha256: p.data for p in prepared if p.image is not None})
        # 3. The rows, in one transaction.
        return self._insert_runs(prepared, replace)

    def record_failure(self, record: RunRecord, error: str) -> Run:
        """Record a cell that could not be rendered or scored, with its error text."""
        return self._insert_runs([_Prepared(record, _run_row(record, "failed", error, None), (), None, b"")])[0]

    # Claims: runners sharing a store split its cells.

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
        wanted = list(dict.fromkeys(cells))
        if not wanted:
            return Claim((), (), ())
        claims = CellClaim.__table__
        c = claims.c  # type: ignore[attr-defined]
        now = _now()
        with self._session(write=True) as session:
            conn = session.connection()
            if conn.dialect.name == "postgresql":
                # SQLite's BEGIN IMMEDIATE already makes claimers take turns.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key, :experiment)"), {"key": CLAIM_LOCK_KEY, "experiment": experiment_id})
            # Claims before runs: a runner recording a cell drops its claim in the same transaction,
            # so a cell is seen either claimed or recorded, never neither.
            held = {
                (key, seed): (holder, expires)
                for key, seed, holder, expires in conn.execute(
                    select(c.variant_key, c.seed, c.owner, c.expires_at).where(
                        c.experiment_id == experiment_id, tuple_(c.variant_key, c.seed).in_(wanted)
                    )
                )
            }
            recorded = {
                (key, seed)
                for run_id, key, seed in conn.execute(
                    select(Run.id, Run.variant_key, Run.seed).where(
                        Run.experiment_id == experiment_id,
                        tuple_(Run.variant_key, Run.seed).in_(wanted),
                        Run.status == "ok",
                    )
                )
                if run_id not in redo
            }
            done = [cell for cell in wanted if cell in recorded]
            taken = [
                cell for cell in wanted
                if cell not in recorded and cell in held and held[cell][0] != owner and not _lapsed(*held[cell], now)
            ]  # fmt: skip
            free = [cell for cell in wanted if cell not in recorded and cell not in taken]
            stale = [cell for cell in free if cell in held]
            if stale:
                conn.execute(delete(claims).where(c.experiment_id == experiment_id, tuple_(c.variant_key, c.seed).in_(stale)))
            if free:
                expires = now + timedelta(seconds=ttl_s)
                conn.execute(
                    insert(claims),
                    [{"experiment_id": experiment_id, "variant_key": k, "seed": s, "owner": owner, "expires_at": expires} for k, s in free],
                )
            session.commit()
        return Claim(tuple(free), tuple(done), tuple(taken))

    def renew_claims(self, owner: str, *, ttl_s: float = CLAIM_TTL_S) -> None:
        """Keep ``owner``'s claims for another ``ttl_s`` seconds (a runner's heartbeat)."""
        claims = CellClaim.__table__
        with self._session(write=True) as session:
            session.connection().execute(
                update(claims).where(claims.c.owner == owner).values(expires_at=_now() + timedelta(seconds=ttl_s))  # type: ignore[attr-defined]
            )
            session.commit()

    def release_claims(self, owner: str) -> None:
        """Drop ``owner``'s claims (a runner that stops: its unrendered cells are free again)."""
        claims = CellClaim.__table__
        with self._session(write=True) as session:
            session.connection().execute(delete(claims).where(claims.c.owner == owner))  # type: ignore[attr-defined]
            session.commit()

    # Image files.

    def broken_images(self, experiment_id: int | None = None) -> list[BrokenImage]:
        """Runs recorded as ok whose image file is missing or not the recorded bytes (sha256), oldest first."""
        query = (
            select(Run.id, Run.variant_key, Run.seed, Image.sha256, Image.path)
            .join(Image, Image.sha256 == Run.image_sha256)
            .where(Run.status == "ok")
            .order_by(Run.id)
        )
        if experiment_id is not None:
            query = query.where(Run.experiment_id == experiment_id)
        with self._session() as session:
            rows = session.exec(query).all()
        paths = {sha256: self.home / path for _, _, _, sha256, path in rows}
        with ThreadPoolExecutor(max_workers=min(len(paths), MAX_PARALLEL_WRITES) or 1) as pool:
            problems = dict(zip(paths, pool.map(_image_problem, paths.values(), paths)))
        return [
            BrokenImage(run_id, key, seed, paths[sha256], problems[sha256])
            for run_id, key, seed, sha256, _ in rows
            if problems[sha256] is not None
        ]

    def image_problem(self, sha256: str) -> str | None:
        """``missing`` or ``changed`` where the image file with this hash is not what was recorded, else None."""
        return _image_problem(self.image_path(sha256), sha256)

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
                if _abandoned(path):
                    path.unlink()
                    removed += 1
            except OSError:
                continue  # gone already, or not ours to remove: never worth stopping a run for
        return removed

    def _experiment_names(self, records: Sequence[RunRecord]) -> dict[int, str]:
        """The names of the records' experiments (one query for a batch); StoreError naming a record without one."""
        ids = {record.experiment_id for record in records}
        with self._session() as session:
            names = dict(session.exec(select(Experiment.id, Experiment.name).where(Experiment.id.in_(ids))).all())
        for record in records:
            if record.experiment_id not in names:
                raise StoreError(f"cannot record run ({record.cell}): no experiment {record.experiment_id} in {self.url}")
        return names

    def _prepare(self, new: NewRun, names: Mapping[int, str]) -> _Prepared:
        record = new.record
        for score in new.scores:
            _check_score(score, record)
        run = _run_row(record, "ok", None, None)
        if isinstance(new.image, (bytes, bytearray)):
            data = bytes(new.image)
            if not data.startswith(PNG_SIGNATURE):
                raise StoreError(f"run ({record.cell}): the image bytes are not a PNG file")
            width, height = _png_size(data, record)
        else:
            data = _encode_png(record, new.image, new.scores, names[record.experiment_id])
            width, height = new.image.size
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
            _fsync_dir(self.images_dir)
        except OSError as exc:
            raise StoreError(f"cannot write image folder {self.images_dir}: {exc}") from exc

    def _has_image(self, sha256: str, size: int) -> bool:
        # A file already there is checked whole: a damaged one is written again.
        path = self.image_path(sha256)
        return path.is_file() and path.stat().st_size == size and _image_problem(path, sha256) is None

    def _write_image(self, sha256: str, data: bytes) -> None:
        """Write ``data`` to ``images/<sha256>.png`` whole or not at all: temp file, fsync, rename."""
        _write_file_atomically(self.image_path(sha256), data, "image")

    def _insert_runs(self, prepared: Sequence[_Prepared], replace: Collection[int] = ()) -> list[Run]:
        """Write the rows of ``prepared`` in one transaction; return their runs, ids filled in."""
        first = prepared[0].record
        what = f"run ({first.cell})" if len(prepared) == 1 else f"{len(prepared)} runs (the first: {first.cell})"
        try:
            with self._session(write=True) as session:
                conn = session.connection()
                records = [p.record for p in prepared]
                # 1. Earlier failed attempts at these cells give way; a cell recorded as ok refuses the lot.
                _delete_runs(conn, self._previous_failures(conn, records, replace))
                # 2. The images not stored yet, the runs, then their terms and scores.
                _insert_images(conn, [p.image for p in prepared if p.image is not None])
                _insert_run_rows(conn, prepared)
                # 3. The cells are recorded: whoever claimed them is done with them.
                _delete_claims(conn, records)
                session.commit()
        except IntegrityError as exc:
            raise StoreError(f"cannot record {what} in {self.url}: {_reason(exc)}") from exc
        return [p.run for p in prepared]

    def _previous_failures(self, conn: Connection, records: Sequence[RunRecord], replace: Collection[int] = ()) -> list[int]:
        """Ids of earlier failed runs of these cells (and of the ok runs in ``replace``); CellTakenError
        naming every cell recorded as ok by another run."""
        cells = {(r.experiment_id, r.variant_key, r.seed): r for r in records}
        query = select(Run.id, Run.experiment_id, Run.variant_key, Run.seed, Run.status).where(
            Run.experiment_id.in_({r.experiment_id for r in records}),
            Run.variant_key.in_({r.variant_key for r in records}),
            Run.seed.in_({r.seed for r in records}),
        )
        stale = []
        taken: dict[tuple[int, str, int], int] = {}
        for run_id, experiment_id, variant_key, seed, status in conn.execute(query):
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

    # Reading runs.

    def get_run(self, run_id: int) -> RunView:
        """The run with this id; StoreError if there is none."""
        views = self._views(select(*_VIEW_COLUMNS).where(Run.id == run_id))
        if not views:
            raise StoreError(f"no run {run_id} in {self.url}")
        return views[0]

    def list_runs(
        self,
        experiment: str | int | None = None,
        search: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        term: str | None = None,
        status: str | None = None,
    ) -> list[RunView]:
        """Runs newest first, filtered; ``search`` matches the plain prompt text, ignoring case.

        ``term`` keeps runs whose prompt has that term (exactly as written); ``since`` and
        ``until`` bound ``created_at`` (naive datetimes are UTC; ``until`` is exclusive).
        """
        if limit < 0 or offset < 0:
            raise StoreError(f"list_runs: limit = {limit}, offset = {offset}: expected numbers >= 0")
        query = self._filtered(select(*_VIEW_COLUMNS), experiment, search, model, since, until, term, status)
        return self._views(query.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit).offset(offset))

    def count_runs(
        self,
        experiment: str | int | None = None,
        search: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        term: str | None = None,
        status: str | None = None,
    ) -> int:
        """How many runs ``list_runs`` would return without a limit."""
        query = self._filtered(select(func.count(Run.id)), experiment, search, model, since, until, term, status)
        with self._session() as session:
            return int(session.exec(query).one())

    def runs_frame(self, experiment: str | int, score_kind: str = "intent", scorer: str | None = None) -> pd.DataFrame:
        """One row per run of ``experiment``, in recording order, for ``promptlab.analysis``.

        Columns: run_id, variant_key, label, seed, subject, intent, prompt (compel syntax),
        prompt_a1111, prompt_plain, negative_prompt, model, task, the ``PARAM_COLUMNS``,
        status, error, terms, params, axes, score (NaN when failed or unscored), image (the
        file's path, or None), render_s, score_s, created_at, and one ``axis:<name>`` column
        per axis (the subject axis is the ``subject`` column). ``scorer`` picks among several
        scorers of ``score_kind``; with several and none picked, StoreError lists them.
        """
        if score_kind not in SCORE_KINDS:
            raise StoreError(f"score kind {score_kind!r}: expected one of {', '.join(SCORE_KINDS)}")
        row = self.get_experiment(experiment)
        scorer = scorer or self._only_scorer(row, score_kind)
        score_join = and_(Score.run_id == Run.id, Score.kind == score_kind, Score.scorer == scorer)
        query = (
            select(
                Run.id.label("run_id"), Run.variant_key, Run.label, Run.seed, Run.subject, Run.intent,
                Run.prompt, Run.prompt_a1111, Run.prompt_plain, Run.negative_prompt, Run.model, Run.task,
                *(getattr(Run, name) for name in PARAM_COLUMNS),
                Run.status, Run.error, Run.terms, Run.params, Run.axes,
                Score.value.label("score"), (literal(f"{self.home.as_posix()}/") + Image.path).label("image"),
                Run.render_s, Run.score_s, Run.created_at,
            )  # fmt: skip
            .outerjoin(Score, score_join)
            .outerjoin(Image, Image.sha256 == Run.image_sha256)
            .where(Run.experiment_id == row.id)
            .order_by(Run.id)
        )
        try:
            with self.engine.connect() as conn:
                result = conn.execute(query)
                frame = pd.DataFrame(result.all(), columns=list(result.keys()))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read database {self.url}: {_reason(exc)}") from exc
        frame["score"] = pd.to_numeric(frame["score"]).astype(float)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        axes = pd.DataFrame(frame["axes"].tolist(), index=frame.index).drop(columns="subject", errors="ignore")
        return pd.concat([frame, axes.add_prefix("axis:")], axis=1)

    def _only_scorer(self, experiment: Experiment, kind: str) -> str | None:
        query = (
            select(Score.scorer)
            .join(Run, Run.id == Score.run_id)
            .where(Run.experiment_id == experiment.id, Score.kind == kind)
            .distinct()
        )
        with self._session() as session:
            scorers = sorted(session.exec(query).all())
        if len(scorers) > 1:
            raise StoreError(
                f"experiment {experiment.name!r} has {kind} scores from several scorers "
                f"({', '.join(scorers)}); pass scorer= one of them"
            )
        return scorers[0] if scorers else None

    def _filtered(
        self,
        query: Any,
        experiment: str | int | None,
        search: str | None,
        model: str | None,
        since: datetime | None,
        until: datetime | None,
        term: str | None,
        status: str | None,
    ) -> Any:
        if experiment is not None:
            query = query.where(Run.experiment_id == self.get_experiment(experiment).id)
        if search and search.strip():
            query = query.where(self._search_clause(search.strip()))
        if model is not None:
            query = query.where(Run.model == model)
        if since is not None:
            query = query.where(Run.created_at >= self._stamp(since))
        if until is not None:
            query = query.where(Run.created_at < self._stamp(until))
        if term is not None:
            query = query.where(Run.id.in_(select(RunTerm.run_id).where(RunTerm.text == term)))
        if status is not None:
            if status not in STATUSES:
                raise StoreError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
            query = query.where(Run.status == status)
        return query

    def _search_clause(self, needle: str) -> Any:
        if self._fts and len(needle) >= FTS_MIN_CHARS:
            phrase = '"' + needle.replace('"', '""') + '"'
            matches = select(column("rowid")).select_from(table("run_fts")).where(text("run_fts MATCH :phrase"))
            return Run.id.in_(matches.params(phrase=phrase))
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return Run.prompt_plain.ilike(f"%{escaped}%", escape="\\")

    def _stamp(self, moment: datetime) -> datetime:
        # SQLite keeps datetimes as text without a zone: compare in UTC, as they are stored.
        moment = _utc(moment)
        return moment.replace(tzinfo=None) if self.engine.dialect.name == "sqlite" else moment

    def _views(self, query: Any) -> list[RunView]:
        with self._session() as session:
            rows = session.exec(query.join(Experiment).outerjoin(Image, Image.sha256 == Run.image_sha256)).all()
            ids = [row[0].id for row in rows]
            scores: dict[int, list[ScoreView]] = {}
            if ids:
                for score in session.exec(select(Score).where(Score.run_id.in_(ids)).order_by(Score.id)):
                    scores.setdefault(score.run_id, []).append(ScoreView.model_validate(score, from_attributes=True))
        return [self._view(run, name, path, scores.get(run.id, [])) for run, name, path in rows]

    def _view(self, run: Run, experiment: str, path: str | None, scores: list[ScoreView]) -> RunView:
        columns = {name: getattr(run, name) for name in PARAM_COLUMNS if getattr(run, name) is not None}
        assert run.id is not None
        return RunView(
            id=run.id,
            experiment_id=run.experiment_id,
            experiment=experiment,
            variant_key=run.variant_key,
            label=run.label,
            seed=run.seed,
            prompt=run.prompt,
            prompt_a1111=run.prompt_a1111,
            prompt_plain=run.prompt_plain,
            negative_prompt=run.negative_prompt,
            subject=run.subject,
            intent=run.intent,
            model=run.model,
            task=run.task,
            params={**columns, **run.params},
            terms=run.terms,
            axes=run.axes,
            status=run.status,
            error=run.error,
            image_sha256=run.image_sha256,
            image_path=self.home / path if path is not None else None,
            render_s=run.render_s,
            score_s=run.score_s,
            created_at=_utc(run.created_at),
            scores=scores,
        )


_VIEW_COLUMNS = (Run, Experiment.name, Image.path)


# 4. Small steps.


def _utc(moment: datetime) -> datetime:
    """The moment in UTC; naive datetimes (SQLite's) are UTC already."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _check_json(value: Any, what: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} cannot be stored as JSON: {exc}; convert the value to a string or number") from exc
    return value


def _check_score(score: ScoreRecord, record: RunRecord) -> None:
    if score.kind not in SCORE_KINDS:
        raise StoreError(f"run ({record.cell}): score kind {score.kind!r}: expected one of {', '.join(SCORE_KINDS)}")
    if isinstance(score.value, bool) or not isinstance(score.value, (int, float)) or not math.isfinite(score.value):
        raise StoreError(
            f"run ({record.cell}): {score.kind} score from {score.scorer!r} = {score.value!r}: expected a finite number; "
            "record a scorer failure with record_failure"
        )


def _prompt_texts(record: RunRecord, *, strict: bool) -> tuple[str, str, str]:
    """The prompt in compel, A1111 and plain syntax; a prompt compel cannot hold keeps its plain text when not strict."""
    prompt = record.prompt
    try:
        if record.prompt_text is not None:
            text = record.prompt_text
            return text, convert(text, "compel", "a1111"), convert(text, "compel", "plain")
        return prompt.to_compel(), prompt.to_a1111(), prompt.to_plain()
    except PromptSyntaxError:
        if strict:
            raise
        plain = prompt.to_plain()
        return record.prompt_text or plain, plain, plain


def _terms_json(prompt: Prompt) -> list[dict[str, Any]]:
    terms = []
    for t in prompt.terms:
        term: dict[str, Any] = {"text": t.text, "weight": t.weight, "category": t.category}
        if t.fragments:
            term["fragments"] = [list(fragment) for fragment in t.fragments]
        terms.append(term)
    return terms


def _run_row(record: RunRecord, status: str, error: str | None, image_sha256: str | None) -> Run:
    if isinstance(record.seed, bool) or not isinstance(record.seed, int) or not -MAX_STORED_SEED - 1 <= record.seed <= MAX_STORED_SEED:
        raise StoreError(
            f"run ({record.cell}): seed {record.seed!r} cannot be stored: the seed column holds whole numbers "
            "up to 2**63 - 1 (a signed 64-bit integer, in SQLite and PostgreSQL alike)"
        )
    # A failure may be the prompt's own fault; it is still recorded, with the text it has.
    compel, a1111, plain = _prompt_texts(record, strict=status == "ok")
    params = dict(record.params)
    columns = {name: params.pop(name, None) for name in PARAM_COLUMNS}
    return Run(
        experiment_id=record.experiment_id,
        variant_key=record.variant_key,
        label=record.label,
        seed=record.seed,
        prompt=compel,
        prompt_a1111=a1111,
        prompt_plain=plain,
        subject=record.prompt.subject,
        intent=record.intent or record.prompt.subject,
        negative_prompt=record.negative_prompt,
        model=record.model,
        task=record.task,
        params=_check_json(params, f"run ({record.cell}) params"),
        axes=_check_json(dict(record.axes), f"run ({record.cell}) axes"),
        terms=_terms_json(record.prompt),
        status=status,
        error=error,
        render_s=record.render_s,
        score_s=record.score_s,
        image_sha256=image_sha256,
        **columns,
    )


def runner_id() -> str:
    """A name for one runner, unique among runners sharing a store: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _lapsed(owner: str, expires_at: datetime, now: datetime) -> bool:
    """Whether a claim no longer holds: its time is up, or its process, on this machine, is gone."""
    if _utc(expires_at) <= now:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not _process_alive(int(pid))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, someone else's
    return True


def _writer_tag() -> str:
    """This process as part of a temporary file's name: a hash of the host name, and the pid."""
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return f"{host}-{os.getpid()}"


def _abandoned(path: Path) -> bool:
    """Whether a ``.partial`` file's writer is gone: its process, on this machine, is dead; or it is old."""
    parts = path.name.split(".")
    tag = parts[2] if len(parts) == 5 else ""
    host, _, pid = tag.partition("-")
    if pid.isdigit() and host == _writer_tag().partition("-")[0]:
        return int(pid) != os.getpid() and not _process_alive(int(pid))
    return time.time() - path.stat().st_mtime > PARTIAL_MAX_AGE_S


def _image_problem(path: Path, sha256: str) -> str | None:
    """``missing`` if the file is not there, ``changed`` if its bytes do not hash to ``sha256``, else None."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "missing"  # unreadable is as good as gone for every reader
    return None if digest.hexdigest() == sha256 else "changed"


def _delete_claims(conn: Connection, records: Sequence[RunRecord]) -> None:
    claims = CellClaim.__table__
    c = claims.c  # type: ignore[attr-defined]
    by_experiment: dict[int, list[tuple[str, int]]] = {}
    for record in records:
        by_experiment.setdefault(record.experiment_id, []).append((record.variant_key, record.seed))
    for experiment_id, cells in by_experiment.items():
        conn.execute(delete(claims).where(c.experiment_id == experiment_id, tuple_(c.variant_key, c.seed).in_(cells)))


def _delete_runs(conn: Connection, ids: Sequence[int]) -> None:
    if not ids:
        return
    for child in (RunTerm.__table__, Score.__table__):
        conn.execute(delete(child).where(child.c.run_id.in_(ids)))  # type: ignore[attr-defined]
    conn.execute(delete(Run.__table__).where(Run.__table__.c.id.in_(ids)))  # type: ignore[attr-defined]


def _insert_images(conn: Connection, images: Sequence[Image]) -> None:
    table = Image.__table__
    wanted = {image.sha256: image for image in images}
    if not wanted:
        return
    known = set(conn.execute(select(table.c.sha256).where(table.c.sha256.in_(wanted))).scalars())  # type: ignore[attr-defined]
    new = [_columns(image) for sha256, image in wanted.items() if sha256 not in known]
    if new:
        conn.execute(insert(table), new)


def _insert_run_rows(conn: Connection, prepared: Sequence[_Prepared]) -> None:
    """Insert the runs, fill in their ids, then insert their terms and scores."""
    table = Run.__table__
    c = table.c  # type: ignore[attr-defined]
    # Ids are matched back by cell (unique), not by row order, so SQLite too inserts in one statement.
    inserted = conn.execute(
        insert(table).returning(c.id, c.experiment_id, c.variant_key, c.seed),
        [_columns(p.run, skip="id") for p in prepared],
    )
    ids = {(experiment_id, key, seed): run_id for run_id, experiment_id, key, seed in inserted}
    terms: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    for p in prepared:
        record = p.record
        run_id = p.run.id = ids[record.experiment_id, record.variant_key, record.seed]
        terms += [
            {"run_id": run_id, "position": position, "category": t.category, "text": t.text, "weight": t.weight}
            for position, t in enumerate(record.prompt.terms)
        ]
        scores += [{"run_id": run_id, **score.__dict__} for score in p.scores]
    if terms:
        conn.execute(insert(RunTerm.__table__), terms)
    if scores:
        conn.execute(insert(Score.__table__), scores)


def _columns(row: SQLModel, skip: str = "") -> dict[str, Any]:
    """A table row's column values, for a Core insert."""
    return {c.name: getattr(row, c.name) for c in row.__table__.columns if c.name != skip}  # type: ignore[attr-defined]


def _png_size(data: bytes, record: RunRecord) -> tuple[int, int]:
    from PIL import Image as PILImageModule
    from PIL import UnidentifiedImageError

    try:
        with PILImageModule.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise StoreError(f"run ({record.cell}): the image bytes are not a readable PNG: {exc}") from exc


def _encode_png(record: RunRecord, image: PILImage, scores: Sequence[ScoreRecord], experiment: str) -> bytes:
    from promptlab.metadata import png_bytes

    chunk = record.to_dict()
    chunk["experiment"] = experiment
    chunk["scores"] = [score.__dict__.copy() for score in scores]
    return png_bytes(image, _generation_parameters(record, image.size), _check_json(chunk, f"run ({record.cell})"))


def _generation_parameters(record: RunRecord, size: tuple[int, int]) -> Any:
    """The run as A1111 1.9+ reads an infotext: prompts in its syntax, its sampler and schedule names."""
    from promptlab.metadata import A1111_PROMPT_SYNTAX_KEY, GenerationParameters

    params = record.params
    clip_skip = params.get("clip_skip")
    prompt, negative, compel = _a1111_prompts(record)
    sampler = _a1111_sampler(params)
    settings = dict(sampler.settings) if sampler else {}
    if compel:
        settings[A1111_PROMPT_SYNTAX_KEY] = "compel"
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=negative,
        steps=params.get("num_inference_steps"),
        sampler=sampler.sampler if sampler else None,
        scheduler=sampler.schedule_type if sampler else None,
        cfg_scale=params.get("guidance_scale"),
        seed=record.seed,
        width=size[0],
        height=size[1],
        model=record.model,
        model_hash=_a1111_model_hash(params),
        # Pasted into txt2img, a denoising strength switches A1111's hires fix on.
        denoising_strength=params.get("strength") if record.task != "txt2img" else None,
        # A1111 counts the last CLIP layer as 1; diffusers' clip_skip counts layers skipped.
        clip_skip=clip_skip + 1 if isinstance(clip_skip, int) else None,
        extra=settings,
    )


def _a1111_prompts(record: RunRecord) -> tuple[str, str, bool]:
    """Both prompts in A1111 syntax, and False; or, where either has no A1111 form, both as rendered, and True.

    A rendered image is never lost over its metadata: its prompts then go in as compel text under
    ``Prompt syntax: compel`` (A1111 keeps a key it does not know; promptlab's import reads it).
    A prompt built from terms is written from them (as the ``prompt_a1111`` column is); a prompt
    kept verbatim is converted from its compel text.
    """
    try:
        if record.prompt_text is None:
            prompt = record.prompt.to_a1111()
        else:
            prompt = convert(record.prompt_text, "compel", "a1111")
        return prompt, convert(record.negative_prompt, "compel", "a1111"), False
    except PromptSyntaxError:
        return _prompt_texts(record, strict=False)[0], record.negative_prompt, True


def _a1111_sampler(params: Mapping[str, Any]) -> Any:
    """The A1111 name of the scheduler the run used (its class and config); None if the record has neither."""
    from promptlab.render.schedulers import A1111Sampler, a1111_sampler

    class_name, config, steps = params.get("scheduler_class"), params.get("scheduler_config"), params.get("num_inference_steps")
    if isinstance(class_name, str) and isinstance(config, Mapping) and isinstance(steps, int):
        name = params.get("scheduler_name")
        return a1111_sampler(class_name, config, steps, name if isinstance(name, str) else None)
    # A record made by hand, without the render setup: its scheduler name is all there is.
    name = params.get("scheduler")
    return A1111Sampler(name) if isinstance(name, str) else None


def _a1111_model_hash(params: Mapping[str, Any]) -> str | None:
    """A1111's "Model hash" of a single-file checkpoint: its SHA-256, first 10 hex digits (sd_models' shorthash)."""
    source = params.get("model_source")
    if isinstance(source, Mapping) and source.get("kind") == "file" and isinstance(source.get("sha256"), str):
        return str(source["sha256"])[:10]
    return None


def _write_file_atomically(path: Path, data: bytes, what: str) -> None:
    """Write ``data`` to ``path`` whole or not at all: a ``.partial`` temp file beside it, fsync, rename."""
    try:
        # The writer's machine and process in the name, so clean_partials knows a dead writer's file.
        fd, temp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.{_writer_tag()}.", suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StoreError(f"cannot write {what} {path}: {exc}") from exc


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); Windows cannot open a folder and needs nothing."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

