"""Running an experiment: claim, render, score and record every cell the store does not hold yet, batch by batch."""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from promptlab.errors import CellTakenError, PromptlabError, StoreError
from promptlab.experiment import Cell, ExperimentSpec, Variant, cells
from promptlab.metadata import run_png
from promptlab.runner.offline import check_offline, offline
from promptlab.runner.recipe import BLACK_IMAGE_ERROR, all_black, render_params, setup_params
from promptlab.runner.rescore import score_record, score_runs
from promptlab.store import CLAIM_TTL_S, NewRun, RunRecord, ScoreRecord, Store, runner_id


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
    """What happened to one cell: its run id, image path and scores, or its error.

    ``status`` is ``ok``, ``failed``, or ``taken``: another runner sharing the store recorded it first.
    """

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
    taken: int = 0

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
            "taken": self.taken,
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
            [variant.model, variant.task, variant.params, variant.long_prompt, {k: str(v) for k, v in variant.inputs.items()},
             # A batch never mixes two LoRA settings: the pipeline call applies one set.
             [[lora.identity, lora.strength] for lora in variant.loras]],
            sort_keys=True,
            default=str,
        )
        groups.setdefault(key, []).append(cell)
    return list(groups.values())


@dataclass(frozen=True)
class Plan:
    """What a run of an experiment has to do, decided once from the store: its row's id, its cell
    count, the cells to render (in the spec's order), and the runs that those of them whose image
    was lost replace."""

    experiment_id: int
    total_cells: int
    todo: tuple[Cell, ...]
    lost: Mapping[tuple[str, int], int]
    #: Whether planning created the experiment's row (so a setup that fails can take it back).
    new: bool = False

    @property
    def skipped(self) -> int:
        return self.total_cells - len(self.todo)


def plan_run(spec: ExperimentSpec, store: Store) -> Plan:
    """The experiment's row (created if new) and the cells still to do: not recorded, or recorded with a lost image."""
    new = _absent(store, spec.name)
    experiment = store.get_or_create_experiment(spec.name, spec.raw, spec.path, subject=spec.subject)
    assert experiment.id is not None
    store.clean_partials()
    every = cells(spec)
    done = store.existing_cells(experiment.id)
    lost = {(b.variant_key, b.seed): b.run_id for b in store.broken_images(experiment.id)}
    todo = tuple(cell for cell in every if cell.key not in done or cell.key in lost)
    return Plan(experiment.id, len(every), todo, lost, new)


def _absent(store: Store, name: str) -> bool:
    try:
        store.get_experiment(name)
    except StoreError:
        return True
    return False


def plan_batches(todo: Iterable[Cell], size: int) -> list[list[Cell]]:
    """The pipeline calls a run makes, in order: each render group cut into batches of ``size``."""
    return [group[start : start + size] for group in render_groups(todo) for start in range(0, len(group), size)]


#: Picks one process's batches from all of a plan's (``runner.distributed``).
ShareFunction = Callable[[list[list[Cell]]], list[list[Cell]]]


def run_experiment(
    spec: ExperimentSpec,
    store: Store,
    *,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    scorer: Any = None,
    plan: Plan | None = None,
    share: ShareFunction | None = None,
) -> RunSummary:
    """Render, score and record every cell of ``spec`` that ``store`` does not hold yet (or holds with a lost image).

    Every image is scored by each of ``spec.scorers``: ``scorer`` is the ranking one, loaded, or a
    callable that loads one by name (default ``load_scorer``), which also loads the others.
    ``plan`` is what to do (default: ``plan_run`` now), and ``share`` picks the batches this
    process renders of it, where several processes split one run (``runner.distributed``).
    """
    started = time.perf_counter()
    # 1. The cells still to do, cut into batches; of those, this process's share.
    plan = plan or plan_run(spec, store)
    lost = plan.lost
    size = batch_size or spec.batch_size
    batches = plan_batches(plan.todo, size)
    if share is not None:
        batches = share(batches)
    todo = [cell for batch in batches for cell in batch]
    skipped = plan.skipped
    # 2. What fails for every cell alike fails now, once, and leaves no empty experiment behind.
    try:
        scorers = check_setup(todo, spec, scorer)
    except PromptlabError:
        if plan.new:
            store.drop_empty_experiment(plan.experiment_id)
        raise
    outcomes: list[CellOutcome] = []
    passed = 0  # cells another runner recorded or holds: not this runner's to render
    left = 0  # of those, the ones it holds (still rendering them)

    def report(last: CellOutcome | None) -> None:
        if progress is not None:
            failed = sum(o.status == "failed" for o in outcomes)
            total = len(todo) - passed
            progress(RunnerProgress(len(outcomes), total, failed, skipped, time.perf_counter() - started, last))

    def record(written: list[CellOutcome]) -> None:
        for outcome in written:
            outcomes.append(outcome)
            report(outcome)

    def collect(writing: Future[list[CellOutcome]]) -> None:
        record(writing.result())

    report(None)
    # 3. Claim, render and score each batch of cells that share a pipeline call, and write each
    # batch's files and rows: on a writer thread while the next batch renders, where a core is
    # free for it, else in turn.
    overlap = overlap_writes()
    owner = runner_id()
    with _Heartbeat(store, owner), ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptlab-store") as writer:
        writing: Future[list[CellOutcome]] | None = None
        try:
            for cells_ in batches:
                claim = store.claim_cells(plan.experiment_id, [c.key for c in cells_], owner, redo=lost.values())
                passed += len(claim.done) + len(claim.taken)
                skipped += len(claim.done)
                left += len(claim.taken)
                mine = set(claim.claimed)
                batch = [cell for cell in cells_ if cell.key in mine]
                if not batch:
                    continue
                write = _run_batch(batch, plan.experiment_id, spec, store, scorers, size, lost)
                if writing is not None:
                    collect(writing)
                    writing = None
                if overlap:
                    writing = writer.submit(write)
                else:
                    record(write())
            if writing is not None:
                collect(writing)
        finally:
            if writing is not None:
                writing.exception()  # the batch in flight is written (or failed) before the claims go
            store.release_claims(owner)
    if share is None:
        _score_the_rest(spec, store, scorers, scorer, batch_size)
    failed = sum(o.status == "failed" for o in outcomes)
    taken = sum(o.status == "taken" for o in outcomes) + left
    return RunSummary(
        experiment=spec.name,
        experiment_id=plan.experiment_id,
        total_cells=plan.total_cells,
        skipped=skipped,
        rendered=sum(o.status == "ok" for o in outcomes),
        failed=failed,
        seconds=time.perf_counter() - started,
        outcomes=tuple(outcomes),
        taken=taken,
    )


def check_setup(todo: Sequence[Cell], spec: ExperimentSpec, scorer: Any = None) -> list[Any]:
    """The scorers of ``spec`` (``spec.scorers``, the ranking one first), loaded; and for each render
    setup of ``todo``, its model loaded and its scheduler, size and input images checked
    (``check_render``). What fails here would fail every cell alike, so it raises once, before any
    cell is rendered or recorded. With nothing to do, nothing is loaded: [].

    ``scorer`` is the ranking scorer already loaded, or a callable loading a scorer by name.
    """
    from promptlab.render.engine import check_render
    from promptlab.runner.offline import check_scorer_offline
    from promptlab.scoring import load_scorer

    if not todo:
        return []
    given = scorer if scorer is not None and not _loader(scorer) else None
    load = scorer if scorer is not None and _loader(scorer) else load_scorer
    # Offline, a missing hub model or scorer is found in the cache in milliseconds, not by loading it.
    hub_loras = {lora.source for cell in todo for lora in cell.variant.loras if lora.kind == "hub"}
    check_offline({cell.variant.model for cell in todo}, spec.scorer if given is None else None, hub_loras)
    if offline():
        for name in spec.scorers[1:]:
            check_scorer_offline(name)
    first = given if given is not None else load(spec.scorer)
    # Scorer objects load by themselves through load_scorer; a caller's loader loads the others too.
    scorers = [first, *(load(name) if _loader(load) else load_scorer(name) for name in spec.scorers[1:])]
    # Last to first: models stay loaded up to the cache's bound, so the first to render are the ones kept.
    for group in reversed(render_groups(todo)):
        variant = group[0].variant
        check_render(render_params(variant), variant.model)
    return scorers


def _score_the_rest(spec: ExperimentSpec, store: Store, loaded: Sequence[Any], scorer: Any, batch_size: int | None) -> None:
    """Give each recorded image of ``spec`` the scores of its scorers it lacks (a scorer added to the
    file since), loading only the scorers some image lacks. A ranking scorer the caller brought
    loaded is the caller's: only the file's other scorers are filled in then."""
    from promptlab.scoring import load_scorer

    given = scorer is not None and not _loader(scorer)
    load = scorer if scorer is not None and _loader(scorer) else load_scorer
    ready = dict(zip(spec.scorers, loaded))
    for name in spec.scorers[1:] if given else spec.scorers:
        if store.runs_to_score(spec.name, name):
            score_runs(store, spec.name, ready.get(name) or load(name), batch_size=batch_size)


def _loader(scorer: Any) -> bool:
    """Whether ``scorer`` loads scorers by name (a function) rather than scoring (a loaded scorer)."""
    return callable(scorer) and not hasattr(scorer, "score")


class _Heartbeat:
    """Renews a runner's claims every third of their time while it works, on a thread of its own."""

    def __init__(self, store: Store, owner: str, ttl_s: float = CLAIM_TTL_S) -> None:
        self.store, self.owner, self.ttl_s = store, owner, ttl_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="promptlab-claims", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.store.renew_claims(self.owner, ttl_s=self.ttl_s)
            except StoreError:
                # The claims hold for two more beats; if they lapse, a cell may be rendered twice but
                # is recorded once (the later writer finds it taken), so nothing is lost.
                continue


def overlap_writes() -> bool:
    """Whether the runner writes a batch on a second thread while the next batch renders.

    It pays where rendering leaves a core idle: on a GPU, or when torch runs fewer threads than
    the machine has cores (counting every process a launcher started here). Where torch's threads
    fill every core (its default on a CPU), the writer only takes time from them: on 2 cores, promptlab took 1.17-1.30x bare diffusers'
    time writing in turn and 1.27-1.43x with the writer thread (bench/grid.py's grid, 25
    alternated rounds, twice).
    """
    import torch

    from promptlab.device import choose_device

    # Processes a launcher started on this machine share its cores (runner.distributed).
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return choose_device() != "cpu" or torch.get_num_threads() * local_processes < (os.cpu_count() or 1)


def _run_batch(
    batch: Sequence[Cell],
    experiment_id: int,
    spec: ExperimentSpec,
    store: Store,
    scorers: Sequence[Any],
    size: int,
    lost: Mapping[tuple[str, int], int],
) -> Callable[[], list[CellOutcome]]:
    """Render one batch and score it with each of ``scorers``; return the call that records it (every
    cell failed on an error).

    ``lost`` maps the cells whose recorded image was lost to their runs, which the new ones replace.
    """
    from promptlab.render.engine import render
    from promptlab.render.params import RenderItem

    first = batch[0].variant
    try:
        # A variant's seeds share its texts: each is written once.
        texts = {c.variant.key: (c.variant.prompt.to_compel(), c.variant.prompt.to_plain()) for c in batch}
        items = [RenderItem(texts[c.variant.key][0], c.seed, c.variant.negative_prompt) for c in batch]
        t0 = time.perf_counter()
        result = render(items, render_params(first), first.model, batch_size=size)
        render_s = (time.perf_counter() - t0) / len(batch)
        t1 = time.perf_counter()
        images = [r.image for r in result.images]
        intents, prompts = [c.variant.intent for c in batch], [texts[c.variant.key][1] for c in batch]
        # One image encoding per scorer for both texts: scoring twice would encode every image twice.
        scored = [scorer.score_pairs(images, intents, prompts) for scorer in scorers]
        score_s = (time.perf_counter() - t1) / len(batch)
    except PromptlabError as error:
        return partial(_record_failures, store, experiment_id, batch, str(error), lost)
    except Exception as error:  # noqa: BLE001 - one failing batch must not stop the sweep
        if out_of_memory(error):
            from promptlab.device import choose_device, release_memory

            # Said plainly, and the device's cache given back: a later batch (a smaller size) may fit.
            detail = _memory_message(batch, size, error)
            release_memory(choose_device())
        else:
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return partial(_record_failures, store, experiment_id, batch, detail, lost)
    setup = setup_params(result.setup)
    runs = {
        cell.key: _Rendered(
            run_record(experiment_id, cell.variant, cell.seed, render_s=render_s, score_s=score_s, params=setup),
            image,
            tuple(record for pair in pairs for record in (score_record("intent", pair.intent), score_record("prompt", pair.prompt))),
        )
        for cell, image, *pairs in zip(batch, images, *scored)
        if not all_black(image)
    }
    return partial(_record_batch, store, experiment_id, spec.name, batch, runs, lost)


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device (a GPU's memory, Apple's MPS, or the CPU's RAM) ran out of memory."""
    import torch

    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _memory_message(batch: Sequence[Cell], size: int, error: BaseException) -> str:
    """One line: which device ran out of memory on what, and the fixes."""
    from promptlab.device import choose_device

    variant = batch[0].variant
    device = choose_device()
    if device == "cuda":
        import torch

        device = f"cuda:{torch.cuda.current_device()}"
    shape = f"{variant.params.get('width', 'default')}x{variant.params.get('height', 'default')}"
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"{device} ran out of memory rendering a batch of {len(batch)} images of {variant.model} at {shape} ({reason}): "
        f"give a smaller --batch-size (now {size}) or image size, or start fewer processes per device, "
        "and run the same command again: it renders the cells recorded as failed"
    )


def run_record(experiment_id: int, variant: Variant, seed: int, **extra: Any) -> RunRecord:
    """The store's record of ``variant`` at ``seed``; ``extra`` sets timings, and ``params`` adds to the variant's."""
    loras = {"loras": [lora.to_dict() for lora in variant.loras]} if variant.loras else {}
    params = {**variant.params, "long_prompt": variant.long_prompt, **loras, **extra.pop("params", {})}
    return RunRecord(
        experiment_id=experiment_id,
        variant_key=variant.key,
        seed=seed,
        prompt=variant.prompt,
        model=variant.model,
        negative_prompt=variant.negative_prompt,
        task=variant.task,
        params=params,
        label=variant.label,
        axes=dict(variant.axis_values),
        intent=variant.intent,
        **extra,
    )


@dataclass(frozen=True)
class _Rendered:
    """A rendered, scored cell before its PNG is made (on the writer's turn, with the rows)."""

    record: RunRecord
    image: Any
    scores: tuple[ScoreRecord, ...]

    def encoded(self, experiment: str) -> NewRun:
        return NewRun(self.record, run_png(self.record, self.image, self.scores, experiment), self.scores)


def _record_batch(
    store: Store,
    experiment_id: int,
    experiment: str,
    batch: Sequence[Cell],
    rendered: Mapping[tuple[str, int], _Rendered],
    lost: Mapping[tuple[str, int], int],
) -> list[CellOutcome]:
    """Write a rendered batch (PNG files, then rows in one transaction) and say what became of each cell.

    Cells missing from ``runs`` came out black and are recorded as failed. A cell another runner
    recorded first (its claim lapsed) is left as it is, and the rest are written.
    """
    runs = {key: cell.encoded(experiment) for key, cell in rendered.items()}
    good = [cell for cell in batch if cell.key in runs]
    replace = [lost[cell.key] for cell in good if cell.key in lost]
    taken: set[tuple[str, int]] = set()
    while True:
        todo = [cell for cell in good if cell.key not in taken]
        try:
            recorded = dict(zip((c.key for c in todo), store.record_runs([runs[c.key] for c in todo], replace=replace)))
            break
        except CellTakenError as error:
            taken.update(error.cells)
    black = [cell for cell in batch if cell.key not in runs]
    failures = {(o.variant_key, o.seed): o for o in _record_failures(store, experiment_id, black, BLACK_IMAGE_ERROR, lost)}
    outcomes = []
    for cell in batch:
        if cell.key in taken:
            outcomes.append(CellOutcome(cell.variant.key, cell.variant.label, cell.seed, None, "taken"))
        elif cell.key in failures:
            outcomes.append(failures[cell.key])
        else:
            run = recorded[cell.key]
            outcomes.append(
                CellOutcome(
                    cell.variant.key,
                    cell.variant.label,
                    cell.seed,
                    run.id,
                    "ok",
                    image=str(store.image_path(run.image_sha256)) if run.image_sha256 else None,
                    # The ranking scorer's (the first); the others are in the store.
                    scores={score.kind: score.value for score in reversed(runs[cell.key].scores)},
                )
            )
    return outcomes


def _record_failures(
    store: Store, experiment_id: int, batch: Sequence[Cell], error: str, lost: Mapping[tuple[str, int], int]
) -> list[CellOutcome]:
    """Record each cell as failed with ``error``; a cell another runner recorded meanwhile stays as it is,
    and so does the run of a cell whose lost image could not be made again (a rerun tries again)."""
    outcomes = []
    for cell in batch:
        if cell.key in lost:
            outcomes.append(CellOutcome(cell.variant.key, cell.variant.label, cell.seed, lost[cell.key], "failed", error=error))
            continue
        try:
            run = store.record_failure(run_record(experiment_id, cell.variant, cell.seed), error)
        except CellTakenError:
            outcomes.append(CellOutcome(cell.variant.key, cell.variant.label, cell.seed, None, "taken"))
            continue
        outcomes.append(CellOutcome(cell.variant.key, cell.variant.label, cell.seed, run.id, "failed", error=error))
    return outcomes
