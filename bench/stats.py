"""Statistics: how promptlab's analysis behaves on simulated experiments whose truth is known.

    .venv/bin/python bench/stats.py [--replicates 4000] [--pilots 200]

For 2, 3, 4, 8 and 16 seeds, 1-3 axes, constant (SD 4) and varying (SD 2/5/8 by variant)
image noise, and three designs (a full grid, a random half of it, the grid with 15% of its
cells failed), each a ``promptlab.simulate.calibrate`` row: variant and effect 95% CI coverage,
the familywise error with every term null, the power to star +10 on style=pop-art, and the
mean width of that effect's paired CI against an unpaired (Welch) one. Then seeds-needed:
planned with the true SD, and planned from an 8-seed pilot's estimate, against the power
experiments of the planned size achieve. Figures as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, note  # noqa: E402

SEEDS = (2, 3, 4, 8, 16)
NOISES: tuple[float | str, ...] = (4.0, "varying")
DESIGNS = ("grid", "random", "failed")


def calibration_rows(replicates: int) -> list[dict]:
    from promptlab.simulate import calibrate

    rows = []
    for design, noise, axes, seeds in itertools.product(DESIGNS, NOISES, (1, 2, 3), SEEDS):
        row = asdict(calibrate(seeds, axes, noise=noise, design=design, replicates=replicates))
        rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        note(f"{design} noise={noise} axes={axes} seeds={seeds}: cover {row['variant_coverage']:.3f}/"
             f"{row['effect_coverage']:.3f}, fwer {row['fwer']:.3f}, power {row['power']:.3f}")  # fmt: skip
    return rows


def plan_rows(replicates: int, pilots: int) -> list[dict]:
    import numpy as np

    from promptlab.analysis import effect_model, holm_adjust, seeds_needed
    from promptlab.simulate import AXES, REAL, cell_scores, design_frame, plan_check

    rows = []
    for effect, axes in itertools.product((1.5, 3.0), (1, 3)):
        planned, achieved, promised = plan_check(effect, axes=axes, noise=2.0, replicates=replicates)
        # the same plan from an 8-seed pilot's estimated SD, as a user gets it
        rng = np.random.default_rng([int(effect * 10), axes, 8])
        chosen = dict(itertools.islice(AXES.items(), axes))
        pilot = effect_model(design_frame(chosen, 8))
        first = next(i for i, c in enumerate(pilot.comparisons) if (c.axis, c.level) == REAL)
        found = pilot.estimate(cell_scores(pilot, {REAL: effect}, pilots, rng, noise=2.0))
        family = len(pilot.comparisons)
        plans = [seeds_needed(float(se) * np.sqrt(8), effect, family_size=family) for se in found.se[first]]
        powers = {}
        for size in sorted(set(plans)):
            model = effect_model(design_frame(chosen, size))
            scores = cell_scores(model, {REAL: effect}, max(500, replicates // 4), rng, noise=2.0)
            powers[size] = float(np.mean(holm_adjust(model.estimate(scores).p_values())[first] <= 0.05))
        rows.append(
            {
                "effect": effect, "axes": axes, "noise_sd": 2.0, "comparisons": family,
                "planned_with_true_sd": planned, "promised_power": round(promised, 4), "achieved_power": round(achieved, 4),
                "pilot_plan_median": int(np.median(plans)), "pilot_plan_p10_p90": [int(np.percentile(plans, 10)), int(np.percentile(plans, 90))],
                "pilot_achieved_power": round(float(np.mean([powers[p] for p in plans])), 4),
            }
        )  # fmt: skip
        note(f"seeds_needed effect={effect} axes={axes}: planned {planned}, promised {promised:.3f}, achieved {achieved:.3f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=4000, help="Simulated experiments per row.")
    parser.add_argument("--pilots", type=int, default=200, help="Pilot experiments behind the pilot-based plans.")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = calibration_rows(args.replicates)
    plans = plan_rows(args.replicates, args.pilots)
    coverage = [r["effect_coverage"] for r in rows if r["seeds"] >= 3]
    emit(
        {
            "benchmark": "stats",
            "replicates": args.replicates,
            "machine": machine(),
            "seconds": round(time.perf_counter() - started, 1),
            "summary": {
                "variant_coverage_range": [min(r["variant_coverage"] for r in rows), max(r["variant_coverage"] for r in rows)],
                "effect_coverage_range_from_3_seeds": [min(coverage), max(coverage)],
                "effect_coverage_range_2_seeds": [min(r["effect_coverage"] for r in rows if r["seeds"] == 2),
                                                  max(r["effect_coverage"] for r in rows if r["seeds"] == 2)],
                "fwer_max_from_4_seeds": max(r["fwer"] for r in rows if r["seeds"] >= 4),
                "fwer_max": max(r["fwer"] for r in rows),
            },  # fmt: skip
            "calibration": rows,
            "seeds_needed": plans,
        }
    )


if __name__ == "__main__":
    main()
