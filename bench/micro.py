"""micro's speed and quality: one 64x64 image at 20 steps, and the quality gates' numbers.

    .venv/bin/python bench/micro.py [--repeats 5] [--gates]

``seconds_per_image``: the median over ``repeats`` of rendering one image (batch of 1, 20
steps, guidance 7.5, text encoding and VAE decoding included) after a warm-up; target 0.5 s.
``images_per_s_batched``: 16 images in one batch. ``--gates`` also measures the quality gates
(held-out renders judged from pixels; micro-clip's choice among 8 captions).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, median, note, temp_home, timed  # noqa: E402

temp_home("micro")


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
