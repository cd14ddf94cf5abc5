"""Views of a Comparison: the same tables for the terminal (rich) and the HTML page.

``grids(comparison)`` turns a Comparison into plain tables of strings (one
``Grid`` each: what differs, outcome, phases, predicted vs measured, lines,
operators); ``compare_view`` renders them with rich, ``compare_html`` fills
them into the report's page kit (``lmprof.views.html``), so both show the
same numbers. Nothing here prints or trains.

    >>> Console(width=140).print(compare_view(compare(load_runs(["runs/a", "runs/b"])[0])))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from lmprof.comparison import (BASELINE, FASTER, LINE_MIN_HITS, NO_SAMPLES, NOISE, NOT_COMPARABLE, SLOWER, STEP_ROW,
                            TOO_SMALL, Comparison, FunctionDiff)
from lmprof.divergence import DIVERGED, NOT_CONVERGED
from lmprof.views.format import duration, ratio as times  # "times": the name the compare and speedlab grids use

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lmprof.record.result import RunResult
    from lmprof.views.html import Page, Section

TEMPLATE = "compare.html.j2"
VERDICT_STYLE = {FASTER: "bold green", SLOWER: "bold red", NOISE: "dim", NOT_COMPARABLE: "yellow",
                 NO_SAMPLES: "dim", BASELINE: "dim", TOO_SMALL: "dim", DIVERGED: "bold red", NOT_CONVERGED: "yellow"}
VERDICT_CLASS = {FASTER: "faster", SLOWER: "slower", NOISE: "noise", NOT_COMPARABLE: "incomparable", TOO_SMALL: "noise",
                 DIVERGED: "slower", NOT_CONVERGED: "incomparable"}


@dataclass
class Grid:
    """One table as strings: a title, column names, rows, which columns are numbers, a caption."""
    id: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    caption: str = ""
    verdict_columns: list[int] = field(default_factory=list)  # cells coloured by their verdict


# --- formatting ----------------------------------------------------------------------------
def interval(bounds: list[float] | None) -> str:
    return "—" if bounds is None else f"{bounds[0]:.2f}–{bounds[1]:.2f}"


def value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1000:  # counts: parameters
        return f"{v:,.0f}"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) >= 1 or v == 0 else f"{v:.3g}"
    return str(v)


def flop_count(f: float | None) -> str:
    return "—" if f is None else f"{f / 1e9:,.2f} G"


# --- the grids -----------------------------------------------------------------------------
def run_status(c: Comparison, i: int) -> str:
    """'diverged' / 'not converged' (the sweep's rule, lmprof.divergence), else 'learned'."""
    judged = c.judgements[i] if i < len(c.judgements) else None
    return judged["status"] if judged else "learned"


def runs_grid(c: Comparison) -> Grid:
    rows = [[("A" if i == 0 else chr(ord("A") + i)), name + (" (baseline)" if i == 0 else ""), desc,
             run_status(c, i)] for i, (name, desc) in enumerate(zip(c.names, c.descriptions))]
    flagged = [j for j in c.judgements if j]
    caption = ("diverged / not converged: validation perplexity above the vocabulary size (worse than a uniform "
               "guess); its ppl and ratios say nothing about the model (see the notes)") if flagged else ""
    return Grid("runs", "Runs", ["", "run folder", "what ran", "outcome"], rows, [False] * 4, caption, [3])


def letters(c: Comparison) -> list[str]:
    return [chr(ord("A") + i) for i in range(len(c.names))]


def differs_grid(c: Comparison) -> Grid:
    rows = [[d.key, *[value(v) for v in d.values]] for d in c.config]
    rows += [[f"environment: {d.key}", *[value(v) for v in d.values]] for d in c.environment]
    caption = "" if rows else "Same configuration and environment."
    if not c.comparable_on_time:
        caption = "Different hardware or threads: times are shown, not judged (not comparable on time)."
    return Grid("differs", "What differs", ["setting", *letters(c)], rows, [False] * (len(c.names) + 1), caption)


def outcome_grid(c: Comparison) -> Grid:
    others = letters(c)[1:]
    rows = []
    flagged = [run_status(c, i) if run_status(c, i) != "learned" else "" for i in range(len(c.names))]
    for o in c.outcomes:
        ppl = "ppl" in o.metric  # a diverged run's perplexity is named, and its ratio is not a result
        cells = [o.metric, value(o.values[0]) + (f" ({flagged[0]})" if ppl and flagged[0] else "")]
        for i, (v, r) in enumerate(zip(o.values[1:], o.ratios[1:]), start=1):
            bad = ppl and (flagged[i] or flagged[0])
            cells += [value(v) + (f" ({flagged[i]})" if ppl and flagged[i] else ""), "—" if bad else times(r)]
        rows.append(cells)
    columns = ["", "A"] + [col for x in others for col in (x, f"{x}/A")]
    return Grid("outcome", "Outcome", columns, rows, [False] + [True] * (len(columns) - 1),
                "ppl: lower is better; ms per batch: the training loop's wall time over its batches.")


def phase_grid(c: Comparison) -> Grid:
    others = letters(c)[1:]
    rows = []
    for p in c.phases:
        cells = [p.name if p.name != STEP_ROW else "whole step"]  # names, as result.json and --json call them
        for median, spread in zip(p.medians, p.spreads):
            cells.append(duration(median) + (f" ±{spread / 2 / median:.0%}" if spread is not None and median
                                                 else ""))
        for i in range(1, len(c.names)):
            cells += [times(p.ratios[i]), interval(p.intervals[i]), p.verdicts[i]]
        rows.append(cells)
    columns = ["phase", *[f"{x} per batch" for x in letters(c)]]
    columns += [col for x in others for col in (f"{x}/A", "95% interval", "verdict")]
    verdicts = [len(c.names) + 3 * i + 3 for i in range(len(others))]
    numeric = [False] + [j not in verdicts for j in range(1, len(columns))]
    source = c.drift_source or f"{c.drift_margin:.0%}"
    caption = (f"Median time per training batch ± half the interquartile range. A verdict says faster or slower "
               f"only when the bootstrap {c.confidence:.0%} interval of the ratio excludes 1 and the ratio clears "
               f"the run-to-run drift margin: {source}; otherwise within noise. Phases under the noise floor "
               f"(1% of A's step and 200 µs) are too small to judge.")
    return Grid("phases", "Phases: time per batch", columns, rows, numeric, caption, verdicts)


def flop_grid(c: Comparison) -> Grid:
    others = letters(c)[1:]
    rows = []
    for f in c.flops:
        cells = [f.phase, *[flop_count(v) for v in f.flops]]
        for fr, tr in zip(f.flop_ratios[1:], f.time_ratios[1:]):
            beyond = tr / fr if tr is not None and fr else None
            cells += [times(fr), times(tr), times(beyond)]
        rows.append(cells)
    columns = ["phase", *[f"{x} FLOPs/batch" for x in letters(c)]]
    columns += [col for x in others for col in (f"{x}/A FLOPs", f"{x}/A time", "time/FLOPs")]
    return Grid("flops", "Predicted (matmul FLOPs) vs measured (time)", columns, rows,
                [False] + [True] * (len(columns) - 1),
                "time/FLOPs near 1.00×: arithmetic explains the difference; above: the other run pays more per "
                "FLOP (overheads, smaller kernels, memory traffic); below: it pays less.")


def line_grid(c: Comparison, fn: FunctionDiff) -> Grid:
    others = letters(c)[1:]
    rows = []
    for d in fn.rows:
        cells = [d.source, duration(d.per_hit[0])]
        for v, r in zip(d.per_hit[1:], d.ratios[1:]):
            cells += [duration(v), times(r) if d.judged else TOO_SMALL]
        if fn.bwd:  # --backward-lines in every run: the statement's backward per step, and its ratio
            bwd = fn.bwd.get(d.source) or [None] * len(c.names)
            cells += [duration(v) for v in bwd] + [times(v / bwd[0] if v is not None and bwd[0] else None)
                                                   for v in bwd[1:]]
        rows.append(cells)
    columns = ["statement", "A per hit"] + [col for x in others for col in (f"{x} per hit", f"{x}/A")]
    if fn.bwd:
        columns += [f"{x} bwd" for x in letters(c)] + [f"{x}/A bwd" for x in others]
    return Grid(f"lines-{fn.name}", f"Lines of {fn.name}: the statements whose time per hit changed most", columns,
                rows, [False] + [True] * (len(columns) - 1),
                f"Matched by statement text, not line number. Lines with fewer than {LINE_MIN_HITS} hits in a run "
                "are listed last, too small to judge.")


def ops_grid(c: Comparison) -> Grid:
    from lmprof.views.ops import short_op_name

    others = letters(c)[1:]
    rows = []
    for o in c.ops:
        cells = [short_op_name(o.name), duration(o.per_step[0])]
        for v, r in zip(o.per_step[1:], o.ratios[1:]):
            cells += [duration(v), times(r)]
        rows.append(cells)
    columns = ["operator", "A per step"] + [col for x in others for col in (f"{x} per step", f"{x}/A")]
    return Grid("ops", f"Top operators by {c.op_unit} time per traced step", columns, rows,
                [False] + [True] * (len(columns) - 1))


def grids(c: Comparison) -> list[Grid]:
    """Every table of the comparison, in the order the terminal and the page show them."""
    out = [runs_grid(c), differs_grid(c)]
    if c.outcomes:
        out.append(outcome_grid(c))
    if c.phases:
        out.append(phase_grid(c))
    if c.flops:
        out.append(flop_grid(c))
    out += [line_grid(c, fn) for fn in c.lines]
    if c.ops:
        out.append(ops_grid(c))
    if c.components:
        out.append(component_grid(c))
    return out


def component_grid(c: Comparison) -> Grid:
    """Each model component's forward and backward per training step, and the total's ratio to A."""
    others = letters(c)[1:]
    rows = []
    for row in c.components:
        cells = [row.label]
        for x, (f, b) in enumerate(zip(row.forward, row.backward)):
            cells += [duration(f), duration(b)] + ([times(row.ratios[x])] if x else [])
        rows.append(cells)
    columns = ["component"] + [col for x in letters(c) for col in
                               (f"{x} forward", f"{x} backward", *([f"{x}/A"] if x in others else []))]
    return Grid("components", "Model components: time per training step", columns, rows,
                [False] + [True] * (len(columns) - 1),
                "Matched by role (the model's attribute: encoder, rnn, decoder), each run's module kind named. "
                "Mean per training step, as lmprof profile --components measured each run; no verdict "
                "(per-step samples are kept for phases only).")


def summary(c: Comparison) -> list[str]:
    """One line per other run: how many phases each verdict got."""
    lines = []
    for i, name in enumerate(c.names[1:], start=1):
        counts = c.verdict_counts(i)
        if counts:
            said = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
            lines.append(f"{letters(c)[i]} ({name}) vs A: {said} (of {sum(counts.values())} phases)")
    return lines


# --- the terminal --------------------------------------------------------------------------
def rich_grid(grid: Grid) -> "RenderableType":
    from rich.table import Table
    from rich.text import Text

    if not grid.rows:
        return Text(f"{grid.title}: {grid.caption or 'nothing'}", style="dim")
    table = Table(title=grid.title, title_justify="left", title_style="bold", header_style="bold",
                  caption=grid.caption or None, caption_justify="left", box=None, padding=(0, 1, 0, 0))
    for name, numeric in zip(grid.columns, grid.numeric):
        table.add_column(name, justify="right" if numeric else "left", no_wrap=numeric,
                         overflow="ellipsis" if grid.id.startswith("lines") and not numeric else "fold")
    for row in grid.rows:
        table.add_row(*[Text(cell, style=VERDICT_STYLE.get(cell, "")) if j in grid.verdict_columns else cell
                        for j, cell in enumerate(row)])
    return table


def compare_view(c: Comparison) -> "RenderableType":
    """Everything ``lmprof compare`` prints: the tables, the verdict summary, the notes."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    for grid in grids(c):
        parts += [rich_grid(grid), Text("")]
    parts += [Text(line, style="bold") for line in summary(c)]
    parts += [Text(f"note: {n}", style="yellow") for n in c.notes]
    return Group(*parts)


# --- the page ------------------------------------------------------------------------------
def flow_sections(c: Comparison, results: Sequence["RunResult"]) -> list["Section"]:
    """Each other run's flow chart against the baseline, coloured by ratio and verdict (``diagram flow --vs``)."""
    from lmprof.views.flowchart_compare import vs_chart
    from lmprof.views.html import Section, drawn_figure

    sections = []
    for i in range(1, len(results)):
        if not (results[0].phases and results[i].phases):
            continue
        figure = drawn_figure(vs_chart(c, results[0], results[i], i), f"flow-vs-{letters(c)[i]}")
        command = f"lmprof diagram flow --from {c.run_dirs[0]} --vs {c.run_dirs[i]}"
        sections.append(Section(f"cmp-flow-{letters(c)[i]}", f"Flow chart: {c.names[i]} against {c.names[0]}",
                                data={"figure": figure, "note": command}) if figure
                        else Section(f"cmp-flow-{letters(c)[i]}", f"Flow chart: {c.names[i]} against {c.names[0]}",
                                     missing=command))
    return sections


def compare_page(c: Comparison, results: Sequence["RunResult"] = ()) -> "Page":
    """The page's sections: every grid, the flow charts when ``results`` (the compared runs) are given, the notes."""
    from lmprof.views.html import Page, Section

    # ids prefixed: the report's own sections (phases, lines, ops) are drawn by the template it shares
    sections = [Section(f"cmp-{g.id}", g.title, data={"grid": g, "verdict_class": VERDICT_CLASS}) for g in grids(c)]
    sections += flow_sections(c, results)
    if c.notes:
        sections.append(Section("cmp-notes", "Notes", data={"notes": list(c.notes)}))
    headline = [("baseline", c.names[0]), *[(f"vs {x}", n) for x, n in zip(letters(c)[1:], c.names[1:])],
                ("timing", "comparable" if c.comparable_on_time else NOT_COMPARABLE)]
    return Page(title="lmprof compare · " + " vs ".join(c.names), subtitle=" · ".join(summary(c)),
                kind="compare", headline=headline, sections=sections)


def compare_html(c: Comparison, results: Sequence["RunResult"] = ()) -> str:
    """The comparison as one self-contained HTML page, in the report's style (with flow charts given ``results``)."""
    from lmprof.views.html import render

    return render(compare_page(c, results), TEMPLATE)
