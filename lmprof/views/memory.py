"""Where the bytes go: result.memory as plain rows, a rich view and the report's HTML piece.

``memory_parts`` (parameters, gradients, optimizer state, saved activations)
and ``module_rows`` (saved activations by part of the model, measured beside
the analytic model of ``lmprof.experiments.memory_model``) are plain data;
``memory_view`` renders them for the terminal, ``report_html`` for the page.
Nothing here prints.

    >>> from rich.console import Console
    >>> Console(width=100).print(memory_view(RunResult.load("runs/demo")))  # doctest: +SKIP
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from lmprof.experiments.memory_model import FLOAT, predicted_saved_bytes
from lmprof.record.sections import (CUDA_ALLOCATED_BYTES, CUDA_ALLOCATED_PER_BATCH, CUDA_PEAK_BYTES, GRAD_BYTES,
    OPTIMIZER_BYTES, PARAM_BYTES, RSS_PEAK_BYTES, RSS_PEAK_SCOPE, RSS_PER_BATCH, SAVED_BYTES_BY_MODULE,
    SAVED_BYTES_PEAK, SAVED_BYTES_PER_BATCH)
from lmprof.views.format import size  # one byte formatter for every view

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lmprof.record.result import RunResult

MODULE_ORDER = ("embedding", "dropout", "rnn", "transformer", "positional", "decoder", "log_softmax", "loss")
PART_COLOURS = {"parameters": "#4e79a7", "gradients": "#f28e2b", "optimizer state": "#76b7b2",
                "saved activations": "#e15759"}


def memory_parts(result: "RunResult") -> list[dict[str, Any]]:
    """Parameters, gradients, optimizer state and the peak batch's saved activations, with shares."""
    m = result.memory
    parts = [("parameters", m.get(PARAM_BYTES, 0)), ("gradients", m.get(GRAD_BYTES, 0)),
             ("optimizer state", m.get(OPTIMIZER_BYTES, 0)), ("saved activations", m.get(SAVED_BYTES_PEAK, 0))]
    total = sum(b for _, b in parts) or 1
    return [{"part": name, "bytes": b, "share": b / total} for name, b in parts]


def module_rows(result: "RunResult") -> list[dict[str, Any]]:
    """Saved bytes of the peak batch by part of the model, beside the analytic prediction (None: no model)."""
    measured = result.memory.get(SAVED_BYTES_BY_MODULE, {})
    predicted = predicted_saved_bytes(result.config, int(result.metrics.get("ntokens") or 0)) \
        if result.config.get("model") and result.metrics.get("ntokens") else None
    names = sorted(set(measured) | set(predicted or {}),
                   key=lambda n: MODULE_ORDER.index(n) if n in MODULE_ORDER else len(MODULE_ORDER))
    total = sum(measured.values()) or 1
    return [{"module": n, "bytes": measured.get(n, 0), "share": measured.get(n, 0) / total,
             "predicted": None if predicted is None else predicted.get(n, 0)} for n in names]


def prediction_ratio(result: "RunResult") -> float | None:
    rows = module_rows(result)
    if not rows or rows[0]["predicted"] is None:
        return None
    measured = sum(r["bytes"] for r in rows)
    return sum(r["predicted"] for r in rows) / measured if measured else None


def logits_line(result: "RunResult") -> str:
    """'logits 700 x 7,477 x 4 B = 20.0 MiB, 49% of saved activations' (the log_softmax output)."""
    c, m = result.config, result.memory
    vocab = int(result.metrics.get("ntokens") or 0)
    saved = m.get(SAVED_BYTES_BY_MODULE, {})
    if not vocab or "log_softmax" not in saved:
        return ""
    rows = c.get("bptt", 0) * c.get("batch_size", 0)
    logits = rows * vocab * FLOAT
    share = logits / max(sum(saved.values()), 1)
    return (f"logits {c['bptt']} x {c['batch_size']} = {rows:,} rows x {vocab:,} words x 4 B = {size(logits)}, "
            f"{share:.0%} of the saved activations")


def batch_trend(result: "RunResult") -> str:
    """Whether the saved bytes stayed flat from batch to batch (they do when the hidden state is detached)."""
    series = result.memory.get(SAVED_BYTES_PER_BATCH) or []
    if not series:
        return ""
    lo, hi = min(series), max(series)
    if hi <= lo * 1.01:
        return f"flat at {size(hi)} over {len(series):,} batches (the last chunk of an epoch may be shorter)"
    return f"from {size(series[0])} to {size(series[-1])} over {len(series):,} batches (min {size(lo)}, max {size(hi)})"


def phase_memory_headers(result: "RunResult") -> list[str]:
    """The phase table's extra columns: peak RSS on CPU; the CUDA allocator's allocated and peak on a GPU."""
    phases = result.memory.get("phases") or {}
    if not phases:
        return []
    if any(CUDA_PEAK_BYTES in v for v in phases.values()):
        return ["allocated", "peak"]
    return ["peak RSS"]


def phase_memory_cells(result: "RunResult", name: str) -> list[str]:
    headers = phase_memory_headers(result)
    v = (result.memory.get("phases") or {}).get(name)
    if not headers:
        return []
    if v is None:
        return [""] * len(headers)
    if headers == ["peak RSS"]:
        return [size(v.get(RSS_PEAK_BYTES, 0))]
    return [size(v.get(CUDA_ALLOCATED_BYTES, 0)), size(v.get(CUDA_PEAK_BYTES, 0))]


def memory_view(result: "RunResult") -> "RenderableType":
    """The parts of memory, then saved activations by module (measured and predicted), and how to read them."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from lmprof.views.format import bar

    m = result.memory
    if not m:
        return Text("no memory recorded in this run (lmprof profile --memory records it)", style="dim")
    peak = f" · peak RSS {size(m.get(RSS_PEAK_BYTES, 0))}"
    if CUDA_PEAK_BYTES in m:
        peak += f" · CUDA peak allocated {size(m[CUDA_PEAK_BYTES])}"
    title = f"Memory · where the bytes go{peak}"
    parts = Table(title=title, title_justify="left", title_style="bold", header_style="bold", box=None,
                  padding=(0, 1), min_width=len(title))
    for header, justify in (("part", "left"), ("bytes", "right"), ("share", "right"), ("", "left")):
        parts.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for p in memory_parts(result):
        parts.add_row(p["part"] + (" (peak batch)" if p["part"] == "saved activations" else ""), size(p["bytes"]),
                      f"{p['share']:.1%}", Text(bar(p["share"]), style="blue"))
    rows = module_rows(result)
    modules_title = "Saved activations of one batch, by part of the model"
    modules = Table(title=modules_title, title_justify="left", title_style="bold", header_style="bold", box=None,
                    padding=(0, 1), min_width=len(modules_title))
    for header, justify in (("part", "left"), ("measured", "right"), ("share", "right"), ("", "left"),
                            ("predicted", "right")):
        modules.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in rows:
        modules.add_row(r["module"], size(r["bytes"]), f"{r['share']:.1%}", Text(bar(r["share"]), style="red"),
                        "" if r["predicted"] is None else size(r["predicted"]))
    return Group(parts, Text(), modules, *(Text(n, style="dim") for n in memory_notes(result)))


def memory_notes(result: "RunResult") -> list[str]:
    """How to read the memory tables: the prediction's ratio, the logits, the per-batch trend, RSS's scope."""
    notes = []
    ratio = prediction_ratio(result)
    if ratio is not None:
        notes.append(f"predicted / measured: {ratio:.3f} (the analytic model: lmprof explain memory)")
    for line in (logits_line(result), batch_trend(result) and "saved bytes per batch: " + batch_trend(result)):
        if line:
            notes.append(line)
    if result.memory.get(RSS_PEAK_SCOPE) == "process":
        notes.append("peak RSS per phase is the process's peak so far (this system cannot reset it per phase)")
    return notes


def memory_tables_html(result: "RunResult") -> str:
    """The terminal's two memory tables as the page's own tables (not a pasted terminal picture)."""
    def bar(share: float) -> str:
        return f'<td class="bar track"><span style="width: {max(0.0, min(share, 1.0)) * 100:.1f}%"></span></td>'

    m = result.memory
    peak = f"peak RSS {size(m.get(RSS_PEAK_BYTES, 0))}" + (
        f" · CUDA peak allocated {size(m[CUDA_PEAK_BYTES])}" if CUDA_PEAK_BYTES in m else "")
    parts = "".join(f'<tr><td>{html.escape(p["part"])}{" (peak batch)" if p["part"] == "saved activations" else ""}'
                    f'</td><td class="num">{size(p["bytes"])}</td><td class="num">{p["share"]:.1%}</td>{bar(p["share"])}</tr>'
                    for p in memory_parts(result))
    modules = "".join(f'<tr><td>{html.escape(str(r["module"]))}</td><td class="num">{size(r["bytes"])}</td>'
                      f'<td class="num">{r["share"]:.1%}</td>{bar(r["share"])}'
                      f'<td class="num">{"" if r["predicted"] is None else size(r["predicted"])}</td></tr>'
                      for r in module_rows(result))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in memory_notes(result))
    return (f'<h3>Where the bytes go · {html.escape(peak)}</h3><div class="scroll"><table class="memory">'
            f'<thead><tr><th>part</th><th class="num">bytes</th><th class="num">share</th><th></th></tr></thead>'
            f'<tbody>{parts}</tbody></table></div>'
            f'<h3>Saved activations of one batch, by part of the model</h3><div class="scroll"><table class="memory">'
            f'<thead><tr><th>part</th><th class="num">measured</th><th class="num">share</th><th></th>'
            f'<th class="num">predicted</th></tr></thead><tbody>{modules}</tbody></table></div>'
            + (f'<ul class="muted">{notes}</ul>' if notes else ""))


def series_svg(values: list[int], label: str, width: int = 560, height: int = 120) -> str:
    """A small line chart of one per-batch series (bytes), with its range written beside it."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or max(hi, 1)
    base = lo if hi > lo else 0
    n = max(len(values) - 1, 1)
    points = " ".join(f"{40 + i * (width - 50) / n:.1f},{height - 20 - (v - base) / span * (height - 40):.1f}"
                      for i, v in enumerate(values))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="11"><text x="40" y="12">{html.escape(label)}: {size(lo)} .. {size(hi)}</text>'
            f'<line x1="40" y1="{height - 20}" x2="{width - 10}" y2="{height - 20}" stroke="#999"/>'
            f'<text x="40" y="{height - 5}">batch 1</text><text x="{width - 60}" y="{height - 5}">batch '
            f'{len(values):,}</text><polyline fill="none" stroke="#e15759" stroke-width="1.5" points="{points}"/>'
            f'</svg>')


def stacked_bar_html(result: "RunResult") -> str:
    """Parameters, gradients, optimizer state and activations as one stacked bar, with a legend."""
    cells, legend = [], []
    for p in memory_parts(result):
        colour = PART_COLOURS[p["part"]]
        if p["bytes"]:
            cells.append(f'<span title="{p["part"]}: {size(p["bytes"])}" style="display:inline-block;height:18px;'
                         f'width:{p["share"] * 100:.2f}%;background:{colour}"></span>')
        legend.append(f'<span style="color:{colour}">■</span> {p["part"]} {size(p["bytes"])} ({p["share"]:.0%})')
    return (f'<div class="stacked" style="width:100%;white-space:nowrap;font-size:0">{"".join(cells)}</div>'
            f'<p class="muted">{" · ".join(legend)}</p>')


def report_html(result: "RunResult") -> str:
    """The report's memory section: the stacked bar, the terminal's tables as the page's own, per-batch series."""
    from lmprof.views.html import svg_image

    m = result.memory
    pieces = [stacked_bar_html(result), memory_tables_html(result)]
    for key, label in ((SAVED_BYTES_PER_BATCH, "saved activations per batch"),
                       (CUDA_ALLOCATED_PER_BATCH, "CUDA allocated when backward starts"),
                       (RSS_PER_BATCH, "resident memory (RSS) when backward starts")):
        if m.get(key):
            pieces.append(f"<figure>{svg_image(series_svg(m[key], label), label)}</figure>")
            if key == CUDA_ALLOCATED_PER_BATCH:
                break  # on a GPU the allocator's figure is the one that matters
    return "\n".join(pieces)
