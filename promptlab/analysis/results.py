"""What an analysis returns: variants, effects, best prompts (typed values, each with ``to_dict``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from promptlab.analysis.frame import VARIANT_LEVEL, Level, jsonable
from promptlab.analysis.inference import t_p_value, t_quantile
from promptlab.analysis.progress import CellCounts


@dataclass(frozen=True)
class VariantStats:
    """One variant's score over its seeds and its best image; ``note`` says why a number is missing.

    ``n`` counts the seeds with a score (the interval's n), ``n_runs`` the runs with a score and
    ``n_failed`` the runs without one (failed or not scored); ``axes`` is its level of each axis.
    """

    variant_key: str
    label: str
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    ci_level: float
    n: int
    n_runs: int
    n_failed: int
    best_score: float
    best_image: str
    best_run_id: Any
    prompt: str
    negative_prompt: str
    axes: dict[str, Any]
    note: str


@dataclass(frozen=True)
class Effect:
    """One axis level against the axis's reference, adjusted for the other axes, paired by seed."""

    axis: str
    level: Level
    reference: Level
    n_seeds: int
    n_cells: int
    mean_diff: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    ci_level: float
    wins: float
    win_rate: float
    win_low: float
    win_high: float
    p_value: float
    p_holm: float
    significant: bool
    seeds_needed: int | None
    note: str


@dataclass(frozen=True)
class BestPrompt:
    """A top-ranked variant, ready to copy: its prompt and its best image."""

    rank: int
    variant_key: str
    label: str
    prompt: str
    negative_prompt: str
    image: str
    best_score: float
    mean: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class Analysis:
    """Everything ``promptlab analyze`` shows for one experiment and one score kind; ``cells`` says how far it got."""

    experiment: str
    score_kind: str
    effect_size: float
    alpha: float
    power: float
    family_size: int
    n_runs: int
    n_failed: int
    variants: list[VariantStats]
    effects: list[Effect]
    best: list[BestPrompt]
    cells: CellCounts | None = None
    #: The scorer whose scores these are ("" when not known), and what its scores allow (``scorer_note``).
    scorer: str = ""
    scorer_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes null, numpy scalars become Python numbers."""
        return jsonable(
            {
                "experiment": self.experiment,
                "score_kind": self.score_kind,
                "scorer": self.scorer,
                "scorer_note": self.scorer_note,
                "effect_size": self.effect_size,
                "alpha": self.alpha,
                "power": self.power,
                "family_size": self.family_size,
                "n_runs": self.n_runs,
                "n_failed": self.n_failed,
                "variant_ci_level": VARIANT_LEVEL,
                "variants": [asdict(v) for v in self.variants],
                "effects": [asdict(e) for e in self.effects],
                "best": [asdict(b) for b in self.best],
                "cells": None if self.cells is None else {**asdict(self.cells), "not_run": self.cells.not_run, "incomplete": self.cells.incomplete},
            }
        )


@dataclass(frozen=True)
class Comparison:
    """One level against its axis's reference, as weights on the model's cells (estimate = weights @ scores)."""

    axis: str
    level: Level
    reference: Level
    weights: np.ndarray | None
    adjusted: np.ndarray | None
    df: float
    n_seeds: int
    note: str


@dataclass(frozen=True)
class Estimates:
    """Each comparison's estimate and clustered SE, for one or many columns of cell scores.

    ``estimate``, ``se`` and ``wins`` are (comparisons, replicates); ``df`` (Bell-McCaffrey's),
    ``n_seeds`` and ``n_cells`` are per comparison; one not estimable, or on one seed, has NaN SE.
    """

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    n_seeds: np.ndarray
    n_cells: np.ndarray
    wins: np.ndarray

    def p_values(self) -> np.ndarray:
        """Two-sided t-test p-values; NaN where untested."""
        return t_p_value(self.estimate, self.se, self.df[:, None])

    def interval(self, level: float | np.ndarray = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """t-interval bounds at ``level`` (a number, or one per comparison)."""
        level = np.asarray(level, dtype=float)
        if level.ndim == 1:
            level = level[:, None]
        half = t_quantile(self.df[:, None], 0.5 + level / 2) * self.se
        return self.estimate - half, self.estimate + half
