"""Executors: how the runs of a sweep are carried out. Each calls the same worker, run_one.

An executor gets the tasks still to run and an ``Events`` object (the
driver): it calls ``events.progress(task)`` whenever that task may have
finished an epoch (the driver then reads the task's record.json and appends
the new rows) and ``events.finished(task, record)`` when the run has ended.
Workers write only their own run folder; the driver alone writes
results.jsonl. A record with status "interrupted" stops the sweep.

    inline   one run after another in this process (the default)
    local    --jobs N runs at once, each in its own process, the CPU threads divided

A cluster executor (slurm, ray) is a new module with the same ``run``:
submit run_one(task.config, task.run_dir) per task, poll, report the same events.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from lmprof.config import RunConfig
from lmprof.errors import UsageError

EXECUTOR_NAMES = ("inline", "local")


@dataclass(eq=False)
class Task:
    label: str
    key: str
    config: RunConfig  # the run's full config: threads set, vocab_size in extra
    run_dir: Path


class Events(Protocol):
    def progress(self, task: Task) -> None: ...
    def finished(self, task: Task, record: dict[str, Any]) -> None: ...


class Executor:
    name = "executor"
    jobs = 1  # runs at the same time (timings of parallel runs are flagged in the tables)

    def run(self, tasks: Sequence[Task], events: Events) -> None:
        raise NotImplementedError


class InlineExecutor(Executor):
    name = "inline"

    def run(self, tasks: Sequence[Task], events: Events) -> None:
        from lmprof.sweep.worker import run_one

        for task in tasks:
            def epoch_finished(_record: dict[str, Any], task: Task = task) -> None:
                events.progress(task)

            record = run_one(task.config, task.run_dir, on_record=epoch_finished)
            events.finished(task, record)
            if record["status"] == "interrupted":
                return


class LocalProcessExecutor(Executor):
    """N worker processes (spawned: a clean interpreter each, as on a cluster node)."""

    name = "local"

    def __init__(self, jobs: int, poll_seconds: float = 0.25, grace_seconds: float = 20.0) -> None:
        self.jobs = jobs
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
                    process = context.Process(target=_child, args=(task.config, str(task.run_dir), os.getpid()),
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
        for task, process in running.items():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.terminate()
                process.join()
            events.progress(task)
            events.finished(task, _final_record(task, process.exitcode, stopped=True))
        running.clear()


def _final_record(task: Task, exitcode: int | None, stopped: bool = False) -> dict[str, Any]:
    """The record the worker wrote; if it died first, one saying so (interrupted if we stopped it)."""
    from lmprof.sweep.worker import read_record

    record = read_record(task.run_dir)
    if record is not None and record.get("status") not in (None, "running"):
        return record
    record = record or {"run": task.label, "key": task.key, "epochs": []}
    if stopped:
        record.update(status="interrupted", message="stopped before it wrote its record")
        return record
    message = f"the worker process exited with code {exitcode} before writing its record"
    record.update(status="failed", message=message,
                  error={"type": "WorkerDied", "message": message, "traceback": ""})
    return record


def _child(config: RunConfig, run_dir: str, parent_pid: int) -> None:
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
        from lmprof.sweep.worker import run_one

        run_one(config, run_dir)
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


def make_executor(name: str | None, jobs: int) -> Executor:
    if jobs < 1:
        raise UsageError(f"--jobs must be a positive integer, got {jobs}")
    name = name or ("local" if jobs > 1 else "inline")
    if name == "inline":
        if jobs > 1:
            raise UsageError("--executor inline runs one configuration at a time: drop --jobs, or use --executor local")
        return InlineExecutor()
    if name == "local":
        return LocalProcessExecutor(jobs)
    raise UsageError(f"unknown --executor {name!r}: choose one of {', '.join(EXECUTOR_NAMES)}")
