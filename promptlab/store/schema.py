"""The store's tables (SQLModel), and the facts about their columns other modules share.

Migrations (``migrations.py``) build the schema from their own frozen definitions; these models
are what the code reads and writes, and a test checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from promptlab.render.params import MAX_SEED, RENDER_PARAM_NAMES

STATUSES = ("ok", "failed")

SCORE_KINDS = ("intent", "prompt")

#: A person's vote between two images shown side by side: the left one, the right one, or neither (a skip is not stored).
VOTE_CHOICES = ("left", "right", "tie")

# Parameters with a column of their own on Run (diffusers' names); the rest go to Run.params.
PARAM_COLUMNS = RENDER_PARAM_NAMES

# The seed column is a signed 64-bit integer in every database promptlab supports: render.params'
# seed range is this column's.
MAX_STORED_SEED = MAX_SEED


def utc_now() -> datetime:
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
    created_at: datetime = Field(default_factory=utc_now, sa_type=DateTime(timezone=True))


class Image(SQLModel, table=True):
    """A content-addressed PNG file under the home folder."""

    __tablename__ = "image"

    sha256: str = Field(primary_key=True, max_length=64)
    path: str
    width: int
    height: int
    size_bytes: int
    created_at: datetime = Field(default_factory=utc_now, sa_type=DateTime(timezone=True))


class Run(SQLModel, table=True):
    """One image of one cell (experiment, variant, seed), or the error that prevented it."""

    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("experiment_id", "variant_key", "seed", name="uq_run_cell"),
        # Listings filter by experiment or model and show the newest first.
        Index("ix_run_experiment_id_created_at", "experiment_id", "created_at"),
        Index("ix_run_model_created_at", "model", "created_at"),
        # The experiments list counts runs by experiment, model and status from this index alone.
        Index("ix_run_experiment_model_status", "experiment_id", "model", "status", "created_at"),
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
    controlnet_conditioning_scale: float | None = None
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    axes: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    terms: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    status: str = "ok"
    error: str | None = Field(default=None, sa_type=Text)
    render_s: float | None = None
    score_s: float | None = None
    created_at: datetime = Field(default_factory=utc_now, sa_type=DateTime(timezone=True), index=True)
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


class RunEmbedding(SQLModel, table=True):
    """One textual-inversion embedding a run loaded, so "runs with embedding X" is an indexed query.

    ``name`` is the file's name without suffix (A1111's), ``token`` the trigger word, ``sha256`` the file's.
    """

    __tablename__ = "run_embedding"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    position: int
    name: str = Field(index=True)
    token: str
    sha256: str


class RunLora(SQLModel, table=True):
    """One LoRA a run applied, so "runs with LoRA X" is an indexed query.

    ``name`` is the LoRA's (its file's name without suffix, as A1111 names it), ``sha256`` its file's
    (None where unknown: an imported image's), ``strength`` the weight it was applied at.
    """

    __tablename__ = "run_lora"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    position: int
    name: str = Field(index=True)
    sha256: str | None = None
    strength: float


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



class Vote(SQLModel, table=True):
    """A person's choice between two runs of one seed and subject from two variants, as they were shown.

    Both run ids are kept as shown (left, right), so a preference for one side can be measured. A vote
    goes with its run where a run is deleted (replaced, its image lost): it judged an image that is gone.
    """

    __tablename__ = "vote"

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    left_run_id: int = Field(foreign_key="run.id", ondelete="CASCADE", index=True)
    right_run_id: int = Field(foreign_key="run.id", ondelete="CASCADE", index=True)
    choice: str
    voter: str
    created_at: datetime = Field(default_factory=utc_now, sa_type=DateTime(timezone=True))
