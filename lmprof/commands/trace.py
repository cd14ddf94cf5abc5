"""Run training steps under torch.profiler: the top operators, and a trace for TensorBoard and Perfetto.

The profiler skips --wait steps, warms up for --warmup steps and records
--active steps, --repeat times. Each phase of the loop (data, forward,
backward, ...) is a named span in the trace, around its operators. Unless
--max-batches is given, the run stops training once the schedule is done.
"""

from __future__ import annotations

import argparse

from lmprof.commands.common import add_report_flag, add_run_flags, config_from_args
from lmprof.errors import UsageError


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
    prof.add_argument("--memory", action="store_true", help="record memory allocated by each operator")
    prof.add_argument("--gzip", action="store_true", help="write *.pt.trace.json.gz")
    prof.add_argument("--row-limit", type=int, default=15, metavar="N", help="operators to show (default 15)")


def run(args: argparse.Namespace) -> int:
    from lmprof.instrument.trace import TraceSchedule

    schedule = TraceSchedule(args.wait, args.warmup, args.active, args.repeat).validate()
    if args.row_limit < 1:
        raise UsageError(f"--row-limit must be 1 or more, got {args.row_limit}")
    if args.max_batches is None and not args.dry_run:
        args.max_batches = schedule.steps  # the steps after the schedule would go untraced
    cfg = config_from_args(args)

    from lmprof.commands.console import log_to, make_console, progress_instruments
    from lmprof.commands.train import finish
    from lmprof.instrument.recorders import PhaseTimer
    from lmprof.instrument.trace import TraceSession
    from lmprof.runner import run as run_training
    from lmprof.views.ops import memory_table, ops_table, trace_hint

    console = make_console()
    # The trace's recorder goes first: it opens each phase's span before the phase timer starts
    # and closes it after, so the profiler's own bookkeeping stays out of the phase times.
    trace = TraceSession(schedule, group_by_shape=args.group_by_shape, memory=args.memory, gzip=args.gzip)
    result = run_training(cfg, command="trace", instruments=[trace, PhaseTimer(), *progress_instruments(console)],
                          log=log_to(console))
    console.print()
    console.print(ops_table(result, args.row_limit))
    if args.memory:
        console.print(memory_table(result, args.row_limit))
    console.print()
    console.print(trace_hint(result), highlight=False, soft_wrap=True)
    return finish(console, result, report=args.report)
