"""The profile's tables: where the run's time went, the phase table, one line table per function.

The numbers come as plain rows from ``lmprof.views.rows`` (re-exported here,
so the HTML report reads the same rows); this module turns them into rich
renderables (``summary_table``, ``phase_table``, ``line_table``, and
``profile_view``, everything `lmprof profile` and `lmprof show` print).
Nothing here prints.

    >>> from rich.console import Console
    >>> Console(width=120).print(profile_view(RunResult.load("runs/demo")))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lmprof.phases import BETWEEN, UNCOVERED
from lmprof.record.derived import run_description
from lmprof.record.sections import HOST_SECONDS, MEAN_SECONDS, WALL_SECONDS
from lmprof.views.format import BAR_WIDTH, UNIT_LABEL, bar, duration, from_file, in_unit
from lmprof.views.rows import (CUDA_CLOCK, LineTableData, gpu_busy, has_gpu_busy, interrupted, line_table_data,
                               phase_caption, phase_table_rows, summary_parts, sync_note)

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

    from lmprof.record.result import RunResult


# --- line tables ---------------------------------------------------------------------

def _highlighted(sources: list[str]) -> list[Any]:
    """Each source line as a rich Text, highlighted as one block (so docstrings colour right)."""
    from rich.syntax import Syntax
    from rich.text import Text

    code = "\n".join(sources)
    lines = Syntax(code, "python", theme="ansi_dark", background_color="default").highlight(code).split(
        "\n", allow_blank=True)
    return [lines[i] if i < len(lines) else Text(s) for i, s in enumerate(sources)]


def line_table(data: LineTableData, *, note: str = "", status: str = "", extras: Any = None) -> "RenderableType":
    """line, hits, time, per hit, % of the function, a bar and the source; the hottest lines marked ▶."""
    from rich.table import Table
    from rich.text import Text

    where = f"{from_file(data.file)}:{data.first_line}"  # the title is markup: a file's strings are escaped
    if not data.calls and data.total_seconds <= 0:
        return Text(f"{data.qualname} ({where}) did not run", style="dim")
    calls = f"{data.calls} call{'s' if data.calls != 1 else ''}" + (f" ({data.callers})" if data.callers else "")
    title = (f"{from_file(data.qualname)} · {where} · {duration(data.total_seconds)} total, "
             f"{data.share_of_run:.1%} of the run · {calls}" + (f" · {status}" if status else ""))
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold",
                  caption=note or None, caption_justify="left", caption_style="yellow",
                  box=None, padding=(0, 1, 0, 0), min_width=len(title))
    table.add_column("", no_wrap=True, style="bold red")
    table.add_column("line", justify="right", no_wrap=True, style="dim")
    for header in ("hits", f"time {UNIT_LABEL[data.time_unit]}", f"{UNIT_LABEL[data.per_hit_unit]}/hit", "% time"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, min_width=BAR_WIDTH)
    table.add_column("source", no_wrap=True, overflow="ellipsis", ratio=1)
    for row, text in zip(data.rows, _highlighted([r.source for r in data.rows])):
        if not row.hits:
            table.add_row("", str(row.line), "", "", "", "", "", Text(text.plain, style="dim"))
            continue
        hot = "bold red" if row.hot_rank else ""
        table.add_row("▶" if row.hot_rank else "", str(row.line), f"{row.hits:,}",
                      Text(in_unit(row.seconds, data.time_unit), style=hot),
                      in_unit(row.per_hit, data.per_hit_unit), Text(f"{row.share:.1%}", style=hot),
                      Text(bar(row.share), style="red" if row.hot_rank else "cyan"), text)
        for label, seconds, share in extras.after(row.line) if extras is not None else ():  # --backward-lines
            table.add_row("", "", "", "", in_unit(seconds, data.per_hit_unit), f"{share:.1%}",  # per step, of backward
                          Text(bar(share), style="dim"), Text(label, style="dim italic"))
    return FitSource(table)


class FitSource:
    """A line table at its natural width; on a narrower console only the source column is cut.

    Expanded, the table gives each number column its full width and the
    source column (ratio 1) what is left, cut with an ellipsis.
    """

    def __init__(self, table: "Table") -> None:
        self.table = table

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement

        self.table.expand = False
        if Measurement.get(console, options, self.table).maximum >= options.max_width:
            self.table.expand = True
        yield self.table


def line_tables(result: "RunResult", unit: str | None = None) -> list["RenderableType"]:
    """One table per profiled function; ``unit`` overrides the one the run chose."""
    from rich.text import Text

    functions = result.lines.get("functions") or []
    if not functions:
        return [Text("no line profile in this run (lmprof profile --fn NAME makes one)", style="dim")]
    chosen = unit or result.lines.get("unit", "auto")
    note = sync_note(result)
    status = "interrupted" if interrupted(result) else ""
    from lmprof.views.backward_lines import train_breakdown  # --backward-lines: loss.backward() broken down

    return [line_table(line_table_data(f, chosen), note=note, status=status, extras=train_breakdown(result, f))
            for f in functions]


# --- phases --------------------------------------------------------------------------

def _titled(text: str, result: "RunResult") -> str:
    return text + (" · interrupted" if interrupted(result) else "")


def summary_table(result: "RunResult") -> "RenderableType":
    """Where the run's time went: training, evaluation, corpus reading, ..., as shares of wall time."""
    from rich.table import Table
    from rich.text import Text

    parts = summary_parts(result)
    if not parts:
        return Text("no phases recorded in this run", style="dim")
    wall = float(result.phase_summary.get(WALL_SECONDS) or 0.0)
    title = _titled(f"Where the run's time went · {duration(wall)} wall", result)
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold", box=None,
                  padding=(0, 1), min_width=len(title))
    cut = parts[0]["full_share"] is not None  # training was cut short: the bar shows the full-epoch share
    columns = [("part", "left"), ("time", "right"), ("share", "right")]
    columns += [("share (full epoch)", "right")] if cut else []
    for name, justify in columns + [("", "left")]:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for p in parts:
        style = "dim" if p["part"] == UNCOVERED else ""
        shown = p["full_share"] if cut else p["share"]
        table.add_row(Text(p["part"], style=style), duration(p["seconds"]), f"{p['share']:.1%}",
                      *([Text(f"{shown:.1%}", style="bold")] if cut else []), Text(bar(shown), style="green"))
    if cut:
        from rich.console import Group

        from lmprof.views.projection import projection_note

        return Group(table, Text(projection_note(result), style="yellow"))
    return table


def phase_table(result: "RunResult") -> "RenderableType":
    """phase, calls, total, mean, share of wall time, bar; on CUDA also host time and the gap."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    rows = phase_table_rows(result)
    if not rows:
        return Text("no phases recorded in this run", style="dim")
    on_cuda = result.phase_summary.get("clock") == CUDA_CLOCK
    title = _titled(f"Phases · clock: {result.phase_summary.get('clock', 'host')}", result)
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold", box=None,
                  padding=(0, 1), min_width=len(title))
    table.add_column("phase")
    table.add_column("calls", justify="right")
    table.add_column("GPU total" if on_cuda else "total", justify="right")
    table.add_column("mean", justify="right")
    table.add_column("share", justify="right")
    cut = rows[0]["full_share"] is not None
    if cut:
        table.add_column("share (full epoch)", justify="right")
    table.add_column("", no_wrap=True, min_width=BAR_WIDTH)
    if on_cuda:
        table.add_column("host total", justify="right")
        table.add_column("host - GPU", justify="right")
    busy = {r["name"]: gpu_busy(r) for r in result.phases} if has_gpu_busy(result) else None
    if busy is not None:  # on CUDA with the profiler window: how busy the GPU was, and the regime word
        table.add_column("GPU busy", justify="right")
        table.add_column("regime")
    from lmprof.views.memory import phase_memory_cells, phase_memory_headers

    for header in phase_memory_headers(result):  # with --memory: peak RSS, or CUDA allocated and peak
        table.add_column(header, justify="right")
    for r in rows:
        outside = r["name"] in (UNCOVERED, BETWEEN)  # no calls, no mean: time between the phases
        cells: list[Any] = [Text(r["name"] if outside else r["label"], style="dim" if outside else ""),
                            "" if outside else f"{r['calls']:,}", duration(r["seconds"]),
                            "" if outside else duration(r[MEAN_SECONDS]), f"{r['share']:.1%}"]
        if cut:
            cells.append(Text(f"{r['full_share']:.1%}", style="bold"))
        cells.append(Text(bar(r["full_share"] if cut else r["share"]), style="dim" if outside else "magenta"))
        if on_cuda:
            gap = r["gap_seconds"]
            cells += [duration(r[HOST_SECONDS]), ("-" if gap < 0 else "+") + duration(abs(gap))]
        if busy is not None:
            b = busy.get(r["name"])
            cells += [f"{b[0]:.0%}", Text(b[1], style="red" if b[1] == "launch-bound" else "")] if b else ["", ""]
        cells += phase_memory_cells(result, r["name"])
        table.add_row(*cells)
    caption = phase_caption(result)
    return Group(table, Text(caption, style="dim")) if caption else table


# --- everything `lmprof profile` and `lmprof show` print -----------------------------

def profile_view(result: "RunResult", unit: str | None = None) -> "RenderableType":
    """The summary, the phase table (with FLOP/s when measured), then one table per profiled function."""
    from rich.console import Group
    from rich.text import Text

    from lmprof.views.ops import flops_text

    parts: list[Any] = []
    if interrupted(result):
        parts += [Text("interrupted: Ctrl-C stopped the run; these tables show what ran before it.",
                       style="bold red"), Text()]
    parts.append(Text(run_description(result), style="bold"))
    from lmprof.record.derived import cost_line

    if result.overhead:  # what the instruments cost on this run (bare vs watched batches)
        parts.append(Text(cost_line(result.overhead), style="dim"))
    from lmprof.divergence import judge_result

    judged = judge_result(result)  # the sweep's rule (lmprof.divergence): diverged / not converged, why, what to try
    if judged:
        parts.append(Text(judged.line(), style="bold red"))
    if result.phases:
        parts += [summary_table(result), Text(), phase_table(result)]
    else:
        parts.append(Text("no phases recorded in this run", style="dim"))
    flops = flops_text(result)
    if flops:
        parts += [Text(), Text(flops)]
    if result.components:
        from lmprof.views.components import component_table

        parts += [Text(), component_table(result)]
    if result.memory:
        from lmprof.views.memory import memory_view

        parts += [Text(), memory_view(result)]
    for table in line_tables(result, unit):
        parts += [Text(), table]
    if result.backward_lines.get("lines"):
        from lmprof.views.backward_lines import backward_table

        parts += [Text(), backward_table(result)]
    return Group(*parts)
