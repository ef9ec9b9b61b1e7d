"""The runner on the tiny models: batched, resumable, idempotent, failures recorded, kill -9 safe."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from promptlab import runner
from promptlab.runner import sweep
from promptlab.errors import PromptlabError, StoreError
from promptlab.experiment import cells, parse_experiment
from promptlab.runner import render_groups, run_experiment
from promptlab.store import NewRun, Run, Store, open_store

EXPERIMENT = """
name = "runner-test"
model = "tiny-sd"
seeds = [1, 2]
scorer = "tiny-clip"
batch_size = 4

[params]
num_inference_steps = 2
width = 64
height = 64

[prompt]
subject = "a squirrel"
terms = {{ medium = ["oil painting"] }}

[axes]
style = ["", "pop-art"]
{extra}
"""


def spec(tmp_path: Path, extra: str = "", name: str = "runner-test"):  # type: ignore[no-untyped-def]
    text = EXPERIMENT.format(extra=extra).replace("runner-test", name)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return parse_experiment(text, path)


@pytest.fixture(params=[True, False], ids=["writer-thread", "in-turn"])
def overlap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run the test with batches written on the writer thread, and in turn."""
    monkeypatch.setattr(sweep, "overlap_writes", lambda: request.param)
    return request.param


def test_writes_overlap_rendering_only_where_a_core_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from promptlab import device

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        # On a CPU, only where torch leaves a core free; on an accelerator, always (the CPU waits on it).
        monkeypatch.setattr(device, "choose_device", lambda requested=None: "cpu")
        assert runner.overlap_writes() is False
        monkeypatch.setattr(device, "choose_device", lambda requested=None: "cuda")
        assert runner.overlap_writes() is True
        monkeypatch.setattr(device, "choose_device", lambda requested=None: "cpu")
        torch.set_num_threads(1)
        assert runner.overlap_writes() is True
    finally:
        torch.set_num_threads(threads)


def test_runs_every_cell_once_and_resumes(tmp_path: Path, overlap: bool) -> None:
    experiment = spec(tmp_path)
    with open_store() as store:
        first = run_experiment(experiment, store)
        assert (first.total_cells, first.rendered, first.failed, first.skipped) == (4, 4, 0, 0)
        again = run_experiment(experiment, store)
        assert (again.rendered, again.skipped) == (0, 4)
        runs = store.list_runs(experiment="runner-test")
        assert len(runs) == 4
        for run in runs:
            assert run.status == "ok" and run.image_path is not None and Path(run.image_path).is_file()
            assert {s.kind for s in run.scores} == {"intent", "prompt"}
            assert run.params["scheduler_class"] and run.params["versions"]["diffusers"]
        intents = {s.text for run in runs for s in run.scores if s.kind == "intent"}
        assert intents == {"a squirrel"}


def test_variants_share_batches_and_are_compared_on_the_same_seeds(tmp_path: Path) -> None:
    experiment = spec(tmp_path)
    groups = render_groups(cells(experiment))
    assert len(groups) == 1 and len(groups[0]) == 4
    with_guidance = spec(tmp_path, "guidance_scale = [5.0, 7.5]", name="two-groups")
    assert len(render_groups(cells(with_guidance))) == 2


def test_batched_image_equals_the_image_rendered_alone(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    experiment = spec(tmp_path)
    with open_store() as store:
        run_experiment(experiment, store, batch_size=4)
        batched = {(r.label, r.seed): r.image_path for r in store.list_runs(experiment="runner-test")}
    os.environ["PROMPTLAB_HOME"] = str(tmp_path / "alone")
    with open_store() as store:
        run_experiment(experiment, store, batch_size=1)
        alone = {(r.label, r.seed): r.image_path for r in store.list_runs(experiment="runner-test")}
    for key, path in batched.items():
        a = np.asarray(Image.open(path), dtype=np.int16)
        b = np.asarray(Image.open(alone[key]), dtype=np.int16)
        # Batched and single CPU matmuls may differ in the last float bits: at most 2 of 255 levels.
        assert np.abs(a - b).max() <= 2


def test_a_failing_cell_is_recorded_and_the_rest_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptlab.render import engine

    experiment = spec(tmp_path, 'guidance_scale = [5.0, 9.0]', name="with-failure")
    render = engine.render

    def out_of_memory_at_cfg_9(items, params, model, **kwargs):  # type: ignore[no-untyped-def]
        if params.guidance_scale == 9.0:
            raise RuntimeError("CUDA out of memory")
        return render(items, params, model, **kwargs)

    monkeypatch.setattr(engine, "render", out_of_memory_at_cfg_9)
    with open_store() as store:
        summary = run_experiment(experiment, store)
        assert summary.failed == 4 and summary.rendered == 4 and not summary.ok
        failed = store.list_runs(experiment="with-failure", status="failed")
        assert len(failed) == 4
        assert all("CUDA out of memory" in (r.error or "") for r in failed)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('scheduler = ["Euler a", "No Such Sampler"]', "unknown scheduler 'No Such Sampler'"),
        ('model = ["tiny-sd", "./no/such/model"]', "model './no/such/model': no such file or folder"),
    ],
)
def test_what_fails_for_every_cell_fails_once_before_any_cell(tmp_path: Path, extra: str, message: str) -> None:
    experiment = spec(tmp_path, extra, name="bad-setup")
    with open_store() as store:
        with pytest.raises(PromptlabError, match=re.escape(message)):
            run_experiment(experiment, store)
        # no run, and no empty experiment either
        assert store.count_runs() == 0 and "bad-setup" not in {e.name for e in store.list_experiments()}


def test_an_unknown_scorer_fails_once_before_any_cell(tmp_path: Path) -> None:
    experiment = spec(tmp_path, name="bad-scorer")
    experiment = dataclasses.replace(experiment, scorer="no-such-clip")
    with open_store() as store:
        with pytest.raises(PromptlabError, match="no-such-clip"):
            run_experiment(experiment, store)
        assert store.count_runs() == 0 and "bad-scorer" not in {e.name for e in store.list_experiments()}


def test_an_all_black_image_is_recorded_as_failed_never_as_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from promptlab.render import engine

    experiment = spec(tmp_path, name="black")
    render = engine.render

    def nan_for_seed_2(items, params, model, **kwargs):  # type: ignore[no-untyped-def]
        result = render(items, params, model, **kwargs)
        for image in result.images:
            if image.seed == 2:  # what a NaN latent decodes to
                image.image = Image.new("RGB", image.image.size)
        return result

    monkeypatch.setattr(engine, "render", nan_for_seed_2)
    with open_store() as store:
        summary = run_experiment(experiment, store)
        assert (summary.rendered, summary.failed) == (2, 2)
        failed = store.list_runs(experiment="black", status="failed")
        assert {r.seed for r in failed} == {2}
        assert all(r.error == runner.BLACK_IMAGE_ERROR and r.scores == [] for r in failed)


def test_a_dpm_solver_sweep_is_recorded(tmp_path: Path) -> None:
    # DPM-Solver's config holds -inf, which strict JSON (the store's) has no number for.
    experiment = spec(tmp_path, 'scheduler = ["DPM++ 2M Karras"]', name="dpm")
    with open_store() as store:
        summary = run_experiment(experiment, store)
        assert (summary.rendered, summary.failed) == (4, 0)
        (run, *_) = store.list_runs(experiment="dpm")
        assert run.params["scheduler_config"]["lambda_min_clipped"] == "-inf"


def test_a_store_write_failure_stops_the_run_and_earlier_batches_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overlap: bool
) -> None:
    experiment = spec(tmp_path)
    record_runs = Store.record_runs
    written: list[int] = []

    def full_after_one_batch(self: Store, runs: list[NewRun], **kwargs: Any) -> list[Run]:
        if written:
            raise StoreError("cannot write image: No space left on device")
        written.append(len(runs))
        return record_runs(self, runs, **kwargs)

    monkeypatch.setattr(Store, "record_runs", full_after_one_batch)
    seen: list[int] = []
    with open_store() as store:
        with pytest.raises(StoreError, match="No space left"):
            run_experiment(experiment, store, batch_size=2, progress=lambda p: seen.append(p.done))
        assert written == [2] and seen == [0, 1, 2]
        assert len(store.existing_cells(store.get_experiment("runner-test").id)) == 2


def test_cli_run_exit_status_says_some_failed(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from promptlab.cli import app

    good = tmp_path / "good.toml"
    good.write_text(EXPERIMENT.format(extra=""))
    bad = tmp_path / "bad.toml"
    bad.write_text(EXPERIMENT.format(extra='scheduler = ["No Such Sampler"]').replace("runner-test", "bad"))
    runner = CliRunner()
    ok = runner.invoke(app, ["run", str(good), "--format", "json"])
    assert ok.exit_code == 0, ok.output
    failed = runner.invoke(app, ["run", str(bad), "--format", "json"])
    assert failed.exit_code == 1


KILL_SCRIPT = """
import sys
from promptlab.experiment import load_experiment
from promptlab.runner import run_experiment
from promptlab.store import open_store

with open_store() as store:
    run_experiment(load_experiment(sys.argv[1]), store, batch_size=1,
                   progress=lambda p: print(p.done, flush=True))
"""


@pytest.mark.slow
def test_killed_with_sigkill_and_run_again_every_cell_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "kill.toml"
    path.write_text(EXPERIMENT.format(extra='light = ["", "dark", "sunlight"]').replace("runner-test", "kill"))
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    deadline = time.time() + 300
    for line in proc.stdout:
        if int(line) >= 3 or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open_store() as store:
        partial = store.count_runs(experiment="kill")
        assert 0 < partial < 12
        summary = run_experiment(parse_experiment(path.read_text(), path), store)
        assert summary.skipped == partial and summary.failed == 0
        runs = store.list_runs(experiment="kill", limit=100)
        assert len(runs) == 12
        assert len({(r.variant_key, r.seed) for r in runs}) == 12
        for run in runs:
            assert run.image_path is not None and Path(run.image_path).is_file()


RACE_SCRIPT = """
import json, sys, time
from pathlib import Path
from promptlab.experiment import load_experiment
from promptlab.runner import run_experiment
from promptlab.store import open_store
import promptlab.render.engine, promptlab.scoring  # the slow imports, before the start line

spec = load_experiment(sys.argv[1])
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.005)
with open_store() as store:
    print(json.dumps(run_experiment(spec, store, batch_size=1).to_dict()), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_four_runs_started_at_once_on_a_fresh_store_render_each_cell_once(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """Issue 22: the schema, the experiment rows and the cells are raced for; every process finishes."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if kind == "postgresql":
        env["PROMPTLAB_DB"] = request.getfixturevalue("postgres_url")
    files = []
    for name in ("race-a", "race-b"):
        path = tmp_path / f"{name}.toml"
        path.write_text(EXPERIMENT.format(extra="").replace("runner-test", name).replace("seeds = [1, 2]", "seeds = [1, 2, 3]"))
        files.append(path)
    go = tmp_path / "go"
    # Two processes on each experiment: the same cells, and the same store.
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, str(files[i % 2]), str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    with open_store(env.get("PROMPTLAB_DB")) as store:
        for name in ("race-a", "race-b"):
            runs = store.list_runs(experiment=name, limit=100)
            assert len(runs) == 6 and {r.status for r in runs} == {"ok"}
            assert len({(r.variant_key, r.seed) for r in runs}) == 6
            mine = [r for r in results if r["experiment"] == name]
            # Rendered exactly once: the two processes' renders add up to the cells, none failed.
            assert sum(r["rendered"] for r in mine) == 6 and sum(r["failed"] for r in mine) == 0
            for run in runs:
                assert run.image_path is not None and Path(run.image_path).is_file()


def test_a_rerun_renders_again_exactly_the_cells_whose_image_is_lost_or_changed(tmp_path: Path) -> None:
    experiment = spec(tmp_path, name="repair")
    with open_store() as store:
        run_experiment(experiment, store)
        runs = sorted(store.list_runs(experiment="repair"), key=lambda r: r.id)
        lost, changed = runs[0], runs[1]
        assert lost.image_path is not None and changed.image_path is not None
        originals = {run.seed: (run.variant_key, Path(run.image_path).read_bytes()) for run in (lost, changed)}
        Path(lost.image_path).unlink()
        Path(changed.image_path).write_bytes(b"\x89PNG\r\n\x1a\nsomething else")
        # A writer killed mid-write leaves a .partial file: the next run removes it.
        leftover = store.images_dir / f".{'f' * 64}.x1y2.partial"
        leftover.write_bytes(b"half")
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
        again = run_experiment(experiment, store)
        assert (again.rendered, again.skipped, again.failed) == (2, 2, 0)
        assert not leftover.exists()
        assert store.broken_images() == []
        after = store.list_runs(experiment="repair")
        assert len(after) == 4 and {r.status for r in after} == {"ok"}
        for run in after:
            if (run.variant_key, run.seed) in {(key, seed) for seed, (key, _) in originals.items()}:
                # Rendered again from the same recorded parameters: the same pixels, the same file.
                assert Path(run.image_path).read_bytes() == originals[run.seed][1]
        assert run_experiment(experiment, store).rendered == 0


def test_rerender_replays_every_recorded_parameter_and_logs_the_new_run(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from promptlab.runner import RENDERS_EXPERIMENT, rerender

    text = EXPERIMENT.format(extra="").replace("batch_size = 4", 'batch_size = 1\nlong_prompt = "chunk"')
    text = text.replace("num_inference_steps = 2", 'num_inference_steps = 2\nscheduler = "euler"')
    path = tmp_path / "again.toml"
    path.write_text(text)
    experiment = parse_experiment(text, path)
    with open_store() as store:
        run_experiment(experiment, store)
        source = next(r for r in store.list_runs(experiment="runner-test") if "pop-art" in r.prompt)
        (again,) = rerender(source.id, store)
        assert again.source_run_id == source.id and again.run_id != source.id and again.seed == source.seed
        assert again.max_diff == 0 and again.identical is True
        new = store.get_run(again.run_id)
        assert new.experiment == RENDERS_EXPERIMENT and new.status == "ok"
        assert new.params["rerender_of"] == source.id
        assert (new.prompt, new.negative_prompt, new.model, new.task, new.seed) == (
            source.prompt, source.negative_prompt, source.model, source.task, source.seed
        )
        for name in ("long_prompt", "dtype", "vae", "scheduler", "scheduler_class", "num_inference_steps", "width", "height"):
            assert new.params.get(name) == source.params.get(name), name
        assert new.params["long_prompt"] == "chunk" and new.params["scheduler"] == "euler"
        # The same pixels; only the PNG's metadata (experiment, label) differs.
        assert np.array_equal(np.asarray(Image.open(again.image)), np.asarray(Image.open(source.image_path)))
        assert store.count_runs(experiment="runner-test") == 4
        assert store.count_runs(experiment=RENDERS_EXPERIMENT) == 1
        # Other seeds: new runs, nothing to compare with; the same cell again is the run it already is.
        others = rerender(source.id, store, seeds=[7, 8])
        assert [o.seed for o in others] == [7, 8] and all(o.max_diff is None for o in others)
        assert rerender(source.id, store)[0].run_id == again.run_id
        assert store.count_runs(experiment=RENDERS_EXPERIMENT) == 3


def test_rerender_refuses_an_unknown_run_and_a_changed_input(tmp_path: Path) -> None:
    from PIL import Image

    from promptlab.runner import rerender

    image = tmp_path / "input.png"
    Image.new("RGB", (64, 64), "red").save(image)
    text = EXPERIMENT.format(extra="").replace('model = "tiny-sd"', 'model = "tiny-sd"\ntask = "img2img"\nimage = "input.png"')
    text = text.replace("height = 64", "height = 64\nstrength = 0.5")
    path = tmp_path / "img.toml"
    path.write_text(text)
    with open_store() as store:
        with pytest.raises(StoreError, match="no run 999"):
            rerender(999, store)
        run_experiment(parse_experiment(text, path), store)
        source = store.list_runs(experiment="runner-test")[0]
        assert source.status == "ok"
        (again,) = rerender(source.id, store)
        new = store.get_run(again.run_id)
        assert new.params["strength"] == 0.5 and new.params["inputs"] == source.params["inputs"]
        Image.new("RGB", (64, 64), "blue").save(image)
        with pytest.raises(PromptlabError, match=r"its image .*input.png has changed since the run"):
            rerender(source.id, store)
