"""The component flow chart of the training program, shaded by each phase's measured share.

Built from ``lmprof.phases.PHASES``, the same list the reference loop marks,
so the chart and the program cannot drift apart: the run phases before the
first step phase are set-up, the step phases form the batch loop inside
train(), and the epoch loop closes after the phases of scope
"epoch" (see ``lmprof.reference.loop.main``). The forward phase opens onto the model's own
layers. Given a RunResult, each phase shows its time, share of the run's wall
time and calls, on a heat scale with a legend. When the run timed its model
components (``--components``), the forward box labels each layer with its
forward time per step, and backward becomes a box of the same components in
reverse order (autograd's), each with its backward time. When --max-batches cut
training short, the colours show each phase's share of a full-epoch run
(``lmprof.views.projection``), and the title and legend say so: a chart of
50 batches shaded as measured would tell a student that evaluation dominates.

    >>> flow_chart(RunResult.load("runs/demo")).source[:7]  # doctest: +SKIP
    'digraph'
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmprof.phases import EPOCH_PHASES, PHASES, UNCOVERED, Phase
from lmprof.record.sections import FULL_BATCHES_PER_EPOCH, WALL_SECONDS

if TYPE_CHECKING:
    import graphviz

    from lmprof.record.result import RunResult

FONT = "Helvetica"
# Heat scale: share of the run's wall time (upper bound of each bin) -> fill colour (ColorBrewer YlOrRd).
HEAT: tuple[tuple[float, str], ...] = (
    (0.01, "#ffffcc"), (0.02, "#ffeda0"), (0.05, "#fed976"), (0.10, "#feb24c"),
    (0.20, "#fd8d3c"), (0.40, "#f03b20"), (1.01, "#bd0026"),
)
DARK_FILLS = {"#f03b20", "#bd0026"}  # white text reads better on these
PLAIN_FILL = "#f2f2f2"
NOT_RUN_FILL = "#ffffff"


def forward_layers(model: str, nlayers: int) -> list[str]:
    """What happens inside the forward phase, as RNNModel / TransformerModel compute it."""
    layers = f"{nlayers} layer{'s' if nlayers != 1 else ''}"
    if model == "Transformer":
        return ["input_emb (Embedding) × √emsize", "positional encoding + dropout",
                f"TransformerEncoder ({layers}, causal mask)", "decoder (Linear)", "log_softmax"]
    return ["encoder (Embedding)", "dropout", f"rnn: {model} ({layers})", "dropout", "decoder (Linear)",
            "log_softmax"]


def forward_components(model: str) -> list[str]:
    """The component instrument's name for each box of ``forward_layers``, in the same order."""
    if model == "Transformer":
        return ["input_emb", "pos_encoder", "encoder", "decoder", "log_softmax"]
    return ["encoder", "drop", "rnn", "drop#2", "decoder", "log_softmax"]


def heat(share: float) -> str:
    for upper, colour in HEAT:
        if share < upper:
            return colour
    return HEAT[-1][1]


def phase_rows(result: "RunResult | None") -> dict[str, dict[str, Any]]:
    """result.json's phase rows by name (empty without a result); a cut run's rows carry "full_share"."""
    if result is None:
        return {}
    from lmprof.views.projection import projected_shares

    projected = projected_shares(result) or {}
    return {row["name"]: {**row, **({"full_share": projected[row["name"]]} if row["name"] in projected else {})}
            for row in result.phases}


def shown_share(row: dict[str, Any]) -> float:
    """The share the colour shows: of a full-epoch run when training was cut, else of the run."""
    return float(row.get("full_share", row.get("share", 0.0)))


def measured(row: dict[str, Any]) -> str:
    """A phase's figures as the chart prints them: time, share (and full-epoch share), calls."""
    from lmprof.views.format import duration
    from lmprof.views.rows import gpu_busy

    calls = f" · {row['calls']:,} calls" if row.get("calls", 0) > 1 else ""
    busy = gpu_busy(row)
    calls += f"\nGPU busy {busy[0]:.0%}: {busy[1]}" if busy else ""  # on CUDA: where the GPU waits
    share = row.get("share", 0.0)
    if "full_share" in row:
        return f"{duration(row['seconds'])} · {row['full_share']:.1%} of a full epoch ({share:.1%} here){calls}"
    return f"{duration(row['seconds'])} · {share:.1%}{calls}"


def _sections() -> tuple[list[Phase], list[Phase], list[Phase], list[Phase]]:
    """PHASES split into set-up, the batch loop, the rest of the epoch loop, and after the loop."""
    names = [p.name for p in PHASES]
    first_step = next(i for i, p in enumerate(PHASES) if p.scope == "step")
    last_step = max(i for i, p in enumerate(PHASES) if p.scope == "step")
    epoch_end = max(names.index(n) for n in EPOCH_PHASES)
    return (list(PHASES[:first_step]), list(PHASES[first_step:last_step + 1]),
            list(PHASES[last_step + 1:epoch_end + 1]), list(PHASES[epoch_end + 1:]))


def flow_chart(result: "RunResult | None" = None, *, model: str = "LSTM", nlayers: int = 2) -> "graphviz.Digraph":
    """The program's flow; with a result, each phase shaded and labelled with what it measured."""
    import graphviz

    if result is not None:
        model = str(result.config.get("model", model))
        nlayers = int(result.config.get("nlayers", nlayers))
    rows = phase_rows(result)
    components = component_times(result)
    g = graphviz.Digraph("flow", graph_attr={
        "rankdir": "TB", "fontname": FONT, "fontsize": "15", "labelloc": "t", "label": _title(result, rows, model),
        "nodesep": "0.25", "ranksep": "0.3", "newrank": "true"})
    g.attr("node", fontname=FONT, fontsize="11", shape="box", style="rounded,filled", fillcolor=PLAIN_FILL,
           margin="0.15,0.06")
    g.attr("edge", fontname=FONT, fontsize="10", color="#555555", arrowsize="0.7")

    setup, batch, epoch_rest, after = _sections()
    order: list[str] = [_phase_node(g, p, rows) for p in setup]
    with g.subgraph(name="cluster_epoch") as epoch:
        epoch.attr(label="epoch loop: for epoch in 1..epochs", style="rounded,dashed", color="#777777",
                   fontsize="12")
        with epoch.subgraph(name="cluster_batch") as loop:
            loop.attr(label="train(): batch loop, one bptt window per batch", style="rounded", color="#444444",
                      fontsize="12")
            for p in batch:
                if p.name == "forward":
                    order.append(_forward(loop, p, rows, model, nlayers, components))
                elif p.name == "backward" and components:
                    order.append(_backward(loop, p, rows, model, nlayers, components))
                else:
                    order.append(_phase_node(loop, p, rows))
        order += [_phase_node(epoch, p, rows) for p in epoch_rest]
    order += [_phase_node(g, p, rows) for p in after]
    _program_edges(g, order, len(forward_layers(model, nlayers)), bool(components))
    first_step, last_step = batch[0].name, batch[-1].name
    # Loop edges go back up; drawn as downward edges with the arrow at the top (dir=back), dot
    # routes them as a smooth arc beside the loop instead of through it.
    g.edge(first_step, last_step, label="next batch", style="dashed", color="#1f5fa8", fontcolor="#1f5fa8",
           dir="back", penwidth="1.4")
    g.edge(first_step, epoch_rest[-1].name, label="next epoch", style="dashed", color="#6a1b9a",
           fontcolor="#6a1b9a", dir="back", penwidth="1.4")
    if rows:
        g.node("legend", _legend(rows, bool(components)), shape="plaintext", style="", fillcolor="none")
        # Hung below the last phase: a tall legend beside the chart would stretch the edges of its rank.
        g.edge(after[-1].name, "legend", style="invis")
    return g


def _title(result: "RunResult | None", rows: dict[str, dict[str, Any]], model: str) -> str:
    """What the chart shows: the program alone, or one run (model, corpus, batches, wall time, projection)."""
    if not rows or result is None:
        return "The training program of word_language_model (lmprof diagram flow --from RUN shades it)"
    from lmprof.views.format import duration

    wall = result.phase_summary.get(WALL_SECONDS)
    corpus = Path(str(result.config.get("data") or "")).name or "embedded corpus"
    batches = sum(int(e.get("batches", 0)) for e in result.epochs)
    title = ("Where the time goes: one training run of word_language_model"
             f"\n{model}, {corpus}, {len(result.epochs)} epoch(s), {batches} training batches"
             + (f", wall time {duration(wall)}" if wall else ""))
    full = result.phase_summary.get(FULL_BATCHES_PER_EPOCH)
    if any("full_share" in row for row in rows.values()):
        title += (f"\ntraining cut short ({batches} of {int(full) * len(result.epochs)} batches): "
                  "colours show shares projected to full epochs")
    return title


def _phase_node(parent: "graphviz.Digraph", phase: Phase, rows: dict[str, dict[str, Any]]) -> str:
    """One phase's box: plain without a run; else shaded by its share and labelled with its time."""
    label, fill, font = phase.label, PLAIN_FILL, "black"
    if rows:
        row = rows.get(phase.name)
        if row is None:
            label, fill, font = f"{phase.label}\n(not run)", NOT_RUN_FILL, "#888888"
        else:
            fill = heat(shown_share(row))
            label = f"{phase.label}\n{measured(row)}"
            font = "white" if fill in DARK_FILLS else "black"
    parent.node(phase.name, label, fillcolor=fill, fontcolor=font)
    return phase.name


def _program_edges(g: "graphviz.Digraph", order: list[str], inner: int, components: bool) -> None:
    """Each phase to the next in program order; the forward (and, split by component, the backward)
    cluster is entered at its first box and left from its last (``inner`` layers, plus the loss)."""
    for a, b in zip(order, order[1:]):
        if a == "forward":
            g.edge(f"forward_{inner - 1}", b)
        elif b == "forward":
            g.edge(a, "forward_0")
        elif a == "backward" and components:
            g.edge(f"backward_{inner}", b)
        elif b == "backward" and components:
            g.edge(a, "backward_0")
        else:
            g.edge(a, b)


def _forward(parent: "graphviz.Digraph", phase: Phase, rows: dict[str, dict[str, Any]], model: str,
             nlayers: int, components: dict[str, dict[str, Any]] | None = None) -> str:
    """The forward phase as a cluster holding the model's layers; the cluster carries the measurement."""
    row = rows.get(phase.name)
    with parent.subgraph(name="cluster_forward") as fwd:
        label, fill, font = f"{phase.label}: model(data, hidden)", PLAIN_FILL, "black"
        if rows and row is not None:
            fill = heat(shown_share(row))
            label += f"\n{measured(row)}" + (f"\n{COMPONENT_NOTE}" if components else "")
            font = "white" if fill in DARK_FILLS else "black"
        fwd.attr(label=label, style="rounded,filled", fillcolor=fill, fontcolor=font, color="#444444",
                 fontsize="11")
        layers = forward_layers(model, nlayers)
        for i, name in enumerate(layers):
            if components:
                _component_node(fwd, f"forward_{i}", name, components.get(forward_components(model)[i]), "forward")
                continue
            fwd.node(f"forward_{i}", name, fillcolor="white", fontsize="10", fontcolor="black")
        for i in range(len(layers) - 1):
            fwd.edge(f"forward_{i}", f"forward_{i + 1}")
    return phase.name


COMPONENT_NOTE = "inside: each component's time per training step, coloured by its share of a step"


def component_times(result: "RunResult | None") -> dict[str, dict[str, Any]]:
    """The component table's rows by name (per training step; empty when the run has none)."""
    if result is None or not result.components:
        return {}
    from lmprof.record.derived import component_rows

    return {row["name"]: row for row in component_rows(result)}


def _component_node(parent: "graphviz.Digraph", node: str, name: str, row: dict[str, Any] | None,
                    direction: str) -> None:
    """A model component with its forward or backward time per step, shaded by its share of the step."""
    from lmprof.views.format import duration

    if row is None:
        parent.node(node, name, fillcolor="white", fontsize="10", fontcolor="black")
        return
    step = row["forward"] + row["backward"]
    share = row[direction] / step * row["share"] if step > 0 else 0.0
    fill = heat(share)
    # One DOT line per box ("\\n" breaks it when drawn): the name and its time read together.
    label = f"{name}\\n{direction} {duration(row[direction])}/step · {share:.1%} of a step"
    parent.node(node, label, fillcolor=fill, fontsize="10", fontcolor="white" if fill in DARK_FILLS else "black")


def _backward(parent: "graphviz.Digraph", phase: Phase, rows: dict[str, dict[str, Any]], model: str,
              nlayers: int, components: dict[str, dict[str, Any]]) -> str:
    """loss.backward() as a cluster: the loss, then the model's components in reverse (autograd's order)."""
    row = rows.get(phase.name)
    with parent.subgraph(name="cluster_backward") as bwd:
        label, fill, font = f"{phase.label}: loss.backward(), components in reverse order", PLAIN_FILL, "black"
        if row is not None:
            fill = heat(shown_share(row))
            label += f"\n{measured(row)}\n{COMPONENT_NOTE}"
            font = "white" if fill in DARK_FILLS else "black"
        bwd.attr(label=label, style="rounded,filled", fillcolor=fill, fontcolor=font, color="#444444",
                 fontsize="11")
        names = ["loss (NLLLoss)", *reversed(forward_layers(model, nlayers))]
        keys = ["loss", *reversed(forward_components(model))]
        for i, (name, key) in enumerate(zip(names, keys)):
            _component_node(bwd, f"backward_{i}", name, components.get(key), "backward")
        for i in range(len(names) - 1):
            bwd.edge(f"backward_{i}", f"backward_{i + 1}")
    return phase.name


def _legend(rows: dict[str, dict[str, Any]], components: bool = False) -> str:
    """The heat scale's bins, and the time no phase covers; with components, a second legend beside the
    first: the component boxes use the same colours for another quantity (share of one training step)."""
    lower = 0.0
    cells = []
    for upper, colour in HEAT:
        span = f"≥ {lower:.0%}" if upper > 1 else f"{lower:.0%} – {upper:.0%}"
        font = "white" if colour in DARK_FILLS else "black"
        cells.append(f'<tr><td bgcolor="{colour}" align="left"><font color="{font}">{html.escape(span)}</font></td>'
                     + (f'<td bgcolor="{colour}" align="left"><font color="{font}">{html.escape(span)}</font></td>'
                        if components else "") + '</tr>')
        lower = upper
    projected = any("full_share" in row for row in rows.values())
    if projected:
        notes = ["Colour: the phase's share of a full-epoch run (projected:",
                 "training steps × whole epochs' batches, evaluation as measured).",
                 "Each phase: total time · full-epoch share (share here) · calls."]
    else:
        notes = ["Colour: the phase's share of the run's wall time.",
                 "Each phase: total time · share · calls."]
    from lmprof.views.rows import gpu_busy

    if any(gpu_busy(row) for row in rows.values()):  # on CUDA: what the GPU busy line under a phase means
        notes.append("GPU busy: kernel time over the phase's time on a few watched batches; "
                     "launch-bound under 40%, compute-bound from 75%.")
    outside = rows.get(UNCOVERED)
    if outside is not None:
        notes.append(f"Outside every phase (loop bookkeeping, prints): {measured(outside)}.")
    if components:
        notes.append("Component boxes (inside forward and backward): their own legend, right: the component's "
                     "forward or backward time as a share of one training step.")
    span = ' colspan="2"' if components else ""
    note_rows = "".join(f'<tr><td align="left"{span}>{html.escape(n)}</td></tr>' for n in notes)
    scale = ("Share of a full epoch" if projected else "Share of wall time") + (" (phases)" if components else "")
    heading = f'<td align="left"><b>{scale}</b></td>'
    if components:
        heading += '<td align="left"><b>Share of a training step (components)</b></td>'
    return (f'<<table border="0" cellborder="0" cellspacing="2" cellpadding="3">'
            f'<tr>{heading}</tr>{"".join(cells)}{note_rows}</table>>')
