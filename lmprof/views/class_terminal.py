"""The class in the terminal: cohorts with their quantiles, the phase shares, the misconceptions and their evidence.

``class_view(summary)`` returns one rich renderable; the command prints it.
Every name in it came from a stranger's bundle and is escaped (``from_file``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from lmprof.classroom.cohorts import SHARE_PHASES, RunRow, measure_label, quantiles
from lmprof.classroom.detectors import DETECTORS
from lmprof.record.sections import TEST_PPL, TOKENS_PER_S
from lmprof.views.format import MISSING, from_file

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lmprof.classroom.summary import ClassSummary

COHORT_MEASURES = ("ms_per_batch", "ref_steps_per_batch", TOKENS_PER_S, "valid_ppl", TEST_PPL, "memory_peak_mib")
EVIDENCE_SHOWN = 25  # lines per detector in the terminal; every one is in --csv and --report


def shown(key: str, value: float | None) -> str:
    """One value of a measure as the class views write it."""
    if value is None or not math.isfinite(value):
        return MISSING if value is None else "not finite"
    if key.startswith("share:"):
        return f"{value:.0%}"
    if key in ("valid_ppl", TEST_PPL):
        return f"{value:.3g}" if value >= 1e5 else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if key in (TOKENS_PER_S, "tokens_per_ref_step", "memory_peak_mib"):
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return f"{value:.3g}"


def values_of(members: list[RunRow], key: str, quality_only: bool = False) -> list[float]:
    """A cohort's finite values of ``key`` (``quality_only``: diverged runs left out, their ppl is no quality)."""
    return [v for r in members if (v := r.values.get(key)) is not None and math.isfinite(v)
            and not (quality_only and r.diverged)]


SHORT = {"data": "get_batch", "forward": "forward", "loss": "loss", "backward": "backward", "clip": "clip",
         "update": "update", "logging": "item/log"}


def cohort_table(summary: "ClassSummary") -> "RenderableType":
    """One block per cohort: its runs, then a line per measure with p10, median and p90."""
    from rich.table import Table

    table = Table(title="Cohorts by device kind", title_justify="left", box=None, pad_edge=False,
                  header_style="bold")
    for name, justify in (("cohort", "left"), ("runs", "right"), ("measure", "left"), ("p10", "right"),
                          ("median", "right"), ("p90", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    keys = [k for k in COHORT_MEASURES if any(r.values.get(k) is not None for r in summary.rows)]
    for name, members in summary.cohorts.items():
        first = True
        for key in keys:
            values = values_of(members, key, quality_only=key.endswith("_ppl"))
            if not values:
                continue
            lo, mid, hi = quantiles(values) if len(values) > 1 else (None, values[0], None)
            table.add_row(from_file(name) if first else "", str(len(members)) if first else "", measure_label(key),
                          shown(key, lo) if lo is not None else "", shown(key, mid),
                          shown(key, hi) if hi is not None else "", end_section=key == keys[-1])
            first = False
    return table


def share_table(summary: "ClassSummary") -> "RenderableType":
    from rich.table import Table

    table = Table(title="Each phase's share of a training step, % · median (p10-p90)", title_justify="left",
                  box=None, pad_edge=False, header_style="bold")
    table.add_column("cohort")
    for phase in SHARE_PHASES:
        table.add_column(SHORT[phase], justify="right")
    for name, members in summary.cohorts.items():
        cells = []
        for phase in SHARE_PHASES:
            values = values_of(members, f"share:{phase}")
            if not values:
                cells.append(MISSING)
                continue
            lo, mid, hi = (100 * q for q in quantiles(values))
            cells.append(f"{mid:.0f}" if len(values) < 3 else f"{mid:.0f} ({lo:.0f}-{hi:.0f})")
        table.add_row(from_file(name), *cells)
    return table


def detector_table(summary: "ClassSummary") -> "RenderableType":
    from rich.table import Table

    counts = summary.counts()
    table = Table(title="Misconceptions the numbers give away", title_justify="left", box=None, pad_edge=False,
                  header_style="bold")
    for name, justify in (("detector", "left"), ("runs", "right"), ("what it means", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for d in DETECTORS:
        count = "not checked" if d.key == "flags" and summary.expect is None else str(counts[d.key])
        table.add_row(d.title, count, d.meaning, style="bold" if counts[d.key] else None)
    return table


def evidence_lines(summary: "ClassSummary") -> list[str]:
    lines = []
    for d in DETECTORS:
        flags = [f for f in summary.flags if f.detector == d.key]
        if not flags:
            continue
        lines.append(f"\n[bold]{d.title}[/bold] ({len(flags)}) [dim]· cannot tell apart: {d.blind_spot}[/dim]")
        for f in flags[:EVIDENCE_SHOWN]:
            lines.append(f"  {from_file(f.run)}  {from_file(f.evidence)}")
        if len(flags) > EVIDENCE_SHOWN:
            lines.append(f"  [dim]... and {len(flags) - EVIDENCE_SHOWN} more (--csv, --report)[/dim]")
    return lines


def headline(summary: "ClassSummary") -> str:
    refused = f" · [bold red]{len(summary.refused)} refused[/bold red]" if summary.refused else ""
    expect = "flags compared with --expect" if summary.expect is not None else "no --expect: flags not compared"
    return (f"[bold]A class of {len(summary.rows)} run{'s' if len(summary.rows) != 1 else ''}[/bold] · "
            f"{len(summary.cohorts)} cohort{'s' if len(summary.cohorts) != 1 else ''}{refused} · {expect}")


def class_view(summary: "ClassSummary") -> "RenderableType":
    from rich.console import Group
    from rich.text import Text

    parts: list["RenderableType"] = [Text.from_markup(headline(summary)), Text("")]
    if summary.rows:
        parts += [cohort_table(summary), Text(""), share_table(summary), Text("")]
    parts.append(detector_table(summary))
    parts += [Text.from_markup(line) for line in evidence_lines(summary)]
    if summary.refused:
        parts.append(Text.from_markup(f"\n[bold]Refused[/bold] ({len(summary.refused)}): "
                                      "each costs its line, the rest of the class is shown"))
        parts += [Text.from_markup(f"  {from_file(line)}") for line in summary.refused]
    return Group(*parts)
