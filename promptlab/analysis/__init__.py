"""Which prompt words helped, by how much, and how sure we are.

This is what ``promptlab analyze`` and the dashboard's Insights page call::

    row = store.get_experiment("demo")
    result = analyze(store.runs_frame("demo", "intent"), score_kind="intent", experiment="demo",
                     planned=planned_cells(row.spec, row.source_path))
    format_effect(result.effects[1])   # 'color: blue vs red  -36.26 (98.3% CI -38.18..-34.35), wins 0 of 8 seeds'
    format_report(result)              # the lines ``promptlab analyze`` prints, 'Complete: 48 of 48 cells done' first
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
from collections.abc import Mapping

import pandas as pd

from promptlab.analysis.effects import EffectModel, effect_model, effects_table
from promptlab.analysis.frame import (
    ABSENT,
    AXIS_PREFIX,
    REQUIRED_COLUMNS,
    VARIANT_LEVEL,
    Level,
    all_runs,
    axis_columns,
    axis_values,
    check_frame,
    first_error,
)
from promptlab.analysis.inference import (
    Interval,
    holm,
    holm_adjust,
    holm_levels,
    seeds_needed,
    t_interval,
    t_p_value,
    t_quantile,
    t_test_power,
    wilson_interval,
)
from promptlab.analysis.progress import CellCounts, PlannedCells, cell_counts, format_cells, planned_cells
from promptlab.analysis.report import (
    best_table,
    effect_name,
    effects_chart_data,
    format_effect,
    format_interval,
    format_level,
    format_report,
    format_variant,
    how_to_read,
    level_text,
    report_tables,
)
from promptlab.analysis.results import Analysis, BestPrompt, Comparison, Effect, Estimates, VariantStats
from promptlab.analysis.suggest import TermSuggestion, term_suggestions
from promptlab.analysis.variants import best_prompts, rank_best, variant_table
from promptlab.analysis.votes import (
    Agreement,
    PairRecord,
    Strength,
    VoteAnalysis,
    VotePair,
    analyze_votes,
    bradley_terry,
    counted,
    export_votes,
    format_agreement,
    format_votes,
    next_pair,
    pair_records,
    scorer_agreement,
    strengths_table,
    votes_table,
)
from promptlab.errors import PromptlabError
from promptlab.scoring import scorer_traits

__all__ = [
    "ABSENT",
    "AXIS_PREFIX",
    "REQUIRED_COLUMNS",
    "VARIANT_LEVEL",
    "Agreement",
    "Analysis",
    "BestPrompt",
    "CellCounts",
    "Comparison",
    "Effect",
    "EffectModel",
    "Estimates",
    "Interval",
    "Level",
    "PairRecord",
    "PlannedCells",
    "Strength",
    "TermSuggestion",
    "VariantStats",
    "VoteAnalysis",
    "VotePair",
    "analyze",
    "scorer_note",
    "analyze_votes",
    "axis_columns",
    "axis_values",
    "best_prompts",
    "best_table",
    "bradley_terry",
    "cell_counts",
    "check_frame",
    "counted",
    "effect_model",
    "effect_name",
    "effects_chart_data",
    "effects_table",
    "export_votes",
    "format_agreement",
    "format_cells",
    "format_effect",
    "format_interval",
    "format_level",
    "format_report",
    "format_variant",
    "format_votes",
    "holm",
    "holm_adjust",
    "holm_levels",
    "how_to_read",
    "level_text",
    "next_pair",
    "pair_records",
    "planned_cells",
    "report_tables",
    "scorer_agreement",
    "seeds_needed",
    "strengths_table",
    "t_interval",
    "t_p_value",
    "t_quantile",
    "t_test_power",
    "term_suggestions",
    "variant_table",
    "votes_table",
    "wilson_interval",
]


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
    planned: PlannedCells | None = None,
    scorer: str | None = None,
) -> Analysis:
    """Variants, effects and best prompts of one experiment's runs frame for one score kind.

    ``planned`` (``planned_cells`` of the experiment's file) lets the result say how many of the
    planned cells are done; without it only failed cells mark the experiment incomplete.
    ``scorer`` names the scores' scorer (default: the frame's ``scorer`` column): a scorer whose
    values compare images only against one text (PickScore, HPS) is analysed on the intent score,
    where every image of a (seed, subject) block, which the effects pair within, shares its text.

    Raises ``PromptlabError`` when no run has a usable score, saying how many runs failed, or when
    a within-prompt scorer's own-prompt scores are asked for.
    """
    # 1. Check the request
    scorer = scorer or _frame_scorer(frame)
    note = scorer_note(scorer, score_kind, experiment)
    runs = all_runs(frame)
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
        best=rank_best(variants, top),
        cells=cell_counts(runs, planned),
        scorer=scorer,
        scorer_note=note,
    )


def _frame_scorer(frame: pd.DataFrame) -> str:
    if "scorer" not in frame.columns:
        return ""
    names = {str(name) for name in frame["scorer"].dropna().unique()}
    return names.pop() if len(names) == 1 else ""


def scorer_note(scorer: str, score_kind: str, experiment: str = "") -> str:
    """What ``scorer``'s ``score_kind`` scores allow, in one line ("" for CLIP-like scorers); PromptlabError
    where they allow no comparison: a within-prompt scorer's own-prompt scores (each image's own text).

    >>> scorer_note("pickscore", "intent")
    'pickscore compares images only against one text: every effect pairs images of one seed and subject, all scored against its intent'
    """
    if not scorer:
        return ""
    traits = scorer_traits(scorer)
    if traits.within_prompt and score_kind == "prompt":
        where = f" of experiment {experiment!r}" if experiment else ""
        raise PromptlabError(
            f"{scorer} compares images only against one text, but the prompt scores{where} score each image "
            "against its own prompt, which differs between variants: analyse its intent scores (--score intent)"
        )
    if traits.within_prompt:
        return f"{scorer} compares images only against one text: every effect pairs images of one seed and subject, all scored against its intent"
    if not traits.reads_text:
        return f"{scorer} reads no text: its intent and prompt scores are the same"
    return ""


def _no_scores_message(runs: pd.DataFrame, score_kind: str, experiment: str) -> str:
    where = f"experiment {experiment!r}" if experiment else "this experiment"
    if runs.empty:
        return f"{where} has no runs yet: nothing to analyse (promptlab run FILE renders them)"
    failed = int(runs["status"].eq("failed").sum()) if "status" in runs.columns else 0
    first = first_error(runs, 120)
    error = "" if first is None else f"; first error: {first}"
    return (
        f"{where} has no usable {score_kind} scores: {len(runs)} runs, {failed} failed, "
        f"{len(runs) - failed} with no {score_kind} score{error}"
    )
