"""Term effects: a within-seed linear model per axis, CR2 standard errors clustered by seed, Bell-McCaffrey df, Holm stars."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from promptlab.analysis.frame import (
    ABSENT,
    AXIS_PREFIX,
    RELATIVE_TOLERANCE,
    Level,
    all_runs,
    axis_columns,
    axis_levels,
    check_alpha,
    is_nested,
    level_name,
    python_value,
)
from promptlab.analysis.inference import Interval, holm, holm_levels, seeds_needed, wilson_interval
from promptlab.analysis.results import Comparison, Effect, Estimates
from promptlab.errors import PromptlabError


@dataclass(frozen=True)
class _AxisFit:
    """One axis's least-squares fit within (seed, subject) blocks: the cells it uses, an orthonormal basis of its design, its groups.

    ``seed_svds`` holds, per seed, the left singular vectors and singular values of the seed's rows
    of ``basis``: every comparison of the axis needs them for its CR2 weights, so they are found once.
    """

    rows: np.ndarray
    names: list[tuple[str, Level]]
    basis: np.ndarray
    singular: np.ndarray
    row_space: np.ndarray
    block_starts: np.ndarray
    block_sizes: np.ndarray
    seed_starts: np.ndarray
    seed_svds: tuple[tuple[np.ndarray, np.ndarray], ...]


@dataclass(frozen=True)
class EffectModel:
    """The model behind ``effects_table``: the scored cells and each comparison's weights on them.

    ``cells`` is sorted by seed and subject; ``estimate(scores)`` takes the cell scores (one
    column per replicate), so a simulation runs thousands of experiments in one call.
    """

    cells: pd.DataFrame
    comparisons: list[Comparison]
    fits: list[_AxisFit | None]

    def estimate(self, scores: np.ndarray | None = None) -> Estimates:
        """Estimates of every comparison from cell ``scores`` (default: the cells' own)."""
        y = self.cells["score"].to_numpy(dtype=float) if scores is None else np.asarray(scores, dtype=float)
        if y.shape[0] != len(self.cells):
            raise PromptlabError(f"estimate: scores have {y.shape[0]} rows, the model has {len(self.cells)} cells")
        y = y[:, None] if y.ndim == 1 else y
        count, reps = len(self.comparisons), y.shape[1]
        out = {name: np.full((count, reps), math.nan) for name in ("estimate", "se", "wins")}
        residuals: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i, (comparison, fit) in enumerate(zip(self.comparisons, self.fits)):
            if comparison.weights is not None and comparison.adjusted is not None and fit is not None:
                # an axis's comparisons share one fit: its residuals are computed once
                if id(fit) not in residuals:
                    residuals[id(fit)] = _residuals(fit, y[fit.rows])
                found = _clustered(comparison.weights, comparison.adjusted, fit, *residuals[id(fit)])
                out["estimate"][i], out["se"][i], out["wins"][i] = found
                if math.isnan(comparison.df):
                    out["se"][i] = math.nan
        return Estimates(
            estimate=out["estimate"],
            se=out["se"],
            df=np.array([c.df for c in self.comparisons], dtype=float),
            n_seeds=np.array([c.n_seeds for c in self.comparisons], dtype=int),
            n_cells=np.array([0 if c.weights is None else np.count_nonzero(c.weights) for c in self.comparisons]),
            wins=out["wins"],
        )


def effect_model(frame: pd.DataFrame, *, reference: Mapping[str, Level] | None = None) -> EffectModel:
    """The cells and, for every axis level, its comparison with the axis's reference (see the module docstring)."""
    design = all_runs(frame)
    axes = axis_columns(design)
    cells = _cells(design, axes)
    references = _check_reference(reference or {}, design, axes)
    comparisons: list[Comparison] = []
    fits: list[_AxisFit | None] = []
    for column in axes:
        levels = axis_levels(design[column])
        if len(levels) < 2:
            continue
        name = column[len(AXIS_PREFIX) :]
        present = set(axis_levels(cells[column]))
        scored_levels = [level for level in levels if level in present]
        ref = references.get(name, _default_reference(levels, scored_levels))
        others = [c for c in axes if c != column and not is_nested(design, c, column)]
        fit = _fit_axis(cells, column, levels, others)
        for level in levels:
            if level == ref:
                continue
            weights, note = None, _missing_note(design, column, level, ref, scored_levels)
            if not note and fit is not None:
                weights, note = _contrast_weights(fit, name, level, ref)
            if weights is None or fit is None:
                comparisons.append(Comparison(name, level, ref, None, None, math.nan, 0, note))
            else:
                adjusted, df, n_seeds = _cr2(fit, weights)
                if math.isnan(df):
                    note = _untestable_note(cells, column, level, ref, n_seeds)
                comparisons.append(Comparison(name, level, ref, weights, adjusted, df, n_seeds, note))
            fits.append(fit)
    return EffectModel(cells, comparisons, fits)


def effects_table(
    frame: pd.DataFrame,
    *,
    reference: Mapping[str, Level] | None = None,
    effect_size: float = 1.0,
    alpha: float = 0.05,
    power: float = 0.80,
) -> list[Effect]:
    """Every axis level against its axis's reference, adjusted for the other axes, ranked by effect."""
    check_alpha(alpha)
    if not effect_size > 0:
        raise PromptlabError(f"effect_size must be a positive score difference, got {effect_size}")
    # 1. the model and every comparison's estimate, SE and t-test
    model = effect_model(frame, reference=reference)
    found = model.estimate()
    estimate, se, wins = found.estimate[:, 0], found.se[:, 0], found.wins[:, 0]
    p_values = found.p_values()[:, 0]
    # 2. Holm over the tested comparisons; each CI at the level Holm judged it at
    p_holm = holm(p_values)
    levels = holm_levels(p_values, alpha)
    low, high = found.interval(np.nan_to_num(np.asarray(levels), nan=0.95))
    family = int(np.sum(~np.isnan(p_values)))
    effects = []
    for i, c in enumerate(model.comparisons):
        tested = not math.isnan(p_values[i])
        n_seeds = int(found.n_seeds[i])
        win = wilson_interval(wins[i], n_seeds) if n_seeds and tested else Interval(math.nan, math.nan)
        note = c.note
        effects.append(
            Effect(
                axis=c.axis,
                level=c.level,
                reference=c.reference,
                n_seeds=n_seeds,
                n_cells=int(found.n_cells[i]),
                mean_diff=float(estimate[i]),
                se=float(se[i]),
                df=float(found.df[i]),
                ci_low=float(low[i, 0]) if tested else math.nan,
                ci_high=float(high[i, 0]) if tested else math.nan,
                ci_level=float(levels[i]),
                wins=float(wins[i]) if tested else math.nan,
                win_rate=float(wins[i] / n_seeds) if tested else math.nan,
                win_low=float(win.low),
                win_high=float(win.high),
                p_value=float(p_values[i]),
                p_holm=float(p_holm[i]),
                significant=bool(tested and p_holm[i] <= alpha),
                seeds_needed=(
                    seeds_needed(se[i] * math.sqrt(n_seeds), effect_size, alpha=alpha, family_size=family, power=power)
                    if tested
                    else None
                ),
                note=note,
            )
        )
    # 3. ranked by effect, comparisons without an estimate last
    return sorted(effects, key=lambda e: -e.mean_diff if not math.isnan(e.mean_diff) else math.inf)


def _residuals(fit: _AxisFit, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores centred within blocks, and the full model's residuals, per column of ``y``."""
    centred = _centre(y, fit.block_starts, fit.block_sizes)
    return centred, centred - fit.basis @ (fit.basis.T @ centred)


def _clustered(
    weights: np.ndarray, adjusted: np.ndarray, fit: _AxisFit, centred: np.ndarray, residual: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, CR2 SE clustered by seed, and wins over the informing seeds, per column of the scores."""
    # each seed's share of the estimate, and its score: leverage-adjusted weights times residuals
    share = np.add.reduceat(weights[:, None] * centred, fit.seed_starts, axis=0)
    score = np.add.reduceat(adjusted[:, None] * residual, fit.seed_starts, axis=0)
    informing = np.add.reduceat(np.abs(weights), fit.seed_starts) > 0
    seeds = int(informing.sum())
    estimate = share.sum(axis=0)
    se = np.sqrt((score**2).sum(axis=0)) if seeds >= 2 else np.full(centred.shape[1], math.nan)
    # rounding error is not evidence: noise-free data must test as exactly what it is
    scale = np.maximum(1.0, np.abs(centred).max(axis=0, initial=0.0)) * RELATIVE_TOLERANCE
    se = np.where(se <= scale, 0.0, se)
    estimate = np.where(np.abs(estimate) <= scale, 0.0, estimate)
    contrast = seeds * share[informing]
    tie = np.abs(contrast) <= scale
    wins = ((contrast > 0) & ~tie).sum(axis=0) + 0.5 * tie.sum(axis=0)
    return estimate, se, wins


def _cr2(fit: _AxisFit, weights: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Bell and McCaffrey's CR2 weights (each seed's weights times (I - H_gg)^-1/2), their df, and the informing seeds.

    Within a seed the weights and residuals are centred within blocks, where I - H_gg is
    I - U_g U_g'; so the adjustment needs only the SVD of the seed's rows of the fit's basis.
    With the same cells on every seed it is G / (G - 1) on the variance and G - 1 df: the paired t-test.
    """
    adjusted = np.zeros_like(weights)
    degenerate = False
    bounds = np.r_[fit.seed_starts, len(weights)]
    for low, high, (left, singular) in zip(bounds[:-1], bounds[1:], fit.seed_svds):
        own = weights[low:high]
        if not own.any():
            continue
        remaining = 1 - singular**2
        # a cell with leverage 1 (say, a level scored on one seed only) leaves no residual to learn its noise from
        factor = np.where(remaining > 1e-10, 1 / np.sqrt(np.maximum(remaining, 1e-300)), 0.0)
        along = left.T @ own
        if np.abs(along[remaining <= 1e-10]).max(initial=0.0) > 1e-8 * np.abs(own).max():
            degenerate = True
        adjusted[low:high] = own + left @ ((factor - 1) * along)
    informing = np.add.reduceat(np.abs(weights), fit.seed_starts) > 0
    seeds = int(informing.sum())
    if seeds < 2 or degenerate:
        return adjusted, math.nan, seeds
    # Satterthwaite df of the CR2 variance under independent errors of equal variance:
    # tr(B)^2 / tr(B^2), B = V'MV with V each seed's adjusted weights as a column
    norms = np.add.reduceat(adjusted**2, fit.seed_starts)[informing]
    projected = np.add.reduceat(fit.basis * adjusted[:, None], fit.seed_starts, axis=0)[informing]
    b = np.diag(norms) - projected @ projected.T
    return adjusted, float(np.trace(b) ** 2 / np.sum(b**2)), seeds


def _cells(runs: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """One row per scored (variant, seed, subject), sorted by seed and subject: mean score and axis values."""
    scored = runs[runs["score"].notna()]
    keys = ["variant_key", "seed", "subject"]
    aggregations = {"score": ("score", "mean"), **{c: (c, "first") for c in axes}}
    cells = scored.groupby(keys, sort=False, dropna=False).agg(**aggregations).reset_index()
    return cells.sort_values(["seed", "subject"], kind="stable").reset_index(drop=True)


def _fit_axis(cells: pd.DataFrame, column: str, levels: list[Level], others: list[str]) -> _AxisFit | None:
    """Dummy columns of the axis and of the others, centred within (seed, subject) blocks, and the fit they span."""
    part = cells[cells[column].notna()]
    if part.empty:
        return None
    # 1. every level of every axis a dummy column; collinear ones are fine, only contrasts are read
    names: list[tuple[str, Level]] = []
    dummies = []
    for axis in [column, *others]:
        values = part[axis].astype(object).where(part[axis].notna(), "n/a")
        codes, found = pd.factorize(values)
        for level in levels if axis == column else [python_value(v) for v in found]:
            names.append((axis[len(AXIS_PREFIX) :], level))
            position = [i for i, v in enumerate(found) if v == level]
            dummies.append((codes == position[0]).astype(float) if position else np.zeros(len(part)))
    # 2. blocks (seed, subject) and seeds are contiguous runs of rows, since cells are sorted
    block = part.groupby(["seed", "subject"], sort=False).ngroup().to_numpy()
    seed = part.groupby("seed", sort=False).ngroup().to_numpy()
    block_starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    block_sizes = np.diff(np.r_[block_starts, len(block)])
    seed_starts = np.flatnonzero(np.r_[True, seed[1:] != seed[:-1]])
    centred = _centre(np.column_stack(dummies), block_starts, block_sizes)
    # 3. the eigenvectors of X'X give the fit's basis and the contrasts the design can estimate
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred)
    keep = eigenvalues > eigenvalues.max(initial=0.0) * 1e-10
    singular, row_space = np.sqrt(eigenvalues[keep]), vectors[:, keep].T
    basis = centred @ row_space.T / singular
    # 4. each seed's rows of the basis, decomposed once for all of the axis's comparisons (see _cr2)
    bounds = np.r_[seed_starts, len(basis)]
    seed_svds = tuple(
        tuple(np.linalg.svd(basis[low:high], full_matrices=False)[:2]) for low, high in zip(bounds[:-1], bounds[1:])
    )
    return _AxisFit(
        rows=np.flatnonzero(cells[column].notna().to_numpy()),
        names=names,
        basis=basis,
        singular=singular,
        row_space=row_space,
        block_starts=block_starts,
        block_sizes=block_sizes,
        seed_starts=seed_starts,
        seed_svds=seed_svds,  # type: ignore[arg-type]
    )


def _contrast_weights(fit: _AxisFit, axis: str, level: Level, ref: Level) -> tuple[np.ndarray | None, str]:
    """Weights on the fit's cells whose sum is level - reference, or None and why the design cannot tell."""
    contrast = np.zeros(len(fit.names))
    contrast[fit.names.index((axis, level))] = 1.0
    contrast[fit.names.index((axis, ref))] = -1.0
    # the part of the contrast outside the design's row space is what no fit can see
    lost = contrast - fit.row_space.T @ (fit.row_space @ contrast)
    if np.abs(lost).max() > 1e-8:
        tangled = sorted({name for (name, _), w in zip(fit.names, lost) if abs(w) > 1e-8 and name != axis})
        if tangled:
            return None, f"not estimable: in these runs it always changes together with {', '.join(tangled)}"
        return None, f"not estimable: no seed (and subject) links it to {level_name(axis, ref)} through scored runs"
    return fit.basis @ ((fit.row_space @ contrast) / fit.singular), ""


def _centre(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Rows minus their block's mean (blocks are contiguous runs of rows)."""
    means = np.add.reduceat(values, starts, axis=0) / sizes.reshape(-1, *([1] * (values.ndim - 1)))
    return values - np.repeat(means, sizes, axis=0)


def _missing_note(design: pd.DataFrame, column: str, level: Level, ref: Level, scored: list[Level]) -> str:
    """Why a comparison has no number before any model is fitted: a side with no scored run."""
    axis = column[len(AXIS_PREFIX) :]
    for side in (level, ref):
        if side not in scored:
            runs = int((design[column] == side).sum())
            return f"{level_name(axis, side)} has no scored run ({runs} failed or unscored)"
    return ""


def _untestable_note(cells: pd.DataFrame, column: str, level: Level, ref: Level, n_seeds: int) -> str:
    """Why an estimable comparison has no test: too few seeds, or cells whose noise nothing else measures."""
    axis = column[len(AXIS_PREFIX) :]
    if n_seeds < 2:
        return "1 seed: no test (a test needs 2 seeds)"
    for side in (level, ref):
        seeds = cells.loc[cells[column] == side, "seed"].nunique()
        if seeds < 2:
            return f"no test: {level_name(axis, side)} is scored on 1 seed only (a test needs 2)"
    return "no test: some of its cells are alone of their kind, so their noise cannot be measured"


def _default_reference(levels: list[Level], scored: list[Level]) -> Level:
    if ABSENT in scored:
        return ABSENT
    return scored[0] if scored else levels[0]


def _check_reference(reference: Mapping[str, Level], runs: pd.DataFrame, axes: list[str]) -> dict[str, Level]:
    """Resolve user-given reference levels to the axis's own values; "7.5" matches 7.5."""
    names = [c[len(AXIS_PREFIX) :] for c in axes]
    resolved: dict[str, Level] = {}
    for name, wanted in reference.items():
        if name not in names:
            raise PromptlabError(f"reference: unknown axis {name!r}; the experiment's axes are {names}")
        levels = axis_levels(runs[AXIS_PREFIX + name])
        match = [v for v in levels if v == wanted or str(v) == str(wanted)]
        if not match:
            raise PromptlabError(f"reference: axis {name!r} has no level {wanted!r}; its levels are {levels}")
        resolved[name] = match[0]
    return resolved
