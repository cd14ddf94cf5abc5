"""The unrolled BPTT graph, drawn from ``lmprof.instrument.graph``'s data.

One cluster per time step (per layer when there are several), ordered top
to bottom as time runs; each parameter drawn once, with an edge into every
step that uses it (backward sums its gradient over those edges: that sum is
what "through time" means); the hidden (and cell) state flowing from step to
step; the state that entered from the previous batch drawn as a leaf, cut by
``repackage_hidden``. ``raw_graph`` draws every autograd node instead,
torchviz-style, for comparison.
"""

from __future__ import annotations

import html
import re
from contextlib import nullcontext
from typing import TYPE_CHECKING

from lmprof.instrument.graph import Cluster, Edge, Node, StepGraph

if TYPE_CHECKING:
    import graphviz

FONT = "Helvetica"
LARGE_GRAPH = 300  # nodes; past this the layout trades curved edges for speed
COLOURS = {
    "op": "#eeeeee",
    "h": "#b7e1b0",  # hidden state handed to the next step
    "c": "#fde0a6",  # an LSTM's cell state
    "param": "#add8e6",  # torchviz's colour for parameters
    "state_in": "#f4b6b6",
    "loss": "#caff70",  # torchviz's darkolivegreen1
}
EDGE_COLOURS = {"data": "#555555", "param": "#5b8fc7", "state": "#2e7d32", "detached": "#c62828"}
STEP_FILL = {1: "#fbfbf4", 2: "#f4f8fc"}  # the previous batch, this batch
# Autograd names, as aten calls the operations (UnsafeSplit is the cell's gates.chunk()).
OP_NAMES = {"UnsafeSplit": "chunk", "Addmm": "addmm", "Add": "add", "Sub": "sub", "Mul": "mul",
            "Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "Unbind": "unbind", "Stack": "stack",
            "View": "view", "Embedding": "embedding", "LogSoftmax": "log_softmax", "NllLoss": "nll_loss",
            "T": "t"}
_SUFFIX = re.compile(r"Backward\d*$")
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def op_name(autograd_name: str) -> str:
    base = _SUFFIX.sub("", autograd_name)
    return OP_NAMES.get(base, base)


def _shape(node: Node) -> str:
    return "×".join(str(d) for d in node.shape or [])


def _new_graph(title: str, rankdir: str, size: int) -> "graphviz.Digraph":
    import graphviz

    g = graphviz.Digraph("bptt", graph_attr={
        "rankdir": rankdir, "fontname": FONT, "fontsize": "14", "labelloc": "t", "label": title,
        "nodesep": "0.12", "ranksep": "0.22", "newrank": "true"})
    if size > LARGE_GRAPH:
        # Curved edge routing and crossing minimisation grow much faster than the graph: past a
        # few hundred nodes (bptt 35, 2 layers: ~950) they take minutes; straight edges take seconds.
        # The x placement (network simplex over ~160k helper nodes for the long edges) is bounded too:
        # searchsize 5 and nslimit 0.2 cut it from 2-6 s to under 0.5 s with system dot 2.43, and the
        # picture (boxes in columns, edges as straight) looked the same side by side.
        g.attr(splines="line", mclimit="0.2", nslimit="0.2", searchsize="5")
    g.attr("node", fontname=FONT, fontsize="10", shape="box", style="rounded,filled", height="0.3",
           margin="0.06,0.03", fillcolor=COLOURS["op"], color="#888888")
    g.attr("edge", color=EDGE_COLOURS["data"], arrowsize="0.6", fontname=FONT, fontsize="9")
    return g


def bptt_graph(data: StepGraph, grads: dict[str, list[list[float]]] | None = None) -> "graphviz.Digraph":
    """The time-step view: clusters t = 1..T (per layer), shared parameters, the repackage_hidden cut.

    ``grads`` (state -> per layer, per step norms, as ``lmprof gradflow`` measures them) draws each
    h and c edge with width and colour by the gradient norm that flows back along it.
    """
    title = _title(data)
    g = _new_graph(title, "TB", len(data.nodes))
    by_id = {n.id: n for n in data.nodes}
    grad_edges = _gradient_edges(data, grads) if grads else {}
    if grads:
        g.attr(label=f"{title}\nedge width and colour: |dLoss_T/dh_t| (and dc_t) measured by lmprof gradflow, "
                     "darker and wider = more gradient reaches that step")
    # A parameter's transpose (TBackward0) is drawn as the parameter's own edge: one box per weight.
    transposed = {e.dst: e.src for e in data.edges if e.kind == "param" and by_id[e.dst].name == "TBackward0"}
    members: dict[str, list[Node]] = {}
    for n in data.nodes:
        if n.id not in transposed:
            members.setdefault(n.group, []).append(n)
    for b in sorted({c.batch for c in data.clusters}):
        _draw_batch(g, data, b, members)
    _draw_ungrouped(g, members.get("", []))
    _draw_edges(g, data, transposed, by_id, grad_edges)
    _stack_clusters(g, data, members)
    g.node("legend", _legend(data), shape="plaintext", style="", fillcolor="none")
    return g


def _title(data: StepGraph) -> str:
    cfg = data.config
    layers = "layer" if cfg["nlayers"] == 1 else "layers"
    return (f"Back-propagation through time: {cfg['model']}, {cfg['nlayers']} {layers}, bptt {cfg['bptt']}, "
            f"batch {cfg['batch_size']}, emsize {cfg['emsize']}, nhid {cfg['nhid']}"
            + ("" if data.repackage else " (no repackage_hidden: two batches)"))


def _draw_batch(g: "graphviz.Digraph", data: StepGraph, b: int, members: dict[str, list[Node]]) -> None:
    """One batch's clusters: its embedding and decoder, then each layer's box with its steps inside."""
    nlayers = data.config["nlayers"]
    # Two batches (no repackage_hidden) each get a box; one batch needs none. An invisible box
    # around everything costs dot's crossing minimisation 7.4 s instead of 2.8 s at bptt 35 x 2 layers.
    with g.subgraph(name=f"cluster_batch{b}") if not data.repackage else nullcontext(g) as outer:
        if not data.repackage:
            outer.attr(label="previous batch" if b == 1 else "this batch (the loss is computed here)",
                       style="dashed", color="#999999", fontsize="13")
        for cluster in [c for c in data.clusters if c.batch == b and c.kind not in ("step", "layer_input")]:
            _cluster(outer, cluster, members.get(cluster.key, []), "#ffffff")
        for layer in range(1, nlayers + 1):
            # The layer's input projection sits inside its layer's box: its unbind feeds every step, and
            # dot 2.43 merges a cluster in time quadratic in its nodes: kept in the layer, that fan costs
            # ~2 s less at bptt 35 x 2 layers.
            inner = [c for c in data.clusters if c.batch == b and c.layer == layer
                     and c.kind in ("layer_input", "step")]
            with outer.subgraph(name=f"cluster_b{b}_layer{layer}") as lay:
                lay.attr(label=f"layer {layer}: the same cell at every step" if nlayers > 1 else "",
                         style="invis" if nlayers == 1 else "solid", color="#bbbbbb")
                for cluster in inner:
                    fill = STEP_FILL[b] if cluster.kind == "step" else "#ffffff"
                    _cluster(lay, cluster, members.get(cluster.key, []), fill)


def _draw_ungrouped(g: "graphviz.Digraph", nodes: list[Node]) -> None:
    """The shared parameters and the incoming state, outside every cluster."""
    for n in nodes:
        if n.kind == "param":
            g.node(n.id, f"{n.name}\n{_shape(n)}", fillcolor=COLOURS["param"], shape="box", style="filled")
        elif n.kind == "state_in":
            g.node(n.id, _wrap(n.name, 30), fillcolor=COLOURS["state_in"], shape="note", style="filled",
                   fontsize="11")


def _draw_edges(g: "graphviz.Digraph", data: StepGraph, transposed: dict[str, str], by_id: dict[str, Node],
                grad_edges: dict[str, dict[str, str]]) -> None:
    """Every edge, a weight's transpose drawn as the weight's own edge; h and c by gradient when measured."""
    for e in data.edges:
        if e.dst in transposed:
            continue
        if e.src in transposed:  # weight -> t -> addmm is drawn weight -> addmm
            e = Edge(transposed[e.src], e.dst, "param")
        if grad_edges and e.kind == "state" and e.src in grad_edges:
            g.edge(e.src, e.dst, **grad_edges[e.src])
        else:
            _edge(g, e, by_id)


def _stack_clusters(g: "graphviz.Digraph", data: StepGraph, members: dict[str, list[Node]]) -> None:
    """Keep the clusters in program order, top to bottom, with invisible edges between neighbours.

    Without them a node that needs nothing from above (step 1's h0·W_hh, the next batch's embedding)
    floats to the top and stretches its cluster over the others.
    """
    linked = {(e.src, e.dst) for e in data.edges}
    previous: list[Node] = []
    for cluster in data.clusters:
        nodes = members.get(cluster.key, [])
        if not nodes:
            continue
        sources = [n for n in nodes if not any((m.id, n.id) in linked for m in nodes)]
        if previous:
            sinks = [n for n in previous if not any((n.id, m.id) in linked for m in previous)]
            for n in sources:
                g.edge((sinks or previous)[0].id, n.id, style="invis")
        previous = nodes


def _cluster(parent: "graphviz.Digraph", cluster: Cluster, nodes: list[Node], fill: str) -> None:
    with parent.subgraph(name=f"cluster_{cluster.key.replace('/', '_')}") as sub:
        style = "rounded,filled" if cluster.kind == "step" else "rounded,dashed"
        sub.attr(label=cluster.label if cluster.kind == "step" else _wrap(cluster.label, 34), style=style,
                 fillcolor=fill, color="#7a7a7a" if cluster.kind == "step" else "#aaaaaa",
                 fontsize="13" if cluster.kind == "step" else "10")
        for n in nodes:
            label = op_name(n.name)
            if label == "mul" and cluster.kind != "step":  # outside the cell, a mul is a dropout mask
                label = "dropout (mul)"
            fill_colour = COLOURS["loss"] if n.kind == "loss" else COLOURS.get(n.role, COLOURS["op"])
            if n.role and cluster.step is not None:
                label = f"{n.role}{str(cluster.step).translate(_SUB)} = {label}"
            sub.node(n.id, label, fillcolor=fill_colour)


def _gradient_edges(data: StepGraph, grads: dict[str, list[list[float]]]) -> dict[str, dict[str, str]]:
    """Edge attributes per state node: width 1..7 and colour pale to deep on a log scale of its norm."""
    import math

    last_batch = max(c.batch for c in data.clusters)
    steps = {c.key: c for c in data.clusters if c.kind == "step" and c.batch == last_batch}
    found: dict[str, tuple[str, float]] = {}  # node id -> (role, norm)
    for n in data.nodes:
        cluster = steps.get(n.group)
        if n.role in grads and cluster is not None and cluster.layer is not None and cluster.step is not None:
            norms = grads[n.role][cluster.layer - 1]
            if cluster.step <= len(norms) and norms[cluster.step - 1] > 0:
                found[n.id] = (n.role, norms[cluster.step - 1])
    if not found:
        return {}
    logs = [math.log10(norm) for _, norm in found.values()]
    low, high = min(logs), max(logs)
    pale, deep = (0xc8, 0xe6, 0xc9), (0x1b, 0x5e, 0x20)  # the state edges' green, light to dark
    attrs = {}
    for node_id, (role, norm) in found.items():
        x = (math.log10(norm) - low) / (high - low) if high > low else 1.0
        colour = "#" + "".join(f"{round(a + (b - a) * x):02x}" for a, b in zip(pale, deep))
        attrs[node_id] = {"color": colour, "penwidth": f"{1 + 6 * x:.2f}", "label": f"{role} {norm:.1e}",
                          "fontcolor": EDGE_COLOURS["state"]}
    return attrs


def _edge(g: "graphviz.Digraph", e: Edge, by_id: dict[str, Node]) -> None:
    src = e.src
    if e.kind == "param":
        g.edge(src, e.dst, color=EDGE_COLOURS["param"], style="dashed", penwidth="0.8")
    elif e.kind == "detached":
        g.edge(src, e.dst, color=EDGE_COLOURS["detached"], style="dashed", penwidth="1.6",
               label="detached", fontcolor=EDGE_COLOURS["detached"])
    elif e.kind == "state":
        role = by_id[e.src].role
        g.edge(src, e.dst, color=EDGE_COLOURS["state"], penwidth="2.2", label=role,
               fontcolor=EDGE_COLOURS["state"])
    else:
        g.edge(src, e.dst)


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])


def _legend(data: StepGraph) -> str:
    """An HTML-like table: what the colours mean, which way gradients flow, fused vs unrolled."""
    check = data.check
    fused = ", ".join(f"{name} ×{count}" for name, count in data.fused_rnn_nodes().items())
    fused_line = (f"The fused kernel used in training hides the steps ({fused}); drawn with oneDNN/cuDNN off. "
                  if fused else "This build's fused path already runs step by step; drawn with oneDNN/cuDNN off. ")
    same = "the same outputs" if check.get("allclose") else "DIFFERENT outputs"
    fused_line += f"Both paths give {same} (max |Δ| {check.get('max_abs_diff', float('nan')):.1e})."
    rows = [
        (COLOURS["op"], "an operation autograd recorded (backward runs its Backward node)"),
        (COLOURS["h"], "h: the hidden state a step hands to the next"),
    ]
    if data.config["model"] == "LSTM":
        rows.append((COLOURS["c"], "c: the LSTM's cell state, handed on the same way"))
    rows += [
        (COLOURS["param"], "a parameter, drawn once: its gradient is the sum over every step it feeds"),
        (COLOURS["state_in"], "the state entering step 1: repackage_hidden() detached it, so backward stops "
                              "there (the cut)" if data.repackage else
                              "init_hidden(): the zeros the epoch starts from; after them nothing is detached"),
        (COLOURS["loss"], "the loss: backward() starts here"),
    ]
    cells = "".join(f'<tr><td bgcolor="{colour}" align="left">{html.escape(text)}</td></tr>' for colour, text in rows)
    notes = [
        "Arrows show the forward pass. loss.backward() walks them in reverse:",
        "from the loss to t = T, then back step by step to t = 1 (gradient flow ←).",
        "Thick green: h (and c) from step to step. Dashed blue: a parameter's use. Dashed red: the cut.",
        *_wrap(fused_line, 90).splitlines(),
    ]
    note_rows = "".join(f'<tr><td align="left">{html.escape(line)}</td></tr>' for line in notes)
    return (f'<<table border="0" cellborder="0" cellspacing="2" cellpadding="3">'
            f'<tr><td align="left"><b>Legend</b></td></tr>{cells}{note_rows}</table>>')


def raw_graph(data: StepGraph) -> "graphviz.Digraph":
    """Every autograd node of the step, torchviz-style: Backward nodes grey, parameters blue with names."""
    cfg = data.config
    g = _new_graph(f"Autograd graph of one training step ({cfg['model']}, {cfg['nlayers']} layer(s), "
                   f"bptt {cfg['bptt']}), as torchviz draws it", "TB", len(data.nodes))
    for n in data.nodes:
        if n.kind == "param":
            g.node(n.id, f"{n.name}\n({', '.join(str(d) for d in n.shape or [])})", fillcolor=COLOURS["param"],
                   style="filled")
        elif n.kind in ("op", "loss"):
            g.node(n.id, n.name, fillcolor=COLOURS["loss"] if n.kind == "loss" else "lightgrey", style="filled")
    for e in data.edges:
        if e.src != "state_in":
            g.edge(e.src, e.dst)
    return g
