"""Student's t and Wilson intervals, t-test power and seeds needed, and Holm's step-down: the statistics the analysis rests on."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from promptlab.analysis.frame import VARIANT_LEVEL, check_alpha
from promptlab.errors import PromptlabError


@dataclass(frozen=True)
class Interval:
    """A two-sided interval."""

    low: float
    high: float


def t_quantile(df: Any, q: Any) -> np.ndarray:
    """Student's t quantile (vectorised; df may be fractional); NaN where df is not positive."""
    from scipy import special

    df = np.asarray(df, dtype=float)
    valid = df > 0
    return np.where(valid, special.stdtrit(np.where(valid, df, 1.0), q), math.nan)


def t_p_value(estimate: Any, se: Any, df: Any) -> np.ndarray:
    """Two-sided p of estimate / se on ``df`` degrees of freedom; an SE of 0 gives 0 (or 1 for a 0 estimate)."""
    from scipy import special

    estimate, se, df = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (estimate, se, df)))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(estimate) / se
        p = 2 * special.stdtr(np.where(df > 0, df, 1.0), -t)
    exact = se == 0
    p = np.where(exact, np.where(estimate == 0, 1.0, 0.0), p)
    return np.where(np.isnan(se) | ~(df > 0), math.nan, p)


def t_interval(values: np.ndarray, level: float = VARIANT_LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student's t interval over the last axis (n - 1 df); NaN bounds where n < 2."""
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    mean = values.mean(axis=-1)
    if n < 2:
        nan = np.full(mean.shape, math.nan)
        return mean, nan, nan
    half = t_quantile(n - 1, 0.5 + level / 2) * values.std(axis=-1, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion ``successes / n`` (successes may be fractional)."""
    if n < 1 or not 0 <= successes <= n:
        raise PromptlabError(f"Wilson interval: need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return Interval(centre - half, centre + half)


def t_test_power(
    seeds: Any, sd: float, effect_size: float, *, alpha: float = 0.05, family_size: int = 1
) -> np.ndarray:
    """Power of the two-sided t-test on ``seeds`` per-seed contrasts of SD ``sd`` at level alpha / family_size."""
    from scipy import special

    seeds = np.asarray(seeds, dtype=float)
    level = alpha / family_size
    critical = t_quantile(seeds - 1, 1 - level / 2)
    if sd == 0:
        return np.where(seeds >= 2, 1.0, 0.0)
    shift = effect_size * np.sqrt(seeds) / sd
    df = np.maximum(seeds - 1, 1)
    power = 1 - special.nctdtr(df, shift, critical) + special.nctdtr(df, shift, -critical)
    return np.where(seeds >= 2, power, 0.0)


def seeds_needed(
    sd: float | None,
    effect_size: float = 1.0,
    *,
    alpha: float = 0.05,
    family_size: int = 1,
    power: float = 0.80,
) -> int | None:
    """Fewest seeds (>= 2) at which the t-test at Holm's strictest level stars ``effect_size`` with ``power``.

    ``sd`` is the SD of the per-seed contrasts (a paired test's per-seed differences); the
    test is two-sided at alpha / family_size, the level Holm's step-down starts at, so the
    plan holds however many of the other comparisons are real. None when ``sd`` is unknown.
    """
    if not effect_size > 0:
        raise PromptlabError(f"effect_size must be a positive score difference, got {effect_size}")
    if not 0 < power < 1:
        raise PromptlabError(f"power must lie strictly between 0 and 1, got {power}")
    if family_size < 1:
        raise PromptlabError(f"family_size must be at least 1 comparison, got {family_size}")
    check_alpha(alpha)
    if sd is None or not math.isfinite(sd):
        return None
    if sd < 0:
        raise PromptlabError(f"sd must be a standard deviation (>= 0), got {sd}")
    normal = NormalDist()
    z = normal.inv_cdf(1 - alpha / family_size / 2) + normal.inv_cdf(power)
    guess = (z * sd / effect_size) ** 2
    if guess > 1e5:
        # t and normal quantiles agree to 1e-5 here; the normal plan is the t plan
        return math.ceil(guess)
    candidates = np.arange(2, math.ceil(guess) + 64)
    reached = np.flatnonzero(t_test_power(candidates, sd, effect_size, alpha=alpha, family_size=family_size) >= power)
    return int(candidates[reached[0]])


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order; NaN (untested) stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=float)
    tested = p[~np.isnan(p)]
    if ((tested < 0) | (tested > 1)).any():
        raise PromptlabError(f"holm: p-values must lie in [0, 1], got {tested.tolist()}")
    return holm_adjust(p[:, None])[:, 0].tolist()


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values down axis 0 (comparisons), one column per replicate; NaN stays NaN."""
    p = np.asarray(p, dtype=float)
    m = (~np.isnan(p)).sum(axis=0)
    order = np.argsort(p, axis=0, kind="stable")  # NaN sorts last
    ranked = np.take_along_axis(p, order, axis=0)
    scaled = (m[None, :] - np.arange(p.shape[0])[:, None]) * ranked
    adjusted_sorted = np.minimum(1.0, np.fmax.accumulate(scaled, axis=0))
    adjusted_sorted[np.isnan(ranked)] = math.nan
    adjusted = np.empty_like(adjusted_sorted)
    np.put_along_axis(adjusted, order, adjusted_sorted, axis=0)
    return adjusted


def holm_levels(p_values: Sequence[float], alpha: float = 0.05) -> list[float]:
    """The confidence level Holm's step-down judged each comparison at (NaN where untested).

    Starred: 1 - alpha / (m - r + 1), r its rank (ties share the strictest); unstarred: the
    level of the first step that failed. So a comparison's CI excludes 0 exactly when it is starred.
    """
    p = np.asarray(p_values, dtype=float)
    tested = np.sort(p[~np.isnan(p)])
    m = len(tested)
    adjusted = holm_adjust(tested[:, None])[:, 0] if m else tested
    starred = int(np.sum(adjusted <= alpha))
    levels = []
    for value in p:
        if math.isnan(value):
            levels.append(math.nan)
            continue
        rank = int(np.searchsorted(tested, value, side="left")) + 1
        step = rank if rank <= starred else starred + 1
        levels.append(1 - alpha / (m - step + 1))
    return levels
