"""Which prompt words helped, by how much, and how sure we are.

This is what ``promptlab analyze`` and the dashboard's compare page call::

    result = analyze(store.runs_frame(experiment, "intent"), score_kind="intent")
    format_effect(result.effects[0])   # 'artstation: +2.1 (+0.8..+3.4), wins 9 of 12 seeds'
    result.best[0].prompt, result.best[0].image

The input is a frame of runs, one row per run, with the columns in ``REQUIRED_COLUMNS`` plus
one ``axis:<name>`` column per experiment axis (``axis:style`` = "pop-art", or "" when the
variant has no style term; ``axis:guidance_scale`` = 7.5). The choices, and why:

1. Failed runs (score NaN) are left out before anything is computed.
2. A variant's score is the mean over seeds of its per-seed mean (over subjects and repeats);
   its SD (ddof=1) and 95% percentile-bootstrap CI are over those per-seed means, resampling
   seeds. Its best image is its run with the highest score.
3. Effects are paired. For axis A, a block is one (seed, subject, value of every other axis
   crossed with A); within a block, score(level) - score(reference) changes A alone. An axis
   not crossed with A in the experiment's design (failed runs included), such as the weight of
   a term that exists only when the term is present, cannot be held equal, so A's comparison
   averages over it. Blocks whose partner is missing (a failed or absent run) are dropped;
   ``n_pairs`` counts the matched blocks and ``mean_diff`` is their mean.
4. The reference level is "" (term absent) on an axis that has it, else the axis's first level
   in the order runs appear in the frame (the store returns them in the experiment's order);
   ``reference={"style": "pop-art"}`` overrides it. A missing value on a text axis means the
   term is absent and reads as ""; NaN on a numeric axis means the parameter does not apply,
   and those runs take no part in that axis's comparisons (they still match blocks of others).
5. The bootstrap resamples seeds and, when there are several subjects, subjects too,
   independently: seeds and subjects are crossed, and both are samples of what a user will
   meet (Owen's "pigeonhole" bootstrap; it errs wide rather than narrow). A comparison needs
   2 seeds to be tested.
6. ``p_value`` is two-sided from the bootstrap, 2 * min(P(d <= 0), P(d >= 0)), so it resolves
   to 2 / n_boot; it is floored at 2 * 0.5^n_seeds, the smallest p an exact sign test on n seeds
   can give, because with 3 seeds that all agree the bootstrap would claim p = 0. Holm's step-down over every comparison tested, at ``alpha`` 0.05, gives
   ``p_holm``. Each CI is taken at its Holm level, alpha / (m - rank + 1) (``ci_level``), and
   ``significant`` means p_holm <= alpha and that CI excludes zero, so a starred effect's
   shown interval never crosses zero.
7. Win rate: per seed, the level's mean over matched blocks against the reference's mean over
   the same blocks; ties count half. Wilson 95% interval over the seeds.
8. ``seeds_needed`` = ceil(((z_0.975 + z_0.80) * sd / effect_size)^2), sd being the SD of the
   per-seed differences: the seeds a paired test needs to detect ``effect_size`` score points
   at 95% confidence (two-sided) with 80% power; None with fewer than 2 seeds.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
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

Level = str | float | int | bool


@dataclass(frozen=True)
class Interval:
    """A two-sided interval."""

    low: float
    high: float


@dataclass(frozen=True)
class VariantStats:
    """One variant's score over its seeds and its best image."""

    variant_key: str
    label: str
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    n: int
    n_runs: int
    best_score: float
    best_image: str
    best_run_id: Any
    prompt: str
    negative_prompt: str
    axes: dict[str, Any]


@dataclass(frozen=True)
class Effect:
    """The paired effect of one axis level against the axis's reference level."""

    axis: str
    level: Level
    reference: Level
    n_seeds: int
    n_pairs: int
    mean_diff: float
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

    score_kind: str
    effect_size: float
    alpha: float
    n_boot: int
    variants: list[VariantStats]
    effects: list[Effect]
    best: list[BestPrompt]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes null, numpy scalars become Python numbers."""
        return _jsonable(
            {
                "score_kind": self.score_kind,
                "effect_size": self.effect_size,
                "alpha": self.alpha,
                "n_boot": self.n_boot,
                "variants": [asdict(v) for v in self.variants],
                "effects": [asdict(e) for e in self.effects],
                "best": [asdict(b) for b in self.best],
            }
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


def seeds_needed(sd: float, effect_size: float = 1.0, *, confidence: float = 0.95, power: float = 0.80) -> int | None:
    """Seeds a paired comparison needs to detect ``effect_size`` points, given the SD of per-seed differences."""
    if not effect_size > 0:
        raise PromptlabError(f"effect_size must be a positive score difference, got {effect_size}")
    if sd is None or not math.isfinite(sd):
        return None
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2) + NormalDist().inv_cdf(power)
    # An SD, and so any paired test, needs at least 2 seeds even when the differences never vary.
    return max(2, math.ceil((z * sd / effect_size) ** 2))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order; NaN (untested) stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=float)
    tested = np.flatnonzero(~np.isnan(p))
    if ((p[tested] < 0) | (p[tested] > 1)).any():
        raise PromptlabError(f"holm: p-values must lie in [0, 1], got {p[tested].tolist()}")
    adjusted = np.full(p.shape, np.nan)
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = (len(order) - np.arange(len(order))) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()


def variant_table(frame: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0) -> list[VariantStats]:
    """Per variant: mean, SD and 95% bootstrap CI over seeds, and its best run; in frame order."""
    _check_n_boot(n_boot)
    runs = _scored_runs(frame)
    if runs.empty:
        return []
    # 1. one value per (variant, seed): the mean over subjects and repeats
    per_seed = runs.groupby(["variant_key", "seed"], sort=True)["score"].mean()
    by_variant = per_seed.groupby(level="variant_key")
    stats = pd.DataFrame({"mean": by_variant.mean(), "sd": by_variant.std(ddof=1), "n": by_variant.size()})
    # 2. bootstrap all variants with the same seed count in one matrix product
    stats["ci_low"], stats["ci_high"] = np.nan, np.nan
    n_per_row = stats["n"].reindex(per_seed.index.get_level_values("variant_key")).to_numpy()
    for n in np.unique(stats["n"].to_numpy()):
        if n < 2:
            continue
        values = per_seed.to_numpy()[n_per_row == n].reshape(-1, n)
        counts = _resample_counts(np.random.default_rng([seed, int(n)]), n_boot, int(n))
        boot = values @ counts.T / n
        low, high = np.quantile(boot, [0.025, 0.975], axis=1)
        stats.loc[stats["n"] == n, ["ci_low", "ci_high"]] = np.column_stack([low, high])
    # 3. best run and descriptive columns
    best = runs.loc[runs.groupby("variant_key")["score"].idxmax()].set_index("variant_key")
    first = runs.drop_duplicates("variant_key").set_index("variant_key")
    n_runs = runs.groupby("variant_key").size()
    axes = axis_columns(runs)
    return [
        VariantStats(
            variant_key=key,
            label=str(first.at[key, "label"]),
            mean=float(stats.at[key, "mean"]),
            sd=float(stats.at[key, "sd"]),
            ci_low=float(stats.at[key, "ci_low"]),
            ci_high=float(stats.at[key, "ci_high"]),
            n=int(stats.at[key, "n"]),
            n_runs=int(n_runs[key]),
            best_score=float(best.at[key, "score"]),
            best_image=str(best.at[key, "image"]),
            best_run_id=_py(best.at[key, "run_id"]),
            prompt=str(best.at[key, "prompt"]),
            negative_prompt=str(best.at[key, "negative_prompt"]),
            axes={c[len(AXIS_PREFIX) :]: _py(first.at[key, c]) for c in axes},
        )
        for key in first.index
    ]


def best_prompts(frame: pd.DataFrame, top: int = 5, *, n_boot: int = 2000, seed: int = 0) -> list[BestPrompt]:
    """The ``top`` variants by mean score, ties broken by the higher CI lower bound."""
    return _rank_best(variant_table(frame, n_boot=n_boot, seed=seed), top)


def effects_table(
    frame: pd.DataFrame,
    *,
    reference: Mapping[str, Level] | None = None,
    effect_size: float = 1.0,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[Effect]:
    """Every axis level against its axis's reference, paired on matched blocks, ranked by effect."""
    _check_n_boot(n_boot)
    if not 0 < alpha < 1:
        raise PromptlabError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    if not effect_size > 0:
        raise PromptlabError(f"effect_size must be a positive score difference, got {effect_size}")
    design = _all_runs(frame)
    runs = design[design["score"].notna()]
    axes = axis_columns(runs)
    references = _check_reference(reference or {}, runs, axes)
    # 1. paired statistics and bootstrap draws for every comparison
    compared: list[_Paired] = []
    for column in axes:
        levels = _levels(runs[column])
        if len(levels) < 2:
            continue
        name = column[len(AXIS_PREFIX) :]
        ref = references.get(name, ABSENT if ABSENT in levels else levels[0])
        blocks = ["seed", "subject", *[c for c in axes if c != column and _crossed(design, column, c)]]
        cells = (
            runs[runs[column].notna()]
            .groupby([*blocks, column], dropna=False, sort=False)["score"]
            .mean()
            .unstack(column)
        )
        for level in levels:
            if level != ref:
                rng = np.random.default_rng([seed, zlib.crc32(f"{name}\0{level!r}".encode())])
                compared.append(_pair(cells, name, level, ref, n_boot, rng))
    # 2. Holm over the tested comparisons, each CI at its Holm level
    p_values = [c.p_value for c in compared]
    p_holm = holm(p_values)
    tested = np.sort([p for p in p_values if not math.isnan(p)])
    effects = []
    for c, adjusted in zip(compared, p_holm):
        ci_low = ci_high = ci_level = math.nan
        if not math.isnan(c.p_value):
            # tied p-values share the strictest rank, so the result does not depend on axis order
            rank = int(np.searchsorted(tested, c.p_value, side="left")) + 1
            level_alpha = alpha / (len(tested) - rank + 1)
            ci_low, ci_high = (float(q) for q in np.quantile(c.boot, [level_alpha / 2, 1 - level_alpha / 2]))
            ci_level = 1 - level_alpha
        win = wilson_interval(c.wins, c.n_seeds) if c.n_seeds else Interval(math.nan, math.nan)
        effects.append(
            Effect(
                axis=c.axis,
                level=c.level,
                reference=c.reference,
                n_seeds=c.n_seeds,
                n_pairs=c.n_pairs,
                mean_diff=c.mean_diff,
                ci_low=ci_low,
                ci_high=ci_high,
                ci_level=ci_level,
                wins=c.wins,
                win_rate=c.wins / c.n_seeds if c.n_seeds else math.nan,
                win_low=win.low,
                win_high=win.high,
                p_value=c.p_value,
                p_holm=adjusted,
                significant=bool(adjusted <= alpha and (ci_low > 0 or ci_high < 0)),
                seeds_needed=seeds_needed(c.sd, effect_size),
            )
        )
    # 3. ranked by effect, comparisons without a matched pair last
    return sorted(effects, key=lambda e: -e.mean_diff if not math.isnan(e.mean_diff) else math.inf)


def analyze(
    frame: pd.DataFrame,
    *,
    reference: Mapping[str, Level] | None = None,
    effect_size: float = 1.0,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    top: int = 5,
    score_kind: str = "intent",
) -> Analysis:
    """Variants, paired effects and best prompts of one experiment's runs frame for one score kind."""
    variants = variant_table(frame, n_boot=n_boot, seed=seed)
    return Analysis(
        score_kind=score_kind,
        effect_size=effect_size,
        alpha=alpha,
        n_boot=n_boot,
        variants=variants,
        effects=effects_table(
            frame, reference=reference, effect_size=effect_size, n_boot=n_boot, seed=seed, alpha=alpha
        ),
        best=_rank_best(variants, top),
    )


def format_effect(effect: Effect) -> str:
    """One line: ``artstation: +2.1 (+0.8..+3.4), wins 9 of 12 seeds``."""
    name = _level_name(effect.axis, effect.level)
    if effect.n_pairs == 0:
        return f"{name}: no runs matched with {_level_name(effect.axis, effect.reference)}"
    interval = "no CI" if math.isnan(effect.ci_low) else f"{effect.ci_low:+.1f}..{effect.ci_high:+.1f}"
    seeds = "seed" if effect.n_seeds == 1 else "seeds"
    return f"{name}: {effect.mean_diff:+.1f} ({interval}), wins {effect.wins:g} of {effect.n_seeds} {seeds}"


@dataclass(frozen=True)
class _Paired:
    """One comparison before Holm: point statistics and its bootstrap draws."""

    axis: str
    level: Level
    reference: Level
    n_seeds: int
    n_pairs: int
    mean_diff: float
    sd: float
    wins: float
    p_value: float
    boot: np.ndarray


def _pair(cells: pd.DataFrame, axis: str, level: Level, ref: Level, n_boot: int, rng: np.random.Generator) -> _Paired:
    """Paired differences of ``level`` against ``ref`` over matched blocks (rows of ``cells``)."""
    matched = cells[[level, ref]].dropna()
    diffs = pd.DataFrame(
        {
            "seed": matched.index.get_level_values("seed"),
            "subject": matched.index.get_level_values("subject"),
            "diff": (matched[level] - matched[ref]).to_numpy(),
            "level": matched[level].to_numpy(),
            "ref": matched[ref].to_numpy(),
        }
    )
    per_seed = diffs.groupby("seed")[["diff", "level", "ref"]].mean()
    wins = float((per_seed["level"] > per_seed["ref"]).sum() + 0.5 * (per_seed["level"] == per_seed["ref"]).sum())
    n_seeds = len(per_seed)
    p_value, boot = math.nan, np.empty(0)
    if n_seeds >= 2:
        cell = diffs.groupby(["seed", "subject"])["diff"].agg(["sum", "count"])
        sums = cell["sum"].unstack("subject", fill_value=0.0).to_numpy(dtype=float)
        counts = cell["count"].unstack("subject", fill_value=0).to_numpy(dtype=float)
        boot = _cluster_bootstrap(sums, counts, n_boot, rng)
        if boot.size:
            p_boot = 2 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0)))
            # a few seeds all agreeing fool the bootstrap; no test on n seeds can honestly say less than a sign test
            p_value = min(1.0, max(p_boot, 0.5 ** (n_seeds - 1)))
    return _Paired(
        axis=axis,
        level=level,
        reference=ref,
        n_seeds=n_seeds,
        n_pairs=len(diffs),
        mean_diff=float(diffs["diff"].mean()) if len(diffs) else math.nan,
        sd=float(per_seed["diff"].std(ddof=1)) if n_seeds >= 2 else math.nan,
        wins=wins,
        p_value=p_value,
        boot=boot,
    )


def _cluster_bootstrap(sums: np.ndarray, counts: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Mean pair difference of each resample of seeds (rows) and subjects (columns); finite draws only."""
    seed_counts = _resample_counts(rng, n_boot, sums.shape[0])
    subject_counts = _resample_counts(rng, n_boot, sums.shape[1])
    numerator = ((seed_counts @ sums) * subject_counts).sum(axis=1)
    denominator = ((seed_counts @ counts) * subject_counts).sum(axis=1)
    # an unbalanced experiment can draw only empty (seed, subject) cells; such a draw says nothing
    keep = denominator > 0
    return numerator[keep] / denominator[keep]


def _resample_counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """(n_boot, n) multiplicities of each item in each resample, from an (n_boot, n) index matrix."""
    index = rng.integers(0, n, size=(n_boot, n))
    flat = (index + np.arange(n_boot)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)


def _scored_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's successful runs."""
    runs = _all_runs(frame)
    return runs[runs["score"].notna()].reset_index(drop=True)


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


def _crossed(design: pd.DataFrame, column: str, other: str) -> bool:
    """Whether every level of ``column`` (where it applies) meets every value of ``other`` in the design."""
    applies = design[design[column].notna()]
    combinations = len(applies[[column, other]].drop_duplicates())
    return combinations == applies[column].nunique() * applies[other].nunique(dropna=False)


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
        for rank, v in enumerate(sorted(variants, key=order)[:top], start=1)
    ]


def _level_name(axis: str, level: Level) -> str:
    if isinstance(level, str):
        return level if level != ABSENT else f"no {axis}"
    return f"{axis}={level}"


def _check_n_boot(n_boot: int) -> None:
    if n_boot < 1:
        raise PromptlabError(f"n_boot must be at least 1 bootstrap resample, got {n_boot}")


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
