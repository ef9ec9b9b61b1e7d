"""The lines and tables ``promptlab analyze`` prints and the dashboard's Insights page shows."""

from __future__ import annotations

import math

import pandas as pd

from promptlab.analysis.frame import VARIANT_LEVEL, level_name
from promptlab.analysis.results import Analysis, Effect, VariantStats


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
    name = f"{level_name(effect.axis, effect.level)} vs {level_name(effect.axis, effect.reference)}"
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
