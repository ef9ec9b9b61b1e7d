"""One experiment split across the processes ``accelerate launch`` starts, all writing one store.

    accelerate launch --num_processes 8 -m promptlab run big.toml    # 8 GPUs, one process each
    promptlab run big.toml --processes 2                              # the same, started for you

    # in each process that accelerate started:
    with open_store() as store:
        summary = run_distributed(spec, store, progress=print)       # progress on the main process only

How it behaves:

1. The main process plans the run once (``plan_run``: the cells the store does not hold yet) and
   sends the plan to the others, so every process splits the same cells even while the others
   already write.
2. The plan's batches (each of one render group, as a one-process run makes them) are split
   between the processes by accelerate's ``split_between_processes`` without padding, so each
   batch goes to exactly one process (padding would repeat the last one: accelerate #3393,
   #3483). Where there are fewer batches than processes, the largest are halved first; a process
   still left without one renders nothing. Each process claims its cells in the store before
   rendering them (``Store.claim_cells``), so a second launch or a plain ``promptlab run`` on the
   same store never renders a cell twice.
3. Each process renders on its own device (``cuda:i``, set by accelerate), or on a CPU with
   accelerate's ``--num_cpu_threads_per_process`` torch threads, at most ``cores // processes on
   this machine`` (``launch_run`` gives that). An image's seed is its cell's, so its pixels are
   those of a one-process run (on a CPU, one with as many torch threads).
4. Only the main process reports progress, over every process's cells, read from the store.
5. Processes on several machines need one store they all reach: PostgreSQL (``PROMPTLAB_DB``).
   A SQLite file is refused there: each machine would write a file of its own.
6. When a process dies (kill -9, the out-of-memory killer), accelerate's launcher stops the
   others on its machine (SIGTERM: each finishes writing the batch it rendered and gives its
   claims back) and, ``Launch.restarts`` times (``--max_restarts``; ``promptlab run --restarts``;
   by default once on one machine and never across machines, where torch's static rendezvous
   would start one machine's processes again alone), starts them all again: they plan what is
   still missing and render it, so the command ends with every cell recorded once. Past the
   restarts, what was recorded stays, and running the same command again renders exactly what
   is missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from promptlab.errors import PeerStoppedError, PromptlabError, StoreError
from promptlab.experiment import Cell, ExperimentSpec
from promptlab.runner.sweep import (
    Plan,
    ProgressCallback,
    RunnerProgress,
    RunSummary,
    plan_run,
    run_experiment,
)
from promptlab.store import Store

#: How often the main process reads the store for the other processes' progress.
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Launch:
    """How many processes ``accelerate launch`` starts, and on how many machines (this one is ``machine_rank``)."""

    processes: int
    machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None
    #: How many times the processes start again, together, after one of them died; by default once
    #: on one machine, never across machines (torch's static rendezvous restarts one machine's alone).
    restarts: int | None = None


def launched() -> bool:
    """Whether this process is one of several that a launcher (``accelerate launch``, torchrun) started."""
    return _env_int("WORLD_SIZE", 1) > 1


def is_main_process() -> bool:
    """Whether this process reports for the others: the first one, or the only one."""
    return _env_int("RANK", 0) == 0


def launch_command(args: Sequence[str], launch: Launch) -> list[str]:
    """The ``accelerate launch`` command that runs ``python -m promptlab ARGS`` in ``launch.processes`` processes.

    ``--multi_gpu`` selects accelerate's multi-process launcher (torchrun) on a CPU as well; each
    process then finds its device itself (``run_distributed``).

    >>> launch_command(["run", "x.toml"], Launch(2))[4:]
    ['--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no', '--max_restarts', '1', '-m', 'promptlab', 'run', 'x.toml']
    """
    if launch.processes < 1:
        raise PromptlabError(f"--processes {launch.processes}: give at least 1")
    restarts = launch.restarts if launch.restarts is not None else (1 if launch.machines == 1 else 0)
    if restarts < 0:
        raise PromptlabError(f"--restarts {restarts}: give 0 or more")
    if launch.machines > 1 and not launch.main_process_ip:
        raise PromptlabError(f"{launch.machines} machines: give the main machine's address (--main_process_ip)")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--multi_gpu", "--num_processes", str(launch.processes)]
    command += ["--num_machines", str(launch.machines), "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--max_restarts", str(restarts)]
    if launch.machines > 1:
        command += ["--machine_rank", str(launch.machine_rank), "--main_process_ip", str(launch.main_process_ip)]
    if launch.main_process_port is not None:
        command += ["--main_process_port", str(launch.main_process_port)]
    return [*command, "-m", "promptlab", *args]


def launch_run(args: Sequence[str], launch: Launch, show: Callable[[str], None] | None = None) -> int:
    """Run ``promptlab ARGS`` in the processes ``launch`` asks for, through ``accelerate launch``; its exit status.

    ``show`` gets the processes' stderr as it comes (progress, errors) through ``LaunchOutput``,
    which drops the launcher's own logs; without it, stderr is passed through as it is.
    """
    if launch.machines == 1 and launch.main_process_port is None:
        # accelerate's default port (29500) would make two runs started at once on this machine meet.
        launch = dataclasses.replace(launch, main_process_port=free_port())
    env = dict(os.environ)
    # accelerate's --num_cpu_threads_per_process reads it (else 1); a count set here is kept.
    env.setdefault("OMP_NUM_THREADS", str(cpu_threads(launch.processes // launch.machines)))
    command = launch_command(args, launch)
    if show is None:
        return subprocess.run(command, env=env, check=False).returncode
    output = LaunchOutput(show)
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE) as launcher:
        assert launcher.stderr is not None
        for chunk in iter(lambda: os.read(launcher.stderr.fileno(), 65536), b""):  # type: ignore[union-attr]
            output.feed(chunk.decode(errors="replace"))
        output.close()
        return launcher.wait()


class LaunchOutput:
    """The stderr of a launch as a person wants it: the processes' progress and error lines (each
    distinct error once), without torch's launcher logs and failure report; a process that died
    of a signal (kill -9, the kernel's out-of-memory killer) is said in one line instead. A
    process that stopped only because another one did is said at the end, and only when no
    process said why (the cause was on another machine).

    >>> lines = []
    >>> out = LaunchOutput(lines.append)
    >>> out.feed("W1203 04:12:30.675000 29921 torch/distributed/elastic/api.py:1028] Sending SIGTERM\\n")
    >>> out.feed("error: no model\\nerror: no model\\n")
    >>> out.close()
    >>> lines
    ['error: no model\\n']
    """

    def __init__(self, show: Callable[[str], None]) -> None:
        self.show = show
        self.pending = ""
        self.errors: set[str] = set()  # the error lines shown, each once
        self.said_why = False  # a process's own error or death was shown
        self.report: list[str] | None = None  # torch's failure report, while it is being read
        self.in_bar = False  # the last text shown was a progress bar's, with no line end yet
        self.followers: list[str] = []  # lines of processes that stopped because another one did

    def feed(self, text: str) -> None:
        self.pending += text
        while self.pending:
            head = self.pending
            if head.startswith("\n") and self.in_bar:
                self.show("\n")
                self.pending, self.in_bar = head[1:], False
                continue
            if head.startswith("\r") or (self.in_bar and not _LINE_START.match(head)):
                # A progress bar's redraw, up to the next one, its line's end or a line of another
                # process: shown at once.
                cut = _BAR_END.search(head, 1)
                end = cut.start() if cut else len(head)
                self.show(head[:end])
                self.pending, self.in_bar = head[end:], True
                continue
            end = head.find("\n")
            if end < 0:
                return
            self.pending = head[end + 1 :]
            self._line(head[: end + 1])

    def close(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = ""
        if not self.said_why:
            for line in dict.fromkeys(self.followers):
                self._show_line(line)
        self.followers = []

    def _line(self, line: str) -> None:
        text = line.strip("\r\n")
        killed = _KILLED.search(text) if _NOISE.match(text) else None
        if killed is not None:
            rank, signal_ = killed.group(2), killed.group(1)
            self.said_why = True
            self._show_line(
                f"process {rank} of the launch died ({_signal_name(signal_)}): the launcher stops the others, "
                "and starts them all again to render what is missing while it has restarts left (--restarts)\n"
            )
            return
        if _NOISE.match(text) or (not text and self.report is None):
            return
        if re.fullmatch(r"={20,}", text):
            if self.report is None:
                self.report = []
            else:
                self._died(self.report)
                self.report = None
            return
        if self.report is not None:
            self.report.append(text)
            return
        if text.startswith("error: ") and PEER_STOPPED in text:
            self.followers.append(text + "\n")
            return
        if text.startswith("error: "):
            if text in self.errors:
                return
            self.errors.add(text)
            self.said_why = True
        self._show_line(line)

    def _show_line(self, line: str) -> None:
        if self.in_bar:  # on a line of its own, not after the bar
            self.show("\n")
            self.in_bar = False
        self.show(line)

    def _died(self, report: list[str]) -> None:
        """One line for a process that a signal ended (an error it printed itself was shown already)."""
        cause = report[report.index("Root Cause (first observed failure):") :] if "Root Cause (first observed failure):" in report else report
        rank = next((m.group(1) for m in map(re.compile(r"\s*rank\s*:\s*(\d+)").match, cause) if m), "?")
        signal_ = next((m.group(1) for m in map(re.compile(r"\s*exitcode\s*:\s*-(\d+)").match, cause) if m), None)
        if signal_ is not None:
            self.said_why = True
            self._show_line(
                f"error: process {rank} of the launch died ({_signal_name(signal_)}), and the launcher stopped the others; "
                "what was recorded stays: run the same command again to render the rest\n"
            )


def _signal_name(number: str) -> str:
    return "SIGKILL: killed, by hand or by the kernel for want of memory" if number == "9" else f"signal {number}"


# torch's agent log line for a process a signal ended: "failed (exitcode: -9) local_rank: 1 (pid: 123) of binary: ..."
_KILLED = re.compile(r"failed \(exitcode: -(\d+)\) local_rank: (\d+)")
# torch's launcher logs (glog's format), and libraries' warnings in logging's default format
# (psycopg's "error ignored terminating ..." after a lost connection): the error line says it.
_NOISE = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ |(?:WARNING|INFO|DEBUG):[\w.]+:)")
_LINE_START = re.compile(r"error: |[IWEF]\d{4} \d\d:\d\d:\d\d\.|(?:WARNING|INFO|DEBUG):[\w.]+:")
_BAR_END = re.compile(r"[\r\n]|error: |[IWEF]\d{4} \d\d:\d\d:\d\d\.|(?:WARNING|INFO|DEBUG):[\w.]+:")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_threads(local_processes: int) -> int:
    """Torch threads for each of ``local_processes`` CPU processes on this machine: its cores, shared out."""
    return max(1, (os.cpu_count() or 1) // max(1, local_processes))


def check_shared_store(url: str, machines: int) -> None:
    """Refuse a SQLite store where processes run on several machines: each would write a file of its own."""
    if machines > 1 and url.startswith("sqlite"):
        raise StoreError(
            f"the processes run on {machines} machines but the store is the SQLite file {url.removeprefix('sqlite:///')}, "
            "which each machine would write on its own; set PROMPTLAB_DB on every machine to one PostgreSQL database "
            "they all reach, e.g. PROMPTLAB_DB=postgresql+psycopg://user@db-host/promptlab"
        )


def even_batches(batches: Sequence[Sequence[Cell]], processes: int) -> list[list[Cell]]:
    """``batches`` with the largest halved (first half first, in place) until every process can have one, where cells allow.

    >>> even_batches([[1, 2, 3, 4], [5]], 3)
    [[1, 2], [3, 4], [5]]
    >>> even_batches([[1]], 4)
    [[1]]
    """
    out = [list(batch) for batch in batches]
    while len(out) < processes:
        largest = max(range(len(out)), key=lambda i: len(out[i]), default=None)
        if largest is None or len(out[largest]) < 2:
            break
        batch = out[largest]
        half = (len(batch) + 1) // 2
        out[largest : largest + 1] = [batch[:half], batch[half:]]
    return out


def run_distributed(
    spec: ExperimentSpec,
    store: Store,
    *,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    scorer: Any = None,
) -> RunSummary:
    """Run ``spec`` as one of the processes a launcher started; every process returns the summary of all.

    ``progress`` is called on the main process only, with the count over every process's cells.
    """
    from accelerate import PartialState
    from accelerate.utils import gather_object

    started = time.perf_counter()
    # 0. Stopped by the launcher (another process died), finish writing and give the claims back.
    _exit_on_sigterm()
    # 1. This process's place and device; one store shared by every machine.
    _join_process_group()
    state = PartialState(cpu=not _cuda_available())
    local = _env_int("LOCAL_WORLD_SIZE", state.num_processes)
    check_shared_store(store.url, machines=-(-state.num_processes // local))
    if state.device.type == "cpu":
        import torch

        # accelerate passes --num_cpu_threads_per_process as OMP_NUM_THREADS; never more than a fair share.
        torch.set_num_threads(min(_env_int("OMP_NUM_THREADS", cpu_threads(local)), cpu_threads(local)))
    # 2. The plan, made once by the main process; every process finds the main one's images folder.
    plan = _shared_plan(state, spec, store)

    # 3. This process's share of the batches, rendered; the main process reports for all.
    def share(batches: list[list[Cell]]) -> list[list[Cell]]:
        with state.split_between_processes(even_batches(batches, state.num_processes), apply_padding=False) as mine:
            return list(mine)

    tracker = _Tracker(store, plan, progress, started) if state.is_main_process and progress is not None else None
    mine = run_experiment(
        spec, store, batch_size=batch_size, scorer=scorer, plan=plan, share=share,
        progress=tracker.own if tracker is not None else None,
    )  # fmt: skip
    # 4. Wait for the others (the main process reporting meanwhile), then sum up.
    with _together(state, "waiting for the others to finish"):
        _wait_for_everyone(state, tracker)
        summaries: list[RunSummary] = gather_object([mine])
        _leave(state)
    return combine(plan, summaries, time.perf_counter() - started)


def _join_process_group() -> None:
    """Join the launch's process group, as accelerate would, but under a key prefix of this start's own.

    The launcher's rendezvous store outlives a restart (torch's static rendezvous keeps one
    TCPStore), so the processes started again would read the dead ones' gloo addresses and hang
    connecting to them (measured: "Gloo connectFullMesh failed ... Connection refused"). Each
    start after a restart (``TORCHELASTIC_RESTART_COUNT`` > 0) writes its keys apart;
    ``PartialState`` then finds the group made and keeps it. A first start is left to accelerate.
    """
    import datetime

    import torch
    import torch.distributed as dist

    # A first start joins as accelerate does; only a start after a restart needs keys of its own.
    if dist.is_initialized() or not launched() or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") in ("", "0"):
        return
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    store, rank, world = next(dist.rendezvous("env://", rank, world, timeout=datetime.timedelta(minutes=30)))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, store=dist.PrefixStore(f"promptlab/start_{attempt}", store), rank=rank, world_size=world)


def _exit_on_sigterm() -> None:
    """Make the launcher's SIGTERM a ``SystemExit`` in this process's main thread, so that the runner's
    ``finally`` blocks run: the batch being written is written and the process's claims go back at
    once (a process killed outright leaves them until they lapse: at once on its machine, after
    ``CLAIM_TTL_S`` on the others)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


# In the line of a process that ``_together`` ended: ``LaunchOutput`` shows it only when no other process said why.
PEER_STOPPED = "another process of the run stopped first"


@contextlib.contextmanager
def _together(state: Any, step: str) -> Iterator[None]:
    """A step every process takes at once (a barrier, a broadcast, a gather). When another process
    leaves the group meanwhile (its own error, a signal), torch's backend raises a RuntimeError in
    this one (gloo: "Connection closed by peer"): said in one line instead of a traceback."""
    try:
        yield
    except RuntimeError as error:  # torch's DistBackendError, gloo's and NCCL's errors
        raise PeerStoppedError(
            f"process {state.process_index} of the launch stopped while {step}: {PEER_STOPPED}, and its own error says why "
            "(above, or in the terminal of the machine it ran on); what was recorded stays: run the same command again to render the rest"
        ) from error


def _leave(state: Any) -> None:
    """Leave the process group together and take it down, so that no process exits while gloo's threads
    still serve it (a process with nothing to render, exiting first, died in C++: "terminate called
    without an active exception", signal 6)."""
    import torch.distributed as dist

    if state.num_processes > 1 and dist.is_initialized():
        state.wait_for_everyone()
        dist.destroy_process_group()


def _shared_plan(state: Any, spec: ExperimentSpec, store: Store) -> Plan:
    """The main process's plan, sent to every process (or its error, so that none waits for it); every
    process must see, in its own images folder, a file the main process made in its one."""
    from accelerate.utils import broadcast_object_list

    sent: list[Any] = [None]
    failed: PromptlabError | None = None
    if state.is_main_process:
        try:
            marker = store.images_dir / f".promptlab-launch-{uuid.uuid4().hex[:12]}"
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            sent[0] = (plan_run(spec, store), marker.name)
        except PromptlabError as error:
            failed, sent[0] = error, str(error)
        except OSError as error:
            failed = StoreError(f"cannot write in the images folder {store.images_dir}: {error}")
            sent[0] = str(failed)
    with _together(state, "waiting for the main process's plan"):
        broadcast_object_list(sent, from_process=0)
    if failed is not None:
        raise failed
    if isinstance(sent[0], str):
        raise PromptlabError(f"the main process could not plan the run: {sent[0]}")
    plan, name = sent[0]
    marker = store.images_dir / name
    if not marker.exists():
        raise StoreError(
            f"process {state.process_index} does not see the main process's images folder: its own is {store.images_dir}; "
            "set PROMPTLAB_HOME on every machine to one folder they all share (a network share), as PROMPTLAB_DB is one database"
        )
    with _together(state, "checking the shared images folder"):
        state.wait_for_everyone()  # every process has looked: the file can go
    if state.is_main_process:
        marker.unlink(missing_ok=True)
    return plan


def combine(plan: Plan, summaries: Sequence[RunSummary], seconds: float) -> RunSummary:
    """One summary of the processes' summaries of ``plan``."""
    first = summaries[0]
    return RunSummary(
        experiment=first.experiment,
        experiment_id=plan.experiment_id,
        total_cells=plan.total_cells,
        # Each counts the plan's skipped cells, and adds those another runner recorded meanwhile.
        skipped=plan.skipped + sum(s.skipped - plan.skipped for s in summaries),
        rendered=sum(s.rendered for s in summaries),
        failed=sum(s.failed for s in summaries),
        seconds=seconds,
        outcomes=tuple(o for s in summaries for o in s.outcomes),
        taken=sum(s.taken for s in summaries),
    )


class _Tracker:
    """The main process's progress over every process's cells: its own outcomes, and the store's count of the rest."""

    def __init__(self, store: Store, plan: Plan, progress: ProgressCallback, started: float) -> None:
        self.store, self.plan, self.progress, self.started = store, plan, progress, started
        self.keys = {cell.key for cell in plan.todo}
        self.failed_before = self._recorded()[0]  # failed cells of an earlier run that this run retries
        self.last_read = 0.0

    def own(self, own: RunnerProgress) -> None:
        if own.last is None or time.perf_counter() - self.last_read >= PROGRESS_INTERVAL_S:
            self.read(own.last)

    def read(self, last: Any = None) -> None:
        failed, ok = self._recorded()
        failed -= self.failed_before
        self.last_read = time.perf_counter()
        elapsed = self.last_read - self.started
        self.progress(RunnerProgress(len(ok) + len(failed), len(self.keys), len(failed), self.plan.skipped, elapsed, last))

    def _recorded(self) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
        """The plan's cells recorded as failed, and as ok (a lost image's cell counts as done throughout)."""
        experiment = self.plan.experiment_id
        ok = self.store.existing_cells(experiment) & self.keys
        failed = (self.store.existing_cells(experiment, include_failed=True) & self.keys) - ok
        return failed, ok


def _wait_for_everyone(state: Any, tracker: _Tracker | None) -> None:
    """accelerate's ``wait_for_everyone``; on the main process, reading the others' progress meanwhile."""
    import torch.distributed as dist

    if state.num_processes == 1 or not dist.is_initialized():
        return
    if tracker is None:
        state.wait_for_everyone()
        return
    waiting = dist.barrier(async_op=True)
    while not waiting.is_completed():
        tracker.read()
        time.sleep(PROGRESS_INTERVAL_S)
    waiting.wait()
    tracker.read()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default
