"""The sweep driver: plan -> tasks -> executor -> rows in results.jsonl -> the data the views show.

The sweep folder:
    sweep.json       the plan (models, factors, runs, table layout)
    results.jsonl    one row per run and epoch, one per ended run (see store.py)
    runs/<label>-<key>/  each run's folder: result.json (its sweep section: the run's place), train.log, model.pt
    summary.csv, *.png, *.svg   written by the command from these
    submitit/, slurm_jobs.json  --executor slurm's job files and its run -> job map (see slurm.py)

Resume, and what "the same epoch" means: a row is identified by (run key,
epoch). A rerun skips runs that ended ok or diverged. A run that was cut off
(Ctrl-C, crash, a failure) is trained again from its first epoch, not from a
checkpoint: the reference loop has no epoch-resume (its checkpoint is the
*best* model, not the last, and holds neither the annealed lr, the best
loss so far, the optimizer nor the random state), and training again with
the same seed is what makes epoch 3's row the number `lmprof train` gives.
Epochs already in results.jsonl are not appended again: their rows keep
their first numbers and timestamps, and the driver checks that the
recomputed validation loss matches (it warns if not, e.g. on a
nondeterministic GPU). The cost is the cut-off run's finished epochs, once.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lmprof.errors import UsageError
from lmprof.fsutil import write_text_atomic
from lmprof.instrument.gradients import CLIP_FIELDS
from lmprof.record.files import RESULT_FILE
from lmprof.record.sections import (CUDA_VISIBLE_DEVICES, FINISHED_AT, JOB_ID, TEST_LOSS, TEST_PPL, TOKENS_PER_S,
    TRAIN_SECONDS, VAL_LOSS, VAL_PPL, VOCAB_SIZE, WALL_SECONDS)
from lmprof.sweeps.executors import Executor, Task
from lmprof.sweeps.plan import Plan, PlannedRun
from lmprof.sweeps.store import RESULTS_FILE, ResultStore, SweepLock
from lmprof.sweeps.worker import is_diverged, now, read_record, vocabulary_size

SWEEP_FILE = "sweep.json"
SUMMARY_FILE = "summary.csv"
RUNS_FOLDER = "runs"
PLOT_SUFFIXES = (".png", ".svg")
Log = Callable[[str], None]


@dataclass
class SweepOutcome:
    folder: Path
    planned: int  # runs in the plan
    already_done: int  # skipped: ended ok or diverged before
    ran: int = 0
    interrupted: bool = False
    statuses: dict[str, str] = field(default_factory=dict)  # label -> status of this invocation's runs


def prepare_folder(folder: Path) -> None:
    """A new folder, or one this command wrote before; never someone else's files."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} exists and is not a folder: choose another --out")
    if folder.is_dir() and any(folder.iterdir()) and not any(
            (folder / name).exists() for name in (SWEEP_FILE, RESULTS_FILE)):
        raise UsageError(f"--out {folder} holds files that are not an lmprof sweep: choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write the sweep folder {folder}: {e.strerror}: choose another --out") from None


def clear_folder(folder: Path) -> None:
    """--fresh: forget every row and run of this sweep (only what a sweep writes)."""
    # An executor's own files (slurm's job map, submitit's folder) are its to clear: Executor.prepare(folder, fresh).
    for name in (RESULTS_FILE, SWEEP_FILE, SUMMARY_FILE):
        (folder / name).unlink(missing_ok=True)
    for path in folder.iterdir():
        if path.suffix in PLOT_SUFFIXES:
            path.unlink()
    shutil.rmtree(folder / RUNS_FOLDER, ignore_errors=True)


class Driver:
    """Turns the workers' records into rows, as the events of an executor (see executors.Events)."""

    def __init__(self, plan: Plan, store: ResultStore, executor: Executor, log: Log) -> None:
        self.plan = plan
        self.store = store
        self.executor = executor
        self.log = log
        self.outcome_statuses: dict[str, str] = {}
        self.on_run_end: Callable[[], None] | None = None
        self._warned: set[str] = set()
        self._runs = {run.key: run for run in plan.runs}

    def progress(self, task: Task) -> None:
        record = read_record(task.run_dir)
        if record is not None and record.get("key") == task.key:
            self._harvest(task, record)

    def finished(self, task: Task, record: dict[str, Any]) -> None:
        self._harvest(task, record)
        run = self._runs[task.key]
        epochs = record.get("epochs", [])
        self.store.append({
            "kind": "run", "run": run.label, "key": run.key, "model": run.model, "settings": run.settings,
            "status": record.get("status"), "message": record.get("message", ""), "error": record.get("error"),
            "epochs_done": len(epochs), TRAIN_SECONDS: sum(e.get(TRAIN_SECONDS) or 0.0 for e in epochs),
            **{name: record.get(name) for name in (
                TEST_LOSS, TEST_PPL, "nparams", "ntokens", VOCAB_SIZE, WALL_SECONDS, "host", "pid",
                "device", "gpu", "cpu", CUDA_VISIBLE_DEVICES, "threads", "scheduler", JOB_ID, "attempt",
                "started", "finished", "memory")},
            "executor": self.executor.name, "jobs": self.executor.jobs, "time": now(),
            "config": record.get("config"),
        })
        status = str(record.get("status"))
        self.outcome_statuses[run.label] = status
        from lmprof.divergence import NOT_CONVERGED, advice
        from lmprof.record.sweep_summary import is_not_converged

        if is_not_converged(status, [e.get(VAL_PPL) for e in epochs], record.get(VOCAB_SIZE)):
            self.log(f"{run.label}: not converged: val ppl {epochs[-1].get(VAL_PPL):.4g} after its only epoch is "
                     f"above the vocabulary size {record.get(VOCAB_SIZE)}; try "
                     f"{advice(run.config.to_dict(), NOT_CONVERGED)}")
        elif status == "ok":
            self.log(f"{run.label}: ok, test ppl {record.get(TEST_PPL) or float('nan'):.2f}")
        elif status == "failed":
            self.log(f"{run.label}: failed: {record.get('message')} "
                     f"(traceback in {Path(task.run_dir) / RESULT_FILE}, under sweep.error)")
        else:
            self.log(f"{run.label}: {status}: {record.get('message')}")
        if self.on_run_end is not None:
            self.on_run_end()

    def _harvest(self, task: Task, record: dict[str, Any]) -> None:
        """Append the record's epochs that results.jsonl lacks; check the ones it has."""
        run = self._runs[task.key]
        stored = self.store.epochs(run.key)
        vocab = record.get(VOCAB_SIZE)
        history: list[float | None] = []
        for epoch in record.get("epochs", []):
            number = epoch.get("epoch")
            history.append(epoch.get(VAL_PPL))
            if number in stored:
                self._check_replay(run, stored[number], epoch)
                continue
            cfg = run.config
            diverged = is_diverged(history, vocab, final=number == run.config.epochs)
            self.store.append({
                "kind": "epoch", "run": run.label, "key": run.key, "model": run.model,
                "emsize": cfg.emsize, "nhid": cfg.nhid, "nlayers": cfg.nlayers, "bptt": cfg.bptt,
                "settings": run.settings, "epoch": number,
                **{name: epoch.get(name) for name in (
                    "lr", "batches", "tokens", TRAIN_SECONDS, TOKENS_PER_S, VAL_LOSS, VAL_PPL,
                    *CLIP_FIELDS)},
                "diverged": diverged, "threads": task.config.threads, "jobs": self.executor.jobs,
                "time": epoch.get(FINISHED_AT) or now(),
            })
            ppl = epoch.get(VAL_PPL)
            self.log(f"{run.label:<30} epoch {number}/{cfg.epochs}  train {epoch.get(TRAIN_SECONDS, 0):7.2f} s  "
                     f"val ppl {ppl if ppl is not None else float('inf'):10.2f}" + ("  diverged" if diverged else ""))

    def _check_replay(self, run: PlannedRun, row: dict[str, Any], epoch: dict[str, Any]) -> None:
        old, new = row.get(VAL_LOSS), epoch.get(VAL_LOSS)
        if old is None or new is None or run.key in self._warned:
            return
        if abs(old - new) > 1e-6 * max(1.0, abs(old)):
            self._warned.add(run.key)
            self.log(f"warning: {run.label} epoch {row.get('epoch')} recomputed a different validation loss "
                     f"({new:.6f} vs {old:.6f} stored): this device is not deterministic; the stored row is kept")


def make_tasks(plan: Plan, folder: Path, runs: list[PlannedRun], executor: Executor) -> list[Task]:
    """Each run's config as its worker gets it: its folder, its threads and device, the vocabulary size."""
    if not runs:
        return []
    vocab = vocabulary_size(plan.base)
    shared = executor.adapt(plan.base)  # threads (and device) as this executor runs them
    tasks = []
    for run in runs:
        run_dir = folder / RUNS_FOLDER / run.folder_name
        cfg = run.config.replace(out=str(run_dir), threads=shared.threads, device=shared.device)
        sweep = {"run": run.label, "key": run.key, VOCAB_SIZE: vocab, "grad_stats": plan.grad_stats}
        tasks.append(Task(label=run.label, key=run.key, config=cfg, run_dir=run_dir, sweep=sweep))
    return tasks


def check_corpora(runs: list[PlannedRun]) -> None:
    """A corpus too small for one configuration is a UsageError before anything trains."""
    from lmprof.prepare import checked_corpus

    checked = set()
    for run in runs:
        shape = (run.config.batch_size, run.config.bptt)
        if shape not in checked:
            checked_corpus(run.config)
            checked.add(shape)


def refuse_before_the_folder(plan: Plan, executor: Executor) -> None:
    """What would fail every run is one line before the folder, its .lock or sweep.json exist."""
    check_corpora(plan.runs)
    if executor.name in ("inline", "local"):  # runs on this machine: its devices are the ones that count
        from lmprof.prepare import resolve_device

        resolve_device(plan.base)  # --device cuda without CUDA here


def run_sweep(plan: Plan, folder: str | Path, executor: Executor, *, fresh: bool = False,
              log: Log = print, on_run_end: Callable[[int, int], None] | None = None) -> SweepOutcome:
    """Run what the plan lacks in ``folder``; rows go to results.jsonl as epochs finish.

    ``on_run_end(finished, to_run)`` is called once before the first run and after each (a progress display).
    """
    folder = Path(folder)
    refuse_before_the_folder(plan, executor)
    prepare_folder(folder)
    with SweepLock(folder):
        executor.prepare(folder, fresh)
        if fresh:
            clear_folder(folder)
        write_text_atomic(folder / SWEEP_FILE, json.dumps(plan.to_doc(), indent=1, default=str) + "\n")
        store = ResultStore(folder, repair=True)
        todo = [run for run in plan.runs if not store.is_done(run.key)]
        outcome = SweepOutcome(folder, planned=len(plan.runs), already_done=len(plan.runs) - len(todo))
        tasks = make_tasks(plan, folder, todo, executor)
        log(f"sweep {plan.name}: {len(plan.runs)} runs x {plan.base.epochs} epochs, {outcome.already_done} "
            f"already done, {len(tasks)} to run ({executor.describe(tasks)}) -> {folder}")
        driver = Driver(plan, store, executor, log)
        if on_run_end is not None:
            driver.on_run_end = lambda: on_run_end(len(driver.outcome_statuses), len(tasks))
            driver.on_run_end()
        try:
            executor.run(tasks, driver)
        except KeyboardInterrupt:
            outcome.interrupted = True
        outcome.statuses = driver.outcome_statuses
        outcome.ran = len(driver.outcome_statuses)
        outcome.interrupted |= "interrupted" in outcome.statuses.values()
    return outcome


def load_rows(folder: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """sweep.json and the rows of results.jsonl: everything the sweep views need."""
    from lmprof.safe_files import LOG_BYTES, UnsafeMember, read_member, visible_strings

    try:  # a received sweep folder is data: no link followed, size capped, its strings made inert
        plan_doc = json.loads(read_member(folder, SWEEP_FILE, limit=LOG_BYTES))
    except UnsafeMember:
        raise
    except (UsageError, ValueError, RecursionError):
        raise UsageError(f"{folder} is not a sweep folder (no readable {SWEEP_FILE}): run `lmprof sweep` first") from None
    from lmprof.record.check import check_sweep_plan, check_sweep_row

    complaint = check_sweep_plan(plan_doc)  # the views read these fields: a wrong one is one line, not a traceback
    if complaint:
        raise UsageError(f"{Path(folder) / SWEEP_FILE} is damaged: {complaint}")
    rows = [row for row in ResultStore(folder).rows if check_sweep_row(row) is None]  # a damaged row is left out
    return visible_strings(plan_doc), visible_strings(rows)
