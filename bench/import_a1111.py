"""A1111's generation line read in linear time: seconds to parse infotexts whose last line runs long.

A1111's own regex (``re_param``, which promptlab read with before) retries at every position of a
long run of words without a colon: 4,000 characters took 0.08 s, 16,000 1.3 s, 32,000 5.2 s on the
development machine. Target: 100,000 characters under 1 s. ``--regex`` also times the regex, up to
32,000 characters (past that it takes minutes).

    .venv/bin/python bench/import_a1111.py [--regex]
"""

from __future__ import annotations

import argparse
import json
import time

from _common import machine, note, temp_home

GENERATION = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512"
SIZES = (4_000, 16_000, 32_000, 100_000, 1_000_000)
TARGET_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regex", action="store_true", help="Also time A1111's regex (up to 32,000 characters).")
    args = parser.parse_args()
    temp_home("import-a1111")
    from promptlab.metadata import RE_PARAM, parse_a1111_parameters

    results: dict[str, dict[str, float]] = {}
    for size in SIZES:
        texts = {
            "words": "a cat\n" + GENERATION + ", " + ("word " * size)[:size],
            "one_word": "a cat\n" + GENERATION + ", " + "w" * size,
            "keys_and_quotes": "a cat\n" + GENERATION + ", " + ('k: "x\\", ' * size)[:size],
        }
        for shape, text in texts.items():
            started = time.perf_counter()
            parse_a1111_parameters(text)
            row = results.setdefault(f"{shape}_{size}", {})
            row["linear_s"] = round(time.perf_counter() - started, 4)
            if args.regex and size <= 32_000:
                started = time.perf_counter()
                RE_PARAM.findall(text.split("\n")[-1])
                row["a1111_regex_s"] = round(time.perf_counter() - started, 4)
            note(f"{shape} {size:,}: {row}")
    worst = max(row["linear_s"] for key, row in results.items() if key.endswith("_100000"))
    print(json.dumps({"benchmark": "import_a1111", "machine": machine(), "results": results,
                      "worst_100k_s": worst, "target_100k_s": TARGET_S, "met": worst < TARGET_S}))  # fmt: skip


if __name__ == "__main__":
    main()
