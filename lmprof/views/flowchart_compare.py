"""The flow chart of one run coloured by how another run's phases compare with it (``diagram flow --vs``).

The chart is ``lmprof.views.flowchart.flow_chart`` of the baseline, so both
charts share one structure; this module only repaints it. In DOT a later
statement about a node (or a named subgraph) updates its attributes, so each
phase is re-declared with its new colour and label after the chart is built.

Colour: one meaning per chart, a diverging scale of the ratio other /
baseline, and only where the comparison's verdict says the difference is real
(``lmprof.comparison``): blues for faster, reds for slower, white for within
noise. Phases that run once (set-up, evaluation), phases too small to judge
and the model's components (timed per step, no per-batch samples) have no
verdict: they are labelled with both times and the ratio, and left grey with
a dashed border. With --components, forward and backward are clusters of the
components; each cluster is repainted in place (no box is added outside it).

    >>> vs_chart(compare([a, b]), a, b).source[:7]  # doctest: +SKIP
    'digraph'
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from lmprof.comparison import FASTER, NOISE, SLOWER, Comparison, ComponentRow, PhaseRow, ratio_of
from lmprof.phases import PHASES, UNCOVERED, Phase
from lmprof.views.flowchart import PLAIN_FILL, component_times, forward_components, forward_layers
from lmprof.views.format import duration

if TYPE_CHECKING:
    import graphviz

    from lmprof.record.result import RunResult

# (verdict, ratio beyond which the stronger shade is used) -> fill; ColorBrewer RdBu.
STRONG = 1.5
FILLS = {(FASTER, True): "#2166ac", (FASTER, False): "#92c5de", (NOISE, False): "#f7f7f7",
         (SLOWER, False): "#f4a582", (SLOWER, True): "#b2182b"}
DARK = {"#2166ac", "#b2182b"}


def fill_for(verdict: str, value: float | None) -> str:
    """The diverging scale's colour for a verdict; grey when there is none."""
    if verdict not in (FASTER, SLOWER, NOISE) or value is None:
        return PLAIN_FILL
    strong = verdict != NOISE and (value >= STRONG or value <= 1 / STRONG)
    return FILLS[(verdict, strong)]


def _label(phase: Phase, comparison: Comparison, row: PhaseRow | None, totals: tuple[float | None, float | None],
           other: int) -> tuple[str, str]:
    """(label, fill) of one phase: both times, the ratio and the verdict."""
    a, b = comparison.names[0], comparison.names[other]
    if row is not None and row.medians[0] is not None and row.medians[other] is not None:
        times = f"{a}: {duration(row.medians[0])} · {b}: {duration(row.medians[other])} per batch"
        value, verdict = row.ratios[other], row.verdicts[other]
        said = f"{value:.2f}× · {verdict}" if value is not None else verdict
        return f"{phase.label}\n{times}\n{said}", fill_for(verdict, value)
    base, then = totals
    if base is None and then is None:
        return f"{phase.label}\n(not run)", PLAIN_FILL
    shown = " · ".join(f"{name}: {duration(v) if v is not None else 'not run'}" for name, v in ((a, base), (b, then)))
    value = ratio_of(then, base)
    return f"{phase.label}\n{shown}" + (f"\n{value:.2f}× · no verdict (not per batch)" if value else ""), PLAIN_FILL


def vs_chart(comparison: Comparison, base: "RunResult", other_run: "RunResult", other: int = 1) -> "graphviz.Digraph":
    """``base``'s flow chart with each phase coloured by ``other_run``'s ratio to it and its verdict."""
    from lmprof.views.flowchart import flow_chart

    graph = flow_chart(base)
    rows = {p.name: p for p in comparison.phases}
    split = bool(component_times(base))  # forward and backward are clusters of the components
    seconds = [{r["name"]: float(r["seconds"]) for r in run.phases} for run in (base, other_run)]
    for phase in PHASES:
        if phase.name not in seconds[0] and phase.name not in seconds[1]:
            continue  # neither ran it: the chart's own "(not run)" stays
        label, fill = _label(phase, comparison, rows.get(phase.name),
                             (seconds[0].get(phase.name), seconds[1].get(phase.name)), other)
        font = "white" if fill in DARK else "black"
        if phase.name == "forward" or (phase.name == "backward" and split):  # a cluster: repaint it in place
            what = "model(data, hidden)" if phase.name == "forward" else "loss.backward(), components in reverse order"
            # DOT finds a subgraph by name among its parent's only: reopen the clusters it sits in
            with graph.subgraph(name="cluster_epoch") as epoch, epoch.subgraph(name="cluster_batch") as loop, \
                    loop.subgraph(name=f"cluster_{phase.name}") as cluster:
                cluster.attr(label=label.replace(phase.label, f"{phase.label}: {what}", 1),
                             fillcolor=fill, fontcolor=font, style="rounded,filled" + (",dashed" if fill == PLAIN_FILL else ""))
                if split:
                    _repaint_components(cluster, comparison, base, phase.name, other)
        elif fill == PLAIN_FILL:  # no verdict: a dashed border, so it never reads as "within noise"
            graph.node(phase.name, label, fillcolor=fill, fontcolor=font, style="rounded,filled,dashed")
        else:
            graph.node(phase.name, label, fillcolor=fill, fontcolor=font)
    graph.node("legend", _legend(comparison, other), shape="plaintext", style="", fillcolor="none")
    title = (f"{comparison.names[other]} against {comparison.names[0]}: each phase coloured by its time ratio "
             f"and verdict\n{comparison.names[0]}: {comparison.descriptions[0]}"
             f"\n{comparison.names[other]}: {comparison.descriptions[other]}")
    if not comparison.comparable_on_time:
        title += "\ndifferent hardware or threads: not comparable on time (no colours)"
    graph.attr(label=title)
    return graph


def _repaint_components(cluster: "graphviz.Digraph", comparison: Comparison, base: "RunResult", direction: str,
                        other: int) -> None:
    """Each component box of the cluster: both runs' time per step and the ratio, grey (no verdict), so
    no box keeps the baseline's heat colour in a chart coloured by ratio."""
    model, nlayers = str(base.config.get("model", "LSTM")), int(base.config.get("nlayers", 2))
    by_role = {row.role: row for row in comparison.components}
    names, keys = forward_layers(model, nlayers), forward_components(model)
    if direction == "backward":
        names, keys = ["loss (NLLLoss)", *reversed(names)], ["loss", *reversed(keys)]
    a, b = comparison.names[0], comparison.names[other]
    for i, (name, key) in enumerate(zip(names, keys)):
        row = by_role.get(key)
        if row and key == "rnn":  # the one box whose module kind differs between an LSTM and a GRU run
            name = name.replace(f"rnn: {model}", "rnn: " + " vs ".join(dict.fromkeys(m for m in row.modules if m)))
        label = f"{name}\\n{_component_times(row, direction, other, a, b)}" if row else name
        cluster.node(f"{direction}_{i}", label, fillcolor="white", fontcolor="black", style="rounded,filled,dashed")


def _component_times(row: ComponentRow, direction: str, other: int, a: str, b: str) -> str:
    """'forward per step: A 1.2 ms · B 0.9 ms · 0.75×' for one direction of one component."""
    values = row.forward if direction == "forward" else row.backward
    base, then = values[0], values[other]
    times = f"{a} {duration(base) if base is not None else 'not run'} · {b} {duration(then) if then is not None else 'not run'}"
    value = ratio_of(then, base)
    return f"{direction} per step: {times}" + (f" · {value:.2f}×" if value is not None else "")


def _legend(comparison: Comparison, other: int) -> str:
    names = (comparison.names[other], comparison.names[0])
    cells = [(FILLS[(FASTER, True)], f"faster, {names[0]} under {1 / STRONG:.2f}× of {names[1]}"),
             (FILLS[(FASTER, False)], "faster"), (FILLS[(NOISE, False)], "within noise"),
             (FILLS[(SLOWER, False)], "slower"), (FILLS[(SLOWER, True)], f"slower, over {STRONG:.1f}×"),
             (PLAIN_FILL, "dashed border: no verdict (not per batch, too small to judge, or a model component: "
                          "both times and the ratio only)")]
    rows = "".join(f'<tr><td bgcolor="{c}" align="left"><font color="{"white" if c in DARK else "black"}">'
                   f"{html.escape(text)}</font></td></tr>" for c, text in cells)
    note = (f"Faster/slower: the {comparison.confidence:.0%} bootstrap interval of the ratio excludes 1 "
            f"and the ratio clears the {comparison.drift_margin:.0%} run-to-run drift.")
    outside = f"{UNCOVERED}: time outside every phase, not compared."
    return (f'<<table border="0" cellborder="0" cellspacing="2" cellpadding="3">'
            f'<tr><td align="left"><b>Time ratio {html.escape(names[0])} / {html.escape(names[1])}</b></td></tr>'
            f'{rows}<tr><td align="left">{html.escape(note)}</td></tr>'
            f'<tr><td align="left">{html.escape(outside)}</td></tr></table>>')
