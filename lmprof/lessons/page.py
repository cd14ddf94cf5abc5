"""The pieces every walkthrough page is built from: section rules, prose, code, tables.

Pages are rich renderables composed of these, so the terminal, a file and a
test's fixed-width console all show the same text. Nothing here prints.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any, Callable, Iterable, Sequence

from rich.console import Group, RenderableType
from rich.markdown import Markdown
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from lmprof.views.format import significant as number  # noqa: F401  (the walkthroughs write their numbers with it)

THEME = "ansi_dark"  # the terminal's own colours: readable on a projector, light or dark


def page(title: str, one_line: str, *parts: RenderableType) -> Group:
    """A walkthrough: a title bar, its one-line summary, then the sections."""
    head = Text.assemble((f" {title} ", "bold reverse"), "  ", (one_line, "italic"))
    spaced: list[RenderableType] = [head]
    for part in parts:
        if not isinstance(spaced[-1], Rule):  # a blank line between parts, none under a heading
            spaced.append(Text(""))
        spaced.append(part)
    return Group(*spaced)


def section(title: str) -> Rule:
    return Rule(Text(title, style="bold cyan"), align="left", style="cyan")


def prose(markdown: str) -> Markdown:
    """A paragraph or list written in Markdown (inline `code`, **bold**, - lists)."""
    return Markdown(textwrap.dedent(markdown).strip())


def code(text: str) -> Syntax:
    return Syntax(textwrap.dedent(text).strip(), "python", theme=THEME, background_color="default",
                  word_wrap=True)


def source(func: Callable[..., Any], *, docstring: bool = False) -> Syntax:
    """The source of ``func`` with its file's line numbers; the docstring left out unless asked."""
    lines, first = inspect.getsourcelines(func)
    text = "".join(lines)
    if not docstring:
        text = _without_docstring(text)
    return Syntax(textwrap.dedent(text).rstrip(), "python", theme=THEME, background_color="default",
                  line_numbers=True, start_line=first, word_wrap=True)


def excerpt(func: Callable[..., Any], first: str, last: str) -> Syntax:
    """The lines of ``func`` from the one containing ``first`` to the next containing ``last``.

    Should the code have changed so that a marker is gone, the whole function is shown
    instead: a page never fails over an excerpt.
    """
    lines, start = inspect.getsourcelines(func)
    i = next((n for n, line in enumerate(lines) if first in line), None)
    j = next((n for n, line in enumerate(lines) if i is not None and n >= i and last in line), None)
    if i is None or j is None:
        return source(func)
    return Syntax(textwrap.dedent("".join(lines[i:j + 1])).rstrip(), "python", theme=THEME,
                  background_color="default", line_numbers=True, start_line=start + i, word_wrap=True)


def _without_docstring(text: str) -> str:
    """Drop the docstring's lines (keeping the line count honest is not needed: numbers start at def)."""
    tree = ast.parse(textwrap.dedent(text))
    body = tree.body[0]
    if not (isinstance(body, (ast.FunctionDef, ast.ClassDef)) and body.body
            and isinstance(body.body[0], ast.Expr) and isinstance(body.body[0].value, ast.Constant)
            and isinstance(body.body[0].value.value, str)):
        return text
    doc = body.body[0]
    lines = text.splitlines(keepends=True)
    assert doc.end_lineno is not None
    return "".join(lines[: doc.lineno - 1] + lines[doc.end_lineno:])


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          *, right: Sequence[str] = (), caption: str | None = None) -> Table:
    """A plain table; the columns named in ``right`` are right-aligned (numbers)."""
    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for name in columns:
        t.add_column(name, justify="right" if name in right else "left")
    for row in rows:
        t.add_row(*(cell if isinstance(cell, Text) else str(cell) for cell in row))
    return t


def letters_table(rows: Sequence[Sequence[str]], title: str | None = None,
                  row_labels: Sequence[str] | None = None) -> Table:
    """A matrix of tokens, one table row per matrix row; columns are the batch columns."""
    width = max((len(r) for r in rows), default=0)
    t = Table(title=title, title_justify="left", show_header=True)
    if row_labels is not None:
        t.add_column("row", justify="right", style="dim")
    for j in range(width):
        t.add_column(f"col {j}", justify="center")
    for i, r in enumerate(rows):
        cells = [str(x) for x in r]
        t.add_row(*([row_labels[i]] if row_labels is not None else []), *cells)
    return t
