"""Train many configurations (LSTM vs GRU over nhid, bptt, nlayers), resumably; tables and plots.

    lmprof sweep --models LSTM GRU --vary nhid=200,400,600 --vary bptt=35,55,75 --epochs 3
    lmprof sweep --models RNN_TANH RNN_RELU LSTM GRU --epochs 3      (the non-linearities)

Every `lmprof train` flag sets the base configuration; by default each
--vary factor moves alone around it (--grid: every combination). Rows go
to results.jsonl in the sweep folder as epochs finish; rerunning the same
command continues where it stopped; --fresh starts over. --executor slurm
or ray hands the runs to a cluster (see lmprof/sweeps/slurm.py, ray_executor.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lmprof.commands.common import add_options, values_of
from lmprof.errors import interrupted_exit_status
from lmprof.library.sweep import SWEEP_OPTIONS

if TYPE_CHECKING:
    from typing import Callable

    from rich.console import Console

    from lmprof.sweeps.driver import SweepOutcome
    from lmprof.sweeps.executors import Executor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, SWEEP_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from lmprof.commands.console import make_console
    from lmprof.library.sweep import plan_sweep, run_planned, runs_inline, set_watchers
    from lmprof.views.progress import sweep_progress, sweep_runs_progress

    console = make_console()
    setup = plan_sweep(values_of(args, SWEEP_OPTIONS),
                       confirm_cancel=_ask_to_cancel(console) if sys.stdin.isatty() else None)
    if runs_inline(setup):  # runs in this process: a live display of each run's stages
        set_watchers(setup, sweep_progress(console))

    def log(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    # runs elsewhere (processes, a cluster): a line counting finished runs; inline runs show their own stages
    executor = setup.executor
    counting = nullcontext(None) if getattr(executor, "watchers", None) else sweep_runs_progress(console, executor.name)
    with counting as on_run_end:
        outcome = run_planned(setup, log=log, on_run_end=on_run_end)
    show(console, setup.folder, mixed_hardware=args.mixed_hardware)
    if args.report:
        from lmprof.views.files import write_report

        console.print(f"report: {write_report(setup.folder, mixed_hardware=args.mixed_hardware)}", highlight=False)
    return _ending(console, executor, outcome)


def _ending(console: "Console", executor: "Executor", outcome: "SweepOutcome") -> int:
    """What is left running, interrupted or failed, and the exit status that says so."""
    if executor.left_running:
        console.print(f"[yellow]{len(executor.left_running)} {executor.name} job(s) keep running[/yellow] "
                      f"({', '.join(executor.left_running)}): rerun the same command to collect them, "
                      "or cancel them with scancel", highlight=False)
    if outcome.interrupted:
        console.print("[yellow]interrupted[/yellow]: rerun the same command to continue "
                      "(finished epochs are kept; the cut-off run starts again)")
        return interrupted_exit_status()  # 130 after Ctrl-C, 143 after SIGTERM
    failed = [label for label, status in outcome.statuses.items() if status == "failed"]
    if failed:
        console.print(f"[red]{len(failed)} run(s) failed[/red]: {', '.join(failed)}; "
                      "see result.json (its sweep section) in their run folders, then rerun to retry them")
        return 1
    return 0


def _ask_to_cancel(console: "Console") -> "Callable[[int], bool]":
    def ask(count: int) -> bool:
        answer = console.input(f"\ncancel the {count} submitted job(s) still queued or running? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return ask


def show(console: "Console", folder: Path, mixed_hardware: bool = False) -> None:
    """Tables on the terminal; summary.csv and the plots beside results.jsonl."""
    from lmprof.commands.profile import table_width
    from lmprof.library.sweep import summarize
    from lmprof.sweeps.driver import SUMMARY_FILE
    from lmprof.sweeps.store import RESULTS_FILE
    from lmprof.views.files import save_sweep_plots
    from lmprof.views.sweep_tables import sweep_tables

    view = summarize(folder)
    console.print()
    # piped (a log file): wide enough that a model's columns stay on one line each
    console.print(sweep_tables(view, mixed_hardware=mixed_hardware), width=table_width(console))
    console.print(f"\n[bold]Sweep folder[/bold] {folder}")
    console.print(f"  results      {folder / RESULTS_FILE}", highlight=False)
    console.print(f"  summary      {folder / SUMMARY_FILE}", highlight=False)
    for name, (png, svg) in save_sweep_plots(view, folder, mixed_hardware=mixed_hardware).items():
        console.print(f"  {name:<12} {png}  {svg.name}", highlight=False)
