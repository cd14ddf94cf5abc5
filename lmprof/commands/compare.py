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

if TYPE_CHECKING:
    from lmprof.comparison import Comparison
    from lmprof.record.result import RunResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="two to six run folders (lmprof profile, train, trace; a sweep's runs/<name> too); "
                             "the first is the baseline")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON instead of tables")
    parser.add_argument("--report", metavar="FILE.html", default=None,
                        help="also write the comparison as one self-contained HTML page")
    from lmprof.comparison import DRIFT_MARGIN

    parser.add_argument("--drift", type=float, default=None, metavar="FRACTION",
                        help="run-to-run drift a ratio must clear for a verdict (default: this machine's, when "
                             "benchmarks/bench_compare_noise.py --save measured it; else "
                             f"{DRIFT_MARGIN}: reruns on lmprof's 2-core reference machine drifted up to 13%%)")


def run(args: argparse.Namespace) -> int:
    from lmprof.comparison import compare, load_runs
    from lmprof.errors import UsageError

    drift = args.drift  # None: this machine's measured drift, else the default (lmprof.drift)
    if drift is not None and not 0 <= drift < 1:
        raise UsageError(f"--drift is a fraction between 0 and 1 (0.05 = 5%), got {args.drift}")
    results, notes = load_runs(args.runs)
    if not any(r.epochs or r.phases for r in results):
        raise UsageError("nothing to compare: none of these runs recorded metrics or phase times "
                         "(did they finish? lmprof profile --fn train records both)")
    comparison = compare(results, notes, drift_margin=drift)
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
