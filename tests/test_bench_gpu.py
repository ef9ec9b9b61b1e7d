"""bench/gpu.py's smoke version: the whole script (pipelines built from the SD 1.5 and SDXL configs,
shrunk; the three contenders; FLOP counting) runs on a CPU and prints its JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "gpu.py"


@pytest.mark.slow
def test_the_gpu_benchmark_runs_its_smoke_version_on_a_cpu() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["smoke"] is True and set(result["models"]) == {"sd15", "sdxl"}
    for model in result["models"].values():
        assert model["images"] == 4 and model["size"] == 64
        for contender in ("promptlab", "per_cell", "bare_batched"):
            assert model[f"images_per_s_{contender}"] > 0
        assert model["tflop_per_image"] >= 0 and model["peak_tflops_fp16"] is None
