"""Analysis statistics checked against values computed by hand on small tables."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from promptlab.analysis import (
    Effect,
    analyze,
    best_prompts,
    effects_table,
    format_effect,
    holm,
    seeds_needed,
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


def test_variant_mean_sd_and_best_image_by_hand() -> None:
    frame = _frame(
        [({"style": ""}, s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
        + [({"style": "pop-art"}, s, v) for s, v in enumerate([2.0, 4.0, 9.0])]
    )
    plain, pop = variant_table(frame, n_boot=200)
    assert (plain.variant_key, pop.variant_key) == ("style=", "style=pop-art")
    assert plain.mean == pytest.approx(2.0) and plain.sd == pytest.approx(1.0) and plain.n == 3
    # (2-5)^2 + (4-5)^2 + (9-5)^2 = 26, over n-1 = 2
    assert pop.mean == pytest.approx(5.0) and pop.sd == pytest.approx(math.sqrt(13.0))
    assert pop.best_score == 9.0 and pop.best_image == frame.loc[5, "image"] and pop.best_run_id == 5
    assert pop.axes == {"style": "pop-art"} and pop.negative_prompt == "blurry"


def test_failed_runs_are_excluded() -> None:
    rows = [({"style": ""}, s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    frame = _frame([*rows, ({"style": ""}, 3, math.nan)])
    (stats,) = variant_table(frame, n_boot=200)
    assert (stats.n, stats.n_runs, stats.mean, stats.best_score) == (3, 3, 2.0, 3.0)


def test_paired_differences_by_hand() -> None:
    effects = effects_table(_table(HAND_TABLE), n_boot=500, effect_size=0.25)
    style = _effect(effects, "style", "pop-art")
    assert style.reference == ""
    # blocks (seed, guidance): 12-10, 12-12, 14-11, 15-14, 17-15, 12-13
    assert style.mean_diff == pytest.approx((2 + 0 + 3 + 1 + 2 - 1) / 6)
    assert (style.n_pairs, style.n_seeds, style.wins) == (6, 3, 3.0)
    per_seed_sd = float(np.std([(2 + 1) / 2, (0 + 2) / 2, (3 - 1) / 2], ddof=1))
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.80)
    assert style.seeds_needed == math.ceil((z * per_seed_sd / 0.25) ** 2) == 11
    # 3 seeds that all agree: the bootstrap alone would say p = 0, a sign test says 2 * 0.5^3
    assert style.p_value == pytest.approx(0.25) and not style.significant

    guidance = _effect(effects, "guidance_scale", 7.5)
    assert guidance.reference == 5.0
    assert guidance.mean_diff == pytest.approx((4 + 3 + 2 + 3 + 5 - 2) / 6)
    # seed 2: (13 + 12) / 2 against (11 + 14) / 2 is a tie and counts half
    assert (guidance.wins, guidance.win_rate) == (2.5, pytest.approx(2.5 / 3))
    assert [e.mean_diff for e in effects] == sorted((e.mean_diff for e in effects), reverse=True)


def test_missing_cell_drops_its_block() -> None:
    frame = _table(HAND_TABLE)
    frame.loc[(frame["axis:style"] == "pop-art") & (frame["axis:guidance_scale"] == 7.5) & (frame["seed"] == 2), "score"] = math.nan
    effects = effects_table(frame, n_boot=500)
    style = _effect(effects, "style", "pop-art")
    assert (style.n_pairs, style.n_seeds) == (5, 3)
    assert style.mean_diff == pytest.approx((2 + 0 + 3 + 1 + 2) / 5)
    guidance = _effect(effects, "guidance_scale", 7.5)
    assert guidance.n_pairs == 5 and guidance.mean_diff == pytest.approx((4 + 3 + 2 + 3 + 5) / 5)


def test_level_without_any_partner_is_reported_not_tested() -> None:
    frame = _frame([({"style": ""}, 0, 1.0), ({"style": ""}, 1, 2.0), ({"style": "pop-art"}, 2, 5.0)])
    (effect,) = effects_table(frame, n_boot=100)
    assert (effect.n_pairs, effect.n_seeds, effect.significant) == (0, 0, False)
    assert math.isnan(effect.p_value) and effect.seeds_needed is None
    assert format_effect(effect) == "pop-art: no runs matched with no style"


def test_wilson_interval_9_of_12() -> None:
    z = NormalDist().inv_cdf(0.975)
    n, p = 12, 9 / 12
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    interval = wilson_interval(9, 12)
    assert interval.low == pytest.approx(centre - half) and interval.high == pytest.approx(centre + half)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.4677, 0.9111)
    with pytest.raises(PromptlabError, match="13 of 12"):
        wilson_interval(13, 12)


def test_seeds_needed_for_known_sd() -> None:
    # (1.959964 + 0.841621)^2 * 2^2 = 31.4 -> 32 seeds to see 1 point at sd 2
    assert seeds_needed(2.0) == 32
    assert seeds_needed(2.0, effect_size=2.0) == 8
    assert seeds_needed(0.0) == 2
    assert seeds_needed(math.nan) is None
    with pytest.raises(PromptlabError, match="effect_size"):
        seeds_needed(1.0, effect_size=0)


def test_holm_textbook_example() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.01, math.nan, 0.02])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    with pytest.raises(PromptlabError, match="p-values"):
        holm([1.5])


def test_bootstrap_ci_contains_mean_and_shrinks_with_n() -> None:
    # the same spread of scores over 6 and over 60 seeds: the interval narrows about sqrt(10)-fold
    pattern = [17.0, 20.0, 23.0]
    frame = _frame(
        [({"style": "few"}, s, v) for s, v in enumerate(pattern * 2)]
        + [({"style": "many"}, s, v) for s, v in enumerate(pattern * 20)]
    )
    few, many = variant_table(frame)
    for stats in (few, many):
        assert stats.mean == pytest.approx(20.0) and stats.ci_low < stats.mean < stats.ci_high
    assert many.ci_high - many.ci_low < (few.ci_high - few.ci_low) / 2
    assert variant_table(frame) == [few, many]
    assert variant_table(frame, seed=1)[1].ci_low != many.ci_low


def test_single_seed_has_no_sd_or_ci() -> None:
    (stats,) = variant_table(_frame([({"style": ""}, 0, 4.0)]))
    assert stats.n == 1 and math.isnan(stats.sd) and math.isnan(stats.ci_low)


def test_big_deterministic_effect_is_significant() -> None:
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
        assert effect.ci_low < effect.mean_diff < effect.ci_high
        assert effect.wins == 12 and effect.win_low > 0.7
        # all three p-values tie at the sign-test floor 2 * 0.5^12, so all share the strictest Holm level
        assert effect.p_value == pytest.approx(0.5**11)
        assert effect.ci_level == pytest.approx(1 - 0.05 / 3)


def test_pure_noise_is_mostly_not_significant() -> None:
    rng = np.random.default_rng(2)
    terms = ["", *[f"term{i}" for i in range(8)]]
    frame = _frame([({"style": term}, s, rng.normal(20, 3)) for term in terms for s in range(10)])
    effects = effects_table(frame)
    assert len(effects) == 8
    assert sum(e.significant for e in effects) <= 1
    assert all(e.p_holm >= e.p_value for e in effects)
    assert all(e.ci_low < e.ci_high for e in effects)


def test_two_subjects_are_resampled_too() -> None:
    rng = np.random.default_rng(3)
    rows: list[pd.DataFrame] = []
    for subject, lift in (("a cat", 1.0), ("a house", 3.0)):
        base = rng.normal(20, 3, 8)
        rows.append(
            _frame(
                [({"style": ""}, s, base[s]) for s in range(8)]
                + [({"style": "pop-art"}, s, base[s] + lift) for s in range(8)],
                subject=subject,
            )
        )
    both = pd.concat(rows, ignore_index=True)
    (effect,) = effects_table(both)
    assert (effect.n_pairs, effect.n_seeds) == (16, 8)
    assert effect.mean_diff == pytest.approx(2.0)
    # every seed shows the same +1 / +3, so only resampling subjects can widen the interval
    assert (effect.ci_low, effect.ci_high) == (pytest.approx(1.0), pytest.approx(3.0))
    (one_subject,) = effects_table(rows[0])
    assert (one_subject.ci_low, one_subject.ci_high) == (pytest.approx(1.0), pytest.approx(1.0))


def test_term_weight_axis_is_averaged_over_when_comparing_the_term() -> None:
    # the weight of "oil painting" exists only where the term is present: not crossed with medium
    rows = []
    for seed, base in enumerate([10.0, 12.0, 11.0]):
        rows.append(({"medium": "", "weight:oil painting": math.nan}, seed, base))
        rows.append(({"medium": "oil painting", "weight:oil painting": 1.0}, seed, base + 1.0))
        rows.append(({"medium": "oil painting", "weight:oil painting": 1.3}, seed, base + 3.0))
    effects = effects_table(_frame(rows), n_boot=200)
    medium = _effect(effects, "medium", "oil painting")
    assert (medium.n_pairs, medium.mean_diff) == (3, pytest.approx((1.0 + 3.0) / 2))
    weight = _effect(effects, "weight:oil painting", 1.3)
    assert (weight.reference, weight.n_pairs, weight.mean_diff) == (1.0, 3, pytest.approx(2.0))


def test_reference_can_be_overridden() -> None:
    frame = _table(HAND_TABLE)
    effects = effects_table(frame, reference={"style": "pop-art", "guidance_scale": "7.5"}, n_boot=200)
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
    style = _effect(effects_table(frame, n_boot=200), "style", "pop-art")
    assert style.reference == "" and style.n_pairs == 6


def test_missing_columns_are_named() -> None:
    frame = _table(HAND_TABLE).drop(columns=["seed", "image"])
    with pytest.raises(PromptlabError, match="missing column\\(s\\) seed, image"):
        analyze(frame)


def test_non_numeric_score_is_rejected() -> None:
    frame = _table(HAND_TABLE).astype({"score": object})
    frame.loc[0, "score"] = "high"
    with pytest.raises(PromptlabError, match="'score' must hold numbers"):
        variant_table(frame)


def test_format_effect() -> None:
    effect = Effect(
        axis="style", level="artstation", reference="", n_seeds=12, n_pairs=12, mean_diff=2.1,
        ci_low=0.8, ci_high=3.4, ci_level=0.95, wins=9.0, win_rate=0.75, win_low=0.47, win_high=0.91,
        p_value=0.001, p_holm=0.002, significant=True, seeds_needed=6,
    )  # fmt: skip
    assert format_effect(effect) == "artstation: +2.1 (+0.8..+3.4), wins 9 of 12 seeds"
    numeric = Effect(**{**effect.__dict__, "axis": "guidance_scale", "level": 7.5, "wins": 8.5, "mean_diff": -0.04})
    assert format_effect(numeric) == "guidance_scale=7.5: -0.0 (+0.8..+3.4), wins 8.5 of 12 seeds"
    lone = Effect(**{**effect.__dict__, "n_seeds": 1, "wins": 1.0, "ci_low": math.nan, "ci_high": math.nan})
    assert format_effect(lone) == "artstation: +2.1 (no CI), wins 1 of 1 seed"


def test_best_prompts_rank_by_mean_then_ci_low() -> None:
    frame = _frame(
        [({"style": "steady"}, s, v) for s, v in enumerate([4.0, 5.0, 6.0])]
        + [({"style": "wild"}, s, v) for s, v in enumerate([0.0, 5.0, 10.0])]
        + [({"style": "weak"}, s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    )
    first, second = best_prompts(frame, top=2, n_boot=500)
    assert (first.rank, first.label, second.label) == (1, "style=steady", "style=wild")
    assert first.ci_low > second.ci_low
    assert second.image == frame.loc[5, "image"] and second.best_score == 10.0
    assert second.prompt == "a cat, style=wild" and second.negative_prompt == "blurry"
    with pytest.raises(PromptlabError, match="top"):
        best_prompts(frame, top=0)


def test_analyze_to_dict_is_json() -> None:
    frame = _table(HAND_TABLE)
    frame = pd.concat([frame, _frame([({"style": "lone", "guidance_scale": 5.0}, 0, 3.0)])], ignore_index=True)
    result = analyze(frame, n_boot=200, score_kind="aesthetic")
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["score_kind"] == "aesthetic"
    assert len(data["variants"]) == 5 and len(data["effects"]) == 3
    lone = next(v for v in data["variants"] if v["label"] == "style=lone,guidance_scale=5.0")
    assert lone["sd"] is None and lone["n"] == 1
    assert set(data["effects"][0]) >= {"axis", "level", "reference", "mean_diff", "ci_low", "p_holm", "seeds_needed"}
    assert data["best"][0]["rank"] == 1


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
    frame = grid.assign(
        run_id=range(len(grid)), label=grid["variant_key"], image="x", prompt="p", negative_prompt=""
    )
    assert len(frame) == 100_000
    result = analyze(frame)
    assert len(result.variants) == 100 and len(result.effects) == 4 + 3 + 4
    top = result.effects[0]
    assert (top.axis, top.level, top.significant) == ("style", "pop-art", True)
    assert top.mean_diff == pytest.approx(1.0, abs=0.1)
