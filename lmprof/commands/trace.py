"""Run training steps under torch.profiler: the top operators, and a trace for TensorBoard and Perfetto.

The profiler skips --wait steps, warms up for --warmup steps and records
--active steps, --repeat times. Each phase of the loop (data, forward,
backward, ...) is a named span in the trace, around its operators. Unless
--max-batches is given, the run stops training once the schedule is done.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lmprof.commands.common import add_options, values_of
from lmprof.library.trace import TRACE_OPTIONS

if TYPE_CHECKING:
    from rich.console import Console

    from lmprof.record.result import RunResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, TRACE_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from lmprof.commands.console import log_to, make_console, progress_for
    from lmprof.library.trace import trace_from

    console = make_console()

    def announce(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    result = trace_from(values_of(args, TRACE_OPTIONS), progress=progress_for(console), log=log_to(console), announce=announce)
    return _show(console, args, result)


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
