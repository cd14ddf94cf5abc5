"""Run training steps under torch.profiler: the top operators, and a trace for TensorBoard and Perfetto.

The profiler skips --wait steps, warms up for --warmup steps and records
--active steps, --repeat times. Each phase of the loop (data, forward,
backward, ...) is a named span in the trace, around its operators. Unless
--max-batches is given, the run stops training once the schedule is done.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from lmprof.commands.common import (add_components_flag, add_memory_flags, add_report_flag, add_run_flags,
                                   config_from_args, memory_instruments)
from lmprof.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from lmprof.instrument.trace import TraceSchedule
    from lmprof.record.result import RunResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_flags(parser, epochs=1)
    add_report_flag(parser)
    prof = parser.add_argument_group("torch.profiler")
    prof.add_argument("--wait", type=int, default=1, metavar="N", help="steps to skip first (default 1)")
    prof.add_argument("--warmup", type=int, default=1, metavar="N",
                      help="steps traced but discarded, so the profiler's start-up cost stays out (default 1)")
    prof.add_argument("--active", type=int, default=3, metavar="N", help="steps recorded (default 3)")
    prof.add_argument("--repeat", type=int, default=1, metavar="N",
                      help="how many wait/warmup/active cycles; one trace file each (default 1)")
    prof.add_argument("--group-by-shape", action="store_true",
                      help="one row per operator and input shapes (records shapes)")
    prof.add_argument("--gzip", action="store_true", help="write *.pt.trace.json.gz")
    prof.add_argument("--row-limit", type=int, default=15, metavar="N", help="operators to show (default 15)")
    add_components_flag(parser)
    add_memory_flags(parser, operators=True)
    prof.add_argument("--into", metavar="RUN", default=None,
                      help="add the trace to an existing run folder: trace RUN's own configuration and write "
                           "only its top operators and trace/ files, leaving its other tables as they are")


def run(args: argparse.Namespace) -> int:
    from lmprof.instrument.trace import TraceSchedule

    schedule = TraceSchedule(args.wait, args.warmup, args.active, args.repeat).validate()
    if args.row_limit < 1:
        raise UsageError(f"--row-limit must be 1 or more, got {args.row_limit}")
    if args.max_batches is None and not args.dry_run:
        args.max_batches = schedule.steps  # the steps after the schedule would go untraced
    if args.into is not None:
        return _trace_into(args, schedule)
    cfg = config_from_args(args)

    from lmprof.commands.console import log_to, make_console, progress_instruments
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.instrument.trace import TraceInstrument
    from lmprof.runner import run as run_training

    console = make_console()
    # The trace's recorder goes first: it opens each phase's span before the phase timer starts
    # and closes it after, so the profiler's own bookkeeping stays out of the phase times.
    trace = TraceInstrument(schedule, group_by_shape=args.group_by_shape, memory=args.memory, gzip=args.gzip)
    watchers = [trace, PhaseInstrument(), *memory_instruments(args, cfg)]
    if args.components:
        from lmprof.instrument.components import ComponentInstrument

        watchers.append(ComponentInstrument())
    shown = progress_instruments(console, prefix=_progress_name(schedule))
    result = run_training(cfg, command="trace", instruments=[*watchers, *shown],
                          log=log_to(console), force=args.force)
    return _show(console, args, result)


def _progress_name(schedule: "TraceSchedule") -> str:
    return f"trace (skip {schedule.wait}, warm up {schedule.warmup}, record {schedule.active})"


def _show(console: "Console", args: argparse.Namespace, result: "RunResult") -> int:
    from lmprof.commands.train import finish
    from lmprof.views.ops import memory_table, ops_table, trace_hint

    console.print()
    console.print(ops_table(result, args.row_limit))
    if args.memory:
        console.print(memory_table(result, args.row_limit))
    if result.components:
        from lmprof.views.components import component_table

        console.print()
        console.print(component_table(result))
    if result.memory:
        from lmprof.views.memory import memory_view

        console.print()
        console.print(memory_view(result))
    console.print()
    console.print(trace_hint(result), highlight=False, soft_wrap=True)
    return finish(console, result, report=args.report)


def _trace_into(args: argparse.Namespace, schedule: "TraceSchedule") -> int:
    """Trace RUN's configuration in a scratch folder inside RUN, then move only the trace into RUN.

    RUN's other sections (phases, lines, metrics, command) stay as they were; an
    earlier trace there is replaced. Interrupted, RUN is left untouched.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from lmprof.commands.console import log_to, make_console, progress_instruments
    from lmprof.config import RunConfig
    from lmprof.instrument.trace import TRACE_DIR, TraceInstrument
    from lmprof.record.result import RunResult
    from lmprof.runner import run as run_training

    if args.out is not None:
        raise UsageError("--into RUN writes into RUN: leave out --out")
    from lmprof.safe_files import member_state

    target = RunResult.load(args.into)
    folder = Path(target.run_dir)
    state = member_state(folder, TRACE_DIR)  # checked before training, not after it
    if state not in ("dir", "missing"):
        what = "a symbolic link" if state == "link" else "not a folder"
        raise UsageError(f"{folder / TRACE_DIR} is {what}: lmprof writes the trace only into a folder of its own "
                         "there; remove it and run again")
    cfg = RunConfig.from_dict(target.config).replace(
        out=None, save=None, epochs=1, max_batches=args.max_batches, dry_run=args.dry_run).validate()
    console = make_console()
    console.print(f"Tracing {folder}'s configuration ({cfg.model}); its other tables stay as they are.",
                  highlight=False, markup=False)
    trace = TraceInstrument(schedule, group_by_shape=args.group_by_shape, memory=args.memory, gzip=args.gzip)
    scratch = Path(tempfile.mkdtemp(dir=folder, prefix=".trace-into-"))
    try:
        shown = progress_instruments(console, prefix=_progress_name(schedule))
        traced = run_training(cfg, command="trace", instruments=[trace, *shown],
                              log=log_to(console), run_dir=scratch)
        if (scratch / TRACE_DIR).is_dir():
            shutil.rmtree(folder / TRACE_DIR, ignore_errors=True)
            os.replace(scratch / TRACE_DIR, folder / TRACE_DIR)
        target.ops = traced.ops
        target.files = {role: name for role, name in target.files.items() if not role.startswith("trace")}
        target.files.update({role: name for role, name in traced.files.items() if role.startswith("trace")})
        target.save(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _show(console, args, target)
