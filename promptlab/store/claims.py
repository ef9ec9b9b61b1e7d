"""Claims: runners sharing a store split its cells, so each cell is rendered once.

A runner claims the cells it is about to render (``claim``), renews its claims while it works
(``renew``), and drops them when it stops (``release``); recording a cell drops its claim in the
same transaction (``delete_claims``). A claim lapses when its runner stops renewing it, or when
its process, on this machine, is gone.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, text, tuple_, update
from sqlalchemy.engine import Connection
from sqlmodel import select

from promptlab.store.files import process_alive
from promptlab.store.records import Claim, RunRecord, utc
from promptlab.store.schema import CellClaim, Run, utc_now

# A runner renews its claims every third of this; a claim not renewed for this long has lapsed.
CLAIM_TTL_S = 120.0
# PostgreSQL advisory lock key (any fixed number) claimers take turns under, per experiment.
CLAIM_LOCK_KEY = 0x7072


def claim(
    conn: Connection,
    experiment_id: int,
    cells: Sequence[tuple[str, int]],
    owner: str,
    *,
    ttl_s: float = CLAIM_TTL_S,
    redo: Collection[int] = (),
) -> Claim:
    """Claim ``cells`` for ``owner`` in the transaction of ``conn``; see ``Store.claim_cells``."""
    wanted = list(dict.fromkeys(cells))
    if not wanted:
        return Claim((), (), ())
    claims, c = _claims, _claim
    now = utc_now()
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
        if cell not in recorded and cell in held and held[cell][0] != owner and not lapsed(*held[cell], now)
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
    return Claim(tuple(free), tuple(done), tuple(taken))



def renew(conn: Connection, owner: str, *, ttl_s: float = CLAIM_TTL_S) -> None:
    """Keep ``owner``'s claims for another ``ttl_s`` seconds."""
    conn.execute(update(_claims).where(_claim.owner == owner).values(expires_at=utc_now() + timedelta(seconds=ttl_s)))


def release(conn: Connection, owner: str) -> None:
    """Drop ``owner``'s claims."""
    conn.execute(delete(_claims).where(_claim.owner == owner))


def delete_claims(conn: Connection, records: Sequence[RunRecord]) -> None:
    """Drop the claims on the cells of ``records``, whoever holds them: the cells are recorded."""
    by_experiment: dict[int, list[tuple[str, int]]] = {}
    for record in records:
        by_experiment.setdefault(record.experiment_id, []).append((record.variant_key, record.seed))
    for experiment_id, cells in by_experiment.items():
        if len(cells) == 1:
            conn.execute(_DELETE_CLAIM, {"experiment": experiment_id, "key": cells[0][0], "seed": cells[0][1]})
        else:
            conn.execute(_DELETE_CLAIMS, {"experiment": experiment_id, "cells": cells})


def runner_id() -> str:
    """A name for one runner, unique among runners sharing a store: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lapsed(owner: str, expires_at: datetime, now: datetime) -> bool:
    """Whether a claim no longer holds: its time is up, or its process, on this machine, is gone."""
    if utc(expires_at) <= now:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid))


_claims = CellClaim.__table__
_claim = _claims.c  # type: ignore[attr-defined]
_DELETE_CLAIM = delete(_claims).where(
    _claim.experiment_id == bindparam("experiment"), _claim.variant_key == bindparam("key"), _claim.seed == bindparam("seed")
)
_DELETE_CLAIMS = delete(_claims).where(
    _claim.experiment_id == bindparam("experiment"),
    tuple_(_claim.variant_key, _claim.seed).in_(bindparam("cells", expanding=True)),
)
