"""``promptlab demo``: run the bundled demo experiment on the built-in micro models."""

from __future__ import annotations

from promptlab.experiment import load_experiment
from promptlab.paths import examples_dir
from promptlab.runner import ProgressCallback, RunSummary, run_experiment
from promptlab.store import Store

#: The demo experiment file (micro and micro-clip: seconds on a CPU, images that follow their prompts).
DEMO_EXPERIMENT = examples_dir() / "demo.toml"


def run_demo(store: Store, progress: ProgressCallback | None = None) -> RunSummary:
    """Run (or finish) the demo experiment into ``store``; a second call renders nothing new."""
    return run_experiment(load_experiment(DEMO_EXPERIMENT), store, progress=progress)
