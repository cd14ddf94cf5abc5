"""Train the reference model exactly as upstream's word_language_model does, into a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lmprof.commands.common import add_options, values_of
from lmprof.library.runs import TRAIN_OPTIONS
from lmprof.record.files import RESULT_FILE

if TYPE_CHECKING:
    from rich.console import Console

    from lmprof.record.result import RunResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, TRAIN_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from lmprof.commands.console import log_to, make_console, progress_for
    from lmprof.library.runs import train_from

    console = make_console()
    return finish(console, train_from(values_of(args, TRAIN_OPTIONS), progress=progress_for(console), log=log_to(console)))


def finish(console: "Console", result: "RunResult", *, report: bool = False) -> int:
    """Write the report if asked, say where the files are; a diverged run exits 1."""
    from lmprof.commands.console import print_files

    if result.gradients.get("epochs"):  # --grad-stats
        from lmprof.views.gradflow import clip_lines

        for line in clip_lines(result.gradients):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        if result.status == "diverged":
            from lmprof.instrument.gradients import clip_summary

            console.print(f"diverged: {result.metrics.get('message') or 'stopped'}; {clip_summary(result.gradients)}",
                          highlight=False, markup=False, soft_wrap=True)
    files = {"result": RESULT_FILE, **result.files}
    if report:
        from lmprof.views.files import write_report

        files["report"] = write_report(result.run_dir).name
    print_files(console, Path(result.run_dir), files)
    if result.status == "interrupted":  # upstream's loop caught Ctrl-C or SIGTERM; the tables are kept
        from lmprof.errors import interrupted_exit_status

        return interrupted_exit_status()
    return 1 if result.status == "diverged" else 0  # the loop has already said why
