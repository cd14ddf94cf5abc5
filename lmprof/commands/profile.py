"""Time the reference training line by line (line_profiler) and phase by phase; print the tables.

`--fn` chooses the functions (repeatable; `--fn all` for every one). The run
folder gets result.json (phases and lines) and lines.lprof, which
`python -m line_profiler lines.lprof` reads; `lmprof show RUN` prints the
tables again without training.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from lmprof.commands.common import add_options, values_of
from lmprof.library.runs import PROFILE_OPTIONS

if TYPE_CHECKING:
    from rich.console import Console

    from lmprof.record.result import RunResult

LOG_WIDTH = 132  # piped output: wide enough for the source lines of train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, PROFILE_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from lmprof.commands.console import log_to, make_console, progress_for
    from lmprof.commands.train import finish
    from lmprof.library.runs import profile_from

    console = make_console()
    result = profile_from(values_of(args, PROFILE_OPTIONS), progress=progress_for(console), log=log_to(console))
    print_profile(console, result)  # an interrupted run's tables too, marked interrupted
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
