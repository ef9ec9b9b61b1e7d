"""One experiment across processes started by ``accelerate launch`` (CPU processes over gloo), into one store.

The slow tests start real launches of ``python -m promptlab run`` on the micro models, against
SQLite and, where CI runs one, PostgreSQL: every cell recorded exactly once with its file, the
pixels of a one-process run, a process killed with SIGKILL and the run completed by the
processes started again (or, without restarts, by a rerun), and two launcher groups on loopback
standing in for two machines.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from promptlab.errors import PromptlabError, StoreError
from promptlab.experiment import cells, parse_experiment
from promptlab.runner import distributed, plan_batches
from promptlab.runner.distributed import (
    Launch,
    check_shared_store,
    even_batches,
    launch_command,
)
from promptlab.store import open_store

EXPERIMENT = """
name = "{name}"
model = "micro"
seeds = [1, 2, 3, 4]
scorer = "micro-clip"
batch_size = {batch_size}

[params]
num_inference_steps = 4
width = 64
height = 64

[prompt]
subject = "a square on a black background"

[axes]
color = ["green", "blue", "orange"]
artist = ["", "Alphonse Mucha"]
"""


def write_experiment(tmp_path: Path, name: str, batch_size: int = 2) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(EXPERIMENT.format(name=name, batch_size=batch_size))
    return path


def accelerate_share(batches: list[list[int]], processes: int, index: int) -> list[list[int]]:
    """Process ``index``'s share as ``run_distributed`` takes it: accelerate's own ``split_between_processes``,
    called with a stand-in for the process's state (its count and index are all the split reads)."""
    from accelerate import PartialState

    split = contextlib.contextmanager(PartialState.split_between_processes.__wrapped__)  # type: ignore[attr-defined]
    state = SimpleNamespace(num_processes=processes, process_index=index)
    with split(state, even_batches(batches, processes), apply_padding=False) as mine:
        return list(mine)


@pytest.mark.parametrize("processes", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("sizes", [[], [1], [4], [4, 4, 4], [4, 4, 3], [2, 1], [5, 5, 5, 5, 5, 5, 5, 1]])
def test_each_batch_goes_to_one_process_whole_and_none_is_padded(processes: int, sizes: list[int]) -> None:
    cell = iter(range(1000))
    batches = [[next(cell) for _ in range(size)] for size in sizes]
    shares = [accelerate_share(batches, processes, index) for index in range(processes)]
    together = [c for share in shares for batch in share for c in batch]
    # Every cell once, in order: no padding repeats the last batch on the processes short of one.
    assert together == [c for batch in batches for c in batch]
    # Batches are only halved where processes would otherwise go without one.
    if len([b for b in batches]) >= processes:
        assert [b for share in shares for b in share] == batches
    else:
        assert sum(1 for share in shares if share) == min(processes, sum(sizes))


def test_the_plan_cut_into_batches_keeps_each_batch_within_one_render_group(tmp_path: Path) -> None:
    text = EXPERIMENT.format(name="groups", batch_size=4) + 'guidance_scale = [5.0, 7.5]\n'
    spec = parse_experiment(text, tmp_path / "groups.toml")
    batches = plan_batches(cells(spec), 4)
    assert sorted(c.key for b in batches for c in b) == sorted(c.key for c in cells(spec))
    assert all(len({c.variant.params["guidance_scale"] for c in batch}) == 1 for batch in batches)


def test_a_sqlite_store_is_refused_across_machines_and_the_fix_named() -> None:
    with pytest.raises(StoreError, match="2 machines.*SQLite file /data/promptlab.db.*set PROMPTLAB_DB") as caught:
        check_shared_store("sqlite:////data/promptlab.db", machines=2)
    assert "\n" not in str(caught.value)
    check_shared_store("sqlite:////data/promptlab.db", machines=1)
    check_shared_store("postgresql+psycopg://user@db/promptlab", machines=2)


def test_the_launch_command_passes_accelerates_own_options() -> None:
    one = launch_command(["run", "x.toml"], Launch(4))
    assert one[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert one[-4:] == ["-m", "promptlab", "run", "x.toml"] and "--machine_rank" not in one
    two = launch_command(["run", "x.toml"], Launch(4, machines=2, machine_rank=1, main_process_ip="10.0.0.1", main_process_port=29600))
    for option, value in [("--num_processes", "4"), ("--num_machines", "2"), ("--machine_rank", "1"),
                          ("--main_process_ip", "10.0.0.1"), ("--main_process_port", "29600"), ("--max_restarts", "0")]:  # fmt: skip
        assert two[two.index(option) + 1] == value
    # Once on one machine by default; never across machines, where static rendezvous restarts one machine alone.
    assert one[one.index("--max_restarts") + 1] == "1"
    assert launch_command(["run", "x.toml"], Launch(2, restarts=0))[-6:-4] == ["--max_restarts", "0"]
    with pytest.raises(PromptlabError, match="--restarts -1"):
        launch_command(["run", "x.toml"], Launch(2, restarts=-1))
    with pytest.raises(PromptlabError, match="main machine's address"):
        launch_command(["run", "x.toml"], Launch(4, machines=2))
    with pytest.raises(PromptlabError, match="--processes 0"):
        launch_command(["run", "x.toml"], Launch(0))


def test_cpu_processes_share_the_cores_without_oversubscribing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert [distributed.cpu_threads(n) for n in (1, 2, 3, 16, 32)] == [16, 8, 5, 1, 1]


def test_cli_refuses_zero_processes_in_one_line(tmp_path: Path) -> None:
    path = write_experiment(tmp_path, "zero")
    done = subprocess.run([sys.executable, "-m", "promptlab", "run", str(path), "--processes", "0"], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["error: --processes 0: give at least 1"]


# --- real launches (slow) ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, promptlab_home: Path) -> str:
    """The store every process of a launch writes: the home's SQLite file, or a schema on the CI's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{promptlab_home / 'promptlab.db'}"
    return str(request.getfixturevalue("postgres_url"))


def launch_env(url: str) -> dict[str, str]:
    env = dict(os.environ, PROMPTLAB_DB=url)
    env.pop("OMP_NUM_THREADS", None)
    return env


def run_cli(path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "promptlab", "run", str(path), "--format", "json", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=launch_env(url), timeout=600)


def recorded(url: str, experiment: str) -> dict[tuple[str, int], object]:
    """Each cell's ok run, checked: recorded once, with its image file in place."""
    with open_store(url) as store:
        runs = store.list_runs(experiment=experiment, limit=10_000)
        cells_ = [(r.variant_key, r.seed) for r in runs]
        assert len(cells_) == len(set(cells_)), "a cell was recorded twice"
        assert all(r.status == "ok" for r in runs), [r.error for r in runs if r.status != "ok"]
        assert all(r.image_sha256 and store.image_problem(r.image_sha256) is None for r in runs)
        return {(r.variant_key, r.seed): store.image_path(r.image_sha256) for r in runs if r.image_sha256}


def pixels(path: object) -> bytes:
    from PIL import Image

    with Image.open(str(path)) as image:
        return image.convert("RGB").tobytes()


@pytest.mark.slow
def test_two_processes_record_every_cell_once_with_the_pixels_of_one_process(tmp_path: Path, store_url: str) -> None:
    import torch

    from promptlab.runner import run_experiment

    path = write_experiment(tmp_path, "split", batch_size=4)
    two = run_cli(path, store_url, "--processes", "2")
    assert two.returncode == 0, two.stderr
    summary = json.loads(two.stdout)
    assert (summary["rendered"], summary["failed"], summary["total_cells"]) == (24, 0, 24)
    # Progress is shown once, by the main process, with the count over both.
    bars = [line for line in two.stderr.replace("\r", "\n").splitlines() if line.startswith("split:")]
    assert bars and all("/24" in bar for bar in bars if "%" in bar)
    split = recorded(store_url, "split")
    assert len(split) == 24
    # The same experiment in one process, into another store: the same pixels, cell by cell. With
    # the processes' torch thread count: on a CPU, another count sums floats in another order,
    # which moves an odd pixel by one level (measured: 1 image of 24, by 1, at 1 vs 2 threads).
    alone = f"sqlite:///{tmp_path / 'alone.db'}"
    spec = parse_experiment(path.read_text().replace('"split"', '"alone"'), path)
    threads = torch.get_num_threads()
    torch.set_num_threads(distributed.cpu_threads(2))
    try:
        with open_store(alone) as store:
            assert run_experiment(spec, store).rendered == 24
    finally:
        torch.set_num_threads(threads)
    one = recorded(alone, "alone")
    assert one.keys() == split.keys()
    assert all(pixels(one[key]) == pixels(split[key]) for key in one)
    # Run again: nothing is missing, nothing is rendered.
    again = run_cli(path, store_url, "--processes", "2")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rendered"] == 0


@pytest.mark.slow
def test_fewer_cells_than_processes(tmp_path: Path) -> None:
    path = tmp_path / "few.toml"
    path.write_text(EXPERIMENT.format(name="few", batch_size=4).replace("seeds = [1, 2, 3, 4]", "seeds = [1]")
                    .replace('["green", "blue", "orange"]', '["green"]').replace('["", "Alphonse Mucha"]', '[""]'))  # fmt: skip
    url = f"sqlite:///{tmp_path / 'few.db'}"
    done = run_cli(path, url, "--processes", "3")
    assert done.returncode == 0, done.stderr
    assert len(recorded(url, "few")) == 1


def worker(launcher: subprocess.Popen[str], rank: int) -> int:
    """The pid of the process of ``rank`` that a launch started (its torchrun agent's child)."""
    import psutil

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "promptlab" in child.cmdline() and child.environ().get("RANK") == str(rank):
                    return int(child.pid)
        time.sleep(0.2)
    raise AssertionError(f"no process of rank {rank} started")


def wait_for_runs(url: str, experiment: str, at_least: int, launcher: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and launcher.poll() is None:
        with contextlib.suppress(StoreError), open_store(url, read_only=True) as store:
            count = store.count_runs(experiment=experiment)
            if count >= at_least:
                return count
        time.sleep(0.2)
    raise AssertionError(f"the launch ended or stalled before {at_least} runs were recorded")


@contextlib.contextmanager
def launched(command: list[str], url: str, log: Path, **env: str) -> Iterator[subprocess.Popen[str]]:
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env={**launch_env(url), **env},
                                start_new_session=True)  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_a_process_killed_mid_run_loses_only_unfinished_cells_and_the_others_finish_the_run(
    tmp_path: Path, store_url: str
) -> None:
    path = write_experiment(tmp_path, "killed", batch_size=1)
    command = launch_command(["run", str(path), "--format", "json"], Launch(2, main_process_port=distributed.free_port()))
    with launched(command, store_url, tmp_path / "launch.log") as launcher:
        victim = worker(launcher, rank=1)
        wait_for_runs(store_url, "killed", 2, launcher)
        with open_store(store_url, read_only=True) as store:
            at_kill = {(r.variant_key, r.seed): r.image_sha256 for r in store.list_runs(experiment="killed", limit=100)}
        os.kill(victim, signal.SIGKILL)
        # The launcher stops the other process and starts both again: they render what is missing.
        assert launcher.wait(timeout=300) == 0, (tmp_path / "launch.log").read_text()[-3000:]
    assert 2 <= len(at_kill) < 24, "the kill came too late to test anything"
    after = recorded(store_url, "killed")
    assert len(after) == 24
    with open_store(store_url, read_only=True) as store:
        kept = {(r.variant_key, r.seed): r.image_sha256 for r in store.list_runs(experiment="killed", limit=100)}
    # What was recorded before the kill stays as it was: nothing is rendered twice.
    assert all(kept[cell] == sha for cell, sha in at_kill.items())


@pytest.mark.slow
def test_without_restarts_a_kill_stops_the_launch_and_a_rerun_renders_exactly_what_is_missing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    path = write_experiment(tmp_path, "killed", batch_size=1)
    command = launch_command(["run", str(path)], Launch(2, main_process_port=distributed.free_port(), restarts=0))
    with launched(command, url, tmp_path / "launch.log") as launcher:
        victim = worker(launcher, rank=1)
        wait_for_runs(url, "killed", 2, launcher)
        os.kill(victim, signal.SIGKILL)
        assert launcher.wait(timeout=120) != 0
    before = recorded(url, "killed")
    assert 2 <= len(before) < 24, "the kill came too late to test anything"
    rerun = run_cli(path, url, "--processes", "2")
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["rendered"] == 24 - len(before) and summary["skipped"] == len(before)
    after = recorded(url, "killed")
    assert len(after) == 24 and all(after[key] == before[key] for key in before)


def machine_group(path: Path, rank: int, port: int) -> list[str]:
    """One of two simulated machines: its own launcher, one process, meeting the other on loopback."""
    launch = Launch(2, machines=2, machine_rank=rank, main_process_ip="127.0.0.1", main_process_port=port)
    return launch_command(["run", str(path), "--format", "json"], launch)


@pytest.mark.slow
def test_two_machines_on_loopback_share_one_postgresql_store(tmp_path: Path, postgres_url: str) -> None:
    path = write_experiment(tmp_path, "machines", batch_size=4)
    port = distributed.free_port()
    with launched(machine_group(path, 0, port), postgres_url, tmp_path / "m0.log") as first, \
         launched(machine_group(path, 1, port), postgres_url, tmp_path / "m1.log") as second:  # fmt: skip
        assert first.wait(timeout=600) == 0, (tmp_path / "m0.log").read_text()[-3000:]
        assert second.wait(timeout=600) == 0, (tmp_path / "m1.log").read_text()[-3000:]
    assert len(recorded(postgres_url, "machines")) == 24
    # Only the main machine reports: its summary counts both machines' cells.
    assert '"rendered": 24' in (tmp_path / "m0.log").read_text()
    assert '"rendered"' not in (tmp_path / "m1.log").read_text()


@pytest.mark.slow
def test_two_machines_with_a_sqlite_store_are_refused_in_one_line(tmp_path: Path, promptlab_home: Path) -> None:
    path = write_experiment(tmp_path, "refused")
    url = f"sqlite:///{promptlab_home / 'promptlab.db'}"
    port = distributed.free_port()
    with launched(machine_group(path, 0, port), url, tmp_path / "m0.log") as first, \
         launched(machine_group(path, 1, port), url, tmp_path / "m1.log") as second:  # fmt: skip
        assert first.wait(timeout=300) != 0 and second.wait(timeout=300) != 0
    errors = [line for line in (tmp_path / "m0.log").read_text().splitlines() if line.startswith("error:")]
    assert errors and "SQLite file" in errors[0] and "set PROMPTLAB_DB" in errors[0]
    with open_store(url, read_only=True) as store:
        assert store.list_experiments() == []  # refused before the plan: no experiment, no run


TORCH_REPORT = """
============================================================
promptlab FAILED
------------------------------------------------------------
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 29999)  (SIGTERM)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 1)
  exitcode  : {code} (pid: 30000)
  error_file: <N/A>
============================================================
"""


@pytest.mark.parametrize(("code", "said"), [("-9", "process 1 of the launch died (SIGKILL"), ("1", None)])
def test_a_launch_shows_progress_and_each_error_once_without_the_launchers_logs(code: str, said: str | None) -> None:
    """What torch's launcher and two processes wrote to stderr when process 1 failed (taken from a real launch)."""
    shown: list[str] = []
    output = distributed.LaunchOutput(shown.append)
    for chunk in ["\rrun: 0img", " [00:00]", "\rrun: 1/4 [00:01]error: no model 'x'\n", "error: no model 'x'\n",
                  "\rrun: 2/4W1203 04:12:30.675000 29921 torch/distributed/elastic/api.py:1028] Sending SIGTERM\n",
                  "E1203 04:12:30.793000 29921 torch/distributed/elastic/api.py:1002] failed (exitcode: 1)\n",
                  TORCH_REPORT.format(code=code)]:  # fmt: skip
        output.feed(chunk)
    output.close()
    text = "".join(shown)
    assert text.count("error: no model 'x'") == 1 and "torch/" not in text and "=====" not in text
    lines = text.replace("\r", "\n").splitlines()
    assert "error: no model 'x'" in lines  # on a line of its own, not after the bar
    assert (said in text) if said else "died" not in text


@pytest.mark.parametrize("cause", ["error: cannot write to database x (the database cannot be reached)\n", ""])
def test_a_process_stopped_by_another_is_said_only_when_no_process_said_why(cause: str) -> None:
    """A process whose barrier broke because another one left: its line waits for the end, and
    shows only where no process said why (the cause was on another machine)."""
    follower = f"error: process 1 of the launch stopped while waiting for the others to finish: {distributed.PEER_STOPPED}, ...\n"
    shown: list[str] = []
    output = distributed.LaunchOutput(shown.append)
    for chunk in [follower, cause, follower]:
        output.feed(chunk)
    output.close()
    assert "".join(shown) == (cause or follower)


class _Proxy:
    """A TCP relay on loopback in front of the test's PostgreSQL server, which the test can cut:
    the database dropping out from under a run, as a server restart or a network fault does."""

    def __init__(self, host: str, port: int) -> None:
        import socket
        import threading

        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while self.open:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)

    def cut(self) -> None:
        import socket

        self.open = False
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.mark.slow
def test_a_postgresql_that_drops_mid_run_stops_it_in_one_line_and_a_rerun_completes_it(tmp_path: Path, postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    real = make_url(postgres_url)
    proxy = _Proxy(real.host or "127.0.0.1", real.port or 5432)
    through = real.set(port=proxy.port).render_as_string(hide_password=False)
    path = write_experiment(tmp_path, "dropped", batch_size=1)
    command = [sys.executable, "-m", "promptlab", "run", str(path), "--processes", "2"]
    with (tmp_path / "err.log").open("w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=launch_env(through))
        try:
            wait_for_runs(postgres_url, "dropped", 2, proc)
            proxy.cut()
            assert proc.wait(timeout=300) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
    lines = [line for line in (tmp_path / "err.log").read_text().replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert errors and all(str(proxy.port) in line for line in errors), lines
    # Whether the cut came mid-transaction or between two (the server then refuses the next connection).
    assert all("the database cannot be reached" in line and "run the same command again" in line for line in errors), errors
    assert not [line for line in lines if "Traceback" in line or "torch/" in line or "WARNING" in line], lines
    before = recorded(postgres_url, "dropped")
    assert 2 <= len(before) < 24
    again = run_cli(path, postgres_url, "--processes", "2")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rendered"] == 24 - len(before)
    assert len(recorded(postgres_url, "dropped")) == 24


@pytest.mark.slow
def test_a_device_out_of_memory_is_said_in_one_line_on_each_cell_and_a_rerun_renders_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's own out-of-memory error, raised where a GPU's allocator would (no GPU here to fill)."""
    import torch

    from promptlab.render import engine
    from promptlab.runner import run_experiment

    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 1; 23.65 GiB total)")

    path = write_experiment(tmp_path, "oom", batch_size=4)
    with monkeypatch.context() as patched, open_store() as store:
        patched.setattr(engine, "render", no_memory)
        summary = run_experiment(parse_experiment(path.read_text(), path), store)
        assert (summary.failed, summary.rendered) == (24, 0)
        errors = {run.error for run in store.list_runs(experiment="oom", status="failed", limit=100)}
        (message,) = {error for error in errors if error}
        assert "\n" not in message and "ran out of memory rendering a batch of 4 images of micro at 64x64" in message
        assert "smaller --batch-size (now 4)" in message and "CUDA out of memory" in message
    with open_store() as store:
        again = run_experiment(parse_experiment(path.read_text(), path), store)
        assert (again.rendered, again.failed) == (24, 0)
        assert len(recorded(f"sqlite:///{store.db_path()}", "oom")) == 24  # each cell once, now ok


@pytest.mark.parametrize(
    ("error", "expected"),
    [(MemoryError(), True), (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), True),
     (RuntimeError("MPS backend out of memory (MPS allocated: 9.00 GB)"), True), (RuntimeError("shape mismatch"), False),
     (ValueError("out of memory"), False)],
)  # fmt: skip
def test_out_of_memory_is_told_from_other_errors(error: BaseException, expected: bool) -> None:
    from promptlab.runner.sweep import out_of_memory

    assert out_of_memory(error) is expected


@pytest.mark.slow
def test_a_machine_that_does_not_share_the_images_folder_is_refused_in_one_line(tmp_path: Path, postgres_url: str) -> None:
    path = write_experiment(tmp_path, "unshared")
    port = distributed.free_port()
    with launched(machine_group(path, 0, port), postgres_url, tmp_path / "m0.log", PROMPTLAB_HOME=str(tmp_path / "home-0")) as first, \
         launched(machine_group(path, 1, port), postgres_url, tmp_path / "m1.log", PROMPTLAB_HOME=str(tmp_path / "home-1")) as second:  # fmt: skip
        assert first.wait(timeout=300) != 0 and second.wait(timeout=300) != 0
    errors = [line for line in (tmp_path / "m1.log").read_text().splitlines() if line.startswith("error:")]
    assert errors and "does not see the main process's images folder" in errors[0] and "PROMPTLAB_HOME" in errors[0]
    with open_store(postgres_url, read_only=True) as store:
        names = {e.name for e in store.list_experiments()}
        assert "unshared" not in names or store.count_runs(experiment="unshared") == 0
