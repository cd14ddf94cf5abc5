"""Print a run's tables again from its folder (result.json), without training."""

from __future__ import annotations

import argparse

from lmprof.instrument.lines import UNITS
from lmprof.record.files import RESULT_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN",
                        help="a run folder (or its result.json), e.g. runs/profile-LSTM-...; a sweep folder; "
                             "or a hand-in bundle (lmprof pack)")
    parser.add_argument("--unit", choices=UNITS, default=None,
                        help="time unit of the line tables (default: the one the run used)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lmprof.commands.console import make_console, print_files
    from lmprof.commands.profile import print_profile

    if (Path(args.run) / "sweep.json").is_file():
        return _show_sweep(Path(args.run))
    from lmprof.classroom.bundle import load_run

    result = load_run(args.run)  # a run folder or a hand-in bundle (lmprof pack); else UsageError, one line
    console = make_console()
    print_profile(console, result, args.unit)
    if result.never_finished():
        console.print("\n" + result.never_finished(), style="yellow", markup=False, highlight=False)
    if Path(result.run_dir).is_dir():
        print_files(console, Path(result.run_dir), {"result": RESULT_FILE, **result.files})
    else:
        console.print(f"\nBundle {result.run_dir}", markup=False, highlight=False)
    return 0


def _show_sweep(folder: "Path") -> int:
    """A sweep folder: its tables and notes again, as `lmprof sweep` printed them (nothing is written)."""
    from lmprof.commands.console import make_console
    from lmprof.sweeps import load_rows
    from lmprof.record.sweep_summary import sweep_view
    from lmprof.views.sweep_tables import sweep_tables

    console = make_console()
    from lmprof.commands.profile import table_width

    console.print(sweep_tables(sweep_view(*load_rows(folder))), width=table_width(console))
    from lmprof.views.format import from_file

    console.print(f"\n[bold]Sweep folder[/bold] {from_file(folder)}  (plots and every table on one page: "
                  f"lmprof report {from_file(folder)})", highlight=False)
    return 0
