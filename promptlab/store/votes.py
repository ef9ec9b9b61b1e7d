"""People's votes between two images: what a vote is, its checks, and its SQL.

    vote = store.record_vote(left_run_id=12, right_run_id=15, choice="left")   # voter: the OS user
    store.list_votes("squirrel-styles")          # every vote with both runs' variants, seed and subject
    store.vote_scores("squirrel-styles")         # the automatic scores of the voted runs, per scorer

A vote compares two runs of the same experiment, seed and subject from two different variants, as
they were shown (left, right), so a preference for one side can be measured. It is checked and
written in one transaction that holds the database's write lock: a run deleted meanwhile is
refused, never half-recorded. A skip is not a vote and is not stored.
"""

from __future__ import annotations

import getpass
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Row, bindparam, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from promptlab.errors import StoreError
from promptlab.store.records import utc
from promptlab.store.schema import SCORE_KINDS, VOTE_CHOICES, Experiment, Image, Run, Score, Vote, utc_now

#: Who voted, where nobody says: the operating system's user name, else this.
UNKNOWN_VOTER = "unknown"

#: The columns of ``vote_scores``: one row per (run, scorer).
VOTE_SCORE_COLUMNS = ("run_id", "scorer", "value")


@dataclass(frozen=True)
class VoteView:
    """A recorded vote with what it compared: both runs' variants (key and label), their seed and subject."""

    id: int
    experiment_id: int
    experiment: str
    left_run_id: int
    right_run_id: int
    left_variant_key: str
    right_variant_key: str
    left_label: str
    right_label: str
    seed: int
    subject: str
    choice: str
    voter: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The vote as JSON-ready values (the time in ISO 8601, UTC)."""
        return {**asdict(self), "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class VoteRun:
    """A finished run that can be shown for a vote: its variant, seed, subject and image file."""

    run_id: int
    variant_key: str
    label: str
    seed: int
    subject: str
    image: Path


def default_voter() -> str:
    """The operating system's user name, or ``UNKNOWN_VOTER`` where it cannot be told (no login, no USER)."""
    try:
        return getpass.getuser() or UNKNOWN_VOTER
    except (OSError, KeyError, ImportError):
        return UNKNOWN_VOTER


def check_choice(choice: str) -> str:
    """``choice`` if it is one of ``VOTE_CHOICES``; StoreError naming it otherwise."""
    if choice not in VOTE_CHOICES:
        raise StoreError(f"vote choice {choice!r}: expected one of {', '.join(VOTE_CHOICES)} (a skip is not recorded)")
    return choice


def insert_vote(conn: Connection, left_run_id: int, right_run_id: int, choice: str, voter: str, where: str) -> int:
    """Check the two runs make a pair and insert the vote in the caller's transaction; its id.

    StoreError names a run that does not exist (deleted), one that failed, and a pair from two
    experiments, seeds or subjects, or of one variant. ``where`` names the database in messages.
    """
    # 1. Check the request
    check_choice(choice)
    voter = voter.strip()
    if not voter:
        raise StoreError("vote voter is empty: give a name (the default is the operating system's user name)")
    if left_run_id == right_run_id:
        raise StoreError(f"vote on run {left_run_id} against itself: a vote compares two runs of two variants")
    # 2. The runs, read under the write lock, so none can go between the check and the insert
    found = {row.id: row for row in conn.execute(_RUNS, {"ids": [left_run_id, right_run_id]})}
    for run_id in (left_run_id, right_run_id):
        if run_id not in found:
            raise StoreError(f"cannot record the vote: run {run_id} is not in {where} (deleted?); vote on the pairs shown now")
        if found[run_id].status != "ok" or found[run_id].image_sha256 is None:
            raise StoreError(f"cannot record the vote: run {run_id} failed and has no image; vote on finished runs only")
    left, right = found[left_run_id], found[right_run_id]
    _check_pair(left, right)
    # 3. The vote
    row = {
        "experiment_id": left.experiment_id,
        "left_run_id": left_run_id,
        "right_run_id": right_run_id,
        "choice": choice,
        "voter": voter,
        "created_at": utc_now(),
    }
    return int(conn.execute(insert(Vote.__table__).returning(Vote.__table__.c.id), row).scalar_one())  # type: ignore[attr-defined]


def _check_pair(left: Row[Any], right: Row[Any]) -> None:
    what = f"runs {left.id} and {right.id}"
    if left.experiment_id != right.experiment_id:
        raise StoreError(f"cannot record the vote: {what} are from two experiments; a vote compares runs of one experiment")
    if left.seed != right.seed:
        raise StoreError(
            f"cannot record the vote: {what} have seeds {left.seed} and {right.seed}; a vote compares two variants on one seed"
        )
    if left.subject != right.subject:
        raise StoreError(
            f"cannot record the vote: {what} show subjects {left.subject!r} and {right.subject!r}; "
            "a vote compares two variants on one subject"
        )
    if left.variant_key == right.variant_key:
        raise StoreError(f"cannot record the vote: {what} are of one variant ({left.variant_key}); a vote compares two variants")


def votes_query(experiment_id: int) -> Any:
    """The votes of one experiment with both runs' variants, oldest first (a ``VoteView`` per row)."""
    left, right = aliased(Run), aliased(Run)
    return _vote_columns(left, right).where(Vote.experiment_id == experiment_id).order_by(Vote.created_at, Vote.id)


def _vote_columns(left: Any, right: Any) -> Any:
    return (
        select(
            Vote.id, Vote.experiment_id, Experiment.name, Vote.left_run_id, Vote.right_run_id,
            left.variant_key, right.variant_key, left.label, right.label, left.seed, left.subject,
            Vote.choice, Vote.voter, Vote.created_at,
        )
        .join(Experiment, Experiment.id == Vote.experiment_id)
        .join(left, left.id == Vote.left_run_id)
        .join(right, right.id == Vote.right_run_id)
    )


def votes_query_by_id(vote_id: int) -> Any:
    """The vote with this id, as ``votes_query`` gives it."""
    left, right = aliased(Run), aliased(Run)
    return _vote_columns(left, right).where(Vote.id == vote_id)


def vote_view(row: Any) -> VoteView:
    values = list(row)
    values[-1] = utc(values[-1])
    return VoteView(*values)


def vote_runs_query(experiment_id: int) -> Any:
    """The finished runs of one experiment with an image: what can be shown for a vote."""
    return (
        select(Run.id, Run.variant_key, Run.label, Run.seed, Run.subject, Image.path)
        .join(Image, Image.sha256 == Run.image_sha256)
        .where(Run.experiment_id == experiment_id, Run.status == "ok")
        .order_by(Run.id)
    )


def vote_scores_query(experiment_id: int, kind: str) -> Any:
    """The ``kind`` scores of every run a vote of the experiment names: (run_id, scorer, value)."""
    if kind not in SCORE_KINDS:
        raise StoreError(f"score kind {kind!r}: expected one of {', '.join(SCORE_KINDS)}")
    voted = select(Vote.left_run_id).where(Vote.experiment_id == experiment_id).union(
        select(Vote.right_run_id).where(Vote.experiment_id == experiment_id)
    )
    return (
        select(Score.run_id, Score.scorer, Score.value)
        .where(Score.kind == kind, Score.run_id.in_(voted))
        .order_by(Score.run_id, Score.id)
    )


def scores_frame(rows: list[Any]) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(row) for row in rows], columns=list(VOTE_SCORE_COLUMNS))
    return frame.astype({"run_id": int, "scorer": str, "value": float})


_run = Run.__table__.c  # type: ignore[attr-defined]
_RUNS = select(_run.id, _run.experiment_id, _run.variant_key, _run.seed, _run.subject, _run.status, _run.image_sha256).where(
    _run.id.in_(bindparam("ids", expanding=True))
)
