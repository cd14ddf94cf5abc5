"""The HTML kit every page shares: the report, the compare and speedlab pages, the notebook's cells.

A ``Page`` of ``Section``s filled into a Jinja2 template (``templates/``), and the
pieces that go in them: highlighted source, rich renderables as HTML, and
figures inlined safely (SVG kept to an allow-list of drawing elements by
``svg_safe``; PNGs and unparsable SVGs as <img> data: URIs). Everything is
inline, so a page needs no network and prints.

    >>> render(Page("title", "subtitle", "run", [], []))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmprof.errors import UsageError
from lmprof.version import __version__

if TYPE_CHECKING:
    from rich.console import RenderableType

TEMPLATE = "report.html.j2"


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
    from lmprof.views.safe_console import safe_console_class

    # the safe console: a folder's strings in a table (a sweep's labels) are text, never markup that breaks
    console = safe_console_class()(record=True, file=io.StringIO(), width=width, color_system="truecolor",
                                   force_jupyter=False)
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
        return image_html("svg+xml", base64.b64encode(svg.encode("utf-8")).decode("ascii"), name)


def image_html(kind: str, data: str, name: str) -> str:
    return (f'<img class="figure" role="img" data-source="{html.escape(name)}" alt="{html.escape(name)}" '
            f'src="data:image/{kind};base64,{data}">')


def figure_html(folder: Path, stem: str) -> str:
    """``stem.svg`` made safe (``svg_image``), else ``stem.png`` as a data: URI; "" when the folder has neither."""
    from lmprof.safe_files import FIGURE_BYTES, member_state, read_member

    if not folder.is_dir():  # a hand-in bundle (lmprof pack) holds no figure: the page draws what it can
        return ""
    for name in (f"{stem}.svg", f"{stem}.png"):
        state = member_state(folder, name)
        if state == "missing":
            continue
        try:  # a stranger's folder: no link followed out of it, no FIFO, nothing huge
            data = read_member(folder, name, limit=FIGURE_BYTES)
        except UsageError as e:
            return f'<p class="note">{html.escape(str(e))}</p>'
        if name.endswith(".svg"):
            return svg_image(data.decode("utf-8", errors="replace"), stem)
        return image_html("png", base64.b64encode(data).decode("ascii"), stem)
    return ""


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


def config_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every setting, marked where it differs from upstream's (or lmprof's) default."""
    from lmprof.config import RunConfig

    defaults = RunConfig().to_dict()
    rows = []
    for name, value in config.items():
        changed = name in defaults and value != defaults[name] and name not in ("data", "save", "out")
        rows.append({"name": name, "value": "—" if value is None else str(value), "changed": changed})
    return rows


def render(page: Page, template: str = TEMPLATE) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    page.code_css = page.code_css or code_css()
    from lmprof.safe_files import visible

    # a folder's name or string with a control character in it is shown as its escape, on every page
    return visible(env.get_template(template).render(page=page))
