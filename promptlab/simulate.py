"""Experiments whose truth is known, for checking what ``promptlab.analysis`` claims.

A claim such as "95% CI" or "at most 5% of all-null experiments show a star" is a property of
the method, so it is measured: build a design's runs frame once, then simulate thousands of
replicates of its cell scores in one array and run the analysis's own model on all of them::

    check = calibrate(seeds=4, axes=3, noise="varying", effect=10.0, replicates=2000)
    check.variant_coverage, check.effect_coverage, check.fwer, check.power

A score is ``BASE`` + the true effects of the variant's levels + a seed effect shared by every
variant on that seed (SD ``SEED_SD``) + the image's own noise (SD ``noise``: one number, or
"varying": 2, 5 and 8 in turn by variant). ``tests/test_stats_calibration.py`` asserts on
these numbers; ``bench/stats.py`` prints the full table.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from promptlab.analysis import (
    AXIS_PREFIX,
    EffectModel,
    Level,
    effect_model,
    holm_adjust,
    seeds_needed,
    t_interval,
    t_quantile,
)
from promptlab.errors import PromptlabError

BASE = 20.0
SEED_SD = 5.0
VARYING_NOISE = (2.0, 5.0, 8.0)
# The axes of a 1-, 2- and 3-axis experiment: 2, 3 and 5 comparisons with the reference "".
AXES: dict[str, list[Level]] = {
    "style": ["", "pop-art", "art nouveau"],
    "artist": ["", "Alphonse Mucha"],
    "medium": ["", "oil painting", "ink"],
}
REAL = ("style", "pop-art")
SECOND = ("medium", "oil painting")
DESIGNS = ("grid", "random", "failed")


@dataclass(frozen=True)
class Calibration:
    """Measured properties of the analysis on one simulated design (shares of replicates)."""

    seeds: int
    axes: int
    noise: str
    effect: float
    design: str
    replicates: int
    comparisons: int
    variant_coverage: float
    effect_coverage: float
    fwer: float
    power: float
    paired_width: float
    unpaired_width: float


def design_frame(
    axes: Mapping[str, Sequence[Level]],
    seeds: int,
    *,
    combos: Sequence[tuple[Level, ...]] | None = None,
    failed: Sequence[tuple[int, int]] = (),
) -> pd.DataFrame:
    """A runs frame of ``combos`` (default: the full grid) on seeds 0..seeds-1; ``failed`` (variant, seed) cells have no score."""
    if seeds < 1:
        raise PromptlabError(f"seeds must be at least 1, got {seeds}")
    names = list(axes)
    combos = list(combos) if combos is not None else list(itertools.product(*axes.values()))
    lost = set(failed)
    rows = []
    for variant, combo in enumerate(combos):
        key = ", ".join(f"{n}={v}" for n, v in zip(names, combo))
        for seed in range(seeds):
            rows.append(
                {
                    "run_id": len(rows), "variant_key": key, "label": key, "seed": seed, "subject": "a cat",
                    "score": math.nan if (variant, seed) in lost else 0.0, "image": "", "prompt": key,
                    "negative_prompt": "",
                    **{AXIS_PREFIX + n: v for n, v in zip(names, combo)},
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def cell_scores(
    model: EffectModel,
    effects: Mapping[tuple[str, Level], float],
    replicates: int,
    rng: np.random.Generator,
    *,
    noise: float | str = 4.0,
) -> np.ndarray:
    """(cells, replicates) scores of the model's cells: base + effects + a shared seed effect + each image's noise."""
    cells = model.cells
    truth = np.full(len(cells), BASE)
    for (axis, level), value in effects.items():
        truth += np.where(cells[AXIS_PREFIX + axis] == level, value, 0.0)
    seed_codes, seed_values = pd.factorize(cells["seed"])
    seed_effect = rng.normal(0.0, SEED_SD, (len(seed_values), replicates))[seed_codes]
    sd = noise_sd(cells, noise)
    return truth[:, None] + seed_effect + rng.normal(0.0, 1.0, (len(cells), replicates)) * sd[:, None]


def noise_sd(cells: pd.DataFrame, noise: float | str) -> np.ndarray:
    """Each cell's image-noise SD: one number for all, or "varying" (2, 5, 8 in turn by variant)."""
    if noise == "varying":
        codes = pd.factorize(cells["variant_key"])[0]
        return np.asarray(VARYING_NOISE)[codes % len(VARYING_NOISE)]
    if isinstance(noise, str):
        raise PromptlabError(f"noise must be an SD or 'varying', got {noise!r}")
    return np.full(len(cells), float(noise))


def true_differences(model: EffectModel, effects: Mapping[tuple[str, Level], float]) -> np.ndarray:
    """Each comparison's true value: the level's effect minus the reference's."""
    return np.array(
        [effects.get((c.axis, c.level), 0.0) - effects.get((c.axis, c.reference), 0.0) for c in model.comparisons]
    )


def contrast_sd(model: EffectModel, noise: float | str, comparison: int = 0) -> float:
    """The true SD of one comparison's per-seed contrast when every seed holds the same cells (for planning)."""
    weights = model.comparisons[comparison].weights
    fit = model.fits[comparison]
    if weights is None or fit is None:
        raise PromptlabError(f"comparison {comparison} is not estimable; it has no per-seed contrast")
    sd = noise_sd(model.cells.iloc[fit.rows], noise)
    seeds = len(fit.seed_starts)
    # the seed effect cancels within a seed; only image noise is left, weighted
    return float(seeds * math.sqrt(np.sum((weights * sd) ** 2) / seeds))


def calibrate(
    seeds: int,
    axes: int = 3,
    *,
    noise: float | str = "varying",
    effect: float = 10.0,
    design: str = "grid",
    replicates: int = 2000,
    alpha: float = 0.05,
    rng: np.random.Generator | None = None,
) -> Calibration:
    """Coverage, familywise error, power and interval widths of the analysis on one design.

    ``design``: "grid" (every combination), "random" (half of them, as ``strategy = "random"``
    draws) or "failed" (the grid with 15% of its cells failed). The truth has ``effect`` on
    style=pop-art and, with 3 axes, +5 on medium=oil painting, so a design that does not cross
    its axes would bias an unadjusted comparison; the FWER experiments have no effect at all.
    """
    rng = rng or np.random.default_rng([seeds, axes, int(effect * 10), DESIGNS.index(design)])
    chosen = dict(itertools.islice(AXES.items(), axes))
    model = effect_model(_design(chosen, seeds, design, rng))
    truth = {REAL: effect, **({SECOND: 5.0} if "medium" in chosen else {})}
    # 1. variants: the t-interval over per-seed means that variant_table takes (one subject: the cells)
    scores = cell_scores(model, truth, replicates, rng, noise=noise)
    covered, intervals = 0, 0
    for key, rows in model.cells.groupby("variant_key", sort=False).indices.items():
        if len(rows) < 2:
            continue
        mean = BASE + sum(truth.get((a, model.cells[AXIS_PREFIX + a].iloc[rows[0]]), 0.0) for a in chosen)
        _, low, high = t_interval(scores[rows].T)
        covered += int(np.sum((low <= mean) & (mean <= high)))
        intervals += replicates
    # 2. effects: 95% intervals, then stars with the real effects (power) and with none (FWER)
    found = model.estimate(scores)
    low, high = found.interval(0.95)
    differences = true_differences(model, truth)[:, None]
    tested = ~np.isnan(low)
    hits = (low <= differences) & (differences <= high)
    starred = holm_adjust(found.p_values()) <= alpha
    first = next(i for i, c in enumerate(model.comparisons) if (c.axis, c.level) == REAL)
    null = model.estimate(cell_scores(model, {}, replicates, rng, noise=noise))
    return Calibration(
        seeds=seeds,
        axes=axes,
        noise=str(noise),
        effect=effect,
        design=design,
        replicates=replicates,
        comparisons=len(model.comparisons),
        variant_coverage=covered / intervals if intervals else math.nan,
        effect_coverage=float(hits[tested].mean()) if tested.any() else math.nan,
        fwer=float(np.mean((holm_adjust(null.p_values()) <= alpha).any(axis=0))),
        power=float(np.mean(starred[first])),
        paired_width=float(np.mean(high[first] - low[first])) if tested[first].any() else math.nan,
        unpaired_width=_unpaired_width(model, scores, REAL) if design == "grid" and seeds >= 2 else math.nan,
    )


def _design(axes: Mapping[str, Sequence[Level]], seeds: int, design: str, rng: np.random.Generator) -> pd.DataFrame:
    grid = list(itertools.product(*axes.values()))
    if design == "grid":
        return design_frame(axes, seeds)
    if design == "random":
        # half the grid, drawn until every level of every axis is in it (the draw promptlab's sampler makes)
        size = max(len(grid) // 2, *(len(levels) + 1 for levels in axes.values()))
        while size < len(grid):
            combos = [grid[i] for i in sorted(rng.choice(len(grid), size, replace=False))]
            if all({c[k] for c in combos} == set(levels) for k, levels in enumerate(axes.values())):
                return design_frame(axes, seeds, combos=combos)
        return design_frame(axes, seeds)
    if design == "failed":
        cells = [(v, s) for v in range(len(grid)) for s in range(seeds)]
        lost = rng.choice(len(cells), round(0.15 * len(cells)), replace=False)
        return design_frame(axes, seeds, failed=[cells[i] for i in lost])
    raise PromptlabError(f"design must be one of {', '.join(DESIGNS)}, got {design!r}")


def plan_check(
    effect: float,
    *,
    axes: int = 1,
    noise: float | str = 2.0,
    power: float = 0.80,
    alpha: float = 0.05,
    replicates: int = 4000,
    rng: np.random.Generator | None = None,
) -> tuple[int, float, float]:
    """Seeds ``seeds_needed`` plans with the true contrast SD, and the share of experiments of that size
    that star the real effect; with the power the plan promised (planned seeds, achieved, promised)."""
    from promptlab.analysis import t_test_power

    rng = rng or np.random.default_rng([int(effect * 100), axes])
    chosen = dict(itertools.islice(AXES.items(), axes))
    pilot = effect_model(design_frame(chosen, 4))
    first = next(i for i, c in enumerate(pilot.comparisons) if (c.axis, c.level) == REAL)
    sd = contrast_sd(pilot, noise, first)
    family = len(pilot.comparisons)
    planned = seeds_needed(sd, effect, alpha=alpha, family_size=family, power=power)
    assert planned is not None
    model = effect_model(design_frame(chosen, planned))
    found = model.estimate(cell_scores(model, {REAL: effect}, replicates, rng, noise=noise))
    achieved = float(np.mean(holm_adjust(found.p_values())[first] <= alpha))
    promised = float(t_test_power(planned, sd, effect, alpha=alpha, family_size=family))
    return planned, achieved, promised


def _unpaired_width(model: EffectModel, scores: np.ndarray, real: tuple[str, Level]) -> float:
    """Mean width of the Welch 95% interval of level minus reference over per-seed means, seeds unpaired."""
    axis, level = real
    cells = model.cells
    reference = next(c.reference for c in model.comparisons if (c.axis, c.level) == real)
    seed_codes = pd.factorize(cells["seed"])[0]
    groups = []
    for side in (level, reference):
        mask = (cells[AXIS_PREFIX + axis] == side).to_numpy()
        sums = np.add.reduceat(scores[mask], np.flatnonzero(np.r_[True, np.diff(seed_codes[mask]) != 0]), axis=0)
        groups.append(sums / np.bincount(seed_codes[mask])[:, None])
    n = groups[0].shape[0]
    v1, v2 = (g.var(axis=0, ddof=1) / n for g in groups)
    df = (v1 + v2) ** 2 / (v1**2 / (n - 1) + v2**2 / (n - 1))
    return float(np.mean(2 * t_quantile(df, 0.975) * np.sqrt(v1 + v2)))
