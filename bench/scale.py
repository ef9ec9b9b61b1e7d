"""Scaling out: one experiment in 1 process vs 2 CPU processes (or 1 GPU vs all of them), through the real CLI.

    .venv/bin/python bench/scale.py [--repeats 2] [--steps 20] [--seeds 64]

The experiment is examples/squares.toml's grid on the micro models (3 colours x artist or none x
2 guidance scales = 12 variants at 64x64, batches of 12) on ``--seeds`` seeds (64: 768 cells, a
sweep big enough that rendering, not starting, is what the processes share; each process pays the
same fixed start, about 8 s on a CPU, most of it importing open_clip and diffusers, and the
launched ones a few seconds more for accelerate's launcher and the rendezvous), rendered into a
fresh store by

a. ``promptlab run X.toml`` in one process,
b. ``promptlab run X.toml --processes N`` (``accelerate launch``, torchrun, gloo on a CPU),

alternated (a, b, a, b, ...) after a warm-up round on 4 seeds; each round runs an experiment of its own name,
so no cell is skipped as done. On a CPU N is 2 and every process runs 1 torch thread
(``OMP_NUM_THREADS=1``); with GPUs, N is their count. Wall seconds are of the whole command;
``start_s`` is wall minus the runner's own seconds (interpreter, imports, for b the launcher,
the rendezvous, the plan sent to every process), so ``speedup_2_vs_1`` (medians of per-round
ratios of wall time) counts what a user waits for.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, median, note, temp_home  # noqa: E402

ROOT = temp_home("scale")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "squares.toml"


def experiment_file(number: int, steps: int, seeds: int) -> Path:
    text = EXAMPLE.read_text().replace('name = "squares"', f'name = "scale-{number}"')
    text = text.replace("num_inference_steps = 20", f"num_inference_steps = {steps}")
    text = text.replace("seeds = [1, 2, 3, 4]", f"seeds = {seeds}")
    path = ROOT / f"scale-{number}.toml"
    path.write_text(text)
    return path


def timed_run(path: Path, processes: int, cells: int) -> dict[str, float]:
    """Wall and runner seconds of one ``promptlab run``, checked: every cell rendered, none failed."""
    command = [sys.executable, "-m", "promptlab", "run", str(path), "--format", "json", "--processes", str(processes)]
    env = dict(os.environ, OMP_NUM_THREADS="1") if not gpus() else dict(os.environ)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    assert summary["rendered"] == summary["total_cells"] == cells and summary["failed"] == 0, summary
    return {"wall_s": wall, "run_s": summary["seconds"], "start_s": wall - summary["seconds"]}


def gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="num_inference_steps (squares.toml's: 20)")
    parser.add_argument("--seeds", type=int, default=64, help="seeds per variant (12 variants; squares.toml's: 4)")
    args = parser.parse_args()
    cells = 12 * args.seeds

    many = gpus() or 2
    counter = itertools.count()
    rounds: dict[int, list[dict[str, float]]] = {1: [], many: []}
    note("warm-up round (untimed)")
    for processes in rounds:
        timed_run(experiment_file(next(counter), args.steps, 4), processes, 48)
    for round_ in range(args.repeats):
        for processes in rounds:
            rounds[processes].append(timed_run(experiment_file(next(counter), args.steps, args.seeds), processes, cells))
        note(f"round {round_ + 1}/{args.repeats}: " + ", ".join(f"{p} process(es) {r[-1]['wall_s']:.1f}s" for p, r in rounds.items()))
    one, all_ = rounds[1], rounds[many]
    speedups = [a["wall_s"] / b["wall_s"] for a, b in zip(one, all_)]
    run_speedups = [a["run_s"] / b["run_s"] for a, b in zip(one, all_)]
    emit(
        {
            "images": cells,
            "processes": many,
            "device": f"{gpus()} GPUs" if gpus() else "cpu, 1 torch thread per process",
            f"speedup_{many}_vs_1": round(median(speedups), 3),
            f"speedup_{many}_vs_1_runner_only": round(median(run_speedups), 3),
            "images_per_s": {str(p): round(cells / median([r["wall_s"] for r in rs]), 2) for p, rs in rounds.items()},
            "start_s": {str(p): round(median([r["start_s"] for r in rs]), 2) for p, rs in rounds.items()},
            "seconds": {str(p): [round(r["wall_s"], 2) for r in rs] for p, rs in rounds.items()},
            "steps": args.steps,
            "repeats": args.repeats,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
