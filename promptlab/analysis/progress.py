"""How far an experiment got: the cells its file plans, the cells done and the cells that failed.

    >>> spec = {"name": "demo", "model": "micro", "seeds": 2, "prompt": {"subject": "a circle"},
    ...         "axes": {"color": ["red", "blue"]}}
    >>> planned_cells(spec).count
    4
    >>> format_cells(CellCounts(planned=48, done=40, failed=2))
    'Incomplete: 40 of 48 cells done, 2 failed, 6 not run yet'

From a store: ``cell_counts(store.runs_frame(name), planned_cells(row.spec, row.source_path))``
where ``row = store.get_experiment(name)``, or all of it at once with the best image so far:
``experiment_state(store, name)`` (``.cells``, ``.best.score``, ``.best.image``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from promptlab.errors import PromptlabError
from promptlab.experiment import cells, parse_experiment, to_toml

if TYPE_CHECKING:
    # a type only: the caller passes the store, so importing analysis loads no database driver (sqlalchemy: most of a second)
    from promptlab.store import StoreReader


@dataclass(frozen=True)
class PlannedCells:
    """The number of cells (variant x seed) an experiment file plans, or None and why it cannot be told."""

    count: int | None
    note: str = ""


@dataclass(frozen=True)
class CellCounts:
    """An experiment's cells: planned (None when not known), done (a run that finished), failed (every run failed)."""

    planned: int | None
    done: int
    failed: int
    note: str = ""

    @property
    def not_run(self) -> int | None:
        """Planned cells with no run at all yet, or None when the plan is not known."""
        return None if self.planned is None else max(self.planned - self.done - self.failed, 0)

    @property
    def incomplete(self) -> bool:
        """A cell failed, or the plan is known and some planned cell is not done."""
        return bool(self.failed) or (self.planned is not None and self.done < self.planned)


def planned_cells(spec: Mapping[str, Any], source_path: str | None = None) -> PlannedCells:
    """The cells the experiment file's parsed TOML (``Experiment.spec``) expands to today.

    ``source_path`` is the file it was read from (relative input images start at its folder).
    A file that no longer expands (a term gone from the vocabulary, an input image moved)
    gives no count and says why, rather than a wrong one.
    """
    if not spec:
        return PlannedCells(None, "the experiment has no stored file to count its planned cells from")
    if "search" in spec:
        return PlannedCells(None, "a search plans its cells round by round, as their scores come in")
    source: str | Path = Path(source_path) if source_path else str(spec.get("name", "<experiment>"))
    try:
        return PlannedCells(len(cells(parse_experiment(to_toml(spec), source))))
    except PromptlabError as error:
        return PlannedCells(None, f"its file no longer expands to cells: {str(error).splitlines()[0]}")


def cell_counts(frame: pd.DataFrame, planned: PlannedCells | None = None) -> CellCounts:
    """Done and failed cells (variant key, seed) of a runs frame; a cell with one finished run is done.

    Without a ``status`` column a run counts as finished when it has a score.
    """
    if frame.empty:
        return CellCounts(planned.count if planned else None, 0, 0, planned.note if planned else "")
    finished = frame["status"].eq("ok") if "status" in frame.columns else frame["score"].notna()
    per_cell = finished.groupby([frame["variant_key"], frame["seed"]]).any()
    done = int(per_cell.sum())
    return CellCounts(
        planned=planned.count if planned else None,
        done=done,
        failed=len(per_cell) - done,
        note=planned.note if planned else "",
    )


def format_cells(counts: CellCounts) -> str:
    """``Incomplete: 12 of 16 cells done, 2 failed, 2 not run yet`` or ``Complete: 16 of 16 cells done``.

    Without a known plan only failed cells make it incomplete, and a plan that could not be
    counted says why.
    """
    parts = [f"{counts.done} of {counts.planned} cells done" if counts.planned is not None else f"{counts.done} cells done"]
    if counts.failed:
        parts.append(f"{counts.failed} failed")
    if counts.not_run:
        parts.append(f"{counts.not_run} not run yet")
    text = ", ".join(parts)
    if counts.planned is None and counts.note:
        text += f" (planned cells not known: {counts.note})"
    if counts.incomplete:
        return f"Incomplete: {text}"
    return f"Complete: {text}" if counts.planned is not None else text


@dataclass(frozen=True)
class BestImage:
    """The run with the highest score of an experiment: its image file, score, variant and seed."""

    run_id: int
    label: str
    seed: int
    score: float
    image: str


@dataclass(frozen=True)
class ExperimentState:
    """How far an experiment got (``cells``) and its best image so far (None before a scored image)."""

    name: str
    cells: CellCounts
    best: BestImage | None

    @property
    def incomplete(self) -> bool:
        return self.cells.incomplete


def best_image(frame: pd.DataFrame) -> BestImage | None:
    """The finished run with an image and the highest score in a runs frame (the first on a tie), or None."""
    if frame.empty:
        return None
    scored = frame[frame["score"].notna() & frame["image"].notna()]
    if "status" in scored.columns:
        scored = scored[scored["status"].eq("ok")]
    if scored.empty:
        return None
    row = scored.loc[scored["score"].idxmax()]
    return BestImage(int(row["run_id"]), str(row["label"]), int(row["seed"]), float(row["score"]), str(row["image"]))


def experiment_state(store: StoreReader, name: str, score_kind: str = "intent") -> ExperimentState:
    """Planned, done and failed cells of the stored experiment ``name`` and its best image by ``score_kind``.

    One read of its runs (scored by its ranking scorer: ``Store.runs_frame``) and one expansion of
    its stored file. StoreError where there is no such experiment.
    """
    row = store.get_experiment(name)
    frame = store.runs_frame(name, score_kind)
    counts = cell_counts(frame, planned_cells(row.spec, row.source_path))
    return ExperimentState(name, counts, best_image(frame))
