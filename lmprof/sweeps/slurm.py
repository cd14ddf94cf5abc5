"""--executor slurm: a sweep's runs as one SLURM job array, submitted through submitit.

    lmprof sweep --models LSTM GRU --vary nhid=200,400,600 --executor slurm \\
        --partition gpu --gpus-per-run 1 --cpus-per-run 4 --time-min 120 --setup "module load cuda"

Each run is one element of the array: ``run_one(config, run_dir, sweep)`` in a job
of its own, which writes only its run folder. This process (the driver)
polls the run folders for finished epochs, asks ``sacct`` (through
submitit) which jobs ended, and alone appends to results.jsonl.

In the sweep folder, which the cluster's nodes must share:

    submitit/          job script, pickles and logs (<array>_<index>_0_log.out / .err)
    slurm_jobs.json    run key -> job id, for each submitted run not yet seen to end

Resume: a rerun re-attaches to the jobs of slurm_jobs.json that are still
queued or running (and collects those that ended meanwhile) instead of
submitting them again; the rest go out as a new array. Ctrl-C asks whether
to cancel the submitted jobs (``--cancel-on-exit`` / ``--no-cancel-on-exit``
decide without asking; with no terminal to ask, they keep running and a
rerun collects them).

Only submitit's SlurmExecutor is used: its AutoExecutor would fall back,
off a cluster, to the LocalExecutor, which starts every job at once, puts
them all on GPU 0 and kills them after about 90 s.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from lmprof.config import RunConfig
from lmprof.errors import UsageError
from lmprof.fsutil import write_text_atomic
from lmprof.record.sections import JOB_ID
from lmprof.sweeps.executors import (Events, Executor, Resources, Task, cluster_threads, ended_record,
                                    remote_config)

SUBMITIT_FOLDER = "submitit"
JOBS_FILE = "slurm_jobs.json"
# sacct states of a job that ended without its run's record: how the run ends.
INTERRUPTED_STATES = ("CANCELLED",)


def gres_gpus(gres: str | None) -> int:
    """GPUs a --gres asks for: "gpu:2" -> 2, "gpu:a100:1" -> 1, "gpu" -> 1, "shard:4" -> 0."""
    if not gres:
        return 0
    parts = gres.split(",")[0].split(":")
    if parts[0] != "gpu":
        return 0
    return int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1


class SlurmExecutor(Executor):
    name = "slurm"
    poll_seconds = 5.0  # how often the run folders are read for finished epochs
    sacct_seconds = 60.0  # how often sacct is asked, at least, which jobs ended

    def __init__(self, resources: Resources, *, partition: str | None = None, gres: str | None = None,
                 gpus_per_node: int | None = None, constraint: str | None = None, setup: Sequence[str] = (),
                 exclusive: bool = False, cancel_on_exit: bool | None = None,
                 confirm_cancel: Callable[[int], bool] | None = None) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise UsageError("--executor slurm needs submitit: pip install 'lmprof[slurm]'") from None
        if resources.time_min is None:
            raise UsageError("--executor slurm needs --time-min: each run's time limit in minutes "
                             "(without it submitit asks SLURM for 5)")
        if resources.gpus_per_run is not None and gpus_per_node is not None and gpus_per_node != resources.gpus:
            raise UsageError(f"--gpus-per-run {resources.gpus} and --gpus-per-node {gpus_per_node} disagree: "
                             "one run is one job on one node; give one of them")
        self.resources = resources
        self.cpus_per_run = resources.cpus_per_run
        self.partition, self.gres, self.constraint = partition, gres, constraint
        self.gpus_per_node = gpus_per_node if gpus_per_node is not None else (resources.gpus or None)
        self.setup, self.exclusive = list(setup), exclusive
        self.cancel_on_exit, self.confirm_cancel = cancel_on_exit, confirm_cancel
        self.folder = Path(".")
        self.left_running: tuple[str, ...] = ()
        self._jobs: dict[str, dict[str, Any]] = {}  # run key -> {"job_id", "run", "submitted"}

    # --- the sweep folder: submitit's files and the run -> job map ---

    @property
    def submitit_folder(self) -> Path:
        return self.folder / SUBMITIT_FOLDER

    @property
    def gpus(self) -> int:
        return max(gres_gpus(self.gres), self.gpus_per_node or 0)

    def prepare(self, folder: Path, fresh: bool) -> None:
        self.folder = Path(folder).absolute()
        self._jobs = self._load_map()
        if fresh and self._jobs:
            # Jobs of the sweep being forgotten would write into run folders of the new one.
            self._scancel([entry[JOB_ID] for entry in self._jobs.values()])
            self._jobs = {}
        if fresh:
            shutil.rmtree(self.submitit_folder, ignore_errors=True)
            (self.folder / JOBS_FILE).unlink(missing_ok=True)
        try:
            self.submitit_folder.mkdir(parents=True, exist_ok=True)
            probe = self.submitit_folder / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise UsageError(f"--executor slurm: cannot write {self.submitit_folder} ({e.strerror}): the sweep "
                             "folder must be on a filesystem every node shares and you can write; "
                             "choose --out there") from None

    def _load_map(self) -> dict[str, dict[str, Any]]:
        try:
            from lmprof.safe_files import LOG_BYTES, read_member

            doc = json.loads(read_member(self.folder, JOBS_FILE, limit=LOG_BYTES))
        except (OSError, ValueError, UsageError, RecursionError):
            return {}
        jobs = doc.get("jobs") if isinstance(doc, dict) else None
        return {k: v for k, v in jobs.items() if isinstance(v, dict) and v.get(JOB_ID)} if jobs else {}

    def _save_map(self) -> None:
        doc = {"schema_version": 1, "submitit_folder": SUBMITIT_FOLDER, "jobs": self._jobs}
        write_text_atomic(self.folder / JOBS_FILE, json.dumps(doc, indent=1) + "\n")

    def _forget(self, key: str) -> None:
        if self._jobs.pop(key, None) is not None:
            self._save_map()

    # --- what each run gets ---

    def adapt(self, base: RunConfig) -> RunConfig:
        return cluster_threads(base, self.resources, self.name, self.gpus)

    def describe(self, tasks: Sequence[Task]) -> str:
        attached = sum(task.key in self._jobs for task in tasks)
        at_once = self.resources.max_parallel or "all"
        text = f"slurm job array, {at_once} at a time"
        return text + (f", re-attaching to {attached} job(s) submitted before" if attached else "")

    def _parameters(self, cpus: int) -> dict[str, Any]:
        """submitit's SlurmExecutor parameters (the #SBATCH lines of the array's script)."""
        minutes = math.ceil(self.resources.time_min or 0)  # SLURM counts whole minutes
        params: dict[str, Any] = {"job_name": f"lmprof-{self.folder.name}", "time": minutes,
                                  "nodes": 1, "ntasks_per_node": 1, "cpus_per_task": cpus}
        optional = {"partition": self.partition, "gres": self.gres, "constraint": self.constraint,
                    "gpus_per_node": self.gpus_per_node or None, "array_parallelism": self.resources.max_parallel,
                    "setup": self.setup or None, "exclusive": True if self.exclusive else None}
        params.update({k: v for k, v in optional.items() if v is not None})
        return params

    # --- running ---

    def run(self, tasks: Sequence[Task], events: Events) -> None:
        from submitit.slurm.slurm import SlurmJob

        running: dict[Task, Any] = {}
        to_submit: list[Task] = []
        for task in tasks:  # re-attach first: a run submitted before is not submitted again
            entry = self._jobs.get(task.key)
            if entry is None:
                to_submit.append(task)
            else:
                running[task] = SlurmJob(self.submitit_folder, str(entry[JOB_ID]))
        if running:
            next(iter(running.values())).watcher.update()  # one sacct call for all of them
        for task, job in list(running.items()):
            if job.watcher.get_state(job.job_id, mode="cache") == "UNKNOWN" and not job.paths.result_pickle.exists():
                del running[task]  # sacct does not know it (purged, another cluster): submit it again
                self._forget(task.key)
                to_submit.append(task)
        try:
            if to_submit:
                running.update(self._submit(to_submit))
            self._poll(running, events)
        except KeyboardInterrupt:
            self._interrupted(running, events)
            raise

    def _submit(self, tasks: list[Task]) -> dict[Task, Any]:
        import submitit
        from submitit.core.utils import FailedJobError, FailedSubmissionError

        from lmprof.sweeps.worker import run_one

        try:
            executor = submitit.SlurmExecutor(folder=self.submitit_folder)
        except RuntimeError:
            raise UsageError("--executor slurm: no `srun` on PATH; run the sweep on the cluster's login node") from None
        cpus = self.cpus_per_run or tasks[0].config.threads or 1
        executor.update_parameters(**self._parameters(cpus))
        configs = [remote_config(task, self.gpus) for task in tasks]
        try:
            jobs = executor.map_array(run_one, configs, [cfg.out for cfg in configs], [task.sweep for task in tasks])
        except (FailedJobError, FailedSubmissionError) as e:
            reason = " ".join(str(e).split())[:300] or "no message"
            raise UsageError(f"sbatch refused the job array: {reason} (check --partition, --gres, "
                             "--constraint, --time-min)") from None
        submitted = {}
        for task, job in zip(tasks, jobs):
            self._jobs[task.key] = {JOB_ID: job.job_id, "run": task.label, "submitted": time.time()}
            submitted[task] = job
        self._save_map()  # before anything else can fail: a rerun re-attaches to these
        return submitted

    def _poll(self, running: dict[Task, Any], events: Events) -> None:
        last_sacct = time.monotonic()
        while running:
            time.sleep(self.poll_seconds)
            if time.monotonic() - last_sacct > self.sacct_seconds:
                # submitit asks sacct less and less often (up to every 10 min); a job that died
                # without a result file is only seen through sacct, so ask at least this often.
                next(iter(running.values())).watcher.update()
                last_sacct = time.monotonic()
            for task, job in list(running.items()):
                events.progress(task)
                if job.done():
                    del running[task]
                    events.finished(task, self._final_record(task, job))
                    self._forget(task.key)

    def _final_record(self, task: Task, job: Any) -> dict[str, Any]:
        """The run's own record; else why the job ended without it (sacct's state, the job's stderr)."""
        from lmprof.sweeps.worker import read_record

        record = read_record(task.run_dir)
        if record is not None and record.get("status") not in (None, "running"):
            return record
        state = job.watcher.get_state(job.job_id, mode="cache") or "UNKNOWN"
        details = ""
        if job.paths.result_pickle.exists():
            outcome, value = job._get_outcome_and_result()  # the file exists: no waiting
            details = str(value) if outcome == "error" else ""
        details = details or (job.stderr() or "")[-4000:]
        if state.split()[0] in INTERRUPTED_STATES:
            return ended_record(task, f"slurm job {job.job_id} was cancelled ({state})", status="interrupted")
        limit = f", --time-min {self.resources.time_min:g}" if state.startswith("TIMEOUT") else ""
        return ended_record(task, f"slurm job {job.job_id} ended ({state}{limit}) before the run wrote its "
                                  f"record; see {job.paths.stderr}", error_type="JobDied", details=details)

    def _interrupted(self, running: dict[Task, Any], events: Events) -> None:
        """Ctrl-C: cancel the jobs still queued or running, or leave them to a rerun."""
        if not running:
            return
        cancel = self.cancel_on_exit
        if cancel is None:
            try:
                cancel = bool(self.confirm_cancel(len(running))) if self.confirm_cancel else False
            except (KeyboardInterrupt, EOFError):
                cancel = False
        if not cancel:
            self.left_running = tuple(job.job_id for job in running.values())
            return
        self._scancel([job.job_id for job in running.values()])
        for task, job in running.items():  # finished() also takes the epochs its record holds
            events.finished(task, ended_record(task, f"slurm job {job.job_id} cancelled on Ctrl-C",
                                               status="interrupted"))
            self._forget(task.key)

    @staticmethod
    def _scancel(job_ids: list[str]) -> None:
        try:
            subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            pass  # no scancel here: nothing we can cancel
