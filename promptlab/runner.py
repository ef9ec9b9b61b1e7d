"""The experiment runner: expand an experiment into cells, render the missing ones in batches,
score them and record each one in the store.

    spec = load_experiment("examples/squirrel-styles.toml")
    with open_store() as store:
        summary = run_experiment(spec, store, progress=print)

How it behaves:

1. Cells (variant x seed) that the store already holds are skipped, so running the same file
   again renders only what is missing, and a run killed at any moment resumes cleanly.
2. Cells that share model, task and params render together in batches across variants, each
   image with its own seed, so every variant is compared on the same seeds.
3. Each finished batch is scored (each image against the intent and against its own prompt)
   and written: the batch's image files first, then all its rows in one transaction
   (``Store.record_runs``). Where rendering leaves a core idle (a GPU, or fewer torch threads
   than cores) one writer thread writes a batch while the next one renders; where torch's
   threads fill every core, writing in turn is faster (``overlap_writes``). A crash loses at
   most the batch being written; no row ever names a missing file.
4. A batch that fails to render or score is recorded cell by cell with its error and the run
   goes on. A failure to write the store is never swallowed: it stops the run once the batch
   rendering meanwhile is done.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from promptlab.errors import PromptlabError
from promptlab.experiment import Cell, ExperimentSpec, Variant, cells
from promptlab.store import NewRun, RunRecord, ScoreRecord, Store

# Keys of Variant.params that are RenderParams fields; anything else stays in the run's params.
_RENDER_PARAM_NAMES = ("num_inference_steps", "guidance_scale", "width", "height", "scheduler", "strength")
_INPUT_PARAM_NAMES = {"image": "image", "mask": "mask_image", "mask_image": "mask_image", "depth": "depth_map", "depth_map": "depth_map"}


@dataclass(frozen=True)
class RunnerProgress:
    """Where a run stands: ``done`` of ``total`` cells to render this time (skipped ones excluded)."""

    done: int
    total: int
    failed: int
    skipped: int
    elapsed_s: float
    last: CellOutcome | None = None


@dataclass(frozen=True)
class CellOutcome:
    """What happened to one cell: its run id, image path and scores, or its error."""

    variant_key: str
    label: str
    seed: int
    run_id: int | None
    status: str
    error: str | None = None
    image: str | None = None
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSummary:
    """The result of ``run_experiment``."""

    experiment: str
    experiment_id: int
    total_cells: int
    skipped: int
    rendered: int
    failed: int
    seconds: float
    outcomes: tuple[CellOutcome, ...] = ()

    @property
    def images_per_s(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "total_cells": self.total_cells,
            "skipped": self.skipped,
            "rendered": self.rendered,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.images_per_s, 3),
            "errors": [
                {"label": o.label, "seed": o.seed, "error": o.error} for o in self.outcomes if o.status == "failed"
            ],
        }


ProgressCallback = Callable[[RunnerProgress], None]


def render_groups(todo: Iterable[Cell]) -> list[list[Cell]]:
    """Cells grouped by what a pipeline call shares (model, task, params, inputs), in order."""
    groups: dict[str, list[Cell]] = {}
    for cell in todo:
        variant = cell.variant
        key = json.dumps(
            [variant.model, variant.task, variant.params, variant.long_prompt, {k: str(v) for k, v in variant.inputs.items()}],
            sort_keys=True,
            default=str,
        )
        groups.setdefault(key, []).append(cell)
    return list(groups.values())


def render_params(variant: Variant) -> Any:
    """The ``RenderParams`` of a variant (diffusers' names; image inputs as file paths)."""
    from promptlab.render.params import RenderParams

    values = {name: variant.params[name] for name in _RENDER_PARAM_NAMES if variant.params.get(name) is not None}
    for name, path in variant.inputs.items():
        values[_INPUT_PARAM_NAMES.get(name, name)] = str(path)
    return RenderParams(task=variant.task, long_prompt=variant.long_prompt, **values)


def run_experiment(
    spec: ExperimentSpec,
    store: Store,
    *,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    scorer: Any = None,
) -> RunSummary:
    """Render, score and record every cell of ``spec`` that ``store`` does not hold yet."""
    from promptlab.scoring import load_scorer

    started = time.perf_counter()
    # 1. The experiment row, and the cells still to do.
    experiment = store.get_or_create_experiment(spec.name, spec.raw, spec.path, subject=spec.subject)
    assert experiment.id is not None
    every = cells(spec)
    done = store.existing_cells(experiment.id)
    todo = [cell for cell in every if cell.key not in done]
    skipped = len(every) - len(todo)
    outcomes: list[CellOutcome] = []

    def report(last: CellOutcome | None) -> None:
        if progress is not None:
            failed = sum(o.status == "failed" for o in outcomes)
            progress(RunnerProgress(len(outcomes), len(todo), failed, skipped, time.perf_counter() - started, last))

    def record(written: list[CellOutcome]) -> None:
        for outcome in written:
            outcomes.append(outcome)
            report(outcome)

    def collect(writing: Future[list[CellOutcome]]) -> None:
        record(writing.result())

    report(None)
    # 2. Render and score each group of cells that share a pipeline call, batch by batch, and
    # write each batch's files and rows: on a writer thread while the next batch renders, where
    # a core is free for it, else in turn.
    size = batch_size or spec.batch_size
    overlap = overlap_writes()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptlab-store") as writer:
        writing: Future[list[CellOutcome]] | None = None
        for group in render_groups(todo):
            for start in range(0, len(group), size):
                batch = group[start : start + size]
                write = _run_batch(batch, experiment.id, spec, store, scorer or load_scorer, size)
                if writing is not None:
                    collect(writing)
                    writing = None
                if overlap:
                    writing = writer.submit(write)
                else:
                    record(write())
        if writing is not None:
            collect(writing)
    failed = sum(o.status == "failed" for o in outcomes)
    return RunSummary(
        experiment=spec.name,
        experiment_id=experiment.id,
        total_cells=len(every),
        skipped=skipped,
        rendered=len(outcomes) - failed,
        failed=failed,
        seconds=time.perf_counter() - started,
        outcomes=tuple(outcomes),
    )


def overlap_writes() -> bool:
    """Whether the runner writes a batch on a second thread while the next batch renders.

    It pays where rendering leaves a core idle: on a GPU, or when torch runs fewer threads than
    the machine has cores. Where torch's threads fill every core (its default on a CPU), the
    writer only takes time from them: on 2 cores, promptlab took 1.17-1.30x bare diffusers'
    time writing in turn and 1.27-1.43x with the writer thread (bench/grid.py's grid, 25
    alternated rounds, twice).
    """
    import torch

    from promptlab.render.models import choose_device

    return choose_device() != "cpu" or torch.get_num_threads() < (os.cpu_count() or 1)


def _run_batch(
    batch: Sequence[Cell], experiment_id: int, spec: ExperimentSpec, store: Store, scorer: Any, size: int
) -> Callable[[], list[CellOutcome]]:
    """Render and score one batch; return the call that records it (every cell failed on an error)."""
    from promptlab.render.engine import render
    from promptlab.render.params import RenderItem

    first = batch[0].variant
    try:
        if callable(scorer) and not hasattr(scorer, "score"):
            scorer = scorer(spec.scorer)
        # A variant's seeds share its texts: each is written once.
        texts = {c.variant.key: (c.variant.prompt.to_compel(), c.variant.prompt.to_plain()) for c in batch}
        items = [RenderItem(texts[c.variant.key][0], c.seed, c.variant.negative_prompt) for c in batch]
        t0 = time.perf_counter()
        result = render(items, render_params(first), first.model, batch_size=size)
        render_s = (time.perf_counter() - t0) / len(batch)
        t1 = time.perf_counter()
        images = [r.image for r in result.images]
        # One image encoding for both texts: scoring twice would encode every image twice.
        pairs = scorer.score_pairs(images, [c.variant.intent for c in batch], [texts[c.variant.key][1] for c in batch])
        score_s = (time.perf_counter() - t1) / len(batch)
    except PromptlabError as error:
        return partial(_record_failures, store, experiment_id, batch, str(error))
    except Exception as error:  # noqa: BLE001 - one failing batch must not stop the sweep
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return partial(_record_failures, store, experiment_id, batch, detail)
    setup = _setup_params(result.setup)
    runs = [
        NewRun(
            RunRecord.for_variant(experiment_id, cell.variant, cell.seed, render_s=render_s, score_s=score_s, params=setup),
            image,
            (_score_record("intent", pair.intent), _score_record("prompt", pair.prompt)),
        )
        for cell, image, pair in zip(batch, images, pairs)
    ]
    return partial(_record_batch, store, batch, runs)


def _record_batch(store: Store, batch: Sequence[Cell], runs: Sequence[NewRun]) -> list[CellOutcome]:
    """Write a rendered batch (files, then rows in one transaction) and say what became of each cell."""
    recorded = store.record_runs(runs)
    return [
        CellOutcome(
            cell.variant.key,
            cell.variant.label,
            cell.seed,
            run.id,
            "ok",
            image=str(store.image_path(run.image_sha256)) if run.image_sha256 else None,
            scores={score.kind: score.value for score in new.scores},
        )
        for cell, new, run in zip(batch, runs, recorded)
    ]


def _setup_params(setup: Any) -> dict[str, Any]:
    """What a run records of the render setup besides its own params: enough to render it again."""
    data = setup.to_dict()
    return {
        "family": data["family"],
        "pipeline_class": data["pipeline_class"],
        "dtype": data["dtype"],
        "device": data["device"],
        "scheduler_name": data["scheduler"]["name"],
        "scheduler_class": data["scheduler"]["class_name"],
        "scheduler_config": data["scheduler"]["config"],
        "model_source": data["model"],
        "vae": data["vae"],
        "inputs": data["inputs"],
        "versions": data["versions"],
    }


def _score_record(kind: str, score: Any) -> ScoreRecord:
    return ScoreRecord(
        kind=kind,
        scorer=score.scorer,
        value=float(score.value),
        text=score.text,
        model=score.model,
        pretrained=score.pretrained,
        weights_sha256=getattr(score, "weights_sha256", None),
    )


def _record_failures(store: Store, experiment_id: int, batch: Sequence[Cell], error: str) -> list[CellOutcome]:
    outcomes = []
    for cell in batch:
        run = store.record_failure(RunRecord.for_variant(experiment_id, cell.variant, cell.seed), error)
        outcomes.append(CellOutcome(cell.variant.key, cell.variant.label, cell.seed, run.id, "failed", error=error))
    return outcomes


# RenderParams fields that are not part of a render's recipe key (kept elsewhere on the run).
_SETUP_NOT_PARAMS = ("task", "negative_prompt", "long_prompt", "image", "mask_image", "depth_map")

#: The experiment that logs ad-hoc renders (``promptlab render``), so no image is ever lost.
RENDERS_EXPERIMENT = "renders"


@dataclass(frozen=True)
class RenderedFile:
    """A PNG written by ``render_to_files``: where it is, its run in the store, what made it."""

    path: Path
    run_id: int
    seed: int
    prompt: str
    negative_prompt: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "run_id": self.run_id,
            "seed": self.seed,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "params": self.params,
        }


def render_to_files(request: Any, out_dir: Path, store: Store, syntax: str = "compel") -> list[RenderedFile]:
    """Render a ``RenderRequest`` whose prompt and negative prompt are written in ``syntax``,
    log each image as a run of the ``renders`` experiment, and copy the PNG (A1111
    ``parameters`` + ``promptlab`` chunks) to ``out_dir``."""
    import dataclasses
    import shutil

    from promptlab.experiment import variant_key
    from promptlab.prompt import compel_prompt, parse_compel
    from promptlab.render.engine import render_request

    # 1. Read the prompts as written, into the compel text that is rendered and recorded verbatim.
    text = compel_prompt(request.prompt, syntax)
    negative = compel_prompt(request.params.negative_prompt, syntax)
    request = dataclasses.replace(
        request, prompt=text, params=dataclasses.replace(request.params, negative_prompt=negative)
    )
    prompt = parse_compel(text, join_parts=True)
    result = render_request(request)
    setup = result.setup.to_dict()
    # Input images count by content (their hashes), not by path.
    recipe = {k: v for k, v in setup["params"].items() if k not in _SETUP_NOT_PARAMS}
    key = variant_key(
        prompt=prompt,
        negative_prompt=negative,
        model=request.model.model,
        task=request.params.task,
        params=recipe,
        long_prompt=request.params.long_prompt,
        input_hashes={i["role"]: i["sha256"] for i in setup["inputs"]},
        prompt_text=text,
    )
    params = {**recipe, **_setup_params(result.setup)}
    experiment = store.get_or_create_experiment(RENDERS_EXPERIMENT, {"name": RENDERS_EXPERIMENT}, None)
    assert experiment.id is not None
    # 2. Record each image (file first, then rows), then copy it out with its metadata.
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for rendered in result.images:
        record = RunRecord(
            experiment_id=experiment.id,
            variant_key=key,
            seed=rendered.seed,
            prompt=prompt,
            model=request.model.model,
            negative_prompt=rendered.negative_prompt,
            task=request.params.task,
            params=params,
            label=request.prompt,
            render_s=sum(result.batch_seconds) / len(result.images),
            prompt_text=text,
        )
        run = store.find_run(experiment.id, key, rendered.seed)
        if run is None or run.status != "ok":
            run = store.record_run(record, rendered.image)
        target = out_dir / f"{rendered.seed}-{run.image_sha256[:10]}.png"
        shutil.copyfile(store.image_path(run.image_sha256), target)
        files.append(RenderedFile(target, run.id, rendered.seed, request.prompt, rendered.negative_prompt, params))
    return files
