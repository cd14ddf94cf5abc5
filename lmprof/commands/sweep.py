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

from lmprof.commands.common import add_report_flag, add_run_flags, config_from_args
from lmprof.errors import UsageError, interrupted_exit_status
from lmprof.sweeps.executors import EXECUTOR_NAMES

if TYPE_CHECKING:
    from typing import Callable

    from rich.console import Console

DEFAULT_ROOT = "sweeps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    own = parser.add_argument_group("sweep flags")
    own.add_argument("--models", nargs="+", metavar="MODEL", default=None,
                     help="models to compare side by side (default: --model); the non-linearity is a model "
                          "choice: RNN_TANH and RNN_RELU are Elman RNNs with tanh or ReLU, beside LSTM and GRU")
    own.add_argument("--vary", action="append", default=[], metavar="NAME=V1,V2",
                     help="a factor and its values, e.g. nhid=200,400,600 (repeatable); epochs needs none: "
                          "every run records each epoch up to --epochs")
    own.add_argument("--grid", action="store_true",
                     help="run every combination of the factors (default: one factor at a time around the base)")
    own.add_argument("--fresh", action="store_true", help="forget this sweep folder's results and start over")
    own.add_argument("--grad-stats", action=argparse.BooleanOptionalAction, default=True,
                     help="record each epoch's pre-clip gradient norms and the share of batches clipped "
                          "(default: on; under 2%% of the time)")
    own.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="run N configurations at once in separate processes, CPU threads divided among them")
    own.add_argument("--executor", choices=EXECUTOR_NAMES, default=None,
                     help="inline: one run after another in this process; local: --jobs processes; "
                          "slurm: one job array (submitit); ray: one Ray task per run "
                          "(default: inline, or local with --jobs > 1)")
    own.add_argument("--mixed-hardware", action="store_true",
                     help="put timings of runs from different hardware side by side anyway")
    common = parser.add_argument_group("what each run gets (every executor honours these or says it cannot)")
    common.add_argument("--gpus-per-run", type=float, default=None, metavar="N",
                        help="whole GPUs each run owns: 0 or 1 (slurm, ray)")
    common.add_argument("--cpus-per-run", type=int, default=None, metavar="N",
                        help="CPUs each run reserves, and its torch threads (default: --threads, or what "
                             "`lmprof train` uses on this machine)")
    common.add_argument("--max-parallel", type=int, default=None, metavar="N", help="at most N runs at once")
    common.add_argument("--time-min", type=float, default=None, metavar="MIN",
                        help="each run's time limit in minutes (slurm: required, whole minutes; "
                             "ray: the driver stops the run)")
    slurm = parser.add_argument_group("--executor slurm (needs lmprof[slurm]; the sweep folder must be shared)")
    slurm.add_argument("--partition", default=None, help="SLURM partition")
    slurm.add_argument("--gres", default=None, help="generic resources per run, e.g. gpu:a100:1")
    slurm.add_argument("--gpus-per-node", type=int, default=None, metavar="N", help="GPUs per job (one run)")
    slurm.add_argument("--constraint", default=None, help="node features, e.g. a100")
    slurm.add_argument("--setup", action="append", default=None, metavar="LINE",
                       help="a shell line run before each run, e.g. 'module load cuda' (repeatable)")
    slurm.add_argument("--exclusive", action="store_true", default=None, help="each run has its node to itself")
    slurm.add_argument("--cancel-on-exit", action=argparse.BooleanOptionalAction, default=None,
                       help="on Ctrl-C, cancel the submitted jobs (--no-cancel-on-exit: leave them running "
                            "for a rerun to collect); default: ask, or leave them when there is no terminal")
    ray = parser.add_argument_group("--executor ray (needs lmprof[ray])")
    ray.add_argument("--ray-address", default=None, metavar="ADDR",
                     help="a running cluster (e.g. auto, or HOST:6379); default: start a local one for the sweep")
    add_run_flags(parser, epochs=3)
    add_report_flag(parser)
    for action in parser._actions:  # --out names the sweep folder here, not one run's
        if action.dest == "out":
            action.help = f"sweep folder (default: {DEFAULT_ROOT}/<models>_<factors>; the same command resumes it)"


def run(args: argparse.Namespace) -> int:
    if args.save:
        raise UsageError("--save: each run of a sweep saves model.pt in its own folder; drop --save")
    if args.force:
        raise UsageError("--force: a sweep folder is continued by the same command; --fresh starts it over")
    base = config_from_args(args).replace(out=None)
    from lmprof.sweeps import build_plan, make_executor, parse_vary, run_sweep

    from lmprof.commands.console import make_console
    from lmprof.sweeps.executors import EXECUTOR_OPTIONS, Resources

    console = make_console()
    plan = build_plan(base, args.models or [base.model], [parse_vary(v) for v in args.vary], grid=args.grid)
    plan.grad_stats = args.grad_stats  # the worker reads it; not part of a run's key
    resources = Resources(args.gpus_per_run, args.cpus_per_run, args.max_parallel, args.time_min)
    options = {name: getattr(args, name) for name in EXECUTOR_OPTIONS}
    executor = make_executor(args.executor, args.jobs, resources, options,
                             confirm_cancel=_ask_to_cancel(console) if sys.stdin.isatty() else None)
    folder = Path(args.out) if args.out else Path(DEFAULT_ROOT) / plan.name
    if hasattr(executor, "watchers"):  # runs in this process: a live display of each run's stages
        from lmprof.commands.console import sweep_progress

        executor.watchers = sweep_progress(console)

    def log(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    from contextlib import nullcontext

    from lmprof.commands.console import sweep_runs_progress

    # runs elsewhere (processes, a cluster): a line counting finished runs; inline runs show their own stages
    counting = nullcontext(None) if getattr(executor, "watchers", None) else sweep_runs_progress(console, executor.name)
    with counting as on_run_end:
        outcome = run_sweep(plan, folder, executor, fresh=args.fresh, log=log, on_run_end=on_run_end)
    show(console, folder, mixed_hardware=args.mixed_hardware)
    if args.report:
        from lmprof.commands.report import write_report

        console.print(f"report: {write_report(folder, mixed_hardware=args.mixed_hardware)}", highlight=False)
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
    from lmprof.fsutil import write_text_atomic
    from lmprof.sweeps import load_rows
    from lmprof.sweeps.driver import SUMMARY_FILE
    from lmprof.sweeps.store import RESULTS_FILE
    from lmprof.views.plots import save, sweep_figures
    from lmprof.record.sweep_summary import summary_csv, sweep_view
    from lmprof.views.sweep_tables import sweep_tables

    view = sweep_view(*load_rows(folder))
    console.print()
    from lmprof.commands.profile import table_width

    # piped (a log file): wide enough that a model's columns stay on one line each
    console.print(sweep_tables(view, mixed_hardware=mixed_hardware), width=table_width(console))
    write_text_atomic(folder / SUMMARY_FILE, summary_csv(view))
    console.print(f"\n[bold]Sweep folder[/bold] {folder}")
    console.print(f"  results      {folder / RESULTS_FILE}", highlight=False)
    console.print(f"  summary      {folder / SUMMARY_FILE}", highlight=False)
    for name, figure in sweep_figures(view, mixed_hardware=mixed_hardware).items():
        png, svg = save(figure, folder / name)
        console.print(f"  {name:<12} {png}  {svg.name}", highlight=False)
