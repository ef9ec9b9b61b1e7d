"""micro's speed and quality: one 64x64 image at 20 steps, and the quality gates' numbers.

    .venv/bin/python bench/micro.py [--repeats 5] [--gates]

``seconds_per_image``: the median over ``repeats`` of rendering one image (batch of 1, 20
steps, guidance 7.5, text encoding and VAE decoding included) after a warm-up; target 0.5 s.
``images_per_s_batched``: 16 images in one batch. ``--gates`` also measures the quality gates
(held-out renders judged from pixels; micro-clip's choice among 8 captions).

``training``: how the shipped weights were made, from their ``promptlab_micro.json`` records:
the code revision (``clean``: no uncommitted changes to the training code), torch's threads, and
the training time in CPU minutes per thread (which other jobs on the machine do not inflate),
summed over the runs (one, or one per model with ``--only``); target: within an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, median, note, temp_home, timed  # noqa: E402

temp_home("micro")
TRAINING_TARGET_MINUTES = 60


def training() -> dict[str, object]:
    """The shipped weights' provenance and training time, from their records."""
    from promptlab.builtin import MICRO_CLIP_DIR, MICRO_MODELS
    from promptlab.micro.train import RECORD

    records = [json.loads((folder / RECORD).read_text()) for folder in (MICRO_MODELS["micro"], MICRO_CLIP_DIR)]
    # One run writes the same record into both folders; --only runs write one each.
    runs = list({json.dumps(record, sort_keys=True): record for record in records}.values())
    minutes = sum(run["cpu_seconds"]["total"] / run["torch_threads"] / 60 for run in runs)
    return {
        "revisions": sorted({run["revision"] for run in runs}),
        "clean": all(len(run["revision"]) >= 40 and not run["revision"].endswith("-dirty") for run in runs),
        "torch_threads": max(run["torch_threads"] for run in runs),
        "cpu_minutes_per_thread": round(minutes, 1),
        "within_target": minutes <= TRAINING_TARGET_MINUTES and all(run["torch_threads"] <= 2 for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gates", action="store_true", help="also measure the quality gates")
    args = parser.parse_args()

    from promptlab.micro.gates import GATE_STEPS, caption_choice_accuracy, held_out_agreement, render_images

    render_images(["a red circle"], [0])
    single = [
        timed(lambda i=i: render_images(["a blue star on a white background, large, left"], [i]))
        for i in range(args.repeats)
    ]
    note(f"one image: {', '.join(f'{t:.3f}s' for t in single)}")
    batched = [timed(lambda: render_images(["a red circle"] * 16, list(range(16)))) for _ in range(max(1, args.repeats // 2))]
    result = {
        "steps": GATE_STEPS,
        "seconds_per_image": round(median(single), 4),
        "images_per_s_batched": round(16 / median(batched), 2),
        "training": training(),
        "machine": machine(),
    }
    if args.gates:
        agreement = held_out_agreement(64)
        note(f"held-out agreement: {agreement}")
        result["held_out_agreement"] = dataclasses.asdict(agreement)
        result["caption_choice_accuracy"] = caption_choice_accuracy(200)
    emit(result)


if __name__ == "__main__":
    main()
