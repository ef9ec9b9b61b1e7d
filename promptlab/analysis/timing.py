"""How long cells will take, from how long past runs of the same model and size took.

    estimate = estimate_time(cells(spec), store)
    format_estimate(estimate)   # 'about 12 s (8 cells at 1.4 s each, from 40 past runs)'

A cell's time is the median render plus score seconds of the newest past runs of its model at its
size (the median, so one slow first load does not count for every cell). Where a model and size
has no past run there is no estimate, and ``missing`` says which.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from promptlab.experiment import Cell

if TYPE_CHECKING:
    # a type only: the caller passes the store, so importing analysis loads no database driver (sqlalchemy: most of a second)
    from promptlab.store import StoreReader

#: How many of the newest runs of a model and size inform the time of its cells.
RECENT_RUNS = 200


@dataclass(frozen=True)
class GroupTime:
    """The cells of one model and size, and what one of them took in past runs (None: no past run)."""

    model: str
    width: int | None
    height: int | None
    cells: int
    per_cell_s: float | None
    past_runs: int


@dataclass(frozen=True)
class TimeEstimate:
    """The estimated seconds of ``cells`` cells, or None where some model and size has no past run."""

    cells: int
    seconds: float | None
    groups: tuple[GroupTime, ...]

    @property
    def missing(self) -> tuple[GroupTime, ...]:
        """The models and sizes with no past run."""
        return tuple(group for group in self.groups if group.per_cell_s is None)


def estimate_time(cells: Sequence[Cell], store: StoreReader, *, recent: int = RECENT_RUNS) -> TimeEstimate:
    """The estimated time of rendering and scoring ``cells``, from ``store``'s past runs per model and size."""
    counts = Counter(
        (cell.variant.model, cell.variant.params.get("width"), cell.variant.params.get("height")) for cell in cells
    )
    groups = []
    for (model, width, height), count in counts.items():
        frame = store.run_timings(model, width, height, limit=recent)
        per_run = frame["render_s"].fillna(0.0) + frame["score_s"].fillna(0.0)
        per_run = per_run[frame["render_s"].notna()]
        median = float(per_run.median()) if len(per_run) else None
        groups.append(GroupTime(model, width, height, count, median, len(per_run)))
    known = [group.per_cell_s * group.cells for group in groups if group.per_cell_s is not None]
    seconds = sum(known) if len(known) == len(groups) else None
    return TimeEstimate(len(cells), seconds, tuple(groups))


def format_estimate(estimate: TimeEstimate) -> str:
    """One line: ``about 12 s (8 cells; micro 64x64: 1.40 s a cell from 40 past runs)``, or which model
    has no past runs to estimate from.

    >>> format_estimate(TimeEstimate(8, 11.2, (GroupTime("micro", 64, 64, 8, 1.4, 40),)))
    'about 11 s (8 cells; micro 64x64: 1.40 s a cell from 40 past runs)'
    >>> format_estimate(TimeEstimate(8, None, (GroupTime("sd", 512, 512, 8, None, 0),)))
    'no past runs of this model: no estimate (sd 512x512)'
    """
    if estimate.seconds is None:
        names = ", ".join(_group_name(group) for group in estimate.missing)
        return f"no past runs of this model: no estimate ({names})"
    parts = "; ".join(
        f"{_group_name(group)}: {group.per_cell_s:.2f} s a cell from {group.past_runs} past runs" for group in estimate.groups
    )
    return f"about {_duration(estimate.seconds)} ({estimate.cells} cells; {parts})"


def _group_name(group: GroupTime) -> str:
    size = "" if group.width is None and group.height is None else f" {group.width or '?'}x{group.height or '?'}"
    return f"{group.model}{size}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
