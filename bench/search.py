"""The search's truth in the micro-world: how often its winner shows the intent, and how often it beats random search.

    .venv/bin/python bench/search.py [--budget 400] [--searches 10] [--scorers micro-judge,micro-clip]
                                     [--steps 8] [--population 16] [--round-seeds 2] [--confirm-seeds 16]

From the bare subject "a star", intent "a red star on a sky blue background, large, left", and a
pool of the micro-world's attributes (colours, backgrounds, sizes, positions) plus its null words
(every artist, site and resolution term of the vocabulary), each scorer runs ``--searches``
searches (``[search] seed`` 0, 1, ...) by successive halving and as many random searches with
the same budget, the same seeds and the same confirmation. For each, the judge reads the
winner's confirmation images (fresh seeds): ``read_rate`` is the share it reads as the intent.
Per scorer: the mean read rate, how many searches reached 80%, how many winners hold no null
word, how many did both, and ``wins_vs_random``: searches whose read rate beat random search's
(a tie goes to the higher mean score on the confirmation seeds). Figures as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, note, temp_home  # noqa: E402

FILE = """
name = "{name}"
model = "micro"
batch_size = 16

[params]
num_inference_steps = {steps}

[prompt]
subject = "a star"
intent = "a red star on a sky blue background, large, left"

[search]
budget = {budget}
scorer = "{scorer}"
method = "{method}"
seed = {seed}
population = {population}
round_seeds = {round_seeds}
confirm_seeds = {confirm_seeds}
categories = ["artist", "site", "resolution"]
max_terms = 6
weights = [0.8, 1.2]

[search.terms]
color = ["red", "blue", "green", "yellow", "purple", "white", "orange"]
background = ["on a sky blue background", "on a black background", "on a gray background", "on a white background"]
size = ["large", "small"]
position = ["left", "right", "top", "bottom", "center"]
"""


def search_file(method: str, seed: int, scorer: str, options: dict[str, Any]) -> str:
    """The benchmark's search file for one method, seed and scorer."""
    name = f"bench-star-{scorer}-{method}-{seed}"
    return FILE.format(name=name, method=method, seed=seed, scorer=scorer, **options)


def one(store: Any, method: str, seed: int, scorer: str, options: dict[str, Any]) -> dict[str, Any]:
    """Run one search; its winner, the judge's reading of its confirmation images and its null words."""
    from promptlab.search import parse_search, run_search
    from promptlab.search.truth import search_truth

    spec = parse_search(search_file(method, seed, scorer, options), f"{method}-{seed}.toml")
    started = time.perf_counter()
    result = run_search(spec, store)
    truth = search_truth(store, result)
    return {
        "winner": result.winner_prompt,
        "read_rate": truth.rate,
        "null_terms": list(truth.null_terms),
        "confirm_mean": result.winner_mean,
        "gain": None if result.gain is None else round(result.gain.mean_diff, 2),
        "spent": result.spent,
        "seconds": round(time.perf_counter() - started, 1),
    }


def beats(search: dict[str, Any], random: dict[str, Any]) -> bool:
    """The search beat random search: a higher read rate, or the same and a higher confirmation mean."""
    if search["read_rate"] != random["read_rate"]:
        return search["read_rate"] > random["read_rate"]
    return search["confirm_mean"] > random["confirm_mean"]


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    halving = [r["halving"] for r in runs]
    return {
        "searches": len(runs),
        "mean_read_rate": round(statistics.mean(h["read_rate"] for h in halving), 3),
        "random_mean_read_rate": round(statistics.mean(r["random"]["read_rate"] for r in runs), 3),
        "reached_80_percent": sum(h["read_rate"] >= 0.8 for h in halving),
        "no_null_term": sum(not h["null_terms"] for h in halving),
        "read_80_percent_and_no_null_term": sum(h["read_rate"] >= 0.8 and not h["null_terms"] for h in halving),
        "wins_vs_random": sum(beats(r["halving"], r["random"]) for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--searches", type=int, default=10)
    parser.add_argument("--scorers", default="micro-judge,micro-clip")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--round-seeds", type=int, default=2)
    parser.add_argument("--confirm-seeds", type=int, default=16)
    args = parser.parse_args()
    temp_home("search")
    from promptlab.store import open_store

    options = {
        "budget": args.budget,
        "steps": args.steps,
        "population": args.population,
        "round_seeds": args.round_seeds,
        "confirm_seeds": args.confirm_seeds,
    }
    figures: dict[str, Any] = {"machine": machine(), "options": options, "scorers": {}}
    started = time.perf_counter()
    with open_store() as store:
        for scorer in args.scorers.split(","):
            runs = []
            for seed in range(args.searches):
                pair = {method: one(store, method, seed, scorer, options) for method in ("halving", "random")}
                runs.append(pair)
                note(
                    f"{scorer} seed {seed}: search {pair['halving']['read_rate']:.2f} ({pair['halving']['winner']}), "
                    f"random {pair['random']['read_rate']:.2f} ({pair['random']['winner']})"
                )
            figures["scorers"][scorer] = {**summary(runs), "runs": runs}
    figures["machine"] = machine()
    figures["seconds"] = round(time.perf_counter() - started, 1)
    emit(figures)


if __name__ == "__main__":
    main()
