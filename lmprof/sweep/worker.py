"""run_one(config, out_dir) -> record: the one worker every executor calls.

It trains one configuration through ``lmprof.runner.run`` (so a sweep's
numbers are ``lmprof train``'s), and never raises for the run's own
troubles: a NaN loss, a divergence, an exception or a Ctrl-C all end as a
record with a status and, for a failure, the error's type, message and
traceback. The record is written atomically to ``record.json`` in the run
folder after every epoch and at the end; the worker writes nothing else
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

import json
import math
import os
import socket
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from lmprof.config import RunConfig
from lmprof.errors import LossNotFinite
from lmprof.fsutil import write_text_atomic
from lmprof.instrument.gradients import CLIP_FIELDS, GradStats, clip_summary
from lmprof.instrument.memory import MemoryInstrument

RECORD_FILE = "record.json"
LOG_FILE = "train.log"
MEMORY_FIELDS = ("saved_bytes_peak", "param_bytes", "rss_peak_bytes", "cuda_peak_bytes")  # a record's memory
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


def is_diverged(val_ppls: list[float | None], vocab_size: int | None, *, final: bool) -> bool:
    """The sweep's rule, judged after the last of ``val_ppls`` (one per epoch so far).

    NaN/inf (stored as None); or worse than a uniform guess over the vocabulary
    at two epochs in a row, or at the ``final`` epoch of two or more. A run of one
    epoch above it is not judged here: the tables call it "not converged".
    """
    def above(ppl: float | None) -> bool:
        return ppl is None or not math.isfinite(ppl) or (vocab_size is not None and ppl > vocab_size)

    last = val_ppls[-1]
    if last is None or not math.isfinite(last):
        return True
    # One epoch is too little evidence: a run whose only epoch is above it ends as "not converged".
    return above(last) and len(val_ppls) >= 2 and (final or above(val_ppls[-2]))


def corpus_folder(cfg: RunConfig) -> Path:
    from lmprof.corpora import synth

    return Path(cfg.data) if cfg.data else synth.default_corpus(cfg.synth_seed)


def vocabulary_size(cfg: RunConfig) -> int:
    """Words in the run's Dictionary, counted by the reference Corpus itself (once per sweep)."""
    from lmprof.corpora.check import check_corpus
    from lmprof.reference.data import Corpus

    folder = corpus_folder(cfg)
    check_corpus(folder, cfg.batch_size, cfg.bptt, cfg.eval_batch_size)  # a bad corpus: one clear line
    return len(Corpus(str(folder)).dictionary)


def now() -> str:
    """Local time to the millisecond, with its UTC offset: rows from several machines still sort."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The record a worker last wrote, or None when there is none (yet) or it cannot be read."""
    try:
        doc = json.loads((Path(run_dir) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_record(run_dir: str | Path, record: dict[str, Any]) -> None:
    from lmprof.result import json_safe  # NaN/inf -> null, as result.json stores them

    write_text_atomic(Path(run_dir) / RECORD_FILE, json.dumps(json_safe(record), indent=1, default=str) + "\n")


def _placement(extra: dict[str, Any]) -> dict[str, Any]:
    """Where the run ran: what honest timing comparisons need.

    Under SLURM the job id is the one ``squeue``/``sacct``/``scancel`` use
    (``<array id>_<index>`` for an element of a job array) and the attempt
    counts requeues (after a preemption). A Ray task passes its own in ``extra``.
    """
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    slurm_job = f"{array_job}_{array_task}" if array_job and array_task else os.environ.get("SLURM_JOB_ID")
    placement: dict[str, Any] = {
        "host": socket.gethostname(), "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "scheduler": "slurm" if slurm_job else None, "job_id": slurm_job,
        "attempt": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) + 1,
    }
    if extra.get("scheduler"):
        placement.update(scheduler=extra["scheduler"], job_id=extra.get("scheduler_job_id"),
                         attempt=extra.get("attempt", 1))
    return placement


def run_one(
    config: RunConfig,
    out_dir: str | Path,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    watchers: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train one configuration into ``out_dir``; return (and write) its record. Picklable, top level.

    ``config.extra`` may carry ``vocab_size`` (the driver counts it once per
    sweep); without it the worker counts it. ``on_record(record)`` is called
    after each epoch's record is on disk (the inline executor's live rows).
    ``watchers``: more instruments that only watch (the inline executor's progress display).
    """
    from lmprof.config import quiet_library_warnings

    quiet_library_warnings()  # a spawned worker: the driver has said the note once already
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    extra = dict(config.extra)
    record: dict[str, Any] = {
        "run": extra.get("sweep_run", config.model), "key": extra.get("sweep_key"), "status": "running",
        "message": "", "error": None, "config": config.to_dict(), "vocab_size": extra.get("vocab_size"),
        "epochs": [], "started": now(), "finished": None, **_placement(extra),
    }
    write_record(folder, record)

    # Gradient statistics are on in every sweep (they cost under 2%): the clip columns of the tables.
    grad_stats = [GradStats()] if extra.get("grad_stats", True) else []
    # Memory too (about 1%): each run's peak saved activations and RSS sit beside its time.
    memory = [MemoryInstrument()] if extra.get("memory", True) else []

    def epoch_done(epoch: dict[str, Any]) -> None:
        clip = {k: v for k, v in grad_stats[0].epochs[-1].items() if k in CLIP_FIELDS} if grad_stats and \
            grad_stats[0].epochs and grad_stats[0].epochs[-1]["epoch"] == epoch["epoch"] else {}
        record["epochs"].append({**epoch, **clip, "finished_at": now()})
        write_record(folder, record)
        if on_record is not None:
            on_record(record)
        history = [e.get("val_ppl") for e in record["epochs"]]
        if record["vocab_size"] and is_diverged(history, record["vocab_size"], final=epoch["epoch"] == config.epochs):
            raise PerplexityAboveVocabulary(epoch["epoch"], epoch["val_ppl"], record["vocab_size"])

    try:
        from lmprof.runner import run

        if not record["vocab_size"]:
            record["vocab_size"] = vocabulary_size(config)
        with open(folder / LOG_FILE, "a", encoding="utf-8") as log_file:
            log_file.write(f"# {record['run']}: started {record['started']} on {record['host']}\n")

            def log(line: str) -> None:
                log_file.write(line + "\n")
                log_file.flush()

            # force: the folder is this run's own (record.json); a rerun replaces a cut-off attempt
            result = run(config, command="sweep", log=log, run_dir=folder, on_epoch=epoch_done, force=True,
                         instruments=[*grad_stats, *memory, *watchers])
        metrics = result.metrics
        if result.memory:
            record["memory"] = {k: result.memory[k] for k in MEMORY_FIELDS if k in result.memory}
        if result.gradients:
            record["gradients"] = result.gradients
            if metrics.get("status") == "diverged" and clip_summary(result.gradients):
                metrics["message"] = f"{metrics.get('message') or 'diverged'}; {clip_summary(result.gradients)}"
        record.update(
            status=metrics.get("status", "failed"), message=metrics.get("message") or "",
            test_loss=metrics.get("test_loss"), test_ppl=metrics.get("test_ppl"),
            nparams=metrics.get("nparams"), ntokens=metrics.get("ntokens"),
            wall_seconds=metrics.get("wall_seconds"), threads=result.environment.get("threads"),
            device=result.environment.get("device"), gpu=result.environment.get("gpu"),
            cpu=result.environment.get("cpu"))
    except KeyboardInterrupt:
        # Ctrl-C outside the epoch loop (which upstream catches itself): still a record, not a traceback.
        record.update(status="interrupted", message="interrupted by Ctrl-C")
    except Exception as e:  # the worker's contract: every failure becomes a record
        record.update(status="failed", message=f"{e.__class__.__name__}: {e}",
                      error={"type": e.__class__.__name__, "message": str(e),
                             "traceback": traceback.format_exc()})
    if record["status"] == "interrupted" and not record["message"]:
        record["message"] = "interrupted by Ctrl-C (upstream's loop stops training, then tests)"
    record["finished"] = now()
    write_record(folder, record)
    return record
