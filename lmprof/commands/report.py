"""Write one self-contained HTML page (report.html) for a run folder or a sweep folder.

    lmprof report runs/profile-LSTM-20250101-120000

The page shows what the folder holds: configuration and environment,
per-epoch metrics, the phase table, the line tables, the top operators, the
flow chart and BPTT graph, or a sweep's tables and plots. It needs no
network: open it in a browser, hand it in, print it.
"""

from __future__ import annotations

import argparse

from lmprof.views.files import write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN",
                        help="a run folder (holding result.json), a sweep folder (holding sweep.json), "
                             "or a hand-in bundle (lmprof pack)")
    parser.add_argument("--output", metavar="FILE", default=None,
                        help="where to write the page (default: RUN/report.html)")
    parser.add_argument("--mixed-hardware", action="store_true",
                        help="a sweep folder: put timings of runs from different hardware side by side "
                             "(as lmprof sweep --mixed-hardware)")


def run(args: argparse.Namespace) -> int:
    path = write_report(args.run, args.output, mixed_hardware=args.mixed_hardware)
    print(path)
    return 0
