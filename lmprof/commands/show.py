"""Print a run's tables again from its folder (result.json), without training."""

from __future__ import annotations

import argparse

from lmprof.instrument.lines import UNITS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (or its result.json), e.g. runs/profile-LSTM-...")
    parser.add_argument("--unit", choices=UNITS, default=None,
                        help="time unit of the line tables (default: the one the run used)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lmprof.commands.console import make_console, print_files
    from lmprof.commands.profile import print_profile
    from lmprof.result import RunResult

    result = RunResult.load(args.run)  # not a run folder: UsageError, one line
    console = make_console()
    print_profile(console, result, args.unit)
    print_files(console, Path(result.run_dir), {"result": "result.json", **result.files})
    return 0
