"""Analysis statistics checked against values computed by hand, by scipy and statsmodels, and by a
dense textbook implementation of the clustered standard error on small tables.

How well the intervals cover, how often stars are false and what seeds-needed delivers is
measured by simulation in ``tests/test_stats_calibration.py``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from promptlab.analysis import (
    Effect,
    PlannedCells,
    analyze,
    best_prompts,
    best_table,
    cell_counts,
    effect_model,
    effect_name,
    effects_chart_data,
    effects_table,
    format_cells,
    format_effect,
    format_level,
    format_report,
    format_variant,
    holm,
    holm_levels,
    how_to_read,
    planned_cells,
    report_tables,
    seeds_needed,
    term_suggestions,
    t_test_power,
    variant_table,
    wilson_interval,
)
from promptlab.errors import PromptlabError


def _frame(rows: list[tuple[dict[str, object], int, float]], subject: str = "a cat") -> pd.DataFrame:
    """Runs frame from (axis values, seed, score) rows; a variant is its axis values."""
    records = []
    for i, (axes, seed, score) in enumerate(rows):
        key = ",".join(f"{k}={v}" for k, v in axes.items())
        records.append(
            {
                "run_id": i,
                "variant_key": key,
                "label": key or "baseline",
                "seed": seed,
                "subject": subject,
                "score": score,
                "image": f"{i:064x}",
                "prompt": f"{subject}, {key}",
                "negative_prompt": "blurry",
                **{f"axis:{k}": v for k, v in axes.items()},
            }
        )
    return pd.DataFrame(records)


def _table(cells: dict[tuple[str, float], list[float]]) -> pd.DataFrame:
    """Style x guidance_scale table; each cell lists its scores for seeds 0, 1, 2, ..."""
    return _frame(
        [
            ({"style": style, "guidance_scale": guidance}, seed, score)
            for (style, guidance), scores in cells.items()
            for seed, score in enumerate(scores)
        ]
    )


HAND_TABLE = {
    ("", 5.0): [10, 12, 11],
    ("", 7.5): [14, 15, 13],
    ("pop-art", 5.0): [12, 12, 14],
    ("pop-art", 7.5): [15, 17, 12],
}


def _effect(effects: list[Effect], axis: str, level: object) -> Effect:
    (found,) = [e for e in effects if e.axis == axis and e.level == level]
    return found


def _brute_force(frame: pd.DataFrame, axis: str, level: object, reference: object) -> tuple[float, float, float]:
    """Estimate, CR2 SE and Bell-McCaffrey df from the full design matrix (block dummies included), densely."""
    cells = frame[frame["score"].notna()].groupby(["variant_key", "seed", "subject"], as_index=False).first()
    axes = [c for c in cells.columns if c.startswith("axis:")]
    block = cells["seed"].astype(str) + "|" + cells["subject"]
    columns = [pd.get_dummies(block, dtype=float)]
    for column in axes:
        dummies = pd.get_dummies(cells[column].astype(str), dtype=float)
        keep = str(reference) if column == f"axis:{axis}" else dummies.columns[0]
        columns.append(dummies.drop(columns=keep).add_prefix(column))
    x = pd.concat(columns, axis=1)
    target = list(x.columns).index(f"axis:{axis}{level}")
    x = x.to_numpy()
    y = cells["score"].to_numpy()
    inverse = np.linalg.pinv(x.T @ x)
    residual_maker = np.eye(len(y)) - x @ inverse @ x.T
    influence = x @ inverse[:, target]
    residual = residual_maker @ y
    adjusted = np.zeros(len(y))
    for seed in cells["seed"].unique():
        rows = np.flatnonzero(cells["seed"] == seed)
        values, vectors = np.linalg.eigh(residual_maker[np.ix_(rows, rows)])
        root = np.where(values > 1e-10, 1 / np.sqrt(np.clip(values, 1e-300, None)), 0.0)
        adjusted[rows] = vectors @ (root * (vectors.T @ influence[rows]))
    seeds = cells["seed"].unique()
    scores = [adjusted[cells["seed"] == s] @ residual[cells["seed"] == s] for s in seeds]
    spread = np.column_stack([residual_maker[:, cells["seed"] == s] @ adjusted[cells["seed"] == s] for s in seeds])
    b = spread.T @ spread
    return float(influence @ y), float(np.sqrt(np.sum(np.square(scores)))), float(np.trace(b) ** 2 / np.sum(b * b))


# Variants.


def test_variant_mean_sd_and_best_image_by_hand() -> None:
    frame = _frame(
        [({"style": ""}, s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
        + [({"style": "pop-art"}, s, v) for s, v in enumerate([2.0, 4.0, 9.0])]
    )
    plain, pop = variant_table(frame)
    assert (plain.variant_key, pop.variant_key) == ("style=", "style=pop-art")
    assert plain.mean == pytest.approx(2.0) and plain.sd == pytest.approx(1.0) and plain.n == 3
    # (2-5)^2 + (4-5)^2 + (9-5)^2 = 26, over n-1 = 2
    assert pop.mean == pytest.approx(5.0) and pop.sd == pytest.approx(math.sqrt(13.0))
    assert pop.best_score == 9.0 and pop.best_image == frame.loc[5, "image"] and pop.best_run_id == 5
    assert pop.axes == {"style": "pop-art"} and pop.negative_prompt == "blurry" and pop.note == ""


def test_variant_interval_is_students_t_over_seeds() -> None:
    (stats_,) = variant_table(_frame([({"style": ""}, s, v) for s, v in enumerate([1.0, 2.0, 3.0])]))
    low, high = stats.t.interval(0.95, 2, loc=2.0, scale=1.0 / math.sqrt(3))
    assert (stats_.ci_low, stats_.ci_high, stats_.ci_level) == (pytest.approx(low), pytest.approx(high), 0.95)
    assert format_variant(stats_) == f"2.00 (95% CI {low:.2f}..{high:.2f}), 3 seeds"


def test_two_seeds_give_t_with_one_df_and_say_so() -> None:
    (two,) = variant_table(_frame([({"style": ""}, 0, 1.0), ({"style": ""}, 1, 3.0)]))
    # sd sqrt(2) over sqrt(2) seeds: the half-width is t(0.975, 1) = 12.706 standard errors
    assert (two.ci_low, two.ci_high) == (pytest.approx(2 - 12.7062047), pytest.approx(2 + 12.7062047))
    assert two.note == "2 seeds: t with 1 df, so the interval is wide"


def test_single_seed_has_no_sd_or_ci_and_says_why() -> None:
    (one,) = variant_table(_frame([({"style": ""}, 0, 4.0)]))
    assert one.n == 1 and math.isnan(one.sd) and math.isnan(one.ci_low)
    assert format_variant(one) == "4.00 (no CI: 1 seed: no interval (an interval needs 2 seeds)), 1 seed"


def test_interval_shrinks_with_seeds() -> None:
    pattern = [17.0, 20.0, 23.0]
    frame = _frame(
        [({"style": "few"}, s, v) for s, v in enumerate(pattern * 2)]
        + [({"style": "many"}, s, v) for s, v in enumerate(pattern * 20)]
    )
    few, many = variant_table(frame)
    for found in (few, many):
        assert found.mean == pytest.approx(20.0) and found.ci_low < found.mean < found.ci_high
    assert many.ci_high - many.ci_low < (few.ci_high - few.ci_low) / 3


def test_failed_runs_are_counted_and_every_variant_appears() -> None:
    rows = [({"style": ""}, s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    rows += [({"style": ""}, 3, math.nan), ({"style": "pop-art"}, 0, math.nan), ({"style": "pop-art"}, 1, math.nan)]
    frame = _frame(rows).assign(status=["ok"] * 3 + ["failed"] * 3, error=[None] * 3 + ["CUDA out of memory"] * 3)
    plain, pop = variant_table(frame)
    assert (plain.n, plain.n_runs, plain.n_failed, plain.mean, plain.best_score) == (3, 3, 1, 2.0, 3.0)
    assert format_variant(plain).endswith("3 seeds, 1 failed")
    assert (pop.n, pop.n_failed, pop.best_run_id) == (0, 2, None) and math.isnan(pop.mean)
    assert pop.note == "no score: every run failed (2 of 2): CUDA out of memory"
    result = analyze(frame)
    assert [b.label for b in result.best] == ["style="]
    (effect,) = result.effects
    assert format_effect(effect) == "style: pop-art vs no style  pop-art has no scored run (2 failed or unscored)"
    assert not effect.significant


def test_no_usable_scores_is_one_message() -> None:
    frame = _table(HAND_TABLE).assign(score=math.nan, status="failed", error="model not found")
    with pytest.raises(PromptlabError, match=r"^experiment 'demo' has no usable intent scores: 12 runs, 12 failed, "
                       r"0 with no intent score; first error: model not found$"):  # fmt: skip
        analyze(frame, experiment="demo")
    with pytest.raises(PromptlabError, match="has no runs yet"):
        analyze(_table(HAND_TABLE).iloc[:0], experiment="demo")


# Effects.


def test_paired_differences_by_hand() -> None:
    effects = effects_table(_table(HAND_TABLE), effect_size=0.25)
    style = _effect(effects, "style", "pop-art")
    assert style.reference == ""
    # per seed, pop-art minus none averaged over guidance: (2+1)/2, (0+2)/2, (3-1)/2
    per_seed = [1.5, 1.0, 1.0]
    test = stats.ttest_1samp(per_seed, 0.0)
    assert style.mean_diff == pytest.approx(7 / 6) and style.se == pytest.approx(np.std(per_seed, ddof=1) / math.sqrt(3))
    assert (style.n_cells, style.n_seeds, style.wins, style.df) == (12, 3, 3.0, pytest.approx(2.0))
    assert style.p_value == pytest.approx(test.pvalue)
    guidance = _effect(effects, "guidance_scale", 7.5)
    assert guidance.reference == 5.0 and guidance.mean_diff == pytest.approx(2.5)
    # seed 2: (13 + 12) / 2 against (11 + 14) / 2 is a tie and counts half
    assert (guidance.wins, guidance.win_rate) == (2.5, pytest.approx(2.5 / 3))
    assert [e.mean_diff for e in effects] == sorted((e.mean_diff for e in effects), reverse=True)


def test_seeds_needed_of_an_effect_plans_with_its_test() -> None:
    effects = effects_table(_table(HAND_TABLE), effect_size=0.25)
    style = _effect(effects, "style", "pop-art")
    per_seed_sd = float(np.std([1.5, 1.0, 1.0], ddof=1))
    # two comparisons: Holm's first step tests at 0.05 / 2
    assert style.seeds_needed == seeds_needed(per_seed_sd, 0.25, alpha=0.05, family_size=2)
    planned = style.seeds_needed
    assert planned is not None
    assert t_test_power(planned, per_seed_sd, 0.25, family_size=2) >= 0.8 > t_test_power(planned - 1, per_seed_sd, 0.25, family_size=2)


@pytest.mark.parametrize("lost", [[(("pop-art", 7.5), 2)], [(("pop-art", 7.5), 2), (("", 5.0), 0)]])
def test_unbalanced_design_matches_dense_cr2_and_statsmodels(lost: list) -> None:
    import statsmodels.formula.api as smf

    frame = _table(HAND_TABLE)
    frame = pd.concat([frame, _table({k: [v + 0.5 for v in values] for k, values in HAND_TABLE.items()}).assign(seed=lambda f: f["seed"] + 3)], ignore_index=True)
    frame["score"] += np.random.default_rng(0).normal(0, 1, len(frame))
    for (style, guidance), seed in lost:
        frame.loc[(frame["axis:style"] == style) & (frame["axis:guidance_scale"] == guidance) & (frame["seed"] == seed), "score"] = math.nan
    effects = effects_table(frame)
    fit = smf.ols("score ~ C(seed) + C(style, Treatment('')) + C(guidance_scale)",
                  frame.rename(columns=lambda c: c.removeprefix("axis:")).dropna(subset=["score"])).fit()  # fmt: skip
    for axis, level, reference, name in (
        ("style", "pop-art", "", "C(style, Treatment(''))[T.pop-art]"),
        ("guidance_scale", 7.5, 5.0, "C(guidance_scale)[T.7.5]"),
    ):
        effect = _effect(effects, axis, level)
        estimate, se, df = _brute_force(frame, axis, level, reference)
        assert effect.mean_diff == pytest.approx(fit.params[name]) == pytest.approx(estimate)
        assert effect.se == pytest.approx(se) and effect.df == pytest.approx(df)
        assert effect.p_value == pytest.approx(2 * stats.t.sf(abs(estimate) / se, df))


def test_level_without_any_partner_is_not_estimable() -> None:
    frame = _frame([({"style": ""}, 0, 1.0), ({"style": ""}, 1, 2.0), ({"style": "pop-art"}, 2, 5.0)])
    (effect,) = effects_table(frame)
    assert (effect.n_cells, effect.significant, effect.seeds_needed) == (0, False, None)
    assert math.isnan(effect.p_value) and math.isnan(effect.mean_diff)
    assert format_effect(effect) == (
        "style: pop-art vs no style  not estimable: no seed (and subject) links it to no style through scored runs"
    )


def test_confounded_sample_from_the_issue_comes_out_null() -> None:
    # a random sample of style x medium x artist: axes not crossed; only oil painting has an effect (+3)
    combos = [("pop-art", "oil painting", ""), ("art nouveau", "", "Mucha"), ("steampunk", "", ""),
              ("pop-art", "oil painting", "Mucha"), ("art nouveau", "", ""), ("steampunk", "oil painting", "Mucha")]  # fmt: skip
    seed_effect = np.random.default_rng(1).normal(0, 5, 8)
    rows = [
        ({"style": s, "medium": m, "artist": a}, seed, 20 + seed_effect[seed] + (3.0 if m else 0.0))
        for s, m, a in combos
        for seed in range(8)
    ]
    effects = effects_table(_frame(rows))
    assert _effect(effects, "medium", "oil painting").mean_diff == pytest.approx(3.0)
    assert _effect(effects, "medium", "oil painting").significant
    for axis, level in (("style", "art nouveau"), ("style", "steampunk"), ("artist", "Mucha")):
        null = _effect(effects, axis, level)
        assert (null.mean_diff, null.significant, null.p_value) == (0.0, False, 1.0)


def test_levels_the_design_cannot_separate_are_not_estimable() -> None:
    rows = [({"style": "pop-art", "medium": ""}, s, 20.0 + s) for s in range(4)]
    rows += [({"style": "steampunk", "medium": "oil painting"}, s, 25.0 + s) for s in range(4)]
    effects = effects_table(_frame(rows))
    for effect in effects:
        assert not effect.significant and math.isnan(effect.mean_diff)
    assert format_effect(_effect(effects, "style", "steampunk")) == (
        "style: steampunk vs pop-art  not estimable: in these runs it always changes together with medium"
    )


def test_level_scored_on_one_seed_has_an_estimate_but_no_test() -> None:
    rows = [({"style": level}, s, 20.0 + s + i) for i, level in enumerate(["", "pop-art"]) for s in range(3)]
    rows += [({"style": "ukiyo-e"}, 0, 30.0), ({"style": "ukiyo-e"}, 1, math.nan), ({"style": "ukiyo-e"}, 2, math.nan)]
    effect = _effect(effects_table(_frame(rows)), "style", "ukiyo-e")
    assert effect.mean_diff == pytest.approx(10.0) and math.isnan(effect.p_value) and not effect.significant
    assert format_effect(effect) == "style: ukiyo-e vs no style  +10.00 (no CI: no test: ukiyo-e is scored on 1 seed only (a test needs 2))"


def test_two_subjects_are_blocks_and_their_contrasts_average() -> None:
    rng = np.random.default_rng(3)
    parts: list[pd.DataFrame] = []
    for subject, lift in (("a cat", 1.0), ("a house", 3.0)):
        base = rng.normal(20, 3, 8)
        parts.append(
            _frame(
                [({"style": ""}, s, base[s]) for s in range(8)] + [({"style": "pop-art"}, s, base[s] + lift) for s in range(8)],
                subject=subject,
            )
        )
    (effect,) = effects_table(pd.concat(parts, ignore_index=True))
    assert (effect.n_cells, effect.n_seeds) == (32, 8)
    # every seed shows +1 on the cat and +3 on the house: the same +2, exactly
    assert (effect.mean_diff, effect.ci_low, effect.ci_high, effect.significant) == (pytest.approx(2.0), pytest.approx(2.0), pytest.approx(2.0), True)


def test_term_weight_axis_is_averaged_over_when_comparing_the_term() -> None:
    # the weight of "oil painting" exists only where the term is present: nested in medium
    rows = []
    for seed, base in enumerate([10.0, 12.0, 11.0]):
        rows.append(({"medium": "", "weight:oil painting": math.nan}, seed, base))
        rows.append(({"medium": "oil painting", "weight:oil painting": 1.0}, seed, base + 1.0))
        rows.append(({"medium": "oil painting", "weight:oil painting": 1.3}, seed, base + 3.0))
    effects = effects_table(_frame(rows))
    medium = _effect(effects, "medium", "oil painting")
    assert (medium.n_seeds, medium.mean_diff) == (3, pytest.approx((1.0 + 3.0) / 2))
    weight = _effect(effects, "weight:oil painting", 1.3)
    assert (weight.reference, weight.n_seeds, weight.mean_diff) == (1.0, 3, pytest.approx(2.0))


def test_big_consistent_effect_is_starred_and_its_ci_says_its_level() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(20, 3, 12)
    lifts = {"": 0.0, "a": 5.0, "b": 4.0, "c": 3.0}
    frame = _frame(
        [({"style": term}, s, base[s] + lift + rng.normal(0, 0.3)) for term, lift in lifts.items() for s in range(12)]
    )
    effects = effects_table(frame)
    assert [e.level for e in effects] == ["a", "b", "c"]
    for effect in effects:
        assert effect.significant and effect.p_holm <= 0.05 and effect.ci_low > 0
        assert effect.ci_low < effect.mean_diff < effect.ci_high and effect.wins == 12 and effect.win_low > 0.7
    assert sorted(e.ci_level for e in effects) == pytest.approx([1 - 0.05, 1 - 0.05 / 2, 1 - 0.05 / 3])


def test_four_seeds_can_star_a_large_effect() -> None:
    # the issue's example: +10 with noise SD 2 on 4 seeds (a sign test could never star it)
    rng = np.random.default_rng(5)
    seed_effect = rng.normal(0, 5, 4)
    frame = _frame([({"style": t}, s, 20 + seed_effect[s] + (10 if t else 0) + rng.normal(0, 2)) for t in ("", "pop-art") for s in range(4)])
    (effect,) = effects_table(frame)
    assert effect.significant and effect.p_value < 0.01


def test_star_is_the_same_as_a_ci_that_excludes_zero() -> None:
    rng = np.random.default_rng(2)
    terms = ["", *[f"term{i}" for i in range(8)]]
    lifts = dict(zip(terms, [0, 0, 0, 1.0, 1.5, 2.0, 2.5, 3.0, 6.0]))
    for trial in range(10):
        seed_effect = rng.normal(0, 5, 6)
        frame = _frame([({"style": t}, s, 20 + seed_effect[s] + lifts[t] + rng.normal(0, 2)) for t in terms for s in range(6)])
        for effect in effects_table(frame):
            assert effect.significant == (effect.ci_low > 0 or effect.ci_high < 0), (trial, effect)
            assert effect.p_holm >= effect.p_value


def test_pure_noise_is_mostly_not_significant() -> None:
    rng = np.random.default_rng(2)
    terms = ["", *[f"term{i}" for i in range(8)]]
    frame = _frame([({"style": term}, s, rng.normal(20, 3)) for term in terms for s in range(10)])
    effects = effects_table(frame)
    assert len(effects) == 8 and sum(e.significant for e in effects) <= 1
    assert all(e.p_holm >= e.p_value and e.ci_low < e.ci_high for e in effects)


def test_reference_can_be_overridden() -> None:
    frame = _table(HAND_TABLE)
    effects = effects_table(frame, reference={"style": "pop-art", "guidance_scale": "7.5"})
    absent = _effect(effects, "style", "")
    assert absent.reference == "pop-art" and absent.mean_diff == pytest.approx(-7 / 6)
    assert _effect(effects, "guidance_scale", 5.0).mean_diff == pytest.approx(-2.5)
    with pytest.raises(PromptlabError, match="unknown axis 'medium'"):
        effects_table(frame, reference={"medium": "oil painting"})
    with pytest.raises(PromptlabError, match="no level 'cubism'"):
        effects_table(frame, reference={"style": "cubism"})


def test_missing_text_axis_value_reads_as_absent() -> None:
    frame = _table(HAND_TABLE)
    frame["axis:style"] = frame["axis:style"].replace("", None)
    style = _effect(effects_table(frame), "style", "pop-art")
    assert style.reference == "" and style.n_cells == 12


def test_model_estimates_many_replicates_at_once() -> None:
    frame = _table(HAND_TABLE)
    model = effect_model(frame)
    single = model.estimate()
    scores = model.cells["score"].to_numpy()
    stacked = model.estimate(np.column_stack([scores, scores + 1.0, 2 * scores]))
    assert stacked.estimate[:, 0] == pytest.approx(single.estimate[:, 0])
    assert stacked.estimate[:, 1] == pytest.approx(single.estimate[:, 0])
    assert stacked.estimate[:, 2] == pytest.approx(2 * single.estimate[:, 0])
    with pytest.raises(PromptlabError, match="scores have 3 rows, the model has 12 cells"):
        model.estimate(np.zeros(3))


# Building blocks.


def test_wilson_interval_9_of_12() -> None:
    interval = wilson_interval(9, 12)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.4677, 0.9111)
    with pytest.raises(PromptlabError, match="13 of 12"):
        wilson_interval(13, 12)


def test_holm_textbook_example() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.01, math.nan, 0.02])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    with pytest.raises(PromptlabError, match="p-values"):
        holm([1.5])


def test_holm_levels_are_the_steps_that_judged_each_comparison() -> None:
    # 0.005 and 0.01 are starred at steps 1 and 2; the step-down stops at 0.03 (step 3), which judges 0.04 too
    levels = holm_levels([0.01, 0.04, 0.03, 0.005, math.nan])
    assert levels[:4] == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2, 1 - 0.05 / 4])
    assert math.isnan(levels[4])
    assert holm_levels([0.01, 0.01]) == pytest.approx([0.975, 0.975])


def test_seeds_needed_is_the_noncentral_t_plan() -> None:
    def power(n: int, sd: float, effect: float, alpha: float) -> float:
        critical = stats.t.ppf(1 - alpha / 2, n - 1)
        shift = effect * math.sqrt(n) / sd
        return float(stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift))

    # normal quantiles would say 32 seeds to see 1 point at sd 2; the t-test needs 34
    assert seeds_needed(2.0) == 34
    assert power(34, 2.0, 1.0, 0.05) >= 0.8 > power(33, 2.0, 1.0, 0.05)
    assert seeds_needed(2.0, effect_size=2.0) == 10
    # five comparisons: Holm starts at 0.01
    assert seeds_needed(2.0, effect_size=2.0, family_size=5) == 16
    assert power(16, 2.0, 2.0, 0.01) >= 0.8 > power(15, 2.0, 2.0, 0.01)
    assert seeds_needed(2.0, 2.0, power=0.9) > 10
    assert seeds_needed(0.0) == 2 and seeds_needed(math.nan) is None and seeds_needed(None) is None
    assert seeds_needed(1000.0, 0.1) == math.ceil(((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 1e4) ** 2)
    for bad, match in (({"effect_size": 0}, "effect_size"), ({"power": 1.0}, "power"), ({"family_size": 0}, "family_size")):
        with pytest.raises(PromptlabError, match=match):
            seeds_needed(1.0, **bad)  # type: ignore[arg-type]


# Checks on the input.


def test_missing_columns_are_named() -> None:
    frame = _table(HAND_TABLE).drop(columns=["seed", "image"])
    with pytest.raises(PromptlabError, match="missing column\\(s\\) seed, image"):
        analyze(frame)


def test_non_numeric_score_is_rejected() -> None:
    frame = _table(HAND_TABLE).astype({"score": object})
    frame.loc[0, "score"] = "high"
    with pytest.raises(PromptlabError, match="'score' must hold numbers"):
        variant_table(frame)


# What people read.


def test_format_effect_states_the_level() -> None:
    effect = Effect(
        axis="style", level="artstation", reference="", n_seeds=12, n_cells=12, mean_diff=2.1, se=0.6, df=11.0,
        ci_low=0.8, ci_high=3.4, ci_level=1 - 0.05 / 3, wins=9.0, win_rate=0.75, win_low=0.47, win_high=0.91,
        p_value=0.001, p_holm=0.002, significant=True, seeds_needed=6, note="",
    )  # fmt: skip
    assert format_effect(effect) == "style: artstation vs no style  +2.10 (98.3% CI +0.80..+3.40), wins 9 of 12 seeds"
    numeric = Effect(**{**effect.__dict__, "axis": "guidance_scale", "level": 7.5, "reference": 5.0, "wins": 8.5})
    assert format_effect(numeric).startswith("guidance_scale: 7.5 vs 5.0  +2.10 (98.3% CI")
    assert (format_level(0.95), format_level(0.99), format_level(1 - 0.05 / 4)) == ("95%", "99%", "98.8%")


def test_report_and_tables_show_the_same_numbers() -> None:
    frame = _table(HAND_TABLE)
    frame = pd.concat([frame, _frame([({"style": "lone", "guidance_scale": 5.0}, 0, 3.0)])], ignore_index=True)
    result = analyze(frame, experiment="hand", effect_size=0.5)
    lines = format_report(result)
    assert lines[0] == "Variants (intent score: mean over seeds, 95% t-interval):"
    assert any(line.endswith("style=lone,guidance_scale=5.0") and "no CI: 1 seed" in line for line in lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("Effects"))
    assert "Holm's step-down over 2 comparisons at 5% familywise" in lines[header]
    assert "seeds to star ±0.5 with 80% power" in lines[header + 1]
    variants, effects = report_tables(result)
    assert list(variants["ci"]) == [format_variant(v) for v in sorted(result.variants, key=lambda v: -v.mean)]
    assert list(effects["effect"]) == [effect_name(e) for e in result.effects]
    note = how_to_read(result)
    assert "all 2 comparisons" in note and "to star an effect of 0.5 score points with 80% power" in note


def test_every_effect_names_its_axis_and_reference_for_every_kind_of_level() -> None:
    base = Effect(
        axis="style", level="pop-art", reference="", n_seeds=3, n_cells=6, mean_diff=1.0, se=0.5, df=2.0,
        ci_low=-1.0, ci_high=3.0, ci_level=0.95, wins=2.0, win_rate=2 / 3, win_low=0.2, win_high=0.9,
        p_value=0.2, p_holm=0.2, significant=False, seeds_needed=9, note="",
    )  # fmt: skip
    cases = [
        ({"axis": "color", "level": "blue", "reference": "red"}, "color: blue vs red"),
        ({"axis": "artist", "level": "Greg Rutkowski", "reference": ""}, "artist: Greg Rutkowski vs no artist"),
        ({"axis": "artist", "level": "", "reference": "Mucha"}, "artist: no artist vs Mucha"),
        ({"axis": "guidance_scale", "level": 7.5, "reference": 5.0}, "guidance_scale: 7.5 vs 5.0"),
        ({"axis": "num_inference_steps", "level": 30, "reference": 20}, "num_inference_steps: 30 vs 20"),
        ({"axis": "scheduler", "level": "euler", "reference": "ddim"}, "scheduler: euler vs ddim"),
    ]
    for fields, name in cases:
        effect = Effect(**{**base.__dict__, **fields})
        assert effect_name(effect) == name
        assert format_effect(effect).startswith(f"{name}  +1.00 (95% CI -1.00..+3.00)")


def _awkward_frame() -> pd.DataFrame:
    """Every kind of missing number: a failed variant, a level on one seed, a level no seed links, a numeric axis."""
    rows = [({"style": level, "guidance_scale": g}, s, 20.0 + s + i + g) for i, level in enumerate(["", "pop-art"])
            for g in (5.0, 7.5) for s in range(3)]  # fmt: skip
    rows += [({"style": "ukiyo-e", "guidance_scale": 5.0}, 0, 30.0)]
    rows += [({"style": "lost", "guidance_scale": 5.0}, s, math.nan) for s in range(2)]
    rows += [({"style": "alone", "guidance_scale": 5.0}, 9, 40.0)]
    statuses = ["ok"] * 13 + ["failed", "failed", "ok"]
    return _frame(rows).assign(status=statuses, error=[None] * 13 + ["CUDA out of memory"] * 2 + [None])


def test_report_tables_and_chart_say_in_words_what_has_no_number() -> None:
    result = analyze(_awkward_frame(), experiment="awkward")
    notes = {effect_name(e): e for e in result.effects}
    assert math.isnan(notes["style: alone vs no style"].mean_diff) and math.isnan(notes["style: lost vs no style"].mean_diff)
    assert math.isnan(notes["style: ukiyo-e vs no style"].ci_low)
    lines = format_report(result)
    assert not [line for line in lines if "nan" in line.lower().replace("nanos", "")], lines
    assert any(line.strip().startswith("style: lost vs no style") and "has no scored run" in line for line in lines)
    assert any("style: alone vs no style" in line and "not estimable" in line for line in lines)
    assert any("style: ukiyo-e vs no style" in line and "no CI: no test" in line for line in lines)
    # the numbers line up: every effect's number starts in the same column
    width = max(len(effect_name(e)) for e in result.effects)
    effect_lines = lines[-len(result.effects) :]
    assert {line[4 + width : 4 + width + 2] for line in effect_lines} == {"  "}
    assert all(line[4 + width + 2] != " " for line in effect_lines)
    variants, effects = report_tables(result)
    best = best_table(result)
    for table in (variants, effects, best):
        # words where a number is missing; a number column leaves the cell empty (the words are beside it)
        text = [cell for column in table.select_dtypes(exclude="number") for cell in table[column]]
        assert all(isinstance(cell, str) and "nan" not in cell.lower() for cell in text if not isinstance(cell, int)), table
    assert effects["p (Holm)"].tolist().count("not tested") == 3
    chart = effects_chart_data(result)
    assert chart["row"].tolist() == [f"{effect_name(e)} ({shown})" for e, shown in zip(result.effects, _shown(result.effects))]
    assert chart["row"].is_unique and len(chart) == len(result.effects)


def _shown(effects: list[Effect]) -> list[str]:
    return [
        "not estimable" if e.note.startswith("not estimable") else "no score" if math.isnan(e.mean_diff)
        else "no CI" if math.isnan(e.ci_low) else f"{format_level(e.ci_level)} CI"
        for e in effects
    ]  # fmt: skip


def test_cells_done_failed_and_not_run_are_counted_and_said() -> None:
    frame = _awkward_frame()
    counts = cell_counts(frame, PlannedCells(20))
    assert (counts.planned, counts.done, counts.failed, counts.not_run, counts.incomplete) == (20, 14, 2, 4, True)
    assert format_cells(counts) == "Incomplete: 14 of 20 cells done, 2 failed, 4 not run yet"
    ok = frame[frame["status"] == "ok"]
    assert format_cells(cell_counts(ok, PlannedCells(14))) == "Complete: 14 of 14 cells done"
    unknown = cell_counts(frame, PlannedCells(None, "its file no longer expands to cells: no model"))
    assert format_cells(unknown) == (
        "Incomplete: 14 cells done, 2 failed (planned cells not known: its file no longer expands to cells: no model)"
    )
    # a retried cell that then finished is done, not failed
    retried = pd.concat([frame, frame[frame["status"] == "failed"].assign(status="ok", score=1.0)], ignore_index=True)
    assert (cell_counts(retried).done, cell_counts(retried).failed) == (16, 0)
    result = analyze(frame, planned=PlannedCells(20))
    assert format_report(result)[0] == "Incomplete: 14 of 20 cells done, 2 failed, 4 not run yet"
    assert result.to_dict()["cells"] == {"planned": 20, "done": 14, "failed": 2, "note": "", "not_run": 4, "incomplete": True}
    # without a plan and without failures nothing is claimed either way; a plan that could not be counted says why
    assert format_report(analyze(ok))[0].startswith("Variants")
    assert format_report(analyze(ok, planned=PlannedCells(None, "no model")))[0] == "14 cells done (planned cells not known: no model)"


def test_planned_cells_expand_the_stored_file_or_say_why_not() -> None:
    spec = {"name": "planned", "model": "micro", "seeds": 3, "prompt": {"subject": "a circle"},
            "axes": {"color": ["red", "blue"], "guidance_scale": [5.0, 7.5]}}  # fmt: skip
    assert planned_cells(spec) == PlannedCells(12)
    broken = planned_cells({"name": "broken", "seeds": 3, "prompt": {"subject": "a circle"}})
    assert broken.count is None and "no longer expands" in broken.note and "model" in broken.note
    assert planned_cells({}).count is None


def test_analyze_to_dict_is_json() -> None:
    frame = _table(HAND_TABLE)
    frame = pd.concat([frame, _frame([({"style": "lone", "guidance_scale": 5.0}, 0, 3.0)])], ignore_index=True)
    result = analyze(frame, score_kind="aesthetic", experiment="hand")
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert (data["score_kind"], data["experiment"], data["power"], data["family_size"]) == ("aesthetic", "hand", 0.8, 2)
    assert len(data["variants"]) == 5 and len(data["effects"]) == 3
    lone = next(v for v in data["variants"] if v["label"] == "style=lone,guidance_scale=5.0")
    assert lone["sd"] is None and lone["n"] == 1 and lone["note"].startswith("1 seed")
    assert set(data["effects"][0]) >= {"axis", "level", "reference", "mean_diff", "ci_low", "ci_level", "p_holm", "seeds_needed", "note"}
    assert data["best"][0]["rank"] == 1


def test_best_prompts_rank_by_mean_then_ci_low() -> None:
    frame = _frame(
        [({"style": "steady"}, s, v) for s, v in enumerate([4.0, 5.0, 6.0])]
        + [({"style": "wild"}, s, v) for s, v in enumerate([0.0, 5.0, 10.0])]
        + [({"style": "weak"}, s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    )
    first, second = best_prompts(frame, top=2)
    assert (first.rank, first.label, second.label) == (1, "style=steady", "style=wild")
    assert first.ci_low > second.ci_low
    assert second.image == frame.loc[5, "image"] and second.best_score == 10.0
    assert second.prompt == "a cat, style=wild" and second.negative_prompt == "blurry"
    with pytest.raises(PromptlabError, match="top"):
        best_prompts(frame, top=0)


@pytest.mark.slow
def test_hundred_thousand_runs() -> None:
    rng = np.random.default_rng(4)
    grid = pd.MultiIndex.from_product(
        [["", "pop-art", "cubism", "ukiyo-e", "noir"], ["", "oil", "ink", "photo"], [3.0, 5.0, 7.5, 9.0, 12.0],
         ["a cat", "a house"], range(500)],
        names=["axis:style", "axis:medium", "axis:guidance_scale", "subject", "seed"],
    ).to_frame(index=False)  # fmt: skip
    grid["variant_key"] = grid["axis:style"] + "|" + grid["axis:medium"] + "|" + grid["axis:guidance_scale"].astype(str)
    grid["score"] = 20 + rng.normal(0, 2, len(grid)) + np.where(grid["axis:style"] == "pop-art", 1.0, 0.0)
    grid["score"] = grid["score"].where(rng.random(len(grid)) > 0.01)
    frame = grid.assign(run_id=range(len(grid)), label=grid["variant_key"], image="x", prompt="p", negative_prompt="")
    assert len(frame) == 100_000
    result = analyze(frame)
    assert len(result.variants) == 100 and len(result.effects) == 4 + 3 + 4
    top = result.effects[0]
    assert (top.axis, top.level, top.significant) == ("style", "pop-art", True)
    assert top.mean_diff == pytest.approx(1.0, abs=0.1)


def test_term_suggestions_gather_terms_that_helped_across_experiments() -> None:
    first = analyze(_table(HAND_TABLE), experiment="first")
    second = analyze(
        _frame(
            [({"style": style}, seed, base + bump) for seed, base in enumerate([10.0, 12.0, 11.0, 13.0])
             for style, bump in (("", 0.0), ("cubism", -2.0 - seed % 2), ("steampunk", 4.0 + seed % 2))]
        ),
        experiment="second",
    )
    pop_art = next(e for e in first.effects if e.axis == "style")
    steampunk = next(e for e in second.effects if e.level == "steampunk")
    suggestions = term_suggestions([first, second], {"style", "medium"})
    # guidance_scale helped too, but it is no term; cubism lowered the score.
    assert [(s.term, s.experiment) for s in suggestions] == [("steampunk", "second"), ("pop-art", "first")]
    assert suggestions[0].mean_diff == steampunk.mean_diff == pytest.approx(4.5)
    assert (suggestions[1].mean_diff, suggestions[1].ci_low, suggestions[1].significant) == (
        pop_art.mean_diff, pop_art.ci_low, pop_art.significant
    )
    assert all(s.category == "style" for s in suggestions)
    assert [s.term for s in term_suggestions([first, second], {"style"}, exclude={"steampunk"})] == ["pop-art"]
    assert term_suggestions([first, second], {"medium"}) == []
