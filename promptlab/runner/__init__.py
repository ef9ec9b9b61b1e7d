"""The experiment runner: expand an experiment into cells, render the missing ones in batches,
score them and record each one in the store.

    spec = load_experiment("examples/squirrel-styles.toml")
    with open_store() as store:
        summary = run_experiment(spec, store, progress=print)

How it behaves:

1. Cells (variant x seed) that the store already holds are skipped, so running the same file
   again renders only what is missing, and a run killed at any moment resumes cleanly. A cell
   whose image file was lost or changed is rendered again and replaces its run.
2. What would fail for every cell alike fails first, once, before any cell is recorded: the
   scorer, and for each setup the model, its scheduler, the size and the input images.
3. Cells that share model, task and params render together in batches across variants, each
   image with its own seed, so every variant is compared on the same seeds. Before rendering a
   batch the runner claims its cells in the store (``Store.claim_cells``, renewed while it
   works): runners started together on one store split the cells, and one that finds a cell
   taken or done moves on.
4. Each finished batch is scored (each image against the intent and against its own prompt)
   and written: the batch's image files first, then all its rows in one transaction
   (``Store.record_runs``). Where rendering leaves a core idle (a GPU, or fewer torch threads
   than cores) one writer thread writes a batch while the next one renders; where torch's
   threads fill every core, writing in turn is faster (``overlap_writes``). A crash loses at
   most the batch being written; no row ever names a missing file.
5. A batch that fails to render or score is recorded cell by cell with its error and the run
   goes on; so is an image that came out all black (NaN or overflow), never as ok. A failure
   to write the store is never swallowed: it stops the run once the batch rendering meanwhile
   is done.
6. Several processes started by ``accelerate launch`` (GPUs, CPU processes, machines) split one
   run: the main process plans it once and each renders its share (``runner.distributed``).
"""

from __future__ import annotations

from promptlab.runner.recipe import BLACK_IMAGE_ERROR, render_params
from promptlab.runner.renders import RENDERS_EXPERIMENT, RenderedFile, Rerendered, render_to_files, rerender
from promptlab.runner.sweep import (
    CellOutcome,
    Plan,
    ProgressCallback,
    RunnerProgress,
    RunSummary,
    check_setup,
    overlap_writes,
    plan_batches,
    plan_run,
    render_groups,
    run_experiment,
    run_record,
)

__all__ = [
    "BLACK_IMAGE_ERROR",
    "CellOutcome",
    "Plan",
    "ProgressCallback",
    "RENDERS_EXPERIMENT",
    "RenderedFile",
    "Rerendered",
    "RunSummary",
    "RunnerProgress",
    "check_setup",
    "overlap_writes",
    "plan_batches",
    "plan_run",
    "render_groups",
    "render_params",
    "render_to_files",
    "rerender",
    "run_experiment",
    "run_record",
]
