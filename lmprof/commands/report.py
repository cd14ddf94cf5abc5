"""Write one self-contained HTML page (report.html) for a run folder or a sweep folder.

    lmprof report runs/profile-LSTM-20250101-120000

The page shows what the folder holds: configuration and environment,
per-epoch metrics, the phase table, the line tables, the top operators, the
flow chart and BPTT graph, or a sweep's tables and plots. It needs no
network: open it in a browser, hand it in, print it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lmprof.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN",
                        help="a run folder (holding result.json) or a sweep folder (holding sweep.json)")
    parser.add_argument("--output", metavar="FILE", default=None,
                        help="where to write the page (default: RUN/report.html)")
    parser.add_argument("--mixed-hardware", action="store_true",
                        help="a sweep folder: put timings of runs from different hardware side by side "
                             "(as lmprof sweep --mixed-hardware)")


def write_report(run_dir: str | Path, output: str | Path | None = None, *, mixed_hardware: bool = False) -> Path:
    """Render RUN's report and write it atomically; return its path (``--report`` on other commands calls this)."""
    from lmprof.fsutil import write_text_atomic
    from lmprof.views.report import REPORT_FILE, folder_report

    folder = Path(run_dir)
    if not folder.is_dir():
        raise UsageError(f"{run_dir} is not a folder: give a run folder (lmprof profile, train, trace) "
                         "or a sweep folder (lmprof sweep)")
    html = folder_report(folder, mixed_hardware=mixed_hardware)
    target = Path(output) if output else folder / REPORT_FILE
    try:
        return write_text_atomic(target, html)
    except OSError as e:
        raise UsageError(f"cannot write {target}: {e.strerror}: choose another --output") from None


def run(args: argparse.Namespace) -> int:
    path = write_report(args.run, args.output, mixed_hardware=args.mixed_hardware)
    print(path)
    return 0
