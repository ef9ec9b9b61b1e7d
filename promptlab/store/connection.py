"""Opening a database: the engine, SQLite's WAL and locking, read-only sessions, and migrating on open."""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlmodel import create_engine

from promptlab.errors import StoreError
from promptlab.paths import database_url
from promptlab.store.migrations import applied_migrations, migrate

SQLITE_BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Connected:
    """An open, migrated database, and whether it was opened read-only (a missing SQLite file is not)."""

    engine: Engine
    read_only: bool


def connect(url: str | None = None, *, read_only: bool = False) -> Connected:
    """The engine of the database at ``url`` (default ``paths.database_url()``), created and migrated as needed.

    ``read_only`` as in ``open_store``.
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
        extra = {"creator": sqlite_reader(path)} if read_only and path is not None else {}
        engine = create_engine(parsed, pool_pre_ping=not sqlite, **extra)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"cannot open database {display}: {database_reason(exc)}") from exc
    if sqlite:
        configure_sqlite(engine, read_only=read_only)
    elif read_only and engine.dialect.name == "postgresql":
        configure_postgres_reader(engine)
    try:
        migrate(engine, read_only=read_only)
        if read_only and not applied_migrations(engine):
            raise StoreError(f"database {display} holds no promptlab store yet; run promptlab once where it may write")
    except SQLAlchemyError as exc:
        engine.dispose()
        hint = "" if read_only else READ_ONLY_HINT if looks_read_only(exc) else ""
        raise StoreError(f"cannot open database {display}: {database_reason(exc)}{hint}") from exc
    except StoreError:
        engine.dispose()
        raise
    return Connected(engine, read_only)


READ_ONLY_HINT = (
    "; it cannot be written here (a read-only folder or file?): browse it with experiments list, runs, "
    "analyze, export or the dashboard, which only read, or set PROMPTLAB_HOME to a folder you may write"
)


def looks_read_only(exc: BaseException) -> bool:
    reason = database_reason(exc).lower()
    return any(words in reason for words in ("readonly", "read-only", "unable to open database file"))


def database_reason(exc: BaseException) -> str:
    """The database's own message in one line: SQLAlchemy's adds the SQL, its parameters and a link,
    which stay on the exception (``promptlab --debug`` shows them). Where a database server dropped
    or refused the connection, it says what that means for a run."""
    orig = getattr(exc, "orig", None)
    message = str(orig if orig is not None else exc).strip()
    reason = message.splitlines()[0].strip() if message else type(exc).__name__
    return reason + LOST_HINT if lost_connection(exc) else reason


LOST_HINT = (
    " (the database cannot be reached: each batch is recorded whole or not at all, so what was "
    "recorded stays; run the same command again once the database is back to render the rest)"
)


def lost_connection(exc: BaseException) -> bool:
    """Whether a database server dropped or refused the connection: SQLAlchemy's disconnect
    detection, or a server's error at connecting (not SQLite's, whose file is no server)."""
    if getattr(exc, "connection_invalidated", False):
        return True
    orig = getattr(exc, "orig", None)
    return isinstance(exc, OperationalError) and not isinstance(orig, sqlite3.Error) and "connect" in str(orig).lower()


def sqlite_reader(path: Path) -> Callable[[], sqlite3.Connection]:
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


def configure_sqlite(engine: Engine, *, read_only: bool = False) -> None:
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
            switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front, so busy_timeout applies instead of a mid-way failure.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("promptlab_write") else "BEGIN")


def switch_to_wal(cursor: sqlite3.Cursor) -> None:
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


def configure_postgres_reader(engine: Engine) -> None:
    """Every session read-only: the server itself refuses a write."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.close()
        dbapi_connection.commit()

