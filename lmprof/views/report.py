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

import base64
import html
import io
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmprof import __version__
from lmprof.errors import UsageError
from lmprof.result import RESULT_FILE, RunResult

if TYPE_CHECKING:
    from rich.console import RenderableType

REPORT_FILE = "report.html"
TEMPLATE = "report.html.j2"
OPS_SHOWN = 15
DIAGRAM_TITLES = {"flow": "Flow chart, shaded by measured time", "bptt": "Unrolled BPTT graph"}


@dataclass
class Section:
    id: str
    title: str
    missing: str = ""  # the command that fills it, when the folder lacks it
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Page:
    title: str
    subtitle: str
    kind: str  # "run" or "sweep"
    headline: list[tuple[str, str]]
    sections: list[Section]
    code_css: str = ""
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M"))
    version: str = __version__


# --- formatting ------------------------------------------------------------------------
def duration(seconds: float | None) -> str:
    """As the terminal tables write it (3.21 s, 45.6 ms, 310 µs); "—" when not measured."""
    from lmprof.views.rows import duration as table_duration

    return "—" if seconds is None else table_duration(seconds)


def number(value: float | None, digits: int = 2) -> str:
    """Perplexities and losses: a stored null is a NaN or infinite value."""
    return "not finite" if value is None else f"{value:,.{digits}f}"


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"


def bar_width(share: float | None) -> float:
    """A CSS width in percent of the bar's track: the share of the whole, clamped to 0..100."""
    return round(100 * min(max(share or 0.0, 0.0), 1.0), 2)


def highlighted_lines(sources: list[str]) -> list[str]:
    """Python source lines as HTML, lexed as one block (so a docstring colours right), split per line.

    The spans carry pygments' short class names, styled by ``code_css()`` in the page.
    """
    from pygments.lexers import PythonLexer
    from pygments.token import STANDARD_TYPES

    lines: list[list[str]] = [[]]
    for ttype, value in PythonLexer(stripnl=False, ensurenl=False).get_tokens("\n".join(sources)):
        while ttype not in STANDARD_TYPES and ttype.parent is not None:
            ttype = ttype.parent
        css = STANDARD_TYPES.get(ttype, "")
        for i, piece in enumerate(value.split("\n")):
            if i:
                lines.append([])
            if piece:
                lines[-1].append(f'<span class="{css}">{html.escape(piece)}</span>' if css else html.escape(piece))
    out = ["".join(parts) for parts in lines]
    return (out + [""] * len(sources))[:len(sources)]


def code_css() -> str:
    from pygments.formatters import HtmlFormatter

    return str(HtmlFormatter(style="friendly").get_style_defs(".src"))


def rich_html(renderable: "RenderableType", width: int = 100) -> str:
    """A rich renderable exactly as the terminal shows it, as a <pre> with inline styles."""
    from rich.console import Console

    console = Console(record=True, file=io.StringIO(), width=width, color_system="truecolor", force_jupyter=False)
    console.print(renderable)
    return console.export_html(inline_styles=True, code_format='<pre class="rich">{code}</pre>')


def svg_image(svg: str, name: str) -> str:
    """An SVG for the page: inlined after an allow-list keeps only its drawing (``svg_safe``).

    Run folders are handed around (a student's, a colleague's), so their SVG files
    are untrusted markup. One that is not a clean XML <svg> document goes in as an
    <img> with a data: URI, where an SVG can neither run script nor fetch anything.
    """
    from lmprof.views.svg_safe import UnsafeSvg, sanitize

    try:
        return sanitize(svg, name)
    except UnsafeSvg:
        return _image("svg+xml", base64.b64encode(svg.encode("utf-8")).decode("ascii"), name)


def _image(kind: str, data: str, name: str) -> str:
    return (f'<img class="figure" role="img" data-source="{html.escape(name)}" alt="{html.escape(name)}" '
            f'src="data:image/{kind};base64,{data}">')


def figure_html(folder: Path, stem: str) -> str:
    """``stem.svg`` made safe (``svg_image``), else ``stem.png`` as a data: URI; "" when the folder has neither."""
    svg, png = folder / f"{stem}.svg", folder / f"{stem}.png"
    if svg.is_file():
        return svg_image(svg.read_text(encoding="utf-8", errors="replace"), stem)
    if png.is_file():
        return _image("png", base64.b64encode(png.read_bytes()).decode("ascii"), stem)
    return ""


# --- a run folder ----------------------------------------------------------------------
def config_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every setting, marked where it differs from upstream's (or lmprof's) default."""
    from lmprof.config import RunConfig

    defaults = RunConfig().to_dict()
    rows = []
    for name, value in config.items():
        if name == "extra" and not value:
            continue
        changed = name in defaults and value != defaults[name] and name not in ("data", "save", "out")
        rows.append({"name": name, "value": "—" if value is None else str(value), "changed": changed})
    return rows


def _epoch_rows(result: RunResult) -> list[dict[str, str]]:
    return [{"epoch": str(e.get("epoch", "")), "lr": f"{e.get('lr', 0):g}", "batches": str(e.get("batches", "")),
             "tokens": f"{e.get('tokens', 0):,}", "train": duration(e.get("train_seconds")),
             "rate": f"{e.get('tokens_per_s') or 0:,.0f}", "val_loss": number(e.get("val_loss"), 3),
             "val_ppl": number(e.get("val_ppl"))} for e in result.epochs]


def _phases_data(result: RunResult) -> dict[str, Any]:
    """The summary of top-level parts and the phase table, from the terminal table's rows."""
    from lmprof.phases import UNCOVERED
    from lmprof.views.ops import flops_text
    from lmprof.views.projection import projection_note
    from lmprof.views.rows import CUDA_CLOCK, phase_caption, phase_table_rows, summary_parts

    gpu = result.phase_summary.get("clock") == CUDA_CLOCK

    def full(share: float | None) -> dict[str, Any]:  # a cut run's bars show the full-epoch share
        return {"full_share": percent(share), "full_bar": bar_width(share)} if share is not None else {}

    rows = [{"name": r["name"], "label": UNCOVERED if r["name"] == UNCOVERED else r["label"], "outside": r["name"] == UNCOVERED,
             "calls": "" if r["name"] == UNCOVERED else f"{r['calls']:,}", "total": duration(r["seconds"]),
             "mean": "" if r["name"] == UNCOVERED else duration(r["mean_seconds"]), "share": percent(r["share"]),
             "bar": bar_width(r["share"]), "host": duration(r["host_seconds"]),
             "gap": ("-" if r["gap_seconds"] < 0 else "+") + duration(abs(r["gap_seconds"])),
             **full(r["full_share"])}
            for r in phase_table_rows(result)]
    parts = [{"part": p["part"], "total": duration(p["seconds"]), "share": percent(p["share"]),
              "bar": bar_width(p["share"]), "outside": p["part"] == UNCOVERED, **full(p["full_share"])}
             for p in summary_parts(result)]
    return {"rows": rows, "parts": parts, "gpu": gpu, "clock": result.phase_summary.get("clock", "host"),
            "projection": projection_note(result),
            "wall": duration(result.phase_summary.get("wall_seconds")), "caption": phase_caption(result),
            "flops": flops_text(result)}


def _components_data(result: RunResult) -> dict[str, Any]:
    """The component table's rows (per training step), as the terminal shows them."""
    from lmprof.views.components import component_caption, component_rows

    rows = [{"label": r["label"], "forward": duration(r["forward"]), "backward": duration(r["backward"]),
             "total": duration(r["total"]), "share": percent(r["share"]), "bar": bar_width(r["share"]),
             "outside": r["between"]} for r in component_rows(result)]
    return {"rows": rows, "steps": result.components.get("steps", 0), "caption": component_caption(result),
            "clock": result.components.get("clock", "host")}


def _lines_data(result: RunResult) -> dict[str, Any]:
    """Each profiled function as the terminal's line table sees it: units, per-hit times, hot ranks."""
    from lmprof.views.rows import HOT_LINES, UNIT_LABEL, in_unit, line_table_data, sync_note

    functions = []
    for record in result.lines.get("functions", []):
        data = line_table_data(record, result.lines.get("unit", "auto"))
        rows = [{"line": r.line, "hits": f"{r.hits:,}" if r.hits else "", "hot": r.hot_rank or 0,
                 "time": in_unit(r.seconds, data.time_unit) if r.hits else "",
                 "per_hit": in_unit(r.per_hit, data.per_hit_unit) if r.hits else "",
                 "share": percent(r.share) if r.hits else "", "bar": bar_width(r.share), "source": source}
                for r, source in zip(data.rows, highlighted_lines([r.source for r in data.rows]))]
        functions.append({"name": data.qualname, "file": data.file, "first_line": data.first_line,
                          "calls": data.calls, "callers": data.callers, "total": duration(data.total_seconds),
                          "share": percent(data.share_of_run), "rows": rows,
                          "time_unit": UNIT_LABEL[data.time_unit], "per_hit_unit": UNIT_LABEL[data.per_hit_unit],
                          "ran": bool(data.calls or data.total_seconds > 0)})
    return {"functions": functions, "hot_lines": HOT_LINES, "note": sync_note(result),
            "lprof": result.files.get("lines", "")}


def _ops_data(result: RunResult) -> dict[str, Any]:
    from lmprof.views.ops import trace_hint

    ops = result.ops
    key = "cuda_share" if ops.get("sort_by") == "self_cuda" else "share"
    rows = [{"name": r["name"], "shapes": r.get("input_shapes", ""), "calls": f"{r['calls']:,}",
             "cpu": duration(r.get("self_cpu_seconds")), "cuda": duration(r.get("self_cuda_seconds")),
             "share": percent(r.get(key)), "bar": bar_width(r.get(key))} for r in ops["rows"][:OPS_SHOWN]]
    rest = ops["rows"][OPS_SHOWN:]
    return {"rows": rows, "cuda": ops.get("device") == "cuda", "shapes": bool(ops.get("group_by_shape")),
            "by": "CUDA" if key == "cuda_share" else "CPU", "steps": ops.get("steps", 0), "more": len(rest),
            "more_share": percent(sum(r.get(key) or 0.0 for r in rest)), "hint": trace_hint(result)}


def drawn_figure(graph: Any, name: str) -> str:
    """A graphviz graph rendered now, as an SVG image for a page ("" when no Graphviz renderer is here)."""
    import tempfile

    from lmprof.views.render import render as render_graph

    with tempfile.TemporaryDirectory() as tmp:  # render() writes files: here, only its own temporary ones
        try:
            picture = render_graph(graph, Path(tmp) / f"{name}.svg", "svg").picture
        except UsageError:  # no Graphviz renderer on this machine: the page names the command instead
            return ""
        return svg_image(picture.read_text(encoding="utf-8"), name)


def _drawn_flow_chart(result: RunResult) -> str:
    """The flow chart drawn now from the run's phase times, when the folder has no flow.svg ("" if it cannot be)."""
    from lmprof.views.flowchart import flow_chart

    return drawn_figure(flow_chart(result), "flow")


def _diagram_sections(result: RunResult, run_dir: Path) -> list[Section]:
    """flow.svg and bptt.svg from the folder; the flow chart drawn from result.json when the folder lacks it."""
    from lmprof.config import RNN_KINDS

    model, nlayers = result.config.get("model", "LSTM"), result.config.get("nlayers", 2)
    folder = shlex.quote(str(run_dir))  # every hint is a command that is safe to paste as written
    commands = {"flow": f"lmprof diagram flow --from {folder}",
                "bptt": f"lmprof diagram bptt --model {shlex.quote(str(model))} --nlayers {int(nlayers)} "
                        f"--out {folder}"}
    sections = []
    for stem, command in commands.items():
        if stem == "bptt" and model not in RNN_KINDS:
            continue  # the unrolled graph is a recurrent model's
        shown = next((n for n in (f"{stem}.svg", f"{stem}.png") if (run_dir / n).is_file()), f"{stem}.svg")
        svg, note = figure_html(run_dir, stem), f"{shown} in the run folder."  # the file figure_html read
        if not svg and stem == "flow" and result.phases:
            svg, note = _drawn_flow_chart(result), f"Drawn from result.json for this page; {command} saves it."
        sections.append(Section(stem, DIAGRAM_TITLES[stem], data={"figure": svg, "note": note}) if svg
                        else Section(stem, DIAGRAM_TITLES[stem], missing=command))
    return sections


def run_page(result: RunResult, run_dir: Path) -> Page:
    from lmprof.views.rows import run_description

    m, env = result.metrics, result.environment
    test = f"test loss {number(m.get('test_loss'), 3)}, test ppl {number(m.get('test_ppl'))}" if "test_ppl" in m else ""
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
        Section("ops", "Top operators (torch.profiler)", data=_ops_data(result))
        if result.ops.get("rows") else Section("ops", "Top operators (torch.profiler)",
                                               missing=f"lmprof trace --into {shlex.quote(str(run_dir))}"),
    ]
    if result.gradients.get("epochs"):
        from lmprof.instrument.gradients import clip_summary
        from lmprof.views.gradflow import clip_rows

        sections.append(Section("gradients", "Gradient norms before clipping", data={
            "rows": clip_rows(result.gradients), "clip": result.gradients.get("clip"),
            "summary": clip_summary(result.gradients), "figure": figure_html(run_dir, "gradflow")}))
    if result.memory:
        from lmprof.views.memory import report_html

        sections.append(Section("memory", "Where the bytes go", data={"html": report_html(result)}))
    sections += _diagram_sections(result, run_dir)
    headline = [("status", result.status), ("command", f"lmprof {result.command}"),
                ("device", str(env.get("device", "?"))), ("wall time", duration(m.get("wall_seconds")))]
    if "test_ppl" in m:
        headline.append(("test ppl", number(m.get("test_ppl"))))
    if m.get("message"):
        headline.append(("note", str(m["message"])))
    if result.never_finished():
        headline.append(("note", result.never_finished()))
    return Page(title=f"lmprof report · {run_dir.resolve().name}", kind="run", headline=headline,
                subtitle=run_description(result), sections=sections)


# --- the page --------------------------------------------------------------------------
def render(page: Page, template: str = TEMPLATE) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    page.code_css = page.code_css or code_css()
    return env.get_template(template).render(page=page)


def run_report(result: RunResult, run_dir: str | Path | None = None) -> str:
    """The HTML of one RunResult's report; figures are looked for in ``run_dir`` (default: its run_dir)."""
    return render(run_page(result, Path(run_dir or result.run_dir or ".")))


def is_sweep_folder(folder: Path) -> bool:
    from lmprof.sweep.driver import SWEEP_FILE

    return (folder / SWEEP_FILE).is_file() and not (folder / RESULT_FILE).is_file()


def folder_report(folder: str | Path, *, mixed_hardware: bool = False) -> str:
    """The HTML of a run folder's or a sweep folder's report (UsageError for anything else)."""
    path = Path(folder)
    if path.is_dir() and is_sweep_folder(path):
        from lmprof.views.report_sweep import sweep_page

        return render(sweep_page(path, mixed_hardware))
    if path.is_dir() and not (path / RESULT_FILE).exists():
        raise UsageError(f"{folder} is not a run folder (no {RESULT_FILE}) nor a sweep folder (no sweep.json): "
                         "give a folder that lmprof profile, train, trace or sweep wrote")
    return run_report(RunResult.load(path))
