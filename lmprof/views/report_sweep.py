"""The sweep folder's page of the report: plan, summary and per-epoch tables, plots.

Built from the page kit every page shares (``lmprof.views.html``); it takes the
sweep's plan and rows as loaded (``lmprof.sweeps.load_rows``), and reads from the
folder only the plot files it holds.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from lmprof.record.sections import RSS_PEAK_BYTES, SAVED_BYTES_PEAK, TEST_PPL, TOKENS_PER_S, TOTAL_SECONDS
from lmprof.views.format import number
from lmprof.views.html import Page, Section, config_rows, figure_html, rich_html, svg_image


def _plain(value: Any) -> str:
    return "—" if value is None else str(value)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


SUMMARY_COLUMNS = (  # key of summary_rows, column title, format
    ("run", "run", _plain), ("status", "status", _plain), ("epochs", "epochs", _plain),
    (TOTAL_SECONDS, "total s", _seconds), ("avg_epoch_seconds", "s / epoch", _seconds),
    (TOKENS_PER_S, "tokens/s", lambda v: "—" if v is None else f"{v:,.0f}"),
    ("ms_per_1k_tokens", "ms / 1k tokens", lambda v: "—" if v is None else f"{v:.1f}"),
    ("final_val_ppl", "final val ppl", lambda v: "—" if v is None else number(v)),
    ("min_val_ppl", "min val ppl", lambda v: "—" if v is None else number(v)),
    (TEST_PPL, "test ppl", lambda v: "—" if v is None else number(v)),
    ("nparams", "parameters", lambda v: "—" if v is None else f"{v:,}"),
    (SAVED_BYTES_PEAK, "saved activations MiB", lambda v: "—" if v is None else f"{v / 2**20:.1f}"),
    (RSS_PEAK_BYTES, "peak RSS MiB", lambda v: "—" if v is None else f"{v / 2**20:.0f}"),
)
TIME_KEYS = (TOTAL_SECONDS, "avg_epoch_seconds", TOKENS_PER_S, "ms_per_1k_tokens")  # hidden when runs of the sweep ran on different hardware


def sweep_page(plan: dict[str, Any], rows: list[dict[str, Any]], folder: Path, mixed_hardware: bool = False) -> Page:
    """The sweep's plan, its summary and per-epoch tables, and its plots (the folder's, else drawn now).

    As in ``lmprof sweep``, timings of runs from different hardware are not put side by
    side unless ``mixed_hardware``; then the plot files (drawn without it) are redrawn.
    """
    from rich.console import Group

    from lmprof.views.plots import FIGURES, sweep_figures
    from lmprof.record.sweep_summary import summary_rows, sweep_view
    from lmprof.views.sweep_tables import clip_table, factor_table, has_clip_stats, has_speed, notes, speed_table

    view = sweep_view(plan, rows)
    hide_times = view.mixed() and not mixed_hardware
    varied = {f["name"] for f in plan.get("factors", [])}
    sections = [Section("plan", "The sweep", data={
        "factors": [{"name": f["name"], "levels": ", ".join(map(str, f["values"]))} for f in plan.get("factors", [])],
        "base": [{**row, "value": "varied (see factors)"} if row["name"] in varied else row
                 for row in config_rows(plan.get("base", {}))]})]
    summary = [[("—" if hide_times and key in TIME_KEYS else fmt(row[key])) for key, _, fmt in SUMMARY_COLUMNS]
               for row in summary_rows(view)]
    for cells, row in zip(summary, summary_rows(view)):
        if ", " in row["factor"]:  # the base run, listed once: say which tables it stands in
            cells[0] = f"{cells[0]} (base run: in the {row['factor']} tables)"
    sections.append(Section("tables", "Tables", data={
        "tables": rich_html(Group(*(part for t in view.tables for part in (
            factor_table(view, t, mixed_hardware),
            *([speed_table(view, t, mixed_hardware)] if has_speed(view, t) else []),
            *([clip_table(view, t)] if has_clip_stats(view, t) else [])))),
            width=110),
        "notes": notes(view, mixed_hardware), "summary_columns": [title for _, title, _ in SUMMARY_COLUMNS],
        "summary": summary}))
    redraw = view.mixed() and mixed_hardware
    figures = {name: "" if redraw else figure_html(folder, name) for name in FIGURES}
    if not all(figures.values()):  # the command writes them; a folder copied without them still gets plots
        drawn = sweep_figures(view, mixed_hardware)
        for name, svg in figures.items():
            if not svg:
                buffer = io.StringIO()
                drawn[name].savefig(buffer, format="svg", metadata={"Date": None})
                figures[name] = svg_image(buffer.getvalue(), name)
    sections.append(Section("plots", "Plots", data={"figures": figures}))
    statuses = [r.status for r in view.runs.values()]
    headline = [("models", ", ".join(view.models)), ("runs", str(len(view.runs))),
                ("ok", str(statuses.count("ok"))), ("epochs", str(view.epochs))]
    if statuses.count("diverged"):
        headline.append(("diverged", str(statuses.count("diverged"))))
    if statuses.count("not converged"):
        headline.append(("not converged", str(statuses.count("not converged"))))
    unfinished = len(statuses) - sum(statuses.count(s) for s in ("ok", "diverged", "not converged"))
    if unfinished:
        headline.append(("not finished", f"{unfinished} (rerun the same lmprof sweep to continue)"))
    return Page(title=f"lmprof sweep report · {view.name}", subtitle=f"{' vs '.join(view.models)}, "
                f"{len(view.runs)} runs of {view.epochs} epoch(s)", kind="sweep", headline=headline, sections=sections)
