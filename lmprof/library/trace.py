"""``lmprof trace``: training under torch.profiler, or ``--into RUN``: a trace added to a run folder.

Its options, the schedule checked before anything trains, and the run; the
operator tables and the trace hint are views.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from lmprof.config import RunConfig
from lmprof.errors import UsageError
from lmprof.library.options import Option, config_from_values, flag_option, run_options
from lmprof.library.runs import COMPONENTS, REPORT, Log, Progress, memory_instruments, memory_options, quiet_log

if TYPE_CHECKING:
    from lmprof.instrument.base import Instrument
    from lmprof.instrument.trace import TraceSchedule
    from lmprof.record.result import RunResult

PROFILER = "torch.profiler"
TRACE_OWN = (
    Option("wait", "steps to skip first (default 1)", type=int, default=1, metavar="N", group=PROFILER),
    Option("warmup", "steps traced but discarded, so the profiler's start-up cost stays out (default 1)", type=int,
           default=1, metavar="N", group=PROFILER),
    Option("active", "steps recorded (default 3)", type=int, default=3, metavar="N", group=PROFILER),
    Option("repeat", "how many wait/warmup/active cycles; one trace file each (default 1)", type=int, default=1,
           metavar="N", group=PROFILER),
    flag_option("group_by_shape", "one row per operator and input shapes (records shapes)", group=PROFILER),
    flag_option("gzip", "write *.pt.trace.json.gz", group=PROFILER),
    Option("row_limit", "operators to show (default 15)", type=int, default=15, metavar="N", group=PROFILER),
    COMPONENTS,
    *memory_options(operators=True),
    Option("into", "add the trace to an existing run folder: trace RUN's own configuration and write only its top "
                   "operators and trace/ files, leaving its other tables as they are", metavar="RUN", group=PROFILER),
)
TRACE_OPTIONS = (*run_options(epochs=1), REPORT, *TRACE_OWN)


def trace_schedule(wait: int, warmup: int, active: int, repeat: int, row_limit: int) -> "TraceSchedule":
    """The profiler's schedule, checked (and --row-limit with it) before anything trains."""
    from lmprof.instrument.trace import TraceSchedule

    schedule = TraceSchedule(wait, warmup, active, repeat).validate()
    if row_limit < 1:
        raise UsageError(f"--row-limit must be 1 or more, got {row_limit}")
    return schedule


def progress_name(schedule: "TraceSchedule") -> str:
    """What a trace's progress display calls the run."""
    return f"trace (skip {schedule.wait}, warm up {schedule.warmup}, record {schedule.active})"


def trace(cfg: RunConfig, schedule: "TraceSchedule", *, group_by_shape: bool = False, gzip: bool = False,
          components: bool = False, memory: bool = False, memory_snapshot: bool = False, force: bool = False,
          watchers: Sequence["Instrument"] = (), log: Log | None = None) -> "RunResult":
    """Train under torch.profiler (``lmprof trace``); ``cfg.max_batches`` None: stop when the schedule is done."""
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.instrument.trace import TraceInstrument
    from lmprof.runner import run

    if cfg.max_batches is None and not cfg.dry_run:
        cfg = cfg.replace(max_batches=schedule.steps)  # the steps after the schedule would go untraced
    # The trace's recorder goes first: it opens each phase's span before the phase timer starts
    # and closes it after, so the profiler's own bookkeeping stays out of the phase times.
    tracer = TraceInstrument(schedule, group_by_shape=group_by_shape, memory=memory, gzip=gzip)
    instruments = [tracer, PhaseInstrument(), *memory_instruments(cfg, memory, memory_snapshot)]
    if components:
        from lmprof.instrument.components import ComponentInstrument

        instruments.append(ComponentInstrument())
    return run(cfg, command="trace", instruments=[*instruments, *watchers], log=log or quiet_log, force=force)


def trace_into(run_folder: str, schedule: "TraceSchedule", *, out: str | None = None, max_batches: int | None = None,
               dry_run: bool = False,
               group_by_shape: bool = False, gzip: bool = False, memory: bool = False,
               watchers: Sequence["Instrument"] = (), log: Log | None = None,
               announce: Log | None = None) -> "RunResult":
    """Trace RUN's configuration in a scratch folder inside RUN, then move only the trace into RUN (``--into``).

    RUN's other sections (phases, lines, metrics, command) stay as they were; an
    earlier trace there is replaced. Interrupted, RUN is left untouched.
    """
    import os
    import shutil
    import tempfile

    from lmprof.instrument.trace import TRACE_DIR, TraceInstrument
    from lmprof.record.result import RunResult
    from lmprof.runner import run
    from lmprof.safe_files import member_state

    if out is not None:
        raise UsageError("--into RUN writes into RUN: leave out --out")
    target = RunResult.load(run_folder)
    folder = Path(target.run_dir)
    state = member_state(folder, TRACE_DIR)  # checked before training, not after it
    if state not in ("dir", "missing"):
        what = "a symbolic link" if state == "link" else "not a folder"
        raise UsageError(f"{folder / TRACE_DIR} is {what}: lmprof writes the trace only into a folder of its own "
                         "there; remove it and run again")
    if max_batches is None and not dry_run:
        max_batches = schedule.steps
    cfg = RunConfig.from_dict(target.config).replace(
        out=None, save=None, epochs=1, max_batches=max_batches, dry_run=dry_run).validate()
    if announce is not None:
        announce(f"Tracing {folder}'s configuration ({cfg.model}); its other tables stay as they are.")
    tracer = TraceInstrument(schedule, group_by_shape=group_by_shape, memory=memory, gzip=gzip)
    scratch = Path(tempfile.mkdtemp(dir=folder, prefix=".trace-into-"))
    try:
        traced = run(cfg, command="trace", instruments=[tracer, *watchers], log=log or quiet_log, run_dir=scratch)
        if (scratch / TRACE_DIR).is_dir():
            shutil.rmtree(folder / TRACE_DIR, ignore_errors=True)
            os.replace(scratch / TRACE_DIR, folder / TRACE_DIR)
        target.ops = traced.ops
        target.files = {role: name for role, name in target.files.items() if not role.startswith("trace")}
        target.files.update({role: name for role, name in traced.files.items() if role.startswith("trace")})
        target.save(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def trace_from(values: Mapping[str, Any], *, progress: Progress, log: Log | None = None,
               announce: Log | None = None) -> "RunResult":
    """``lmprof trace`` (or ``trace --into RUN``) from its option values (TRACE_OPTIONS)."""
    schedule = trace_schedule(values["wait"], values["warmup"], values["active"], values["repeat"],
                              values["row_limit"])
    shown = {"group_by_shape": values["group_by_shape"], "gzip": values["gzip"], "memory": values["memory"]}
    if values["into"] is not None:
        return trace_into(values["into"], schedule, out=values["out"], max_batches=values["max_batches"],
                          dry_run=values["dry_run"], **shown, watchers=progress(progress_name(schedule)), log=log,
                          announce=announce)
    cfg = config_from_values(values)
    return trace(cfg, schedule, **shown, components=values["components"], memory_snapshot=values["memory_snapshot"],
                 force=values["force"], watchers=progress(progress_name(schedule)), log=log)
