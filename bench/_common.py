"""Shared helpers for the bench scripts: a throwaway home/cache, machine facts, alternated timing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def temp_home(prefix: str) -> Path:
    """Point PROMPTLAB_HOME and PROMPTLAB_CACHE at a fresh temp folder, before promptlab is imported."""
    root = Path(tempfile.mkdtemp(prefix=f"promptlab-bench-{prefix}-"))
    os.environ["PROMPTLAB_HOME"] = str(root / "home")
    os.environ["PROMPTLAB_CACHE"] = str(root / "cache")
    os.environ.pop("PROMPTLAB_DB", None)
    return root


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    if "torch" in sys.modules:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def alternate(contenders: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run each contender in turn (a, b, c, a, b, c, ...) after ``warmup`` untimed rounds; seconds per run."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(repeats):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
        note(f"round {round_ + 1}/{repeats}: " + ", ".join(f"{n}={t[-1]:.3f}s" for n, t in times.items()))
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def emit(result: dict[str, Any]) -> None:
    """The figures as one JSON object on the last line of stdout."""
    print(json.dumps(result, sort_keys=True))
