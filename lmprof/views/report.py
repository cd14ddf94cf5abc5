"""One self-contained HTML page per run folder or sweep folder: ``report.html``.

The page is built from the same pieces as the terminal views (the phase rows,
the line and operator rows of result.json, ``trace_hint``, ``flops_text``, the
sweep's rich tables and ``summary_rows``) and filled into one Jinja2 template
(``templates/report.html.j2``). Everything is inline: CSS, and the diagrams and
plots as SVG kept to an allow-list of drawing elements (``svg_safe``: ids
prefixed, no script, handler or link), PNGs and unparsable SVGs as <img>
data: URIs, so a run folder's files never act in the page. No script,
no font, nothing fetched: a classroom without a network
opens it, and it prints. A section the folder lacks is left out, with one
line naming the command that fills it.

    >>> html = folder_report("runs/profile-LSTM-20250101-120000")  # doctest: +SKIP
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from lmprof.record.files import BPTT_STEM, FLOW_STEM, GRADFLOW_STEM, REPORT_FILE
from lmprof.record.result import RunResult
from lmprof.record.sections import (CUDA_SHARE, FIRST_LINE, GFLOPS_PER_S, HOST_SECONDS, INPUT_SHAPES, MEAN_SECONDS,
    SELF_CPU_SECONDS, SELF_CUDA_SECONDS, SHARE_OF_PEAK, SORT_BY, TEST_LOSS, TEST_PPL, TOKENS_PER_S, TRAIN_SECONDS,
    VAL_LOSS, VAL_PPL, WALL_SECONDS)
from lmprof.views.format import bar_width, duration, number, percent
from lmprof.views.html import Page, Section, config_rows, drawn_figure, figure_html, highlighted_lines, render

OPS_SHOWN = 15
DIAGRAM_TITLES = {FLOW_STEM: "Flow chart, shaded by measured time", BPTT_STEM: "Unrolled BPTT graph"}


# --- a run folder ----------------------------------------------------------------------
def _epoch_rows(result: RunResult) -> list[dict[str, str]]:
    return [{"epoch": str(e.get("epoch", "")), "lr": f"{e.get('lr', 0):g}", "batches": str(e.get("batches", "")),
             "tokens": f"{e.get('tokens', 0):,}", "train": duration(e.get(TRAIN_SECONDS)),
             "rate": f"{e.get(TOKENS_PER_S) or 0:,.0f}", VAL_LOSS: number(e.get(VAL_LOSS), 3),
             VAL_PPL: number(e.get(VAL_PPL))} for e in result.epochs]


def _phases_data(result: RunResult) -> dict[str, Any]:
    """The summary of top-level parts and the phase table, from the terminal table's rows."""
    from lmprof.phases import UNCOVERED
    from lmprof.views.ops import flops_text
    from lmprof.views.projection import projection_note
    from lmprof.views.rows import CUDA_CLOCK, gpu_busy, has_gpu_busy, phase_caption, phase_table_rows, summary_parts

    gpu = result.phase_summary.get("clock") == CUDA_CLOCK
    busy = {r["name"]: gpu_busy(r) for r in result.phases} if has_gpu_busy(result) else {}

    def busy_cells(b: tuple[float, str] | None) -> dict[str, str]:  # on CUDA: the GPU busy column and regime
        return {"busy": percent(b[0]), "regime": b[1]} if b else {"busy": "", "regime": ""}

    def full(share: float | None) -> dict[str, Any]:  # a cut run's bars show the full-epoch share
        return {"full_share": percent(share), "full_bar": bar_width(share)} if share is not None else {}

    rows = [{"name": r["name"], "label": UNCOVERED if r["name"] == UNCOVERED else r["label"], "outside": r["name"] == UNCOVERED,
             "calls": "" if r["name"] == UNCOVERED else f"{r['calls']:,}", "total": duration(r["seconds"]),
             "mean": "" if r["name"] == UNCOVERED else duration(r[MEAN_SECONDS]), "share": percent(r["share"]),
             "bar": bar_width(r["share"]), "host": duration(r[HOST_SECONDS]),
             "gap": ("-" if r["gap_seconds"] < 0 else "+") + duration(abs(r["gap_seconds"])),
             **full(r["full_share"]), **busy_cells(busy.get(r["name"]))}
            for r in phase_table_rows(result)]
    parts = [{"part": p["part"], "total": duration(p["seconds"]), "share": percent(p["share"]),
              "bar": bar_width(p["share"]), "outside": p["part"] == UNCOVERED, **full(p["full_share"])}
             for p in summary_parts(result)]
    return {"rows": rows, "parts": parts, "gpu": gpu, "busy": bool(busy), "clock": result.phase_summary.get("clock", "host"),
            "projection": projection_note(result),
            "wall": duration(result.phase_summary.get(WALL_SECONDS)), "caption": phase_caption(result),
            "flops": flops_text(result), **_flops_table(result)}


def _flops_table(result: RunResult) -> dict[str, Any]:
    """Achieved speed as the page's own table: phase, GFLOP/s, share of the matmul peak; the peak's line below."""
    rows = [{"phase": str(r.get("name", "")), "rate": f"{float(r.get(GFLOPS_PER_S) or 0.0):,.1f}",
             "peak": percent(r.get(SHARE_OF_PEAK)) if r.get(SHARE_OF_PEAK) is not None else "—"}
            for r in result.flops.get("phases", [])]
    text = _flops_note(result) if rows else ""
    return {"flops_rows": rows, "flops_note": text}


def _flops_note(result: RunResult) -> str:
    from lmprof.views.ops import flops_text

    last = flops_text(result).splitlines()[-1].strip()  # "(peak: ... matrix products only)"
    return last[1:-1] if last.startswith("(") and last.endswith(")") else last


def _components_data(result: RunResult) -> dict[str, Any]:
    """The component table's rows (per training step), as the terminal shows them."""
    from lmprof.record.derived import component_rows
    from lmprof.views.components import component_caption

    rows = [{"label": r["label"], "forward": duration(r["forward"]), "backward": duration(r["backward"]),
             "total": duration(r["total"]), "share": percent(r["share"]), "bar": bar_width(r["share"]),
             "outside": r["between"]} for r in component_rows(result)]
    return {"rows": rows, "steps": result.components.get("steps", 0), "caption": component_caption(result),
            "clock": result.components.get("clock", "host")}


def _lines_data(result: RunResult) -> dict[str, Any]:
    """Each profiled function as the terminal's line table sees it: units, per-hit times, hot ranks."""
    from lmprof.views.format import UNIT_LABEL, in_unit
    from lmprof.views.rows import HOT_LINES, line_table_data, sync_note

    functions = []
    for record in result.lines.get("functions", []):
        data = line_table_data(record, result.lines.get("unit", "auto"))
        rows = [{"line": r.line, "hits": f"{r.hits:,}" if r.hits else "", "hot": r.hot_rank or 0,
                 "time": in_unit(r.seconds, data.time_unit) if r.hits else "",
                 "per_hit": in_unit(r.per_hit, data.per_hit_unit) if r.hits else "",
                 "share": percent(r.share) if r.hits else "", "bar": bar_width(r.share), "source": source}
                for r, source in zip(data.rows, highlighted_lines([r.source for r in data.rows]))]
        functions.append({"name": data.qualname, "file": data.file, FIRST_LINE: data.first_line,
                          "calls": data.calls, "callers": data.callers, "total": duration(data.total_seconds),
                          "share": percent(data.share_of_run), "rows": rows,
                          "time_unit": UNIT_LABEL[data.time_unit], "per_hit_unit": UNIT_LABEL[data.per_hit_unit],
                          "ran": bool(data.calls or data.total_seconds > 0)})
    return {"functions": functions, "hot_lines": HOT_LINES, "note": sync_note(result),
            "lprof": result.files.get("lines", "")}


def _backward_lines_html(result: RunResult) -> str:
    """--backward-lines: a stacked bar per line of forward (host per call, device forward, backward)."""
    from lmprof.views.backward_lines import report_html

    return report_html(result)


def _ops_data(result: RunResult) -> dict[str, Any]:
    from lmprof.views.ops import short_op_name, trace_hint

    ops = result.ops
    key = CUDA_SHARE if ops.get(SORT_BY) == "self_cuda" else "share"
    rows = [{"name": short_op_name(r["name"]), "full_name": r["name"],  # the full name: the cell's hover text
             "shapes": r.get(INPUT_SHAPES, ""), "calls": f"{r['calls']:,}",
             "cpu": duration(r.get(SELF_CPU_SECONDS)), "cuda": duration(r.get(SELF_CUDA_SECONDS)),
             "share": percent(r.get(key)), "bar": bar_width(r.get(key))} for r in ops["rows"][:OPS_SHOWN]]
    rest = ops["rows"][OPS_SHOWN:]
    return {"rows": rows, "cuda": ops.get("device") == "cuda", "shapes": bool(ops.get("group_by_shape")),
            "by": "CUDA" if key == CUDA_SHARE else "CPU", "steps": ops.get("steps", 0), "more": len(rest),
            "more_share": percent(sum(r.get(key) or 0.0 for r in rest)), "hint": trace_hint(result)}


def _drawn_flow_chart(result: RunResult) -> str:
    """The flow chart drawn now from the run's phase times, when the folder has no flow.svg ("" if it cannot be)."""
    from lmprof.views.flowchart import flow_chart

    return drawn_figure(flow_chart(result), FLOW_STEM)


def _diagram_sections(result: RunResult, run_dir: Path) -> list[Section]:
    """flow.svg and bptt.svg from the folder; the flow chart drawn from result.json when the folder lacks it."""
    from lmprof.config import RNN_KINDS

    model, nlayers = result.config.get("model", "LSTM"), result.config.get("nlayers", 2)
    folder = shlex.quote(str(run_dir))  # every hint is a command that is safe to paste as written
    commands = {FLOW_STEM: f"lmprof diagram flow --from {folder}",
                BPTT_STEM: f"lmprof diagram bptt --model {shlex.quote(str(model))} --nlayers {int(nlayers)} "
                        f"--out {folder}"}
    sections = []
    for stem, command in commands.items():
        if stem == BPTT_STEM and model not in RNN_KINDS:
            continue  # the unrolled graph is a recurrent model's
        shown = next((n for n in (f"{stem}.svg", f"{stem}.png") if (run_dir / n).is_file()), f"{stem}.svg")
        svg, note = figure_html(run_dir, stem), f"{shown} in the run folder."  # the file figure_html read
        if not svg and stem == FLOW_STEM and result.phases:
            svg, note = _drawn_flow_chart(result), f"Drawn from result.json for this page; {command} saves it."
        sections.append(Section(stem, DIAGRAM_TITLES[stem], data={"figure": svg, "note": note}) if svg
                        else Section(stem, DIAGRAM_TITLES[stem], missing=command))
    return sections


def run_page(result: RunResult, run_dir: Path) -> Page:
    from lmprof.record.derived import run_description

    m, env = result.metrics, result.environment
    test = f"test loss {number(m.get(TEST_LOSS), 3)}, test ppl {number(m.get(TEST_PPL))}" if TEST_PPL in m else ""
    sections = [
        Section("config", "Configuration and environment", data={
            "config": config_rows(result.config),
            "environment": [{"name": k, "value": str(v), "changed": False} for k, v in env.items() if v is not None]}),
        Section("metrics", "Per-epoch metrics", data={"rows": _epoch_rows(result), "test": test})
        if result.epochs else Section("metrics", "Per-epoch metrics", missing="lmprof train"),
        Section("phases", "Where the time went", data=_phases_data(result))
        if result.phases else Section("phases", "Where the time went", missing="lmprof profile --fn train"),
        *([Section("components", "Model components, forward and backward", data=_components_data(result))]
          if result.components.get("rows") else []),  # only with --components: no "missing" line
        Section("lines", "Line by line", data=_lines_data(result))
        if result.lines.get("functions") else Section("lines", "Line by line", missing="lmprof profile --fn train"),
        *([Section("backward_lines", "Each line of forward with its backward", data={"html": _backward_lines_html(result)})]
          if result.backward_lines.get("lines") else []),  # only with --backward-lines: no "missing" line
        Section("ops", "Top operators (torch.profiler)", data=_ops_data(result))
        if result.ops.get("rows") else Section("ops", "Top operators (torch.profiler)",
                                               missing=f"lmprof trace --into {shlex.quote(str(run_dir))}"),
    ]
    if result.gradients.get("epochs"):
        from lmprof.instrument.gradients import clip_summary
        from lmprof.views.gradflow import clip_rows

        sections.append(Section("gradients", "Gradient norms before clipping", data={
            "rows": clip_rows(result.gradients), "clip": result.gradients.get("clip"),
            "summary": clip_summary(result.gradients), "figure": figure_html(run_dir, GRADFLOW_STEM)}))
    if result.memory:
        from lmprof.views.memory import report_html

        sections.append(Section("memory", "Where the bytes go", data={"html": report_html(result)}))
    sections += _diagram_sections(result, run_dir)
    headline = [("status", result.status), ("command", f"lmprof {result.command}"),
                ("device", str(env.get("device", "?"))), ("wall time", duration(m.get(WALL_SECONDS)))]
    if TEST_PPL in m:
        headline.append(("test ppl", number(m.get(TEST_PPL))))
    if m.get("message"):
        headline.append(("note", str(m["message"])))
    if result.overhead:  # what the instruments cost on this run (bare vs watched batches)
        from lmprof.record.derived import cost_line

        headline.append(("instruments", cost_line(result.overhead)))
    from lmprof.divergence import judge_result

    judged = judge_result(result)  # the sweep's rule: a run worse than a uniform guess says so, why, what to try
    if judged:
        headline[0] = ("status", judged.status)
        headline.append((judged.status, f"{judged.why}. Try: {judged.advice}"))
    if result.never_finished():
        headline.append(("note", result.never_finished()))
    return Page(title=f"lmprof report · {run_dir.resolve().name}", kind="run", headline=headline,
                subtitle=run_description(result), sections=sections)


# --- the page --------------------------------------------------------------------------
def run_report(result: RunResult, run_dir: str | Path | None = None) -> str:
    """The HTML of one RunResult's report; figures are looked for in ``run_dir`` (default: its run_dir)."""
    return render(run_page(result, Path(run_dir or result.run_dir or ".")))
