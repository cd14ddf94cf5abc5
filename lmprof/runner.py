"""run(): config -> reference loop (+ instruments) -> RunResult in a run folder.

This is the one place that composes a run; every command that trains calls it.

    >>> from lmprof import RunConfig, run
    >>> result = run(RunConfig(epochs=1, max_batches=5), log=lambda line: None)  # doctest: +SKIP
    >>> result.metrics["status"]  # doctest: +SKIP
    'ok'
"""

from __future__ import annotations

import math
import os
import platform
import socket
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Sequence

from lmprof.config import RunConfig, device_choice_note
from lmprof.corpora.check import CorpusSize
from lmprof.errors import UsageError
from lmprof.instrument.base import Instrument, RunContext
from lmprof.instrument.sampling import sampled_names, sampler_for
from lmprof.phases import Fanout, listening
from lmprof.prepare import Prepared, prepare
from lmprof.record import files
from lmprof.record.result import RunResult
from lmprof.record.sections import CORPUS_TOKENS, GPU_BUSY, WALL_SECONDS
from lmprof.version import __version__

Log = Callable[[str], None]


def default_run_dir(command: str, cfg: RunConfig, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{command}-{cfg.model}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def prepare_run_dir(path: str | Path, *, force: bool = False) -> Path:
    """Create the run folder, or say in one line why it cannot be used.

    A run folder belongs to one run: an existing, non-empty folder is refused
    (an old flow chart or line table would be shown as the new run's), unless
    ``force``, which first removes lmprof's own files from it.
    """
    run_dir = Path(path)
    if run_dir.is_symlink():
        raise UsageError(f"--out {path} is a symbolic link (to {os.readlink(run_dir)}): give the folder itself")
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {path} exists and is not a folder: choose another --out")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not force:
            what = f"a run ({files.RESULT_FILE})" if (run_dir / files.RESULT_FILE).exists() else "files"
            raise UsageError(f"--out {path} already holds {what}: a run folder belongs to one run; choose a new "
                             "--out, or add --force to replace lmprof's files there")
        _remove_own_files(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write the run folder {path}: {e.strerror}: choose another --out") from None
    return run_dir


def _remove_own_files(run_dir: Path) -> None:
    import shutil

    for pattern in files.OWN_FILES:
        for old in run_dir.glob(pattern):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()


# Instruments whose timers stamp spans inside a phase on the host clock: on MPS (asynchronous, no timing
# events in lmprof) those times would be launch times. The phase timer synchronises instead (recorders.py).
UNSYNCHRONISED_ON_MPS = {"components": "--components", "backward_lines": "--backward-lines"}


def refuse_unsynchronised_timers(instruments: Sequence[Instrument], device: Any) -> None:
    """One line, before the run folder exists, for a timer that would misread an MPS run."""
    if getattr(device, "type", "") != "mps":
        return
    flags = [UNSYNCHRONISED_ON_MPS[i.name] for i in instruments if i.name in UNSYNCHRONISED_ON_MPS]
    if flags:
        raise UsageError(f"{' and '.join(flags)} on --device mps: its spans would time kernel launches, not "
                         "kernels (MPS runs asynchronously and lmprof has no MPS timing events); use --device "
                         "cpu for them, or drop the flag (the phase table synchronises at each phase)")


def full_batches_per_epoch(cfg: RunConfig, size: CorpusSize) -> int:
    """A whole epoch's training batches: one per bptt window of the batchified train split."""
    rows = size.train // cfg.batch_size
    return math.ceil((rows - 1) / cfg.bptt)


def batches_per_epoch(cfg: RunConfig, size: CorpusSize) -> int:
    """The batches each epoch will run: a whole epoch's, cut by --max-batches or --dry-run."""
    batches = full_batches_per_epoch(cfg, size)
    if cfg.dry_run:
        return 1
    return min(batches, cfg.max_batches) if cfg.max_batches else batches


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: Any) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "lmprof": __version__, "git_revision": git_revision(), "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "host": socket.gethostname(), "cpu": cpu_model(), "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return env


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(
    cfg: RunConfig,
    *,
    command: str = "train",
    instruments: Sequence[Instrument] = (),
    log: Log = print,
    run_dir: str | Path | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    force: bool = False,
    sweep: dict[str, Any] | None = None,
) -> RunResult:
    """Train as upstream does, watched by ``instruments``; write and return the RunResult.

    ``on_epoch(record)`` is called after each epoch, once result.json holds it
    (a sweep records rows as they finish; raising LossNotFinite there stops the run as diverged).
    ``force`` lets the run replace an earlier run's folder (``prepare_run_dir``). A file that
    cannot be written (a full disk) ends the run with a UsageError saying what was kept.
    ``sweep``: a sweep worker's section of result.json (the same dict: what the worker adds is saved too).
    """
    prepared = prepare(cfg)  # before the folder exists: a bad --data or --device writes nothing
    refuse_unsynchronised_timers(instruments, prepared.device)
    folder = prepare_run_dir(run_dir or cfg.out or default_run_dir(command, cfg), force=force)
    save_path = cfg.save or str(folder / files.CHECKPOINT_FILE)
    if device_choice_note(cfg.device, cfg.accel):
        log(device_choice_note(cfg.device, cfg.accel))
    result = _first_result(command, prepared, folder, save_path, sweep)

    from lmprof.record.epochs import EpochRecords

    records = EpochRecords(result, folder, cfg.bptt, on_epoch)
    context = RunContext(cfg=cfg, device=prepared.device, run_dir=folder,
                         batches_per_epoch=batches_per_epoch(cfg, prepared.size),
                         full_batches_per_epoch=full_batches_per_epoch(cfg, prepared.size))
    _train_watched(prepared, save_path, log, records, with_gpu_busy(instruments, prepared.device), context, result)
    return result


def _train_watched(prepared: Prepared, save_path: str, log: Log, records: Any, instruments: Sequence[Instrument],
                   context: RunContext, result: RunResult) -> None:
    """The reference loop's main(), the instruments started around it; its end (or failure) kept in ``result``."""
    from lmprof.reference.loop import main

    folder = context.run_dir
    started: list[Instrument] = []
    sampler = None
    start = time.perf_counter()
    try:
        with ExitStack() as stack:
            sampler = _start_watching(stack, instruments, context, started)
            main(prepared.cfg, str(prepared.data_path), save_path, prepared.device, log=log, watch=records)
    except KeyboardInterrupt:
        result.metrics["status"] = "interrupted"
        _close(result, folder, started, start, sampler)
        raise
    except Exception as e:
        result.metrics["status"] = "failed"
        result.metrics["message"] = f"{e.__class__.__name__}: {e}"
        unsaved = _close(result, folder, started, start, sampler)
        if isinstance(e, OSError) or unsaved:
            raise UsageError(unsaved_message(result, folder, e if isinstance(e, OSError) else unsaved)) from None
        raise
    result.metrics.update(
        status=records.status, message=records.message, test_loss=records.test_loss,
        test_ppl=records.test_ppl, ntokens=records.ntokens, nparams=records.nparams,
        train_tokens=records.train_tokens)
    unsaved = _close(result, folder, started, start, sampler)
    if unsaved:
        raise UsageError(unsaved_message(result, folder, unsaved))


def _first_result(command: str, prepared: Prepared, folder: Path, save_path: str,
                  sweep: dict[str, Any] | None) -> RunResult:
    """The run's result.json before training: its config, environment and a "running" status, saved."""
    cfg, size = prepared.cfg, prepared.size
    # config.data stays as the user gave it (None: the embedded corpus); the folder read is in metrics
    result = RunResult(command=command, config={**cfg.to_dict(), "save": save_path},
                       environment=environment(prepared.device), run_dir=str(folder), sweep=sweep if sweep is not None else {})
    # pid and host while running: a reader can tell a live run from one that was killed (SIGKILL, a crash)
    result.metrics = {"status": "running", "epochs": [], "corpus": str(prepared.data_path), CORPUS_TOKENS: vars(size),
                      "pid": os.getpid(), "host": socket.gethostname()}
    result.files["checkpoint"] = os.path.relpath(save_path, folder)
    result.save(folder)
    return result


def _start_watching(stack: ExitStack, instruments: Sequence[Instrument], context: RunContext,
                    started: list[Instrument]) -> Any:
    """Start each instrument (stopped when ``stack`` closes) and install their recorders for the markers.

    Returns the Sampler when the run samples (an instrument that costs per call, or CUDA phase events:
    lmprof.instrument.sampling), else None."""
    recorders: list[tuple[Any, bool]] = []
    for instrument in instruments:
        instrument.start(context)
        started.append(instrument)
        stack.callback(instrument.stop)
        rec = instrument.recorder()
        if rec is not None:  # an outermost recorder (gpu_busy) enters before the others and exits after them
            entry = (rec, bool(getattr(instrument, "sampled", False)))
            recorders.insert(0, entry) if getattr(instrument, "outermost", False) else recorders.append(entry)
    sampler = sampler_for(instruments, recorders, context)
    if sampler is not None:
        stack.enter_context(listening(sampler))
    elif recorders:
        plain = [rec for rec, _ in recorders]
        stack.enter_context(listening(plain[0] if len(plain) == 1 else Fanout(*plain)))
    return sampler


def with_gpu_busy(instruments: Sequence[Instrument], device: Any) -> list[Instrument]:
    """On CUDA a phase table also gets each phase's GPU busy fraction (a short torch.profiler window on a
    few batches, lmprof.instrument.gpu_busy), unless a trace holds the profiler already."""
    names = {i.name for i in instruments}
    # one torch.profiler session at a time: --backward-lines holds one too
    if getattr(device, "type", "") != "cuda" or "phases" not in names or (
            names & {"trace", GPU_BUSY, "backward_lines"}):
        return list(instruments)
    from lmprof.instrument.gpu_busy import GpuBusyInstrument

    return [*instruments, GpuBusyInstrument()]


def _close(result: RunResult, folder: Path, started: Sequence[Instrument], start: float,
           sampler: Any = None) -> OSError | None:
    """Every instrument's tables into the result, and result.json saved; the first write that failed, if any.

    One failed write (lines.lprof on a full disk) does not stop the others: what can be kept, is.
    """
    failed: OSError | None = None
    result.metrics[WALL_SECONDS] = time.perf_counter() - start
    if sampler is not None:  # what watching cost, measured on this run (bare vs watched batches)
        cfg = result.config
        result.overhead = sampler.section(sampled_names(started), int(cfg.get("batch_size", 1)),
                                          int(cfg.get("bptt", 1)))
    for instrument in started:
        try:
            instrument.contribute(result, folder)
        except OSError as e:
            failed = failed or e
    try:
        result.save(folder)
    except OSError as e:
        failed = failed or e
        result.metrics["unsaved"] = True
    return failed


def unsaved_message(result: RunResult, folder: Path, error: OSError) -> str:
    """One line: what could not be written, what was measured, and where it is."""
    what = Path(error.filename).name if error.filename else "a file"
    epochs = len(result.epochs)
    tables = [name for name in ("phases", "lines", "ops") if getattr(result, name)]
    measured = f"{epochs} finished epoch{'s' if epochs != 1 else ''}" + (f", {' and '.join(tables)} tables"
                                                                          if tables else "")
    if result.metrics.get("unsaved"):
        return (f"cannot write {what} in {folder}: {error.strerror or error}; measured {measured}, but "
                "result.json there keeps what was saved before")
    return f"cannot write {what} in {folder}: {error.strerror or error}; {folder / files.RESULT_FILE} holds {measured}"
