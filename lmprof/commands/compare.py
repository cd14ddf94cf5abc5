"""Compare two to six runs, phase by phase and line by line, with a verdict that knows the machine's noise.

    lmprof compare runs/lstm runs/gru                   the tables; the first run is the baseline
    lmprof compare runs/lstm runs/gru --json            the same as JSON, stable keys
    lmprof compare runs/lstm runs/gru --report cmp.html one self-contained HTML page

A phase is called faster or slower only when the 95% bootstrap interval of
its time ratio excludes 1 and the ratio clears the run-to-run drift of this
machine; otherwise it is within noise. Runs on different hardware or
thread counts are shown side by side but not judged on time.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lmprof.commands.common import add_options
from lmprof.library.compare import COMPARE_OPTIONS

if TYPE_CHECKING:
    from lmprof.comparison import Comparison
    from lmprof.record.result import RunResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="two to six run folders (lmprof profile, train, trace; a sweep's runs/<name> too); "
                             "the first is the baseline")
    add_options(parser, COMPARE_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from lmprof.library.compare import compare_runs

    comparison, results = compare_runs(args.runs, args.drift)
    if args.report:
        _write_page(comparison, results, args.report)
    if args.json:
        print(comparison.to_json())
        return 0
    from lmprof.commands.console import make_console
    from lmprof.views.compare import compare_view

    console = make_console()
    console.print(compare_view(comparison))
    if args.report:
        console.print(f"\nHTML page: {args.report}", highlight=False, markup=False, soft_wrap=True)
    return 0


def _write_page(comparison: "Comparison", results: "list[RunResult]", target: str) -> None:
    from pathlib import Path

    from lmprof.errors import UsageError
    from lmprof.fsutil import write_text_atomic
    from lmprof.views.compare import compare_html

    try:
        write_text_atomic(Path(target), compare_html(comparison, results))
    except OSError as e:
        raise UsageError(f"cannot write {target}: {e.strerror}: choose another --report path") from None
