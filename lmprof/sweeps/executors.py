"""Executors: how the runs of a sweep are carried out. Each calls the same worker, run_one.

An executor gets the tasks still to run and an ``Events`` object (the
driver): it calls ``events.progress(task)`` whenever that task may have
finished an epoch (the driver then reads the run's record from its
result.json and appends the new rows) and ``events.finished(task, record)`` when the run has ended.
Workers write only their own run folder; the driver alone writes
results.jsonl. A record with status "interrupted" stops the sweep.

    inline   one run after another in this process (the default)
    local    --jobs N runs at once, each in its own process, the CPU threads divided
    slurm    one job array through submitit (lmprof/sweeps/slurm.py)
    ray      one Ray task per run (lmprof/sweeps/ray_executor.py)

The common flags (``Resources``: --gpus-per-run, --cpus-per-run,
--max-parallel, --time-min) are honoured by every executor or refused with
a UsageError saying which executor honours them. Before ``run`` the driver
calls ``prepare(folder, fresh)`` (a cluster executor keeps its files in the
sweep folder) and ``adapt(base)`` (the threads and device every run gets).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from lmprof.config import RunConfig
from lmprof.errors import UsageError

EXECUTOR_NAMES = ("inline", "local", "slurm", "ray")
# Flags only one executor understands (argparse dest -> executor).
EXECUTOR_OPTIONS = {"partition": "slurm", "gres": "slurm", "gpus_per_node": "slurm", "constraint": "slurm",
                    "setup": "slurm", "exclusive": "slurm", "cancel_on_exit": "slurm", "ray_address": "ray"}


@dataclass(frozen=True)
class Resources:
    """What each run may use, and how many run at once: the flags every executor honours or refuses."""

    gpus_per_run: float | None = None  # whole GPUs a run owns (0 or 1: the reference loop uses one device)
    cpus_per_run: int | None = None  # CPUs a run reserves; also its torch thread count
    max_parallel: int | None = None  # runs at the same time, at most
    time_min: float | None = None  # a run's time limit, in minutes

    def validate(self) -> "Resources":
        gpus = self.gpus_per_run
        if gpus is not None and (gpus != int(gpus) or gpus < 0):
            raise UsageError(f"--gpus-per-run {gpus:g}: no fractional GPUs: each run owns a whole GPU (0 or 1)")
        if gpus is not None and gpus > 1:
            raise UsageError(f"--gpus-per-run {gpus:g}: a run trains on one device; ask for 0 or 1")
        for flag, value in (("--cpus-per-run", self.cpus_per_run), ("--max-parallel", self.max_parallel)):
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be a positive integer, got {value}")
        if self.time_min is not None and not self.time_min > 0:
            raise UsageError(f"--time-min must be a positive number of minutes, got {self.time_min:g}")
        return self

    @property
    def gpus(self) -> int:
        return int(self.gpus_per_run or 0)


@dataclass(eq=False)
class Task:
    label: str
    key: str
    config: RunConfig  # the run's full config: threads set
    run_dir: Path
    sweep: dict[str, Any] = field(default_factory=dict)  # run_one's ``sweep``: run, key, vocab_size, grad_stats


class Events(Protocol):
    def progress(self, task: Task) -> None: ...
    def finished(self, task: Task, record: dict[str, Any]) -> None: ...


class Executor:
    name = "executor"
    jobs = 1  # runs at the same time on this machine (timings of parallel runs are flagged in the tables)
    cpus_per_run: int | None = None
    left_running: tuple[str, ...] = ()  # scheduler jobs still going after an interrupted run()

    def prepare(self, folder: Path, fresh: bool) -> None:
        """The sweep folder (locked by the driver), before anything is cleared or run."""

    def adapt(self, base: RunConfig) -> RunConfig:
        """The base config as every run gets it: its torch threads (and device)."""
        if base.threads and self.cpus_per_run and base.threads != self.cpus_per_run:
            raise UsageError(f"--threads {base.threads} and --cpus-per-run {self.cpus_per_run} disagree: give one")
        if self.cpus_per_run:
            return base.replace(threads=self.cpus_per_run)
        return base.replace(threads=threads_per_run(self.jobs, base.threads))

    def describe(self, tasks: Sequence[Task]) -> str:
        """How the tasks will run, for the driver's first log line."""
        return f"{self.name}, {self.jobs} at a time"

    def run(self, tasks: Sequence[Task], events: Events) -> None:
        raise NotImplementedError


class InlineExecutor(Executor):
    name = "inline"

    def __init__(self, cpus_per_run: int | None = None) -> None:
        self.cpus_per_run = cpus_per_run
        # watchers(task, i, n): instruments that watch run i of n (the CLI's progress display)
        self.watchers: Callable[[Task, int, int], list[Any]] | None = None

    def run(self, tasks: Sequence[Task], events: Events) -> None:
        from lmprof.sweeps.worker import run_one

        for i, task in enumerate(tasks, 1):
            def epoch_finished(_record: dict[str, Any], task: Task = task) -> None:
                events.progress(task)

            watchers = self.watchers(task, i, len(tasks)) if self.watchers else []
            record = run_one(task.config, task.run_dir, task.sweep, on_record=epoch_finished, watchers=watchers)
            events.finished(task, record)
            if record["status"] == "interrupted":
                return


class LocalProcessExecutor(Executor):
    """N worker processes (spawned: a clean interpreter each, as on a cluster node)."""

    name = "local"

    def __init__(self, jobs: int, poll_seconds: float = 0.25, grace_seconds: float = 20.0,
                 cpus_per_run: int | None = None) -> None:
        self.jobs = jobs
        self.cpus_per_run = cpus_per_run
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds  # after Ctrl-C, how long a run may take to write its record

    def run(self, tasks: Sequence[Task], events: Events) -> None:
        import multiprocessing
        from multiprocessing.connection import wait

        context = multiprocessing.get_context("spawn")
        pending = list(tasks)
        running: dict[Task, Any] = {}
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    task = pending.pop(0)
                    process = context.Process(target=_child, args=(task.config, str(task.run_dir), task.sweep, os.getpid()),
                                              name=f"lmprof-sweep {task.label}", daemon=True)
                    process.start()
                    running[task] = process
                wait([p.sentinel for p in running.values()], timeout=self.poll_seconds)
                for task, process in list(running.items()):
                    events.progress(task)
                    if process.exitcode is not None:
                        del running[task]
                        record = _final_record(task, process.exitcode)
                        events.finished(task, record)
                        if record["status"] == "interrupted":
                            pending.clear()  # someone stopped a run: stop the sweep
        except KeyboardInterrupt:
            pending.clear()
            raise
        finally:
            self._stop(running, events)

    def _stop(self, running: dict[Task, Any], events: Events) -> None:
        """Ask the runs still going to stop (as Ctrl-C does), then collect their records."""
        for process in running.values():
            if process.exitcode is None:
                try:
                    os.kill(process.pid, signal.SIGINT)
                except OSError:
                    pass
        deadline = time.monotonic() + self.grace_seconds
        for process in running.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.terminate()
                process.join()
        # Every worker has ended before the driver records them: a second Ctrl-C
        # while it does cannot leave a worker behind.
        for task, process in running.items():
            events.progress(task)
            events.finished(task, _final_record(task, process.exitcode, stopped=True))
        running.clear()


def _final_record(task: Task, exitcode: int | None, stopped: bool = False) -> dict[str, Any]:
    """The record the worker wrote; if it died first, one saying so (interrupted if we stopped it)."""
    if stopped:
        return ended_record(task, "stopped before it wrote its record", status="interrupted")
    return ended_record(task, f"the worker process exited with code {exitcode} before writing its record")


def ended_record(task: Task, message: str, *, status: str = "failed", error_type: str = "WorkerDied",
                 details: str = "") -> dict[str, Any]:
    """The worker's last record if it wrote its end; else its last record (or a new one) ended with ``message``."""
    from lmprof.sweeps.worker import read_record

    record = read_record(task.run_dir)
    if record is not None and record.get("status") not in (None, "running"):
        return record
    record = record or {"run": task.label, "key": task.key, "epochs": []}
    record.update(status=status, message=message)
    if status == "failed":
        record["error"] = {"type": error_type, "message": message, "traceback": details}
    return record


def remote_config(task: Task, gpus: int) -> RunConfig:
    """The task's config for a process elsewhere: absolute paths (its working folder differs), and
    the CPU when it owns no GPU (so it cannot share GPU 0 with the runs that own it)."""
    cfg = task.config.replace(out=str(Path(task.run_dir).absolute()),
                              data=str(Path(task.config.data).absolute()) if task.config.data else None)
    return cfg.replace(device="cpu") if gpus == 0 and cfg.device == "auto" else cfg


def cluster_threads(base: RunConfig, resources: Resources, executor: str, gpus: int) -> RunConfig:
    """Threads and device of a run on a scheduler. Without --threads or --cpus-per-run a run uses the
    thread count `lmprof train` uses on this machine, so its numbers match an inline run's to the last
    digit (a GRU's perplexity moves in the 6th decimal with the thread count)."""
    threads, cpus = base.threads, resources.cpus_per_run
    if threads and cpus and threads > cpus:
        raise UsageError(f"--threads {threads} is more than --cpus-per-run {cpus}: each run would "
                         "oversubscribe its CPUs; drop --threads or raise --cpus-per-run")
    if not (threads or cpus):
        import torch

        threads = torch.get_num_threads()
    if base.device in ("cuda", "mps") and gpus == 0:
        raise UsageError(f"--device {base.device} with --executor {executor}: give each run its GPU with "
                         "--gpus-per-run 1 (or use --device auto)")
    return base.replace(threads=threads or cpus)


def _child(config: RunConfig, run_dir: str, sweep: dict[str, Any], parent_pid: int) -> None:
    """A worker process: one run, then exit. It dies with the driver rather than outlive it."""
    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)  # the driver is gone (killed): a rerun will redo this run

    def interrupt_once(signum: int, frame: Any) -> None:
        # The terminal's Ctrl-C and the driver's own SIGINT may both arrive: the
        # second must not cut the worker off while it writes its record.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt_once)
    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        from lmprof.sweeps.worker import run_one

        run_one(config, run_dir, sweep)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def threads_per_run(jobs: int, threads: int | None) -> int | None:
    """Divide this machine's CPUs (or --threads) among the runs; None: torch's default (one run)."""
    if jobs == 1:
        return threads
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, (threads or cpus) // jobs)
