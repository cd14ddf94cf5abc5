"""--executor ray: one plain Ray task per run, on a cluster you name or on a local one.

    lmprof sweep --models LSTM GRU --vary nhid=200,400,600 --executor ray \\
        --ray-address auto --gpus-per-run 1 --cpus-per-run 4

Each task calls ``run_one(config, run_dir, sweep)`` and asks Ray for whole GPUs
(``num_gpus``: Ray sets CUDA_VISIBLE_DEVICES, so a run owns its GPU) and for
its CPUs (``num_cpus``, also its torch thread count). ``max_retries=0``: a
crashed run is reported as failed, not silently run again (Ray's default
retries three times). The driver (this process) polls the run folders for
finished epochs and alone appends to results.jsonl; run folders must be on
a filesystem the workers share.

Without ``--ray-address`` a local cluster is started for the sweep and shut
down after it: dashboard off, usage stats off, every server on 127.0.0.1,
a token of its own for authentication (nothing saved to ~/.ray), its
temporary folder in ``$RAY_TMPDIR`` or a fresh folder in the system's
temporary folder (not /tmp/ray). An already initialised Ray session (a
notebook, a test) is used as it is.

Ctrl-C: each started run is asked to stop through its folder (a
``stop-requested`` file, see ``lmprof.sweeps.worker.StopOnRequest``) and ends
as Ctrl-C ends ``lmprof train``: no more training, test, its record saved.
Resume: Ray tasks belong to the driver and end with it, so a rerun runs
the unfinished runs again (``--cancel-on-exit`` is a SLURM flag).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from lmprof.config import RunConfig
from lmprof.errors import UsageError
from lmprof.record.sections import JOB_ID
from lmprof.sweeps.executors import Events, Executor, Resources, Task, cluster_threads, ended_record, remote_config

# Set before `import ray` when this process starts the cluster (Ray reads some at import).
LOCAL_CLUSTER_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ray's own switch for "no multi-node cluster": the node's address is the loopback one,
    # so the GCS, raylet and workers listen on 127.0.0.1 only (not on every interface).
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


def run_in_ray(config: RunConfig, run_dir: str, sweep: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: run_one, with the task id as the record's job id (a picklable top-level function)."""
    import ray

    from lmprof.sweeps.worker import StopOnRequest, run_one

    task_id = ray.get_runtime_context().get_task_id()
    # max_retries=0: each run has one attempt. The driver's Ctrl-C reaches it through its folder.
    return run_one(config, run_dir, {**sweep, "scheduler": "ray", JOB_ID: task_id, "attempt": 1},
                   watchers=[StopOnRequest(run_dir)])


class RayExecutor(Executor):
    name = "ray"

    poll_seconds = 1.0  # how often the run folders are read for finished epochs
    grace_seconds = 20.0  # after Ctrl-C, how long a run may take to write its record

    def __init__(self, resources: Resources, address: str | None = None) -> None:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UsageError("--executor ray needs Ray: pip install 'lmprof[ray]'")
        self.resources = resources
        self.cpus_per_run = resources.cpus_per_run
        self.address = address
        self._started = False  # this executor started Ray (and shuts it down)
        self._temp_dir: str | None = None  # made by us: removed at shutdown
        self._saved_env: dict[str, str | None] = {}

    def adapt(self, base: RunConfig) -> RunConfig:
        return cluster_threads(base, self.resources, self.name, self.resources.gpus)

    def describe(self, tasks: Sequence[Task]) -> str:
        where = f"cluster {self.address}" if self.address else "local cluster"
        return f"ray tasks on {where}, {self.resources.max_parallel or 'as many as fit'} at a time"

    # --- the cluster ---

    def _connect(self) -> Any:
        import sys

        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            return sys.modules["ray"]  # a session someone else started: use it as it is
        env = dict(LOCAL_CLUSTER_ENV) if not self.address else {"RAY_USAGE_STATS_ENABLED": "0"}
        if not self.address and not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))  # this cluster's own token
        for name, value in env.items():
            if name not in os.environ:
                self._saved_env[name] = None
                os.environ[name] = value
        import ray

        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "logging_level": "warning", "configure_logging": False}
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:
                temp = os.environ.get("RAY_TMPDIR")
                if temp:
                    Path(temp).mkdir(parents=True, exist_ok=True)
                else:  # short: Ray's socket paths must stay under 107 characters
                    temp = self._temp_dir = tempfile.mkdtemp(prefix="lmprof-ray-")
                ray.init(_temp_dir=str(Path(temp).absolute()), **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            self._restore_env()
            where = f"--ray-address {self.address}" if self.address else "a local Ray cluster"
            raise UsageError(f"cannot start or reach {where}: {' '.join(str(e).split())[:300]}") from None
        self._started = True
        return ray

    def _disconnect(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
        self._restore_env()

    def _restore_env(self) -> None:
        for name in self._saved_env:
            os.environ.pop(name, None)
        self._saved_env = {}

    # --- running ---

    def run(self, tasks: Sequence[Task], events: Events) -> None:
        if not tasks:
            return
        ray = self._connect()
        try:
            cpus = self.cpus_per_run or tasks[0].config.threads or 1
            if not self.address:  # a remote cluster may scale up for them
                self._check_fits(ray, cpus)
            remote = ray.remote(run_in_ray).options(num_cpus=cpus, num_gpus=self.resources.gpus, max_retries=0,
                                                    name="lmprof-sweep-run")
            self._loop(ray, remote, list(tasks), events)
        finally:
            self._disconnect()

    def _check_fits(self, ray: Any, cpus: int) -> None:
        """A task that asks for more than the cluster has would wait forever: say so instead."""
        total = ray.cluster_resources()
        need = {"CPU": float(cpus), "GPU": float(self.resources.gpus)}
        for kind, amount in need.items():
            if amount and total.get(kind, 0.0) < amount:
                flag = "--gpus-per-run" if kind == "GPU" else "--cpus-per-run (or --threads)"
                raise UsageError(f"each run asks Ray for {amount:g} {kind}(s) but the cluster has "
                                 f"{total.get(kind, 0.0):g}: lower {flag}, or use a bigger cluster")

    def _loop(self, ray: Any, remote: Any, pending: list[Task], events: Events) -> None:
        from lmprof.sweeps.worker import clear_stop_request

        running: dict[Any, Task] = {}  # object ref -> task
        timed_out: set[Task] = set()
        try:
            while pending or running:
                while pending and len(running) < (self.resources.max_parallel or len(pending) + len(running)):
                    task = pending.pop(0)
                    cfg = remote_config(task, self.resources.gpus)
                    clear_stop_request(task.run_dir)  # an earlier sweep's Ctrl-C must not stop this one
                    running[remote.remote(cfg, cfg.out, task.sweep)] = task
                ready, _ = ray.wait(list(running), num_returns=1, timeout=self.poll_seconds)
                for task in running.values():
                    events.progress(task)
                for ref in ready:
                    task = running.pop(ref)
                    record = self._result(ray, ref, task, task in timed_out)
                    events.finished(task, record)
                    if record.get("status") == "interrupted":
                        pending.clear()  # someone stopped a run: stop the sweep
                self._enforce_time_limit(ray, running, timed_out)
        except KeyboardInterrupt:
            pending.clear()
            self._stop(ray, running, events)
            raise

    def _result(self, ray: Any, ref: Any, task: Task, timed_out: bool) -> dict[str, Any]:
        try:
            return dict(ray.get(ref))
        except Exception as e:  # the worker died (crash, kill, cancel): no retry, a record saying so
            if timed_out:
                return ended_record(task, f"stopped by the driver at --time-min {self.resources.time_min:g}",
                                    error_type="TimeLimit")
            message = f"the Ray worker ended before the run wrote its record ({e.__class__.__name__})"
            return ended_record(task, message, error_type="WorkerDied", details=str(e)[-4000:])

    def _enforce_time_limit(self, ray: Any, running: dict[Any, Task], timed_out: set[Task]) -> None:
        """--time-min: counted from the run's start (its first record), not from its submission."""
        if not self.resources.time_min:
            return
        from lmprof.sweeps.worker import read_record

        limit = self.resources.time_min * 60.0
        for ref, task in running.items():
            record = read_record(task.run_dir)
            started = record.get("started") if record and record.get("key") == task.key else None
            if task in timed_out or not started:
                continue
            elapsed = (datetime.now().astimezone() - datetime.fromisoformat(started)).total_seconds()
            if elapsed > limit:
                ray.cancel(ref, force=True)
                timed_out.add(task)

    def _stop(self, ray: Any, running: dict[Any, Task], events: Events) -> None:
        """Ctrl-C: stop the runs as Ctrl-C in a terminal would (they test and write their record), then collect.

        A run that has started is asked through its folder (``request_stop``): Ray's
        own interrupt, ``ray.cancel(force=False)``, often does not reach a busy task.
        A task that has not started yet is cancelled (Ray drops it). What has not
        ended after ``grace_seconds`` is killed and recorded as stopped.
        """
        from lmprof.sweeps.worker import read_record, request_stop

        asked: set[Task] = set()  # started runs, asked through their folder
        for ref, task in running.items():
            record = read_record(task.run_dir)
            if record and record.get("key") == task.key:
                request_stop(task.run_dir)
                asked.add(task)
            else:
                ray.cancel(ref, force=False)
        deadline = time.monotonic() + self.grace_seconds
        while running and time.monotonic() < deadline:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:  # its own record when it wrote one (ended_record reads it)
                task = running.pop(ref)
                why = "stopped before it wrote its record" if task in asked else "stopped before it started"
                events.finished(task, ended_record(task, why, status="interrupted"))
        for ref, task in running.items():
            ray.cancel(ref, force=True)
            events.finished(task, ended_record(task, "stopped before it wrote its record", status="interrupted"))
        running.clear()
