"""Measure a ladder of well-known speed-ups against the reference, with the quality cost kept honest.

    lmprof speedlab --budget-batches 100                 every variant this device can run, 3 repeats
    lmprof speedlab --device cuda --budget-seconds 3     on a GPU (the default there): 3 s of reference training
    lmprof speedlab --variants foreach,bf16 --repeats 5  a few, more repeats
    lmprof speedlab --json                               the ladder as one JSON object, a row per variant

Upstream's flags pick the baseline. The reference (lmprof/reference/, unchanged)
and each variant train for the same token budget from the same seed and data,
interleaved and repeated; each is judged on tokens/s and on time to quality:
the seconds until its validation ppl reaches the reference's. The run folder
holds ladder.json, speedlab.html, and one result.json per variant that
``lmprof compare`` opens (e.g. lmprof compare DIR/reference DIR/bf16).
"""

from __future__ import annotations

import argparse

from lmprof.commands.common import add_options, values_of
from lmprof.library.speedlab import SPEEDLAB_OPTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, SPEEDLAB_OPTIONS)


def run(args: argparse.Namespace) -> int:
    import sys

    from lmprof.fsutil import write_text_atomic
    from lmprof.library.speedlab import LADDER_FILE, speedlab_from
    from lmprof.views.speedlab import ladder_view, speedlab_html

    def progress(line: str) -> None:
        print(f"speedlab: {line}", file=sys.stderr, flush=True)

    measured = speedlab_from(values_of(args, SPEEDLAB_OPTIONS), progress=progress)
    ladder, folder = measured.ladder, measured.folder
    write_text_atomic(folder / "speedlab.html", speedlab_html(ladder))
    status = 0
    if ladder.interrupted:
        from lmprof.errors import interrupted_exit_status

        status = interrupted_exit_status()  # after the files: what finished is kept
    if args.json:
        print(ladder.to_json())
        return status
    from lmprof.commands.console import make_console, print_files

    console = make_console()
    if not console.is_terminal:  # a log file does not wrap: the ladder's rows whole rather than folded at 80
        console.width = max(console.width, 132)
    console.print(ladder_view(ladder))
    print_files(console, folder, {"ladder": LADDER_FILE, "page": "speedlab.html", "runs": "reference"})
    return status
