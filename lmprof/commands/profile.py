"""Time the reference training line by line (line_profiler) and phase by phase; print the tables.

`--fn` chooses the functions (repeatable; `--fn all` for every one). The run
folder gets result.json (phases and lines) and lines.lprof, which
`python -m line_profiler lines.lprof` reads; `lmprof show RUN` prints the
tables again without training.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lmprof.commands.common import (add_components_flag, add_grad_stats_flag, add_memory_flags, add_report_flag,
                                   add_run_flags, config_from_args, grad_stats_instruments, memory_instruments)
from lmprof.instrument.lines import ALL, FUNCTIONS, SYNC_MODES, UNITS

if TYPE_CHECKING:
    from rich.console import Console

    from lmprof.record.result import RunResult

LOG_WIDTH = 132  # piped output: wide enough for the source lines of train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_flags(parser, epochs=1)
    add_report_flag(parser)
    lines = parser.add_argument_group("line profiling")
    lines.add_argument("--fn", action="append", metavar="NAME",
                       help=f"function to time line by line, repeatable: {', '.join(FUNCTIONS)} "
                            f"or {ALL} (default: train)")
    lines.add_argument("--unit", choices=UNITS, default="auto",
                       help="time unit of the line tables (default: auto, per table)")
    lines.add_argument("--sync", choices=SYNC_MODES, default="launch",
                       help="CUDA only: blocking sets CUDA_LAUNCH_BLOCKING=1 so each line's time includes its "
                            "kernels (slower); launch (default) times kernel launches")
    parser.add_argument("--remeasure-peak", action="store_true",
                        help="measure this machine's matmul peak again (else: the cached one, if under a day old "
                             "and taken with the same thread count)")
    add_components_flag(parser)
    parser.add_argument("--backward-lines", action="store_true",
                        help="with --fn forward or --fn train: each line of the model's forward with its operators' "
                             "time, forward (device) and in backward, from a torch.profiler window on a few batches")
    add_grad_stats_flag(parser)
    add_memory_flags(parser)


def run(args: argparse.Namespace) -> int:
    from lmprof.instrument.lines import choose_functions

    functions = choose_functions(args.fn)
    if getattr(args, "backward_lines", False) and not {"forward", "train"} & set(functions):
        from lmprof.errors import UsageError

        raise UsageError("--backward-lines shows each line of forward with its backward: add --fn forward "
                         "(or --fn train, where loss.backward() gets the breakdown)")
    cfg = config_from_args(args)
    if args.sync == "blocking":
        from lmprof.config import set_launch_blocking

        set_launch_blocking()  # read when CUDA starts: set before anything touches the GPU, or refused

    from lmprof.commands.console import log_to, make_console, progress_instruments
    from lmprof.commands.train import finish
    from lmprof.instrument.flops import FlopInstrument
    from lmprof.instrument.lines import LineInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.record.result import RunResult
    from lmprof.runner import default_run_dir
    from lmprof.runner import run as run_training

    console = make_console()
    run_dir = Path(cfg.out) if cfg.out else default_run_dir("profile", cfg)
    instruments = [PhaseInstrument(), FlopInstrument(remeasure_peak=args.remeasure_peak), LineInstrument(functions, unit=args.unit, sync=args.sync),
                   *grad_stats_instruments(args), *memory_instruments(args, cfg), *progress_instruments(console)]
    if args.components:
        from lmprof.instrument.components import ComponentInstrument

        instruments.insert(1, ComponentInstrument())  # after the phase timer: its markers open first
    if getattr(args, "backward_lines", False):
        from lmprof.instrument.backward_lines import BackwardLineInstrument

        instruments.append(BackwardLineInstrument())  # after --components: its contribute reads theirs
    try:
        result = run_training(cfg, command="profile", instruments=instruments, log=log_to(console),
                              run_dir=run_dir, force=args.force)
    except KeyboardInterrupt:
        # Ctrl-C outside the training loop (which handles its own): the runner has still written
        # what the instruments saw, so print that, marked interrupted, and exit as interrupted.
        if not (run_dir / "result.json").is_file():
            raise
        result = RunResult.load(run_dir)
        if result.status != "interrupted":  # an older run's file: this run wrote nothing yet
            raise
        print_profile(console, result)
        return finish(console, result, report=args.report)
    print_profile(console, result)
    return finish(console, result, report=args.report)


def table_width(console: "Console") -> int | None:
    """A terminal's own width; piped output (a log file) gets room for whole source lines."""
    if console.is_terminal or os.environ.get("COLUMNS", "").strip().isdigit():
        return None
    return max(console.width, LOG_WIDTH)


def print_profile(console: "Console", result: "RunResult", unit: str | None = None) -> None:
    """The summary, the phase table and the line tables (`lmprof show` prints the same)."""
    from lmprof.views.tables import profile_view

    width = table_width(console)
    if width:
        console.width = width  # print() clamps its width to the console's, so widen the console
    console.print()
    console.print(profile_view(result, unit))
