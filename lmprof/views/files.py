"""What is drawn into a folder: a run's or a sweep's report page, a sweep's plots.

Both faces write these (``lmprof report``, ``--report``, ``lmprof sweep``, and
``lmprof.profile(report=True)``, ``lmprof.sweep(...)``); they live with the views
that draw them so neither face imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lmprof.errors import UsageError

if TYPE_CHECKING:
    from lmprof.record.sweep_summary import SweepView


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


def save_sweep_plots(view: "SweepView", folder: Path, *, mixed_hardware: bool = False) -> dict[str, tuple[Path, Path]]:
    """A sweep's figures as png and svg in its folder: name -> (png, svg)."""
    from lmprof.views.plots import save, sweep_figures

    saved: dict[str, tuple[Path, Path]] = {}
    for name, figure in sweep_figures(view, mixed_hardware=mixed_hardware).items():
        png, svg = save(figure, folder / name)
        saved[name] = (png, svg)
    return saved
