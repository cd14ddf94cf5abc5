"""The component table: each model component's forward and backward time per training step.

``component_rows`` turns ``result.components`` into plain rows (the HTML
report and the flow chart read them too); ``component_table`` renders them
for the terminal. Nothing here prints.

    >>> from rich.console import Console
    >>> Console(width=100).print(component_table(RunResult.load("runs/demo")))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lmprof.phases import STEP_PHASES
from lmprof.views.rows import duration

if TYPE_CHECKING:
    from rich.console import RenderableType

    from lmprof.record.result import RunResult

BETWEEN = "(between components)"
ORDINALS = {2: "2nd", 3: "3rd"}


def component_label(name: str, module: str) -> str:
    """``drop#2``, Dropout -> 'drop (Dropout), 2nd call'; log_softmax has no module."""
    base, _, call = name.partition("#")
    if call and not (call.isascii() and call.isdigit()):  # not a call count (a hand-edited or hostile name): shown as written
        base, call = name, ""
    label = f"{base} ({module})" if module else base
    return f"{label}, {ORDINALS.get(int(call), call + 'th')} call" if call else label


def step_seconds(result: "RunResult") -> float:
    """Time of the training steps the component totals cover: the step phases' time (after the
    component timer's warm-up steps), else forward + loss + backward as the components saw them."""
    warm = int(result.components.get("warmup_steps") or 0)
    rows = [r for r in result.phases if r["name"] in STEP_PHASES]
    if warm and not all("samples" in r for r in rows):
        rows = []  # an older result without per-step samples: the warm-up cannot be left out
    step = sum(_after_warmup(r, warm) if warm else r["seconds"] for r in rows)
    return step or sum(result.components.get("phases", {}).values())


def _after_warmup(row: dict[str, Any], warm: int) -> float:
    """A step phase's seconds after its first ``warm`` calls: from its samples, or (a long run keeps one
    call in k) its total less ``warm`` mean calls."""
    if int(row.get("samples_every") or 1) == 1:
        return float(sum(row["samples"][warm:]))
    calls = int(row.get("calls") or 0)
    return float(row["seconds"]) * (1 - warm / calls) if calls > warm else 0.0


def component_rows(result: "RunResult") -> list[dict[str, Any]]:
    """Per component (forward order): seconds per step forward, backward, total, share of the step.

    The last row, BETWEEN, is what the forward, loss and backward phases hold
    outside every component (hook calls, reshapes, the autograd engine's start).
    """
    c = result.components
    steps = int(c.get("steps") or 0)
    if not c.get("rows") or steps == 0:
        return []
    step = step_seconds(result)
    rows = []
    for r in c["rows"]:
        fwd, bwd = r["forward_seconds"], r["backward_seconds"]
        rows.append({"name": r["name"], "label": component_label(r["name"], r.get("module", "")),
                     "forward": fwd / steps, "backward": bwd / steps, "total": (fwd + bwd) / steps,
                     "share": (fwd + bwd) / step if step > 0 else 0.0, "between": False})
    phases = c.get("phases", {})
    rest_fwd = phases.get("forward", 0.0) + phases.get("loss", 0.0) - sum(r["forward_seconds"] for r in c["rows"])
    rest_bwd = phases.get("backward", 0.0) - sum(r["backward_seconds"] for r in c["rows"])
    rows.append({"name": BETWEEN, "label": BETWEEN, "forward": rest_fwd / steps, "backward": rest_bwd / steps,
                 "total": (rest_fwd + rest_bwd) / steps,
                 "share": (rest_fwd + rest_bwd) / step if step > 0 else 0.0, "between": True})
    return rows


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
