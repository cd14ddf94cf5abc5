"""The component table: each model component's forward and backward time per training step.

``component_rows`` (lmprof.record.derived) turns
``result.components`` into plain rows (the HTML report, the flow chart and
compare read them too); ``component_table`` renders them for the terminal.
Nothing here prints.

    >>> from rich.console import Console
    >>> Console(width=100).print(component_table(RunResult.load("runs/demo")))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lmprof.record.derived import component_rows
from lmprof.views.format import duration

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lmprof.record.result import RunResult


def component_caption(result: "RunResult") -> str:
    """How to read the table: what backward order is, and how evaluation was kept apart."""
    c = result.components
    names = [r["name"].partition("#")[0] for r in c.get("rows", [])]
    backward = " → ".join(dict.fromkeys(reversed(names)))
    evaluated = sum(r["calls"] for r in c.get("evaluation", [])[:1])
    text = (f"Backward runs the components in reverse: {backward}. A component's backward runs from the "
            f"gradient hook on its output to the next hook, so it includes accumulating its weights' .grad.")
    if evaluated:
        text += f" Evaluation's {evaluated:,} forward calls (no gradients) are counted apart, not here."
    return text


def component_table(result: "RunResult") -> "RenderableType":
    """component, forward, backward, total per training step, share of the step, a bar."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from lmprof.views.format import BAR_WIDTH, bar

    rows = component_rows(result)
    if not rows:
        return Text("no component times in this run (lmprof profile --components makes them)", style="dim")
    c = result.components
    title = (f"Components · per training step, mean of {c['steps']:,} steps · clock: {c.get('clock', 'host')}")
    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold", box=None,
                  padding=(0, 1), min_width=len(title))
    table.add_column("component")
    for header in ("forward", "backward", "total", "share of step"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, min_width=BAR_WIDTH)
    for r in rows:
        style = "dim" if r["between"] else ""
        table.add_row(Text(r["label"], style=style), duration(r["forward"]), duration(r["backward"]),
                      duration(r["total"]), f"{r['share']:.1%}", Text(bar(r["share"]), style=style or "blue"))
    return Group(table, Text(component_caption(result), style="dim"))
