"""Which prompt words helped, by how much, and how sure we are.

This is what ``promptlab analyze`` and the dashboard's Insights page call::

    result = analyze(store.runs_frame("demo", "intent"), score_kind="intent", experiment="demo")
    format_effect(result.effects[1])   # 'blue vs red: -36.26 (98.3% CI -38.18..-34.35), wins 0 of 8 seeds'
    format_report(result)              # the lines ``promptlab analyze`` prints
    result.best[0].prompt, result.best[0].image

The input is a frame of runs, one row per run, with the columns in ``REQUIRED_COLUMNS`` plus
one ``axis:<name>`` column per experiment axis (``axis:style`` = "pop-art", or "" when the
variant has no style term; ``axis:guidance_scale`` = 7.5). The choices, and why (README's
"Statistics" says the same for users; ``tests/test_stats_calibration.py`` checks each claim by
simulating experiments whose truth is known):

1. Cells. A run without a score (failed, or not scored) is counted on its variant and left out.
   A cell is one (variant, seed, subject); its score is the mean of its runs.
2. Variants. A variant's mean is the mean over seeds of its per-seed means (over subjects). Its
   95% interval is Student's t on those per-seed means, with n - 1 degrees of freedom: exact
   when seeds vary normally, whatever each variant's own noise. From 2 seeds it is t with 1 df
   (12.7 standard errors each side: wide, as 2 seeds are); 1 seed gives none, and says why.
3. Effects. Per axis, a linear model of the cell scores: one block per (seed, subject), and every
   axis a factor, so a level's effect is adjusted for the other axes (a random sample or a grid
   with failed cells does not cross its axes evenly), fitted by least squares within blocks. A
   comparison, level minus reference, is a linear function of the cell scores. Its standard
   error is clustered by seed with Bell and McCaffrey's small-sample correction (CR2), and its
   t has their Satterthwaite degrees of freedom. When every seed holds the same cells (a grid,
   a random sample or an ablation with no failed cell) this is exactly the paired t-test on
   per-seed differences, with G - 1 df for G seeds; with failed cells it stays calibrated from
   3 seeds (see the simulations). A comparison the design cannot separate from other axes is
   "not estimable" and ``note`` names them; one whose cells' noise nothing else measures (a
   level scored on one seed) has an estimate but no test. An axis that applies only at some
   levels of another (a term's weight, NaN where the term is absent) is left out of that other
   axis's model, whose comparison then averages over the weights as the design has them.
   Numeric NaN means "does not apply"; a missing text value means the term is absent ("").
4. The reference level is "" (term absent) where the axis has it and it was scored, else the
   axis's first scored level in frame order; ``reference={"style": "pop-art"}`` overrides it.
5. Stars. ``p_value`` is the two-sided t-test's; Holm's step-down over every tested comparison
   of the experiment gives ``p_holm``, and ``significant`` is p_holm <= ``alpha``, so with
   every word truly null at most ``alpha`` of experiments show any star. Each CI is at the
   level Holm judged it at: 1 - alpha / (m - r + 1) for the r-th smallest p when starred, the
   first unstarred step's level otherwise, so a star and a CI that excludes 0 always agree.
6. Wins: a seed's own contrast (its share of the estimate, times G) above 0; ties count half;
   Wilson 95% interval over the informing seeds.
7. ``seeds_needed``: the fewest seeds (at least 2) at which the same two-sided t-test, at
   Holm's strictest level alpha / m, stars ``effect_size`` score points with probability
   ``power`` (noncentral t), given the SD of per-seed contrasts this experiment showed.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from promptlab.errors import PromptlabError

REQUIRED_COLUMNS = (
    "run_id",
    "variant_key",
    "label",
    "seed",
    "subject",
    "score",
    "image",
    "prompt",
    "negative_prompt",
)
AXIS_PREFIX = "axis:"
ABSENT = ""
VARIANT_LEVEL = 0.95
# Below this many standard deviations of a score scale, a difference or an SE is rounding error.
_RELATIVE_TOLERANCE = 1e-9

Level = str | float | int | bool


@dataclass(frozen=True)
class Interval:
    """A two-sided interval."""

    low: float
    high: float


@dataclass(frozen=True)
class VariantStats:
    """One variant's score over its seeds and its best image; ``note`` says why a number is missing."""

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
    """Everything ``promptlab analyze`` shows for one experiment and one score kind."""

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes null, numpy scalars become Python numbers."""
        return _jsonable(
            {
                "experiment": self.experiment,
                "score_kind": self.score_kind,
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


@dataclass(frozen=True)
class _AxisFit:
    """One axis's least-squares fit within (seed, subject) blocks: the cells it uses, an orthonormal basis of its design, its groups."""

    rows: np.ndarray
    names: list[tuple[str, Level]]
    basis: np.ndarray
    singular: np.ndarray
    row_space: np.ndarray
    block_starts: np.ndarray
    block_sizes: np.ndarray
    seed_starts: np.ndarray


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


def check_frame(frame: pd.DataFrame) -> None:
    """Raise ``PromptlabError`` naming the required columns the runs frame lacks."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PromptlabError(
            f"runs frame is missing column(s) {', '.join(missing)}; analysis needs "
            f"{', '.join(REQUIRED_COLUMNS)} plus one '{AXIS_PREFIX}<name>' column per axis "
            "(Store.runs_frame builds it)"
        )


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's ``axis:<name>`` columns, in frame order."""
    return [c for c in frame.columns if isinstance(c, str) and c.startswith(AXIS_PREFIX)]


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
    _check_alpha(alpha)
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


def variant_table(frame: pd.DataFrame) -> list[VariantStats]:
    """Per variant, every one in frame order: mean, SD and 95% t-interval over seeds, its failed runs, its best run."""
    runs = _all_runs(frame)
    scored = runs[runs["score"].notna()]
    # 1. one value per (variant, seed): the mean over subjects and repeats
    per_seed = scored.groupby(["variant_key", "seed"], sort=True)["score"].mean()
    by_variant = {key: values.to_numpy() for key, values in per_seed.groupby(level="variant_key")}
    # 2. best run and descriptive columns
    best = scored.loc[scored.groupby("variant_key")["score"].idxmax()].set_index("variant_key")
    first = runs.drop_duplicates("variant_key").set_index("variant_key")
    counts = runs.groupby("variant_key")["score"].agg(["size", "count"])
    axes = axis_columns(runs)
    table = []
    for key in first.index:
        values = by_variant.get(key, np.empty(0))
        mean, low, high = t_interval(values) if len(values) else (math.nan, math.nan, math.nan)
        n_runs, n_scored = int(counts.at[key, "size"]), int(counts.at[key, "count"])
        found = key in best.index
        source = best if found else first
        table.append(
            VariantStats(
                variant_key=key,
                label=str(first.at[key, "label"]),
                mean=float(mean),
                sd=float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan,
                ci_low=float(low),
                ci_high=float(high),
                ci_level=VARIANT_LEVEL,
                n=len(values),
                n_runs=n_scored,
                n_failed=n_runs - n_scored,
                best_score=float(best.at[key, "score"]) if found else math.nan,
                best_image=str(best.at[key, "image"]) if found else "",
                best_run_id=_py(best.at[key, "run_id"]) if found else None,
                prompt=str(source.at[key, "prompt"]),
                negative_prompt=str(source.at[key, "negative_prompt"]),
                axes={c[len(AXIS_PREFIX) :]: _py(first.at[key, c]) for c in axes},
                note=_variant_note(runs[runs["variant_key"] == key], len(values)),
            )
        )
    return table


def best_prompts(frame: pd.DataFrame, top: int = 5) -> list[BestPrompt]:
    """The ``top`` scored variants by mean score, ties broken by the higher CI lower bound."""
    return _rank_best(variant_table(frame), top)


def effect_model(frame: pd.DataFrame, *, reference: Mapping[str, Level] | None = None) -> EffectModel:
    """The cells and, for every axis level, its comparison with the axis's reference (see the module docstring)."""
    design = _all_runs(frame)
    axes = axis_columns(design)
    cells = _cells(design, axes)
    references = _check_reference(reference or {}, design, axes)
    comparisons: list[Comparison] = []
    fits: list[_AxisFit | None] = []
    for column in axes:
        levels = _levels(design[column])
        if len(levels) < 2:
            continue
        name = column[len(AXIS_PREFIX) :]
        present = set(_levels(cells[column]))
        scored_levels = [level for level in levels if level in present]
        ref = references.get(name, _default_reference(levels, scored_levels))
        others = [c for c in axes if c != column and not _nested(design, c, column)]
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
    _check_alpha(alpha)
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


def analyze(
    frame: pd.DataFrame,
    *,
    reference: Mapping[str, Level] | None = None,
    effect_size: float = 1.0,
    alpha: float = 0.05,
    power: float = 0.80,
    top: int = 5,
    score_kind: str = "intent",
    experiment: str = "",
) -> Analysis:
    """Variants, effects and best prompts of one experiment's runs frame for one score kind.

    Raises ``PromptlabError`` when no run has a usable score, saying how many runs failed.
    """
    # 1. Check the request
    runs = _all_runs(frame)
    n_scored = int(runs["score"].notna().sum())
    if n_scored == 0:
        raise PromptlabError(_no_scores_message(runs, score_kind, experiment))
    # 2. Variants, effects, best prompts
    variants = variant_table(runs)
    effects = effects_table(runs, reference=reference, effect_size=effect_size, alpha=alpha, power=power)
    return Analysis(
        experiment=experiment,
        score_kind=score_kind,
        effect_size=effect_size,
        alpha=alpha,
        power=power,
        family_size=sum(not math.isnan(e.p_value) for e in effects),
        n_runs=len(runs),
        n_failed=len(runs) - n_scored,
        variants=variants,
        effects=effects,
        best=_rank_best(variants, top),
    )


@dataclass(frozen=True)
class TermSuggestion:
    """A vocabulary term that raised the score in an earlier experiment: its effect there against its
    axis's reference (usually the category absent), as ``Effect`` measured it."""

    term: str
    category: str
    experiment: str
    mean_diff: float
    ci_low: float
    ci_high: float
    significant: bool


def term_suggestions(
    results: Iterable[Analysis], categories: Collection[str], *, exclude: Collection[str] = ()
) -> list[TermSuggestion]:
    """Terms that helped across experiments: every category-axis term with a positive effect, largest first.

    ``categories`` are the vocabulary's categories: axes named otherwise (parameters, models, term
    weights) are not terms. The absent level is no term, an effect that could not be estimated is
    left out, and so are the terms in ``exclude`` (those already in the prompt). A term helped
    in several experiments is listed once per experiment.
    """
    found = [
        TermSuggestion(
            term=str(effect.level),
            category=effect.axis,
            experiment=result.experiment,
            mean_diff=effect.mean_diff,
            ci_low=effect.ci_low,
            ci_high=effect.ci_high,
            significant=effect.significant,
        )
        for result in results
        for effect in result.effects
        if effect.axis in categories
        and effect.level not in (ABSENT, None)
        and str(effect.level) not in exclude
        and effect.mean_diff > 0
    ]
    return sorted(found, key=lambda s: (-s.mean_diff, s.experiment, s.term))


def format_level(level: float) -> str:
    """A confidence level as people write it: 0.95 -> '95%', 0.98333 -> '98.3%'."""
    return f"{100 * level:.3g}%"


def format_variant(variant: VariantStats) -> str:
    """One line: ``77.10 (95% CI 75.20..79.00), 8 seeds`` or why there is no number."""
    failed = f", {variant.n_failed} failed" if variant.n_failed else ""
    if variant.n == 0:
        return variant.note
    seeds = "seed" if variant.n == 1 else "seeds"
    if math.isnan(variant.ci_low):
        return f"{variant.mean:.2f} (no CI: {variant.note}), {variant.n} {seeds}{failed}"
    level = format_level(variant.ci_level)
    return f"{variant.mean:.2f} ({level} CI {variant.ci_low:.2f}..{variant.ci_high:.2f}), {variant.n} {seeds}{failed}"


def format_effect(effect: Effect) -> str:
    """One line: ``artstation vs no style: +2.1 (98.3% CI +0.8..+3.4), wins 9 of 12 seeds``."""
    name = f"{_level_name(effect.axis, effect.level)} vs {_level_name(effect.axis, effect.reference)}"
    if math.isnan(effect.mean_diff):
        return f"{name}: {effect.note}"
    if math.isnan(effect.ci_low):
        return f"{name}: {effect.mean_diff:+.2f} (no CI: {effect.note})"
    seeds = "seed" if effect.n_seeds == 1 else "seeds"
    interval = f"{format_level(effect.ci_level)} CI {effect.ci_low:+.2f}..{effect.ci_high:+.2f}"
    return f"{name}: {effect.mean_diff:+.2f} ({interval}), wins {effect.wins:g} of {effect.n_seeds} {seeds}"


def format_report(result: Analysis) -> list[str]:
    """The lines ``promptlab analyze`` prints: variants best first, then effects with stars and seeds needed."""
    failed = f", {result.n_failed} of {result.n_runs} runs without a score" if result.n_failed else ""
    lines = [f"Variants ({result.score_kind} score: mean over seeds, {format_level(VARIANT_LEVEL)} t-interval{failed}):"]
    for v in sorted(result.variants, key=lambda v: -v.mean if not math.isnan(v.mean) else math.inf):
        lines.append(f"  {format_variant(v)}  {v.label}")
    if not result.effects:
        lines.append("Effects: none (no axis has two levels).")
        return lines
    lines.append(
        f"Effects (adjusted for the other axes, paired by seed; * = starred by Holm's step-down over "
        f"{result.family_size} comparisons at {format_level(result.alpha)} familywise; each CI at the level Holm tested it at):"
    )
    for e in result.effects:
        needed = (
            f"; {e.seeds_needed} seeds to star ±{result.effect_size:g} with {format_level(result.power)} power"
            if e.seeds_needed
            else ""
        )
        lines.append(f"  {'*' if e.significant else ' '} {format_effect(e)}{needed}")
    return lines


def how_to_read(result: Analysis) -> str:
    """A short note on what a star, an interval and seeds-needed mean, for this analysis."""
    return (
        f"Each variant's interval is a {format_level(VARIANT_LEVEL)} t-interval over seeds (2 seeds: very wide, "
        "as it should be; 1 seed: none). An effect is a level's score minus its axis's reference level, "
        "on the same seeds and adjusted for the other axes. A star means the effect survived Holm's "
        f"correction over all {result.family_size} comparisons: when no word truly matters, at most "
        f"{format_level(result.alpha)} of experiments show any star. Each effect's interval is at the "
        "level Holm tested it at (stated beside it), so a star is the same as an interval that excludes 0. "
        f"Seeds needed: how many seeds an experiment like this one needs to star an effect of "
        f"{result.effect_size:g} score {'point' if result.effect_size == 1 else 'points'} with "
        f"{format_level(result.power)} power, planned with the same t-test and Holm's strictest level."
    )


def report_tables(result: Analysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Variants and effects as the dashboard shows them: the numbers and lines of ``format_report``."""
    variants = pd.DataFrame(
        [
            {"variant": v.label, "mean": round(v.mean, 2), "ci": format_variant(v), "seeds": v.n,
             "failed": v.n_failed, "note": v.note}
            for v in sorted(result.variants, key=lambda v: -v.mean if not math.isnan(v.mean) else math.inf)
        ]  # fmt: skip
    )
    effects = pd.DataFrame(
        [
            {"": "*" if e.significant else "", "effect": format_effect(e), "p (Holm)": e.p_holm,
             "seeds needed": e.seeds_needed, "note": e.note}
            for e in result.effects
        ]  # fmt: skip
    )
    return variants, effects


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
    scale = np.maximum(1.0, np.abs(centred).max(axis=0, initial=0.0)) * _RELATIVE_TOLERANCE
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
    for low, high in zip(bounds[:-1], bounds[1:]):
        own = weights[low:high]
        if not own.any():
            continue
        left, singular, _ = np.linalg.svd(fit.basis[low:high], full_matrices=False)
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
        for level in levels if axis == column else [_py(v) for v in found]:
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
    return _AxisFit(
        rows=np.flatnonzero(cells[column].notna().to_numpy()),
        names=names,
        basis=centred @ row_space.T / singular,
        singular=singular,
        row_space=row_space,
        block_starts=block_starts,
        block_sizes=block_sizes,
        seed_starts=seed_starts,
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
        return None, f"not estimable: no seed (and subject) links it to {_level_name(axis, ref)} through scored runs"
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
            return f"{_level_name(axis, side)} has no scored run ({runs} failed or unscored)"
    return ""


def _untestable_note(cells: pd.DataFrame, column: str, level: Level, ref: Level, n_seeds: int) -> str:
    """Why an estimable comparison has no test: too few seeds, or cells whose noise nothing else measures."""
    axis = column[len(AXIS_PREFIX) :]
    if n_seeds < 2:
        return "1 seed: no test (a test needs 2 seeds)"
    for side in (level, ref):
        seeds = cells.loc[cells[column] == side, "seed"].nunique()
        if seeds < 2:
            return f"no test: {_level_name(axis, side)} is scored on 1 seed only (a test needs 2)"
    return "no test: some of its cells are alone of their kind, so their noise cannot be measured"


def _default_reference(levels: list[Level], scored: list[Level]) -> Level:
    if ABSENT in scored:
        return ABSENT
    return scored[0] if scored else levels[0]


def _variant_note(runs: pd.DataFrame, n_seeds: int) -> str:
    """Why a variant has no mean or no interval, or why its interval is so wide; "" otherwise."""
    if n_seeds == 0:
        failed = runs["status"].eq("failed").sum() if "status" in runs.columns else len(runs)
        error = ""
        if "error" in runs.columns and runs["error"].notna().any():
            error = ": " + str(runs["error"].dropna().iloc[0]).splitlines()[0][:100]
        if failed == len(runs):
            return f"no score: every run failed ({failed} of {len(runs)}){error}"
        return f"no score: none of its {len(runs)} runs has one ({failed} failed){error}"
    if n_seeds == 1:
        return "1 seed: no interval (an interval needs 2 seeds)"
    if n_seeds == 2:
        return "2 seeds: t with 1 df, so the interval is wide"
    return ""


def _no_scores_message(runs: pd.DataFrame, score_kind: str, experiment: str) -> str:
    where = f"experiment {experiment!r}" if experiment else "this experiment"
    if runs.empty:
        return f"{where} has no runs yet: nothing to analyse (promptlab run FILE renders them)"
    failed = int(runs["status"].eq("failed").sum()) if "status" in runs.columns else 0
    error = ""
    if "error" in runs.columns and runs["error"].notna().any():
        error = f"; first error: {str(runs['error'].dropna().iloc[0]).splitlines()[0][:120]}"
    return (
        f"{where} has no usable {score_kind} scores: {len(runs)} runs, {failed} failed, "
        f"{len(runs) - failed} with no {score_kind} score{error}"
    )


def _all_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Every run, failed ones too (they still show the design), text axes' missing values read as ""."""
    check_frame(frame)
    try:
        score = pd.to_numeric(frame["score"], errors="raise").astype(float)
    except (TypeError, ValueError) as exc:
        raise PromptlabError(f"runs frame column 'score' must hold numbers (NaN for failed runs): {exc}") from exc
    if np.isinf(score).any():
        raise PromptlabError("runs frame column 'score' holds an infinite value; scores must be finite or NaN")
    runs = frame.assign(score=score).reset_index(drop=True)
    for column in axis_columns(runs):
        if not pd.api.types.is_numeric_dtype(runs[column]):
            runs[column] = runs[column].astype(object).where(runs[column].notna(), ABSENT)
    return runs


def _nested(design: pd.DataFrame, other: str, column: str) -> bool:
    """Whether ``other`` applies (is not NaN) only at some levels of ``column``, decided by the level alone."""
    applies = design[design[column].notna()]
    missing = applies[other].isna()
    if not missing.any() or missing.all():
        return False
    return bool((missing.groupby(applies[column]).nunique() == 1).all())


def _levels(values: pd.Series) -> list[Level]:
    """An axis's levels in order of first appearance, as Python scalars."""
    return [_py(v) for v in pd.unique(values.dropna())]


def _check_reference(reference: Mapping[str, Level], runs: pd.DataFrame, axes: list[str]) -> dict[str, Level]:
    """Resolve user-given reference levels to the axis's own values; "7.5" matches 7.5."""
    names = [c[len(AXIS_PREFIX) :] for c in axes]
    resolved: dict[str, Level] = {}
    for name, wanted in reference.items():
        if name not in names:
            raise PromptlabError(f"reference: unknown axis {name!r}; the experiment's axes are {names}")
        levels = _levels(runs[AXIS_PREFIX + name])
        match = [v for v in levels if v == wanted or str(v) == str(wanted)]
        if not match:
            raise PromptlabError(f"reference: axis {name!r} has no level {wanted!r}; its levels are {levels}")
        resolved[name] = match[0]
    return resolved


def _rank_best(variants: list[VariantStats], top: int) -> list[BestPrompt]:
    if top < 1:
        raise PromptlabError(f"top must be at least 1, got {top}")

    def order(v: VariantStats) -> tuple[float, float]:
        return (-v.mean, -v.ci_low if not math.isnan(v.ci_low) else math.inf)

    scored = [v for v in variants if v.n > 0]
    return [
        BestPrompt(
            rank=rank,
            variant_key=v.variant_key,
            label=v.label,
            prompt=v.prompt,
            negative_prompt=v.negative_prompt,
            image=v.best_image,
            best_score=v.best_score,
            mean=v.mean,
            ci_low=v.ci_low,
            ci_high=v.ci_high,
            n=v.n,
        )
        for rank, v in enumerate(sorted(scored, key=order)[:top], start=1)
    ]


def _level_name(axis: str, level: Level) -> str:
    if isinstance(level, str):
        return level if level != ABSENT else f"no {axis}"
    return f"{axis}={level}"


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise PromptlabError(f"alpha must lie strictly between 0 and 1, got {alpha}")


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    value = _py(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
