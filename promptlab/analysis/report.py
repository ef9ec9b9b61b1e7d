"""The lines and tables ``promptlab analyze`` prints and the dashboard's Insights page shows."""

from __future__ import annotations

import math

import pandas as pd

from promptlab.analysis.frame import ABSENT, VARIANT_LEVEL, Level
from promptlab.analysis.progress import format_cells
from promptlab.analysis.results import Analysis, Effect, VariantStats


def format_level(level: float) -> str:
    """A confidence level as people write it: 0.95 -> '95%', 0.98333 -> '98.3%'."""
    return f"{100 * level:.3g}%"


def format_variant(variant: VariantStats) -> str:
    """One line: ``77.10 (95% CI 75.20..79.00), 8 seeds`` or why there is no number."""
    failed = f", {variant.n_failed} failed" if variant.n_failed else ""
    if variant.n == 0:
        return variant.note or "no score"
    seeds = "seed" if variant.n == 1 else "seeds"
    if math.isnan(variant.ci_low):
        return f"{variant.mean:.2f} (no CI: {variant.note or 'no interval'}), {variant.n} {seeds}{failed}"
    level = format_level(variant.ci_level)
    return f"{variant.mean:.2f} ({level} CI {variant.ci_low:.2f}..{variant.ci_high:.2f}), {variant.n} {seeds}{failed}"


def level_text(axis: str, level: Level) -> str:
    """A level as a row label shows it: ``blue``, ``no artist`` (term absent), ``7.5`` (as the variant labels write it)."""
    if isinstance(level, str):
        return level if level != ABSENT else f"no {axis}"
    return str(level)


def effect_name(effect: Effect) -> str:
    """What an effect compares, its axis first: ``color: blue vs red``, ``artist: Greg Rutkowski vs no artist``."""
    return f"{effect.axis}: {level_text(effect.axis, effect.level)} vs {level_text(effect.axis, effect.reference)}"


def format_interval(effect: Effect) -> str:
    """``98.3% CI +0.80..+3.40``, or in words why the effect has none."""
    if math.isnan(effect.mean_diff):
        return effect.note or "not estimable"
    if math.isnan(effect.ci_low):
        return f"no CI: {effect.note or 'no test'}"
    return f"{format_level(effect.ci_level)} CI {effect.ci_low:+.2f}..{effect.ci_high:+.2f}"


def format_effect(effect: Effect, width: int = 0) -> str:
    """One line: ``style: artstation vs no style  +2.10 (98.3% CI +0.80..+3.40), wins 9 of 12 seeds``.

    ``width`` pads the name so that a report's numbers line up. An effect without a number says why in words.
    """
    name = effect_name(effect).ljust(width)
    if math.isnan(effect.mean_diff):
        return f"{name}  {format_interval(effect)}"
    if math.isnan(effect.ci_low):
        return f"{name}  {effect.mean_diff:+.2f} ({format_interval(effect)})"
    seeds = "seed" if effect.n_seeds == 1 else "seeds"
    return f"{name}  {effect.mean_diff:+.2f} ({format_interval(effect)}), wins {effect.wins:g} of {effect.n_seeds} {seeds}"


def format_report(result: Analysis) -> list[str]:
    """The lines ``promptlab analyze`` prints: how far the experiment got, variants best first, then
    effects with stars and seeds needed."""
    cells = result.cells
    # a frame analysed without its plan and without failures claims nothing either way
    lines = [format_cells(cells)] if cells is not None and (cells.planned is not None or cells.incomplete or cells.note) else []
    failed = f", {result.n_failed} of {result.n_runs} runs without a score" if result.n_failed else ""
    by = f" from {result.scorer}" if result.scorer else ""
    if result.scorer_note:
        lines.append(f"Scorer: {result.scorer_note}.")
    lines.append(f"Variants ({result.score_kind} score{by}: mean over seeds, {format_level(VARIANT_LEVEL)} t-interval{failed}):")
    for v in _best_first(result.variants):
        lines.append(f"  {format_variant(v)}  {v.label}")
    if not result.effects:
        lines.append("Effects: none (no axis has two levels).")
        return lines
    lines.append(
        f"Effects (adjusted for the other axes, paired by seed; * = starred by Holm's step-down over "
        f"{result.family_size} comparisons at {format_level(result.alpha)} familywise; each CI at the level Holm tested it at):"
    )
    width = max(len(effect_name(e)) for e in result.effects)
    for e in result.effects:
        needed = (
            f"; {e.seeds_needed} seeds to star ±{result.effect_size:g} with {format_level(result.power)} power"
            if e.seeds_needed
            else ""
        )
        lines.append(f"  {'*' if e.significant else ' '} {format_effect(e, width)}{needed}")
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
    """Variants and effects as the dashboard shows them: the numbers of ``format_report``, scores to 2
    decimals, and words (never NaN) where a number is missing."""
    variants = pd.DataFrame(
        [
            {"variant": v.label, "mean": _round(v.mean), "ci": format_variant(v), "seeds": v.n,
             "failed": v.n_failed, "note": v.note}
            for v in _best_first(result.variants)
        ],
        columns=["variant", "mean", "ci", "seeds", "failed", "note"],
    )
    effects = pd.DataFrame(
        [
            {"": "*" if e.significant else "", "effect": effect_name(e), "difference": _round(e.mean_diff),
             "interval": format_interval(e), "wins": _wins(e), "p (Holm)": _p(e.p_holm),
             "seeds needed": str(e.seeds_needed) if e.seeds_needed else "", "note": e.note}
            for e in result.effects
        ],
        columns=["", "effect", "difference", "interval", "wins", "p (Holm)", "seeds needed", "note"],
    )
    return variants, effects


def best_table(result: Analysis) -> pd.DataFrame:
    """The best prompts as the dashboard lists them: scores to 2 decimals, the interval in words."""
    level = format_level(VARIANT_LEVEL)
    return pd.DataFrame(
        [
            {"rank": b.rank, "variant": b.label, "mean": _round(b.mean),
             "interval": f"{level} CI {b.ci_low:.2f}..{b.ci_high:.2f}" if not math.isnan(b.ci_low) else "no CI (1 seed)",
             "best seed's score": _round(b.best_score), "seeds": b.n, "prompt": b.prompt, "negative_prompt": b.negative_prompt}
            for b in result.best
        ],
        columns=["rank", "variant", "mean", "interval", "best seed's score", "seeds", "prompt", "negative_prompt"],
    )


def effects_chart_data(result: Analysis) -> pd.DataFrame:
    """One row per effect, in ``result.effects`` order, for a chart that cannot mislabel a bar.

    ``row`` is the row's label, unique per effect: what it compares and its interval's level
    (``color: blue vs red (98.3% CI)``), or why it has none; ``estimate``, ``ci_low`` and
    ``ci_high`` are None where there is no number, so the row shows its label and no bar.
    """
    rows = []
    seen: set[str] = set()
    for e in result.effects:
        if math.isnan(e.mean_diff):
            shown = "not estimable" if e.note.startswith("not estimable") or not e.note else "no score"
        elif math.isnan(e.ci_low):
            shown = "no CI"
        else:
            shown = f"{format_level(e.ci_level)} CI"
        row = f"{effect_name(e)} ({shown})"
        while row in seen:  # two levels that print alike still get a row each
            row += " "
        seen.add(row)
        rows.append(
            {"row": row, "effect": effect_name(e), "estimate": _round(e.mean_diff), "ci_low": _round(e.ci_low),
             "ci_high": _round(e.ci_high), "interval": format_interval(e),
             "starred": "starred" if e.significant else "not starred", "wins": _wins(e), "note": e.note}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["row", "effect", "estimate", "ci_low", "ci_high", "interval", "starred", "wins", "note"])


def _best_first(variants: list[VariantStats]) -> list[VariantStats]:
    """Highest mean first, variants without a mean last (in their order)."""
    return sorted(variants, key=lambda v: -v.mean if not math.isnan(v.mean) else math.inf)


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 2)


def _wins(effect: Effect) -> str:
    if math.isnan(effect.wins):
        return ""
    return f"{effect.wins:g} of {effect.n_seeds} {'seed' if effect.n_seeds == 1 else 'seeds'}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "not tested"
    return f"{value:.2g}" if value >= 0.001 else "< 0.001"
