"""Train many configurations (LSTM vs GRU over nhid, bptt, nlayers), resumably; tables and plots.

    lmprof sweep --models LSTM GRU --vary nhid=200,400,600 --vary bptt=35,55,75 --epochs 3

Every `lmprof train` flag sets the base configuration; by default each
--vary factor moves alone around it (--grid: every combination). Rows go
to results.jsonl in the sweep folder as epochs finish; rerunning the same
command continues where it stopped; --fresh starts over.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lmprof.commands.common import add_run_flags, config_from_args
from lmprof.errors import UsageError
from lmprof.sweep.executors import EXECUTOR_NAMES

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_ROOT = "sweeps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    own = parser.add_argument_group("sweep flags")
    own.add_argument("--models", nargs="+", metavar="MODEL", default=None,
                     help="models to compare side by side (default: --model)")
    own.add_argument("--vary", action="append", default=[], metavar="NAME=V1,V2",
                     help="a factor and its values, e.g. nhid=200,400,600 (repeatable)")
    own.add_argument("--grid", action="store_true",
                     help="run every combination of the factors (default: one factor at a time around the base)")
    own.add_argument("--fresh", action="store_true", help="forget this sweep folder's results and start over")
    own.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="run N configurations at once in separate processes, CPU threads divided among them")
    own.add_argument("--executor", choices=EXECUTOR_NAMES, default=None,
                     help="inline: one run after another in this process; local: --jobs processes "
                          "(default: inline, or local with --jobs > 1)")
    add_run_flags(parser, epochs=3)
    for action in parser._actions:  # --out names the sweep folder here, not one run's
        if action.dest == "out":
            action.help = f"sweep folder (default: {DEFAULT_ROOT}/<models>_<factors>; the same command resumes it)"


def run(args: argparse.Namespace) -> int:
    if args.save:
        raise UsageError("--save: each run of a sweep saves model.pt in its own folder; drop --save")
    base = config_from_args(args).replace(out=None)
    from lmprof.sweep import build_plan, make_executor, parse_vary, run_sweep

    plan = build_plan(base, args.models or [base.model], [parse_vary(v) for v in args.vary], grid=args.grid)
    executor = make_executor(args.executor, args.jobs)
    folder = Path(args.out) if args.out else Path(DEFAULT_ROOT) / plan.name

    from lmprof.commands.console import make_console

    console = make_console()

    def log(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    outcome = run_sweep(plan, folder, executor, fresh=args.fresh, log=log)
    show(console, folder)
    if outcome.interrupted:
        console.print("[yellow]interrupted[/yellow]: rerun the same command to continue "
                      "(finished epochs are kept; the cut-off run starts again)")
        return 130
    failed = [label for label, status in outcome.statuses.items() if status == "failed"]
    if failed:
        console.print(f"[red]{len(failed)} run(s) failed[/red]: {', '.join(failed)}; "
                      "see record.json in their run folders, then rerun to retry them")
        return 1
    return 0


def show(console: "Console", folder: Path) -> None:
    """Tables on the terminal; summary.csv and the plots beside results.jsonl."""
    from lmprof.fsutil import write_text_atomic
    from lmprof.sweep import load_rows
    from lmprof.sweep.driver import SUMMARY_FILE
    from lmprof.sweep.store import RESULTS_FILE
    from lmprof.views.plots import save, sweep_figures
    from lmprof.views.sweep_tables import summary_csv, sweep_view, sweep_tables

    view = sweep_view(*load_rows(folder))
    console.print()
    console.print(sweep_tables(view))
    write_text_atomic(folder / SUMMARY_FILE, summary_csv(view))
    console.print(f"\n[bold]Sweep folder[/bold] {folder}")
    console.print(f"  results      {folder / RESULTS_FILE}", highlight=False)
    console.print(f"  summary      {folder / SUMMARY_FILE}", highlight=False)
    for name, figure in sweep_figures(view).items():
        png, svg = save(figure, folder / name)
        console.print(f"  {name:<12} {png}  {svg.name}", highlight=False)
