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
                        help="a run folder (holding result.json), a sweep folder (holding sweep.json), "
                             "or a hand-in bundle (lmprof pack)")
    parser.add_argument("--output", metavar="FILE", default=None,
                        help="where to write the page (default: RUN/report.html)")
    parser.add_argument("--mixed-hardware", action="store_true",
                        help="a sweep folder: put timings of runs from different hardware side by side "
                             "(as lmprof sweep --mixed-hardware)")


def is_sweep_folder(folder: Path) -> bool:
    from lmprof.record.result import RESULT_FILE
    from lmprof.sweeps.driver import SWEEP_FILE

    return (folder / SWEEP_FILE).is_file() and not (folder / RESULT_FILE).is_file()


def folder_report(folder: str | Path, *, mixed_hardware: bool = False) -> str:
    """The HTML of a run folder's or a sweep folder's report (UsageError for anything else)."""
    from lmprof.record.result import RESULT_FILE, RunResult
    from lmprof.views.html import render
    from lmprof.views.report import run_report

    path = Path(folder)
    if path.is_dir() and is_sweep_folder(path):
        from lmprof.sweeps import load_rows
        from lmprof.views.report_sweep import sweep_page

        plan, rows = load_rows(path)
        return render(sweep_page(plan, rows, path, mixed_hardware))
    if path.is_dir() and not (path / RESULT_FILE).exists():
        raise UsageError(f"{folder} is not a run folder (no {RESULT_FILE}) nor a sweep folder (no sweep.json): "
                         "give a folder that lmprof profile, train, trace or sweep wrote")
    return run_report(RunResult.load(path))


def write_report(run_dir: str | Path, output: str | Path | None = None, *, mixed_hardware: bool = False) -> Path:
    """Render RUN's report and write it atomically; return its path (``--report`` on other commands calls this)."""
    from lmprof.views.report import REPORT_FILE

    folder = Path(run_dir)
    if folder.is_file():  # a hand-in bundle (lmprof pack): its page beside it, NAME.html
        from lmprof.classroom.bundle import load_run
        from lmprof.views.report import run_report

        html, target = run_report(load_run(folder)), Path(output) if output else folder.with_suffix(".html")
        return _write_page(target, html)
    if not folder.is_dir():
        raise UsageError(f"{run_dir} is not a folder: give a run folder (lmprof profile, train, trace) "
                         "or a sweep folder (lmprof sweep)")
    html = folder_report(folder, mixed_hardware=mixed_hardware)
    return _write_page(Path(output) if output else folder / REPORT_FILE, html)


def _write_page(target: Path, html: str) -> Path:
    from lmprof.fsutil import write_text_atomic

    try:
        return write_text_atomic(target, html)
    except OSError as e:
        raise UsageError(f"cannot write {target}: {e.strerror}: choose another --output") from None


def run(args: argparse.Namespace) -> int:
    path = write_report(args.run, args.output, mixed_hardware=args.mixed_hardware)
    print(path)
    return 0
