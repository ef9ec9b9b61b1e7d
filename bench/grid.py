"""Grid throughput: promptlab's runner vs one diffusers call per cell vs bare batched calls.

    .venv/bin/python bench/grid.py [--repeats 5] [--batch-size 16] [--threads N] [--profile]

16 prompt variants (4 styles x 4 lights) x 4 seeds on tiny-sd, 64x64, 4 steps. Contenders,
alternated after a warm-up round:

a. what ``promptlab run`` does for a new experiment: parse it, open the store (an existing
   SQLite file, as a user's is), render, score with tiny-clip, write PNGs and rows; each round
   runs an experiment of its own name, so no cell is skipped as done;
b. the X/Y-plot way: one bare ``pipe(prompt, negative_prompt, ...)`` call per cell;
c. the floor: bare ``pipe`` calls on batches of a's size (lists of prompts and generators).

Ratios are medians of per-round ratios. ``--profile`` prints cProfile's top 25 cumulative
entries of one run of (a) to stderr. ``--threads`` sets torch's thread count (default: torch's
own); on a machine whose cores other jobs keep busy, ``--threads 1`` gives steadier ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, emit, machine, median, note, temp_home  # noqa: E402

ROOT = temp_home("grid")

EXPERIMENT = """
name = "bench-grid-{number}"
model = "tiny-sd"
task = "txt2img"
seeds = 4
strategy = "grid"
scorer = "tiny-clip"
batch_size = {batch_size}

[params]
num_inference_steps = 4
guidance_scale = 7.5
width = 64
height = 64

[prompt]
subject = "fat cat lies on the couch"
negative_presets = ["minimal"]
terms = {{ medium = ["oil painting"] }}

[axes]
style = ["", "pop-art", "art nouveau", "steampunk"]
light = ["", "cinematic lighting:1.2", "golden hour", "soft light"]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--profile", action="store_true", help="cProfile one runner run; top 25 to stderr")
    args = parser.parse_args()

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from promptlab.experiment import cells, parse_experiment
    from promptlab.render.models import load_model
    from promptlab.runner import run_experiment
    from promptlab.scoring import load_scorer
    from promptlab.store import open_store

    def experiment(number: int) -> str:
        return EXPERIMENT.format(batch_size=args.batch_size, number=number)

    spec = parse_experiment(experiment(0), "bench-grid")
    grid = cells(spec)
    assert len(grid) == 64, len(grid)
    pipe = load_model(spec.model).pipe
    load_scorer(spec.scorer)
    prompts = [c.variant.prompt.to_plain() for c in grid]
    negatives = [c.variant.negative_prompt for c in grid]
    seeds = [c.seed for c in grid]
    size = args.batch_size
    counter = itertools.count()

    url = f"sqlite:///{ROOT}/home/promptlab.db"
    with open_store(url):
        pass  # the user's store exists before their run: created here, outside the timed region

    def promptlab_runner() -> None:
        number = next(counter)
        with open_store(url) as store:
            summary = run_experiment(parse_experiment(experiment(number), f"bench-grid-{number}"), store, batch_size=size)
        assert summary.rendered == 64 and summary.failed == 0, summary.to_dict()

    def per_cell() -> None:
        for prompt, negative, seed in zip(prompts, negatives, seeds):
            pipe(prompt, negative_prompt=negative, num_inference_steps=4, width=64, height=64,
                 generator=torch.Generator("cpu").manual_seed(seed))  # fmt: skip

    def bare_batched() -> None:
        for start in range(0, len(grid), size):
            chunk = slice(start, start + size)
            pipe(prompts[chunk], negative_prompt=negatives[chunk], num_inference_steps=4, width=64, height=64,
                 generator=[torch.Generator("cpu").manual_seed(s) for s in seeds[chunk]])  # fmt: skip

    if args.profile:
        promptlab_runner()
        profiler = cProfile.Profile()
        profiler.runcall(promptlab_runner)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        note(out.getvalue())

    times = alternate({"a": promptlab_runner, "b": per_cell, "c": bare_batched}, args.repeats)
    speedups = [b / a for a, b in zip(times["a"], times["b"])]
    overheads = [a / c for a, c in zip(times["a"], times["c"])]
    n = len(grid)
    emit(
        {
            "images": n,
            "images_per_s_promptlab": round(n / median(times["a"]), 2),
            "images_per_s_per_cell": round(n / median(times["b"]), 2),
            "images_per_s_bare_batched": round(n / median(times["c"]), 2),
            "speedup_vs_per_cell": round(median(speedups), 3),
            "overhead_vs_bare": round(median(overheads), 3),
            "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
            "batch_size": size,
            "repeats": args.repeats,
            "machine": machine(),
            "gpu": "skipped: no GPU lent to this task",
        }
    )


if __name__ == "__main__":
    main()
