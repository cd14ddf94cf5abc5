"""The class dashboard: one self-contained page of cohorts, strip-and-box plots, flags with evidence, every run.

Built with the report's kit (``views.html``: Page, Section, render; the
report's template, extended by ``templates/class.html.j2``), under the same
rules: no script, no font, nothing fetched; every string from a bundle
escaped (by the template, and by ``html.escape`` in the SVG drawn here).
A plot draws one row per cohort: the box spans p25-p75, the whiskers
p10-p90, the bar is the median, and each run is a dot (red when a detector
flagged it) whose tooltip names it.
"""

from __future__ import annotations

import html
import math
import zlib
from typing import TYPE_CHECKING, Any

from lmprof.classroom.cohorts import MEASURES, SHARE_PHASES, measure_label, quantiles
from lmprof.classroom.detectors import DETECTORS
from lmprof.record.sections import TEST_PPL
from lmprof.views.class_terminal import COHORT_MEASURES, shown, values_of

if TYPE_CHECKING:
    from lmprof.classroom.summary import ClassSummary
    from lmprof.views.html import Page

TEMPLATE = "class.html.j2"
WIDTH, LEFT, RIGHT, ROW, TOP = 860, 230, 20, 30, 26
PLOTTED = (*COHORT_MEASURES, *(f"share:{p}" for p in SHARE_PHASES))


def _scale(values: list[float]) -> tuple[Any, list[float], bool]:
    """x(value) for the plot's span, its ticks, and whether it is logarithmic (a span past 20x)."""
    lo, hi = min(values), max(values)
    log = lo > 0 and hi / lo > 20
    if log:
        a, b = math.log10(lo), math.log10(hi)
        span = (a - 0.04 * (b - a), b + 0.04 * (b - a))
        ticks = [m * 10.0 ** k for k in range(math.floor(span[0]), math.ceil(span[1]) + 1) for m in (1, 2, 5)
                 if span[0] <= math.log10(m * 10.0 ** k) <= span[1]]
        to_unit = math.log10
    else:
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
        ticks = [lo + (hi - lo) * i / 4 for i in range(5)]
        span, to_unit = (lo, hi), (lambda v: v)
    inner = WIDTH - LEFT - RIGHT

    def x(value: float) -> float:
        return LEFT + inner * (to_unit(value) - span[0]) / ((span[1] - span[0]) or 1.0)

    return x, ticks, log


def tick_label(key: str, value: float, ticks: list[float]) -> str:
    """An axis label: a share with the decimals its ticks need to differ (1.2%, 1.4%, not 1%, 1%)."""
    if key.startswith("share:"):
        step = min((b - a for a, b in zip(ticks, ticks[1:])), default=1.0)
        return f"{value:.{0 if step >= 0.01 else 1 if step >= 0.001 else 2}%}"
    return shown(key, value)


def strip_plot(summary: "ClassSummary", key: str) -> str:
    """An inline SVG of ``key``'s distribution per cohort ("" when no run has it)."""
    quality = key.endswith("_ppl")
    per_cohort = [(name, [r for r in members if r.values.get(key) is not None
                          and math.isfinite(r.values[key] or 0.0) and not (quality and r.diverged)])
                  for name, members in summary.cohorts.items()]
    per_cohort = [(n, m) for n, m in per_cohort if m]
    every = [r.values[key] for _, m in per_cohort for r in m]
    if not every:
        return ""
    x, ticks, log = _scale([float(v) for v in every if v is not None])
    height = TOP + ROW * len(per_cohort) + 24
    label = html.escape(measure_label(key) + (" (log scale)" if log else ""))
    out = [f'<svg class="strip" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
           f'role="img" aria-label="{label} per cohort" data-measure="{html.escape(key)}">',
           f'<text x="{LEFT}" y="14" class="axis-title">{label}</text>']
    for tick in ticks:
        tx = x(tick)
        out.append(f'<line x1="{tx:.1f}" y1="{TOP - 4}" x2="{tx:.1f}" y2="{height - 20}" class="grid"/>'
                   f'<text x="{tx:.1f}" y="{height - 6}" class="tick">{html.escape(tick_label(key, tick, ticks))}</text>')
    for i, (name, members) in enumerate(per_cohort):
        y = TOP + ROW * i + ROW / 2
        values = sorted(float(r.values[key] or 0.0) for r in members)
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" class="cohort">{html.escape(name[:34])} '
                   f'({len(members)})</text>')
        if len(values) >= 3:
            p10, p25, p50, p75, p90 = quantiles(values, (0.1, 0.25, 0.5, 0.75, 0.9))
            out.append(f'<line x1="{x(p10):.1f}" y1="{y:.1f}" x2="{x(p90):.1f}" y2="{y:.1f}" class="whisker"/>'
                       f'<rect x="{x(p25):.1f}" y="{y - 8:.1f}" width="{max(x(p75) - x(p25), 1):.1f}" height="16" '
                       f'class="box"/><line x1="{x(p50):.1f}" y1="{y - 9:.1f}" x2="{x(p50):.1f}" y2="{y + 9:.1f}" '
                       'class="median"/>')
        for r in members:
            value = float(r.values[key] or 0.0)
            jitter = (zlib.crc32(r.name.encode("utf-8")) % 1000) / 1000 * 14 - 7  # the same run, the same place
            flagged = bool(summary.flags_by_run.get(r.name))
            tip = f"{r.name}: {shown(key, value)}" + (
                " · " + ", ".join(f.detector for f in summary.flags_by_run[r.name]) if flagged else "")
            out.append(f'<circle cx="{x(value):.1f}" cy="{y + jitter:.1f}" r="3" class="{"flagged" if flagged else "run"}">'
                       f'<title>{html.escape(tip)}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _cohort_rows(summary: "ClassSummary") -> list[dict[str, Any]]:
    rows = []
    for name, members in summary.cohorts.items():
        flagged = sum(1 for r in members if summary.flags_by_run.get(r.name))
        medians = {}
        for key in COHORT_MEASURES:
            values = values_of(members, key, quality_only=key.endswith("_ppl"))
            medians[key] = shown(key, quantiles(values, (0.5,))[0]) if values else "—"
        rows.append({"name": name, "runs": len(members), "flagged": flagged, "medians": medians})
    return rows


def _run_rows(summary: "ClassSummary") -> list[dict[str, Any]]:
    titles = {d.key: d.title for d in DETECTORS}
    rows = []
    for r in sorted(summary.rows, key=lambda r: (r.cohort, r.name)):
        position = r.positions.get("ms_per_batch")
        rows.append({"name": r.name, "cohort": r.cohort, "status": r.status,
                     "ms": shown("ms_per_batch", r.values.get("ms_per_batch")),
                     "position": "—" if position is None else f"{position:.0f}",
                     "ref": shown("ref_steps_per_batch", r.values.get("ref_steps_per_batch")),
                     "valid": shown("valid_ppl", r.values.get("valid_ppl")),
                     "test": shown(TEST_PPL, r.values.get(TEST_PPL)),
                     "flags": ", ".join(titles[f.detector] for f in summary.flags_by_run.get(r.name, []))})
    return rows


def class_page(summary: "ClassSummary") -> "Page":
    from lmprof.views.html import Page, Section

    counts = summary.counts()
    detectors = [{"key": d.key, "title": d.title, "meaning": d.meaning, "blind_spot": d.blind_spot,
                  "count": "not checked" if d.key == "flags" and summary.expect is None else counts[d.key],
                  "flags": [f for f in summary.flags if f.detector == d.key]} for d in DETECTORS]
    figures = {key: svg for key in PLOTTED if (svg := strip_plot(summary, key))}
    explained = {k: text for k, _, text in MEASURES}
    sections = [
        Section("class-cohorts", "Cohorts by device kind", data={"rows": _cohort_rows(summary),
                "columns": [measure_label(k) for k in COHORT_MEASURES], "measures": list(COHORT_MEASURES)}),
        Section("class-flags", "Misconceptions the numbers give away", data={"detectors": detectors}),
        Section("class-dist", "Distributions per cohort", data={"figures": figures, "explained": explained}),
        Section("class-runs", "Every run", data={"rows": _run_rows(summary)}),
    ]
    if summary.refused:
        sections.append(Section("class-refused", "Refused bundles", data={"lines": summary.refused}))
    flagged = sum(1 for r in summary.rows if summary.flags_by_run.get(r.name))
    headline = [("runs", str(len(summary.rows))), ("cohorts", str(len(summary.cohorts))),
                ("flagged", str(flagged)), ("refused", str(len(summary.refused))),
                ("--expect", "given" if summary.expect is not None else "none: flags not compared")]
    return Page(title="lmprof class", kind="class", headline=headline, sections=sections,
                subtitle=f"{len(summary.rows)} runs from {summary.inputs} bundles and folders, "
                         "grouped by the kind of device they trained on")


def class_html(summary: "ClassSummary") -> str:
    from lmprof.views.html import render

    return render(class_page(summary), TEMPLATE)
