"""Each variant's mean over seeds with its t-interval, and the best prompts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from promptlab.analysis.frame import AXIS_PREFIX, VARIANT_LEVEL, all_runs, axis_columns, first_error, python_value
from promptlab.analysis.inference import t_interval
from promptlab.analysis.results import BestPrompt, VariantStats
from promptlab.errors import PromptlabError


def variant_table(frame: pd.DataFrame) -> list[VariantStats]:
    """Per variant, every one in frame order: mean, SD and 95% t-interval over seeds, its failed runs, its best run."""
    runs = all_runs(frame)
    scored = runs[runs["score"].notna()]
    # 1. one value per (variant, seed): the mean over subjects and repeats
    per_seed = scored.groupby(["variant_key", "seed"], sort=True)["score"].mean()
    by_variant = {key: values.to_numpy() for key, values in per_seed.groupby(level="variant_key")}
    # 2. best run and descriptive columns, as one dict per variant (a lookup per cell of a frame is slow)
    best = scored.loc[scored.groupby("variant_key")["score"].idxmax()].set_index("variant_key").to_dict("index")
    first = runs.drop_duplicates("variant_key").set_index("variant_key").to_dict("index")
    counts = runs.groupby("variant_key")["score"].agg(["size", "count"]).to_dict("index")
    axes = axis_columns(runs)
    table = []
    for key, row in first.items():
        values = by_variant.get(key, np.empty(0))
        mean, low, high = t_interval(values) if len(values) else (math.nan, math.nan, math.nan)
        n_runs, n_scored = int(counts[key]["size"]), int(counts[key]["count"])
        found = best.get(key)
        source = found if found is not None else row
        table.append(
            VariantStats(
                variant_key=key,
                label=str(row["label"]),
                mean=float(mean),
                sd=float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan,
                ci_low=float(low),
                ci_high=float(high),
                ci_level=VARIANT_LEVEL,
                n=len(values),
                n_runs=n_scored,
                n_failed=n_runs - n_scored,
                best_score=float(found["score"]) if found is not None else math.nan,
                best_image=str(found["image"]) if found is not None else "",
                best_run_id=python_value(found["run_id"]) if found is not None else None,
                prompt=str(source["prompt"]),
                negative_prompt=str(source["negative_prompt"]),
                axes={c[len(AXIS_PREFIX) :]: python_value(row[c]) for c in axes},
                note=_variant_note(runs, key, len(values)),
            )
        )
    return table


def best_prompts(frame: pd.DataFrame, top: int = 5) -> list[BestPrompt]:
    """The ``top`` scored variants by mean score, ties broken by the higher CI lower bound."""
    return rank_best(variant_table(frame), top)


def _variant_note(runs: pd.DataFrame, key: str, n_seeds: int) -> str:
    """Why variant ``key`` (of all the ``runs``) has no mean or no interval, or why its interval is so wide; "" otherwise."""
    if n_seeds == 0:
        # only a variant without a score reads its runs: a filter of the frame for every variant is slow
        runs = runs[runs["variant_key"] == key]
        failed = runs["status"].eq("failed").sum() if "status" in runs.columns else len(runs)
        first = first_error(runs, 100)
        error = "" if first is None else f": {first}"
        if failed == len(runs):
            return f"no score: every run failed ({failed} of {len(runs)}){error}"
        return f"no score: none of its {len(runs)} runs has one ({failed} failed){error}"
    if n_seeds == 1:
        return "1 seed: no interval (an interval needs 2 seeds)"
    if n_seeds == 2:
        return "2 seeds: t with 1 df, so the interval is wide"
    return ""


def rank_best(variants: list[VariantStats], top: int) -> list[BestPrompt]:
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
