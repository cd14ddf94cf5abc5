"""Notebook displays: the report's own pages, cut to what a notebook cell should show.

A RunResult in a notebook shows its headline, the phase table with bars,
achieved FLOP/s, the line tables (hot lines marked) and every measured section
the report has: it is the report's page (``lmprof.views.report``), rendered by
its template, without the page frame, and with its style scoped to one ``div``
so that it cannot restyle the notebook around it.

    >>> html = run_html(lmprof.load("runs/demo"))   # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmprof.comparison import Comparison
from lmprof.display import register_html, register_terminal
from lmprof.record.result import RunResult

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lmprof.views.html import Page

SCOPE = "lmprof-nb"
# Sections a notebook cell leaves out: the settings and the large drawings (lmprof.diagram.* draws them,
# so a lesson that draws the flow chart in its own cell shows it once).
LEFT_OUT = ("config", "bptt", "flow")
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)
_MAIN = re.compile(r"<main>(.*?)</main>", re.S)
_NAV = re.compile(r'<nav class="toc".*?</nav>', re.S)
_FOOTER = re.compile(r"<footer>.*?</footer>", re.S)


# Chained three times: Jupyter's own table rules (":not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td",
# right-aligned) outrank a single class, and the report's tables must read as they do in the report.
SCOPE_SELECTOR = f".{SCOPE}" * 3
# What the report leaves to the browser's defaults and Jupyter overrides.
RESET_CSS = "td { text-align: left; }\n"


def scope_css(css: str, scope: str = SCOPE_SELECTOR) -> str:
    """Every selector of ``css`` confined under ``scope`` (``:root``, ``html`` and ``body`` become it).

    Handles the report's own CSS: plain rules and ``@media`` blocks of plain rules.
    """
    out: list[str] = []
    i = 0
    while i < len(css):
        brace = css.find("{", i)
        if brace < 0:
            break
        head = css[i:brace].strip()
        if head.startswith("@"):
            end = _matching_brace(css, brace)
            out.append(f"{head} {{\n{scope_css(css[brace + 1:end], scope)}}}\n")
            i = end + 1
            continue
        end = css.find("}", brace)
        selectors = ", ".join(_scope_selector(s.strip(), scope) for s in head.split(",") if s.strip())
        out.append(f"{selectors} {{{css[brace + 1:end]}}}\n")
        i = end + 1
    return "".join(out)


def _scope_selector(selector: str, scope: str) -> str:
    if selector in (":root", "html", "body"):
        return scope
    for frame in ("html ", "body "):
        if selector.startswith(frame):
            selector = selector[len(frame):]
    return f"{scope} {selector}"


def _matching_brace(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return len(text) - 1


def page_fragment(page: "Page", template: str | None = None) -> str:
    """A report page as one self-contained ``div``: scoped style, the header and measured sections."""
    from lmprof.views.html import render

    page.sections = [s for s in page.sections if not s.missing and s.id not in LEFT_OUT]
    html = render(page, template) if template else render(page)
    style = _STYLE.search(html)
    main = _MAIN.search(html)
    body = main.group(1) if main else html
    body = _FOOTER.sub("", _NAV.sub("", body))
    css = scope_css(RESET_CSS + (style.group(1) if style else ""))
    return f'<div class="{SCOPE}"><style>{css}</style>{body}</div>'


def run_html(result: RunResult) -> str:
    """What a RunResult shows in a notebook cell."""
    from lmprof.views.report import run_page

    return page_fragment(run_page(result, Path(result.run_dir or ".")))


def sweep_html(plan: dict[str, Any], rows: list[dict[str, Any]], folder: Path) -> str:
    """What a sweep shows in a notebook cell: its tables and plots (``lmprof.sweeps.load_rows`` gives plan and rows)."""
    from lmprof.views.report_sweep import sweep_page

    return page_fragment(sweep_page(plan, rows, folder))


def comparison_html(comparison: Comparison) -> str:
    """What ``lmprof.compare(a, b)`` shows in a notebook cell: the compare page's tables."""
    from lmprof.views.compare import TEMPLATE, compare_page

    return page_fragment(compare_page(comparison), TEMPLATE)


def explanation_html(page: "RenderableType") -> str:
    """A walkthrough's page (its topic's ``render(numbers)``) as the terminal shows it, in a cell."""
    from lmprof.views.html import rich_html

    return f'<div class="{SCOPE}">{rich_html(page, width=100)}</div>'


def run_terminal(result: RunResult) -> "RenderableType":
    """What ``RunResult.show()`` prints: ``lmprof show``'s tables."""
    from lmprof.views.tables import profile_view

    return profile_view(result)


def comparison_terminal(comparison: Comparison) -> "RenderableType":
    """What ``Comparison.show()`` prints: ``lmprof compare``'s tables."""
    from lmprof.views.compare import compare_view

    return compare_view(comparison)


def _console_class() -> type:
    from lmprof.views.safe_console import safe_console_class  # the command line's: a stranger's strings stay inert

    return safe_console_class()


# RunResult and Comparison live below the views; they find their notebook display and terminal tables here.
register_html(RunResult, run_html)
register_html(Comparison, comparison_html)
register_terminal(RunResult, run_terminal, lambda **kw: _console_class()(**kw))
register_terminal(Comparison, comparison_terminal)
