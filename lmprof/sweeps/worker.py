"""run_one(config, out_dir, sweep) -> record: the one worker every executor calls.

It trains one configuration through ``lmprof.runner.run`` (so a sweep's
numbers are ``lmprof train``'s), and never raises for the run's own
troubles: a NaN loss, a divergence, an exception or a Ctrl-C all end as a
record with a status and, for a failure, the error's type, message and
traceback. The record lives in the run's own result.json: the runner's
metrics, environment, memory and gradients, plus a ``sweep`` section (the
run's label and key, where and when it ran, its error, each epoch's finish
time and clip statistics); ``read_record`` reads it back as one dict. It is
saved atomically after every epoch and at the end; the worker writes nothing
outside that folder, so any number of workers (processes, cluster jobs) can
run at once. Only the sweep's driver appends to ``results.jsonl``.

Divergence: the reference loop stops on a NaN or infinite loss. The sweep
adds one rule: a validation perplexity above the vocabulary size is worse
than guessing every word with equal probability (whose perplexity is exactly
the vocabulary size). One such epoch can be a bad start that the next epoch
repairs (a GRU at lr 20 often does); two in a row, or one at the last epoch
of two or more, means training has gone wrong, not slowly: the run stops there and is marked
"diverged" (lr 20 on a 4-layer GRU reaches 1e7 and more). A run of a single
epoch that ends above it has shown too little to say which: the tables call
it "not converged" and leave it out of averages, as a diverged one.
"""

from __future__ import annotations

import os
import socket
import traceback
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lmprof.config import RunConfig
from lmprof.divergence import is_diverged  # the one rule (profile, show, compare use it too)
from lmprof.errors import LossNotFinite
from lmprof.instrument.base import Instrument
from lmprof.instrument.gradients import CLIP_FIELDS, GradStatsInstrument, clip_summary
from lmprof.instrument.memory import MemoryInstrument
from lmprof.record.files import STOP_FILE  # written by a driver into a run folder: "stop this run as Ctrl-C would"
from lmprof.record.sections import (CUDA_PEAK_BYTES, CUDA_VISIBLE_DEVICES, FINISHED_AT, JOB_ID, PARAM_BYTES,
    RSS_PEAK_BYTES, SAVED_BYTES_PEAK, TEST_LOSS, TEST_PPL, VAL_PPL, VOCAB_SIZE, WALL_SECONDS)

if TYPE_CHECKING:
    from lmprof.record.result import RunResult

LOG_FILE = "train.log"
MEMORY_FIELDS = (SAVED_BYTES_PEAK, PARAM_BYTES, RSS_PEAK_BYTES, CUDA_PEAK_BYTES)  # a record's memory
STATUSES = ("running", "ok", "diverged", "failed", "interrupted")


class PerplexityAboveVocabulary(LossNotFinite):
    """Raised from the epoch hook; the reference loop stops on it as on a NaN loss (status "diverged")."""

    def __init__(self, epoch: int, val_ppl: float, vocab_size: int) -> None:
        Exception.__init__(
            self,
            f"diverged at epoch {epoch}: validation perplexity {val_ppl:.4g} is above the vocabulary size "
            f"{vocab_size} (a uniform guess scores {vocab_size}); run stopped (try a smaller --lr)")
        self.epoch = epoch
        self.batch = -1


def vocabulary_size(cfg: RunConfig) -> int:
    """Words in the run's Dictionary, counted by the reference Corpus itself (once per sweep)."""
    from lmprof.prepare import checked_corpus
    from lmprof.reference.data import Corpus

    folder, _ = checked_corpus(cfg)  # a bad corpus: one clear line
    return len(Corpus(str(folder)).dictionary)


def now() -> str:
    """Local time to the millisecond, with its UTC offset: rows from several machines still sort."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's record as its worker last saved it (result.json), or None when there is none (yet) or it is unreadable."""
    from lmprof.errors import UsageError
    from lmprof.record.result import RunResult

    try:
        result = RunResult.load(run_dir)
    except (UsageError, OSError, ValueError):
        return None
    return record_of(result) if result.sweep else None


def save_record(folder: Path, result: "RunResult") -> None:
    """The run's record on disk: its result.json, sweep section included (one place, so a test can cut a run short)."""
    result.save(folder)


def record_of(result: "RunResult") -> dict[str, Any]:
    """One dict with what the driver reads of a run: result.json's metrics and environment, and its sweep section."""
    sweep, metrics, env = result.sweep, result.metrics, result.environment
    extras = {e.get("epoch"): e for e in sweep.get("epochs", [])}  # finished_at and clip statistics per epoch
    record: dict[str, Any] = {
        **{k: v for k, v in sweep.items() if k != "epochs"},
        "status": metrics.get("status", "failed"), "message": metrics.get("message") or "",
        "error": sweep.get("error"), "config": result.config,
        "epochs": [{**e, **extras.get(e.get("epoch"), {})} for e in metrics.get("epochs", [])],
        **{k: metrics.get(k) for k in (TEST_LOSS, TEST_PPL, "nparams", "ntokens", WALL_SECONDS)},
        **{k: env.get(k) for k in ("threads", "device", "gpu", "cpu")},
    }
    if result.memory:
        record["memory"] = {k: result.memory[k] for k in MEMORY_FIELDS if k in result.memory}
    if result.gradients:
        record["gradients"] = result.gradients
    return record


def _placement(given: dict[str, Any]) -> dict[str, Any]:
    """Where the run ran: what honest timing comparisons need.

    Under SLURM the job id is the one ``squeue``/``sacct``/``scancel`` use
    (``<array id>_<index>`` for an element of a job array) and the attempt
    counts requeues (after a preemption). A Ray task passes its own in ``given`` (run_one's ``sweep``).
    """
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    slurm_job = f"{array_job}_{array_task}" if array_job and array_task else os.environ.get("SLURM_JOB_ID")
    placement: dict[str, Any] = {
        "host": socket.gethostname(), "pid": os.getpid(),
        CUDA_VISIBLE_DEVICES: os.environ.get("CUDA_VISIBLE_DEVICES"),
        "scheduler": "slurm" if slurm_job else None, JOB_ID: slurm_job,
        "attempt": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) + 1,
    }
    if given.get("scheduler"):
        placement.update(scheduler=given["scheduler"], job_id=given.get(JOB_ID), attempt=given.get("attempt", 1))
    return placement


STOP_AT = ("data", "evaluate_valid")  # a training batch or validation begins: inside upstream's Ctrl-C handler


def request_stop(run_dir: str | Path) -> None:
    """Ask the worker training in ``run_dir`` to stop as after Ctrl-C (it trains no more, tests, saves its record)."""
    (Path(run_dir) / STOP_FILE).touch()


def clear_stop_request(run_dir: str | Path) -> None:
    """Forget an earlier request (a driver calls it before it starts the run again)."""
    (Path(run_dir) / STOP_FILE).unlink(missing_ok=True)


class StopOnRequest(Instrument):
    """Raises KeyboardInterrupt at the next batch or validation once ``request_stop`` was called for the run.

    A worker on a cluster cannot be reached by the driver's Ctrl-C, and Ray's own
    interrupt (``ray.cancel(force=False)``) does not always reach a busy task; a
    file in the run folder, which the driver and the worker share anyway, does.
    Raised at a phase marker inside upstream's ``try``, it ends training exactly
    as a Ctrl-C at that moment would: "Exiting from training early", then test.
    """

    name = "stop-request"

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / STOP_FILE

    def recorder(self) -> "StopOnRequest":
        return self

    def enter(self, name: str) -> None:
        # one stat() per batch: microseconds against a training step's milliseconds
        if name in STOP_AT and self.path.exists():
            self.path.unlink(missing_ok=True)  # acted on: the folder is left as a Ctrl-C leaves it
            raise KeyboardInterrupt(f"stop requested ({STOP_FILE} in the run folder)")

    def exit(self, name: str) -> None:
        return None


def run_one(
    config: RunConfig,
    out_dir: str | Path,
    sweep: dict[str, Any] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    watchers: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train one configuration into ``out_dir``; return (and save in its result.json) its record. Picklable, top level.

    ``sweep``: the run's ``run`` label and ``key``, the ``vocab_size`` (the driver
    counts it once per sweep; without it the worker counts it), ``grad_stats``
    and ``memory`` (both on by default), and a cluster's ``scheduler``,
    ``job_id`` and ``attempt``. ``on_record(record)`` is called after each
    epoch's record is on disk (the inline executor's live rows).
    ``watchers``: more instruments that only watch (the inline executor's progress display).
    """
    from lmprof.config import quiet_library_warnings
    from lmprof.record.result import RunResult

    quiet_library_warnings()  # a spawned worker: the driver has said the note once already
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    given = dict(sweep or {})
    # Gradient statistics are on in every sweep (they cost under 2%): the clip columns of the tables.
    grad_stats = [GradStatsInstrument()] if given.pop("grad_stats", True) else []
    # Memory too (about 1%): each run's peak saved activations and RSS sit beside its time.
    memory = [MemoryInstrument()] if given.pop("memory", True) else []
    section: dict[str, Any] = {
        "run": given.get("run", config.model), "key": given.get("key"), VOCAB_SIZE: given.get(VOCAB_SIZE),
        "started": now(), "finished": None, **_placement(given), "error": None, "epochs": [],
    }
    # Until the runner writes its own (with this same section), the run's file says it started.
    result = RunResult(command="sweep", config=config.to_dict(), metrics={"status": "running", "epochs": []},
                       sweep=section, run_dir=str(folder))
    save_record(folder, result)

    try:
        epoch_done = _epoch_keeper(config, folder, section, grad_stats, on_record)
        result = _train(config, folder, section, [*grad_stats, *memory, *watchers], epoch_done)
    except KeyboardInterrupt:
        # Ctrl-C outside the epoch loop (which upstream catches itself): still a record, not a traceback.
        result = _saved_or(result, folder)
        result.metrics.update(status="interrupted", message="interrupted by Ctrl-C")
    except Exception as e:  # the worker's contract: every failure becomes a record
        result = _saved_or(result, folder)
        result.metrics.update(status="failed", message=f"{e.__class__.__name__}: {e}")
        section["error"] = {"type": e.__class__.__name__, "message": str(e), "traceback": traceback.format_exc()}
    if result.status == "interrupted" and not result.metrics.get("message"):
        result.metrics["message"] = "interrupted by Ctrl-C (upstream's loop stops training, then tests)"
    section["finished"] = now()
    result.sweep = section
    save_record(folder, result)
    return record_of(result)


def _epoch_keeper(config: RunConfig, folder: Path, section: dict[str, Any], grad_stats: list[GradStatsInstrument],
                  on_record: Callable[[dict[str, Any]], None] | None) -> Callable[[dict[str, Any]], None]:
    """The runner's ``on_epoch``: the epoch's finish time and clip statistics saved, then the divergence rule."""
    from lmprof.record.result import RunResult

    def epoch_done(epoch: dict[str, Any]) -> None:
        clip = {k: v for k, v in grad_stats[0].epochs[-1].items() if k in CLIP_FIELDS} if grad_stats and \
            grad_stats[0].epochs and grad_stats[0].epochs[-1]["epoch"] == epoch["epoch"] else {}
        section["epochs"].append({"epoch": epoch["epoch"], FINISHED_AT: now(), **clip})
        saved = RunResult.load(folder)  # the runner's file, this epoch in it; the runner's own saves share `section`
        saved.sweep = section
        save_record(folder, saved)
        if on_record is not None:
            on_record(record_of(saved))
        history = [e.get(VAL_PPL) for e in saved.epochs]
        if section[VOCAB_SIZE] and is_diverged(history, section[VOCAB_SIZE], final=epoch["epoch"] == config.epochs):
            raise PerplexityAboveVocabulary(epoch["epoch"], epoch[VAL_PPL], section[VOCAB_SIZE])

    return epoch_done


def _train(config: RunConfig, folder: Path, section: dict[str, Any], instruments: list[Any],
           epoch_done: Callable[[dict[str, Any]], None]) -> "RunResult":
    """``lmprof.runner.run`` into the run's folder, its log into train.log; a divergence's message cites the clip."""
    from lmprof.runner import run

    if not section[VOCAB_SIZE]:
        section[VOCAB_SIZE] = vocabulary_size(config)
    from lmprof.safe_files import open_for_append

    with open_for_append(folder / LOG_FILE) as log_file:  # never through a link planted as train.log
        log_file.write(f"# {section['run']}: started {section['started']} on {section['host']}\n")

        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()

        # force: the folder is this run's own; a rerun replaces a cut-off attempt
        result = run(config, command="sweep", log=log, run_dir=folder, on_epoch=epoch_done, force=True,
                     instruments=instruments, sweep=section)
    metrics = result.metrics
    if result.gradients and metrics.get("status") == "diverged" and clip_summary(result.gradients):
        metrics["message"] = f"{metrics.get('message') or 'diverged'}; {clip_summary(result.gradients)}"
    return result


def _saved_or(started: "RunResult", folder: Path) -> "RunResult":
    """What the runner last saved of this run (its epochs, its status), else the worker's own first file."""
    from lmprof.errors import UsageError
    from lmprof.record.result import RunResult

    try:
        return RunResult.load(folder)
    except (UsageError, OSError, ValueError):
        return started
