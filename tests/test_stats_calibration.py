"""What the analysis promises, measured on simulated experiments whose truth is known.

Each check runs thousands of replicates of one design through the analysis's own model in one
array (``promptlab.simulate``), seeded, in about a second. The bounds are the promise plus three
simulation standard errors: a "95%" interval must cover 93-97% of the time, all-null experiments
may show a star in at most 5% of cases, and an experiment as large as ``seeds_needed`` says must
star the effect with the promised power. ``bench/stats.py`` prints the whole table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from promptlab.analysis import effect_model, effects_table, t_interval, variant_table
from promptlab.simulate import AXES, REAL, calibrate, cell_scores, design_frame, plan_check

REPLICATES = 4000
ALPHA = 0.05


def _slack(share: float, replicates: int = REPLICATES) -> float:
    """Three simulation standard errors of a share."""
    return 3 * math.sqrt(share * (1 - share) / replicates)


@pytest.mark.parametrize("noise", ["varying", 4.0])
@pytest.mark.parametrize("seeds", [2, 3, 4, 8, 16])
def test_variant_intervals_cover_95_percent(seeds: int, noise: float | str) -> None:
    check = calibrate(seeds, axes=2, noise=noise, replicates=REPLICATES)
    assert 0.93 <= check.variant_coverage <= 0.97, check


@pytest.mark.slow
@pytest.mark.parametrize("design", ["grid", "random", "failed"])
@pytest.mark.parametrize("seeds", [2, 3, 4, 8, 16])
def test_effect_intervals_cover_95_percent(seeds: int, design: str) -> None:
    # varying noise, 3 axes (5 comparisons); with 3 axes the truth has effects on two axes
    check = calibrate(seeds, axes=3, noise="varying", design=design, replicates=REPLICATES)
    assert 0.93 <= check.effect_coverage <= 0.975, check


@pytest.mark.parametrize("axes", [1, 2, 3])
@pytest.mark.parametrize("seeds", [4, 8, 16])
def test_familywise_error_is_at_most_5_percent(seeds: int, axes: int) -> None:
    check = calibrate(seeds, axes=axes, noise="varying", replicates=REPLICATES)
    assert check.fwer <= ALPHA + _slack(ALPHA), check


@pytest.mark.parametrize("design", ["random", "failed"])
def test_familywise_error_holds_beyond_full_grids(design: str) -> None:
    for seeds in (4, 8):
        check = calibrate(seeds, axes=3, noise="varying", design=design, replicates=REPLICATES)
        assert check.fwer <= ALPHA + _slack(ALPHA), check


@pytest.mark.parametrize("axes", [1, 2, 3])
def test_four_seeds_star_a_large_consistent_effect(axes: int) -> None:
    # +10 with image noise SD 2: the sign-test floor made this impossible at 4 seeds
    check = calibrate(4, axes=axes, noise=2.0, effect=10.0, replicates=REPLICATES)
    assert check.power >= 0.9, check


@pytest.mark.parametrize("axes", [1, 3])
@pytest.mark.parametrize("effect", [1.5, 3.0])
def test_seeds_needed_delivers_its_power(effect: float, axes: int) -> None:
    planned, achieved, promised = plan_check(effect, axes=axes, noise=2.0, replicates=REPLICATES)
    assert promised >= 0.80
    assert achieved >= 0.80 - _slack(0.80), (planned, achieved, promised)
    # and the power it computes is the power experiments of that size have
    assert abs(achieved - promised) <= _slack(promised) + 0.01, (planned, achieved, promised)


def test_pairing_by_seed_narrows_the_interval() -> None:
    check = calibrate(8, axes=1, noise=2.0, replicates=REPLICATES)
    # the seed effect (SD 5) is shared by both sides; pairing removes it
    assert check.paired_width < 0.6 * check.unpaired_width, check


def test_the_simulated_model_is_the_one_analyze_runs() -> None:
    # one replicate through variant_table and effects_table gives the intervals simulated above
    axes = {"style": AXES["style"]}
    frame = design_frame(axes, 5)
    model = effect_model(frame)
    scores = cell_scores(model, {REAL: 3.0}, 1, np.random.default_rng(0), noise="varying")[:, 0]
    frame = frame.sort_values(["seed"], kind="stable")
    keyed = pd.Series(scores, index=pd.MultiIndex.from_frame(model.cells[["variant_key", "seed"]]))
    frame["score"] = [keyed[(k, s)] for k, s in zip(frame["variant_key"], frame["seed"])]
    for variant in variant_table(frame):
        values = frame.loc[frame["variant_key"] == variant.variant_key].sort_values("seed")["score"].to_numpy()
        _, low, high = t_interval(values)
        assert (variant.ci_low, variant.ci_high) == (pytest.approx(float(low)), pytest.approx(float(high)))
    found = model.estimate(scores)
    for effect in effects_table(frame):
        index = next(i for i, c in enumerate(model.comparisons) if c.level == effect.level)
        low, high = found.interval(effect.ci_level)
        assert (effect.ci_low, effect.ci_high) == (pytest.approx(low[index, 0]), pytest.approx(high[index, 0]))
