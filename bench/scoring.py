"""tiny-clip scoring: 64 noise images (64x64, fixed seed) in one batched call vs one call per image.

    .venv/bin/python bench/scoring.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, emit, machine, median, temp_home  # noqa: E402

temp_home("scoring")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from promptlab.scoring import load_scorer

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(64)]
    texts = [f"a photo of a cat, variant {i % 16}" for i in range(64)]
    scorer = load_scorer("tiny-clip")
    # Text embeddings are cached per scorer; warm the cache so both sides time image scoring alike.
    scorer.embed_texts(texts)

    def batched() -> None:
        scorer.score(images, texts, batch_size=64)

    def single() -> None:
        for image, text in zip(images, texts):
            scorer.score([image], [text], batch_size=1)

    times = alternate({"batched": batched, "single": single}, args.repeats)
    n = len(images)
    emit(
        {
            "images": n,
            "images_per_s_batched": round(n / median(times["batched"]), 1),
            "images_per_s_single": round(n / median(times["single"]), 1),
            "speedup": round(median([s / b for b, s in zip(times["batched"], times["single"])]), 3),
            "repeats": args.repeats,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
