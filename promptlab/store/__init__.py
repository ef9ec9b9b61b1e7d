"""The run store: every experiment, run, image and score, in SQL through sqlmodel.

    store = open_store()            # PROMPTLAB_DB, else PROMPTLAB_HOME/promptlab.db
    experiment = store.get_or_create_experiment(spec.name, spec.raw, spec.path, subject=spec.subject)
    done = store.existing_cells(experiment.id)
    for cell in cells(spec):
        if cell.key in done:
            continue
        record = run_record(experiment.id, cell.variant, cell.seed, render_s=1.2)   # promptlab.runner
        scores = [ScoreRecord("intent", "clip", 0.31, "a squirrel")]
        store.record_run(record, run_png(record, image, scores, spec.name), scores)  # promptlab.metadata
    store.record_runs([NewRun(record, png, scores), ...])   # a batch: its files, then its rows at once
    store.list_runs(search="oil painting", limit=50)
    store.runs_frame("squirrel-styles")      # one row per run, for promptlab.analysis
    store.record_vote(left_run_id, right_run_id, "left")   # a person's vote between two images (``votes``)

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

The package, one job per module: ``schema`` (the tables), ``migrations`` (numbered schema
changes, applied on open), ``records`` (what goes in and comes out), ``files`` (image and input
files), ``connection`` (opening a database), ``queries`` (the reads), ``claims`` (runners
sharing a store), ``votes`` (people's votes between two images) and ``writes`` (``Store``).
The store takes finished PNG bytes and knows nothing of experiments or image metadata.
"""

from promptlab.store.claims import CLAIM_TTL_S, runner_id
from promptlab.store.connection import SQLITE_BUSY_TIMEOUT_MS
from promptlab.store.files import MAX_PARALLEL_WRITES, PARTIAL_MAX_AGE_S, PNG_SIGNATURE
from promptlab.store.migrations import MIGRATIONS, migrate
from promptlab.store.queries import FTS_MIN_CHARS, StoreReader
from promptlab.store.records import (
    BrokenImage,
    Claim,
    ExperimentSummary,
    NewRun,
    RunRecord,
    RunToScore,
    RunView,
    ScoreRecord,
    ScoreView,
)
from promptlab.store.schema import (
    MAX_STORED_SEED,
    PARAM_COLUMNS,
    SCORE_KINDS,
    STATUSES,
    VOTE_CHOICES,
    CellClaim,
    Experiment,
    Image,
    Run,
    RunEmbedding,
    RunLora,
    RunTerm,
    Score,
    Vote,
)
from promptlab.store.votes import UNKNOWN_VOTER, VoteRun, VoteView, default_voter
from promptlab.store.writes import Store, open_store

__all__ = [
    "CLAIM_TTL_S",
    "FTS_MIN_CHARS",
    "MAX_PARALLEL_WRITES",
    "MAX_STORED_SEED",
    "MIGRATIONS",
    "PARAM_COLUMNS",
    "PARTIAL_MAX_AGE_S",
    "PNG_SIGNATURE",
    "SCORE_KINDS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "STATUSES",
    "UNKNOWN_VOTER",
    "VOTE_CHOICES",
    "BrokenImage",
    "CellClaim",
    "Claim",
    "Experiment",
    "ExperimentSummary",
    "Image",
    "NewRun",
    "Run",
    "RunEmbedding",
    "RunLora",
    "RunRecord",
    "RunToScore",
    "RunTerm",
    "RunView",
    "Score",
    "ScoreRecord",
    "ScoreView",
    "Store",
    "StoreReader",
    "Vote",
    "VoteRun",
    "VoteView",
    "default_voter",
    "migrate",
    "open_store",
    "runner_id",
]
