"""Views of ``--backward-lines``: each line of forward with its backward, and loss.backward() broken down.

Plain rows first (``backward_rows``, ``loss_backward_rows``, ``notes``), read by
the terminal table (``backward_table``), the train table's sub-rows
(``TrainBreakdown``), the report's section (``report_html``: a stacked bar
per line, host / device forward / backward) and ``compare``. Nothing here
prints or measures.

    >>> from rich.console import Console
    >>> Console(width=130).print(backward_table(RunResult.load("runs/demo")))  # doctest: +SKIP
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lmprof.record.sections import (ATTRIBUTED_BACKWARD_SECONDS, BACKWARD_OP_SECONDS, BWD_FWD_RATIO, BWD_SECONDS,
    COMPONENTS_AGREEMENT, CONSISTENT_WITHIN, COUNTED_ON, FIRST_BATCH, FWD_DEVICE_SECONDS, MAX_POINTS, POINTS_ALLOWED,
    SHARED_PARAMETERS, STEP_SECONDS, STEP_SHARE, WATCHED_BATCHES)
from lmprof.views.format import BAR_WIDTH, bar, duration, from_file, percent, ratio

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lmprof.record.result import RunResult

BACKWARD_CALL = "loss.backward()"  # the statement of train() that gets the breakdown underneath it


@dataclass
class LineCost:
    line: int | None  # None: a row no forward line created (the loss, clipping, the update, ...)
    label: str  # the source line, or what the row is
    host: float | None  # line_profiler's seconds per call of this line, when forward was line-profiled
    fwd: float | None  # device time forward, per step
    bwd: float | None  # backward time, per step
    other: float | None  # neither (clip, update, ...)
    ratio: float | None
    share: float  # of the step
    nodes: list[str]


def _host_per_call(result: "RunResult") -> dict[int, float]:
    for function in result.lines.get("functions", []):
        if function.get("name") == "forward":
            return {int(r["line"]): float(r["seconds"]) / int(r["hits"])
                    for r in function.get("lines", []) if r.get("hits")}
    return {}


def backward_rows(result: "RunResult") -> list[LineCost]:
    """Forward's lines in order, then the rest of the step; their shares add up to the step."""
    section = result.backward_lines
    host = _host_per_call(result)
    rows = [LineCost(int(r["line"]), str(r.get("source", "")).strip(), host.get(int(r["line"])),
                     float(r.get(FWD_DEVICE_SECONDS) or 0.0), float(r.get(BWD_SECONDS) or 0.0), None,
                     r.get(BWD_FWD_RATIO), float(r.get(STEP_SHARE) or 0.0), list(r.get("nodes") or []))
            for r in section.get("lines", [])]
    for r in section.get("outside", []):
        part, seconds = r.get("part"), float(r.get("seconds") or 0.0)
        rows.append(LineCost(None, str(r.get("label", r.get("name", "?"))), None,
                             seconds if part == "fwd" else None, seconds if part == "bwd" else None,
                             seconds if part not in ("fwd", "bwd") else None, None,
                             float(r.get(STEP_SHARE) or 0.0), []))
    return rows


def loss_backward_rows(result: "RunResult") -> list[tuple[str, float, float]]:
    """Under loss.backward(): (what, seconds per step, share of the backward phase's operator time)."""
    section = result.backward_lines
    phase = float(section.get(BACKWARD_OP_SECONDS) or 0.0)
    rows = [(f"line {r['line']}: {str(r.get('source', '')).strip()}", float(r.get(BWD_SECONDS) or 0.0))
            for r in section.get("lines", []) if r.get(BWD_SECONDS)]
    rows += [(str(r.get("label", r.get("name"))), float(r.get("seconds") or 0.0))
             for r in section.get("outside", []) if r.get("part") == "bwd"]
    return [(what, s, s / phase if phase else 0.0) for what, s in sorted(rows, key=lambda r: -r[1])]


def notes(result: "RunResult") -> list[str]:
    """What the numbers are, how far to trust them, and what the attribution cannot see."""
    s = result.backward_lines
    batches, first = int(s.get("batches", 0)), int(s.get(FIRST_BATCH, 0))
    watched = s.get(WATCHED_BATCHES) or list(range(first, first + batches))
    clock = ("kernel time (CUDA), summed over each operator's kernels" if s.get("device") == "cuda"
             else "operator self time (CPU)")
    out = [f"Per training step: {clock}, from torch.profiler on {batches} watched batch"
           f"{'es' if batches != 1 else ''} (batch {', '.join(str(b) for b in watched)}). Backward operators are "
           "attributed to the forward line that created their autograd node, by sequence number."]
    consistency, allowed = s.get("consistency"), float(s.get(CONSISTENT_WITHIN) or 0.02)
    if consistency is not None:
        share = f"{consistency:.1%} of the backward phase's operator time " \
                f"({duration(s.get(ATTRIBUTED_BACKWARD_SECONDS))} of {duration(s.get(BACKWARD_OP_SECONDS))})"
        out.append(f"Attributed backward: {share}, within {allowed:.0%}." if abs(1 - consistency) <= allowed
                   else f"Attributed backward: only {share}: NOT within {allowed:.0%}; the rest is listed "
                        "below the lines.")
    for p in s.get(SHARED_PARAMETERS, []):
        lines = " and ".join(str(n) for n in p.get("lines", []))
        out.append(f"{p['name']} is shared by lines {lines} (--tied): its gradient accumulation is counted on "
                   f"line {p[COUNTED_ON]}, the first that uses it.")
    agreement = s.get(COMPONENTS_AGREEMENT)
    if agreement:
        gap, allowed_points = float(agreement.get(MAX_POINTS, 0.0)), float(agreement.get(POINTS_ALLOWED, 5.0))
        out.append(f"Per component, shares agree with --components within {gap:.1f} points (allowed "
                   f"{allowed_points:g})." if agreement.get("within") else
                   f"Per component, shares differ from --components by up to {gap:.1f} points (more than "
                   f"{allowed_points:g}): --components times module hooks with a host clock, Python and engine "
                   "overhead included; this adds operator times.")
    out.append("A fused operator is one line: oneDNN's or cuDNN's whole multi-step LSTM is the self.rnn line.")
    return out


def backward_table(result: "RunResult") -> "RenderableType":
    """host per call (line_profiler), fwd device, bwd, bwd/fwd, % of the step, a bar and the source."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    s = result.backward_lines
    rows = backward_rows(result)
    if not rows:
        return Text("no --backward-lines attribution in this run", style="dim")
    title = (f"Each line of {from_file(s.get('qualname', 'forward'))} with its backward · {from_file(s.get('file', '?'))} · "
             f"{duration(s.get(STEP_SECONDS))} of operators per step")
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold", box=None,
                  padding=(0, 1, 0, 0))
    table.add_column("line", justify="right", style="dim", no_wrap=True)
    for header in ("host/call", "fwd device", "bwd", "bwd/fwd", "% step"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, min_width=BAR_WIDTH)
    table.add_column("source", no_wrap=True, overflow="ellipsis", ratio=1)
    top = max((r.share for r in rows if r.line is not None), default=0.0)
    for r in rows:
        hot = "bold red" if r.line is not None and r.share == top and top > 0 else ""
        label = r.label if r.line is not None else f"{r.label}" + (f" ({duration(r.other)})" if r.other else "")
        table.add_row("" if r.line is None else str(r.line), "" if r.host is None else duration(r.host),
                      "" if r.fwd is None else duration(r.fwd), Text("" if r.bwd is None else duration(r.bwd), style=hot),
                      "" if r.ratio is None else ratio(r.ratio), Text(percent(r.share), style=hot),
                      Text(bar(r.share), style="red" if hot else "cyan" if r.line is not None else "dim"),
                      Text(label, style="" if r.line is not None else "dim italic"))
    lines = [r for r in rows if r.line is not None]
    table.add_row("", "", duration(sum(r.fwd or 0.0 for r in lines)), duration(sum(r.bwd or 0.0 for r in lines)),
                  "", percent(sum(r.share for r in lines)), "", Text("forward's lines together", style="bold"))
    return Group(table, *(Text(n, style="dim") for n in notes(result)))


class TrainBreakdown:
    """Sub-rows of train()'s line table: under loss.backward(), each forward line's share of backward."""

    def __init__(self, result: "RunResult", function: dict[str, Any]) -> None:
        lines = function.get("lines", [])
        self.line = next((int(r["line"]) for r in lines if str(r.get("source", "")).strip() == BACKWARD_CALL), None)
        self.rows = loss_backward_rows(result)

    def after(self, line: int) -> list[tuple[str, float, float]]:
        """(label, seconds per step, share of backward) to show under ``line``; nothing under other lines."""
        return [(f"↳ bwd {what}", seconds, share) for what, seconds, share in self.rows] if line == self.line else []


def train_breakdown(result: "RunResult", function: dict[str, Any]) -> TrainBreakdown | None:
    """The sub-rows for train()'s table when the run has --backward-lines, else None."""
    if function.get("name") != "train" or not result.backward_lines.get("lines"):
        return None
    breakdown = TrainBreakdown(result, function)
    return breakdown if breakdown.line is not None else None


def report_html(result: "RunResult") -> str:
    """The report's section: one stacked bar per line (host per call, device forward, backward) and the notes."""
    rows = backward_rows(result)
    widest = max((sum(v or 0.0 for v in (r.host, r.fwd, r.bwd, r.other)) for r in rows), default=0.0) or 1.0
    colours = {"host": "#9aa5b8", "fwd": "#4a90d9", "bwd": "#d9534f", "other": "#c8cdd6"}
    body = []
    for r in rows:
        segments = "".join(
            f'<span title="{name} {duration(v)}" style="display:inline-block;height:.8em;'
            f'width:{100 * v / widest:.2f}%;background:{colours[name]}"></span>'
            for name, v in (("host", r.host), ("fwd", r.fwd), ("bwd", r.bwd), ("other", r.other)) if v)
        body.append(
            f'<tr{"" if r.line is not None else " class=outside"}><td class="num">{r.line or ""}</td>'
            f'<td class="num">{"" if r.host is None else duration(r.host)}</td>'
            f'<td class="num">{"" if r.fwd is None else duration(r.fwd)}</td>'
            f'<td class="num">{"" if r.bwd is None else duration(r.bwd)}</td>'
            f'<td class="num">{"" if r.ratio is None else ratio(r.ratio)}</td><td class="num">{percent(r.share)}</td>'
            f'<td style="width:16rem;min-width:16rem;white-space:nowrap">{segments}</td>'
            f'<td class="src">{html.escape(r.label)}'
            f'{" (" + duration(r.other) + ")" if r.other else ""}</td></tr>')
    legend = " ".join(f'<span style="display:inline-block;width:.8em;height:.8em;background:{c}"></span> {n}'
                      for n, c in (("host per call (line_profiler)", colours["host"]),
                                   ("device forward", colours["fwd"]), ("backward", colours["bwd"]),
                                   ("rest of the step", colours["other"])))
    return (f'<p class="muted">{legend}</p>'
            f'<div class="scroll"><table class="lines"><thead><tr><th class="num">line</th><th class="num">host/call</th>'
            f'<th class="num">fwd device</th><th class="num">bwd</th><th class="num">bwd/fwd</th>'
            f'<th class="num">% step</th><th></th><th>source</th></tr></thead><tbody>{"".join(body)}'
            f'</tbody></table></div>' + "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes(result)))
