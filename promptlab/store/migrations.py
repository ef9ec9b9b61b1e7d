"""Schema changes: numbered migration functions recorded in ``_migration``, applied on open.

Each builds its schema from its own frozen definitions, never from the models, so a migration
means the same thing forever. ``migrate`` applies the missing ones, each under the database's
write lock, so processes opening a new store at once take turns; opening twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

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
    inspect,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine

from promptlab.errors import StoreError
from promptlab.store.schema import utc_now

# PostgreSQL advisory lock keys (any fixed numbers): migrations, and claims (per experiment).
MIGRATION_LOCK_KEY = 0x70726F6D70746C61


MIGRATION_TABLE = Table(
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


def m004_experiment_counts(conn: Connection) -> None:
    """An index of each run's experiment, model, status and time: the experiments list reads only it.

    Without it, counting runs per experiment read every run row (their prompts and JSON too):
    324 ms at 100,000 runs on a busy 2-core machine (bench/store.py).
    """
    meta = MetaData()
    runs = Table(
        "run", meta,
        Column("experiment_id", Integer),
        Column("model", String),
        Column("status", String),
        Column("created_at", DateTime(timezone=True)),
    )  # fmt: skip
    Index("ix_run_experiment_model_status", runs.c.experiment_id, runs.c.model, runs.c.status, runs.c.created_at).create(
        conn, checkfirst=True
    )


def m005_embeddings_controlnet(conn: Connection) -> None:
    """Run.controlnet_conditioning_scale, and RunEmbedding: each run's textual-inversion embeddings (name, token, sha256).

    Runs from before have no ControlNet and no embeddings: the new column is NULL, the table empty.
    """
    if "controlnet_conditioning_scale" not in {c["name"] for c in inspect(conn).get_columns("run")}:
        conn.exec_driver_sql("ALTER TABLE run ADD COLUMN controlnet_conditioning_scale FLOAT")
    meta = MetaData()
    # The table its foreign key names, as m001 made it (only its key matters here).
    Table("run", meta, Column("id", Integer, primary_key=True))
    Table(
        "run_embedding", meta,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("run.id"), nullable=False),
        Column("position", Integer, nullable=False),
        Column("name", String, nullable=False),
        Column("token", String, nullable=False),
        Column("sha256", String, nullable=False),
        Index("ix_run_embedding_run_id", "run_id"),
        Index("ix_run_embedding_name", "name"),
    ).create(conn, checkfirst=True)  # fmt: skip


def m006_run_lora(conn: Connection) -> None:
    """RunLora: each run's LoRAs (name, file sha256, strength). Runs from before applied none: the table starts empty."""
    meta = MetaData()
    # The table its foreign key names, as m001 made it (only its key matters here).
    Table("run", meta, Column("id", Integer, primary_key=True))
    Table(
        "run_lora", meta,
        Column("id", Integer, primary_key=True),
        Column("run_id", Integer, ForeignKey("run.id"), nullable=False),
        Column("position", Integer, nullable=False),
        Column("name", String, nullable=False),
        Column("sha256", String),
        Column("strength", Float, nullable=False),
        Index("ix_run_lora_run_id", "run_id"),
        Index("ix_run_lora_name", "name"),
    ).create(conn, checkfirst=True)  # fmt: skip


def m007_vote(conn: Connection) -> None:
    """Vote: a person's choice (left, right or tie) between two runs shown side by side, who and when.

    A vote goes with either of its runs where that run is deleted (ON DELETE CASCADE).
    """
    meta = MetaData()
    # The tables its foreign keys name, as m001 made them (only their keys matter here).
    Table("experiment", meta, Column("id", Integer, primary_key=True))
    Table("run", meta, Column("id", Integer, primary_key=True))
    Table(
        "vote", meta,
        Column("id", Integer, primary_key=True),
        Column("experiment_id", Integer, ForeignKey("experiment.id"), nullable=False),
        Column("left_run_id", Integer, ForeignKey("run.id", ondelete="CASCADE"), nullable=False),
        Column("right_run_id", Integer, ForeignKey("run.id", ondelete="CASCADE"), nullable=False),
        Column("choice", String, nullable=False),
        Column("voter", String, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Index("ix_vote_experiment_id", "experiment_id"),
        Index("ix_vote_left_run_id", "left_run_id"),
        Index("ix_vote_right_run_id", "right_run_id"),
    ).create(conn, checkfirst=True)  # fmt: skip


#: Applied in order on open; a name, once released, never changes meaning.
MIGRATIONS: dict[str, Callable[[Connection], None]] = {
    "m001_initial": m001_initial,
    "m002_run_search": m002_run_search,
    "m003_cell_claim": m003_cell_claim,
    "m004_experiment_counts": m004_experiment_counts,
    "m005_embeddings_controlnet": m005_embeddings_controlnet,
    "m006_run_lora": m006_run_lora,
    "m007_vote": m007_vote,
}


def migrate(engine: Engine, *, read_only: bool = False) -> list[str]:
    """Apply the migrations ``_migration`` does not list, each in its own transaction; return their names.

    Each runs under the database's write lock (``migration_lock``) and first looks again whether
    another process applied it meanwhile, so processes opening a new store at once take turns.
    A schema with migrations this code does not know (a newer promptlab's) raises StoreError;
    ``read_only`` applies nothing.
    """
    applied = applied_migrations(engine)
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
        with migration_lock(engine) as conn:
            MIGRATION_TABLE.create(conn, checkfirst=True)
            if conn.execute(select(MIGRATION_TABLE.c.name).where(MIGRATION_TABLE.c.name == name)).first():
                continue
            step(conn)
            conn.execute(insert(MIGRATION_TABLE).values(name=name, applied_at=utc_now()))
            done.append(name)
    return done


def applied_migrations(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if not inspect(conn).has_table(MIGRATION_TABLE.name):
            return set()
        return set(conn.execute(select(MIGRATION_TABLE.c.name)).scalars())


@contextmanager
def migration_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction holding the database's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock).

    Others wait for it (SQLite's busy timeout; PostgreSQL blocks) rather than race on CREATE TABLE.
    """
    dialect = engine.dialect.name
    writer = engine.execution_options(promptlab_write=True) if dialect == "sqlite" else engine
    with writer.begin() as conn:
        if dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        yield conn

