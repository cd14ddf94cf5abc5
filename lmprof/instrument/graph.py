"""Capture the autograd graph of one training step of the reference RNN, as plain data.

Back-propagation through time is ``loss.backward()`` over the graph that the
forward pass recorded: the same cell applied once per time step. This module
runs one real forward of the reference model (two batches, as the training
loop sees them), takes the graph from the loss and sorts its nodes into
clusters: one per time step and layer, the layer's input projection, the
embedding, the decoder head. The views draw it; nothing here draws.

The fused kernels hide the time steps (oneDNN for float32 LSTM on CPU gives
one ``MkldnnRnnLayerBackward0`` node per layer; cuDNN the same on GPUs), so
the graph is taken with those backends switched off, where PyTorch runs the
cell step by step. The fused path runs too, from the same random state, and
``StepGraph.check`` records that both give the same outputs. On that path
PyTorch computes a layer's input projection x·W_ihᵀ for all T steps in one
matmul before the loop and unbinds it into steps, so that node belongs to the
layer's input cluster, not to a step.

    >>> from lmprof.config import RunConfig
    >>> g = capture(RunConfig(model="LSTM", nlayers=1, bptt=4, batch_size=2, emsize=8, nhid=8))  # doctest: +SKIP
    >>> len(g.step_clusters())  # doctest: +SKIP
    4
"""

from __future__ import annotations

import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from lmprof.config import RNN_KINDS, RunConfig
from lmprof.errors import UsageError

if TYPE_CHECKING:
    import torch

GraphFn = Any  # a torch.autograd graph node (grad_fn); its Python type is internal to torch


@dataclass
class Node:
    id: str
    name: str  # autograd node ("AddmmBackward0"), a parameter's name, or the state leaf's
    kind: str  # "op", "param", "state_in" (state entering the first step), "loss"
    group: str  # key of the Cluster holding it; "" for parameters and leaves
    role: str = ""  # "h" or "c": the state this node hands to the next step
    shape: list[int] | None = None  # parameters only


@dataclass
class Edge:
    src: str  # forward direction: src's output is an input of dst; backward() walks dst -> src
    dst: str
    kind: str  # "data", "param", "state" (step to step, or batch to batch), "detached" (the cut)


@dataclass
class Cluster:
    key: str
    label: str
    kind: str  # "step", "layer_input", "embed", "head", "carry"
    batch: int  # 1: the previous batch (drawn with --no-repackage only), 2: this batch
    layer: int | None = None  # 1-based
    step: int | None = None  # 1-based time step t


@dataclass
class StepGraph:
    config: dict[str, Any]  # model, ntokens, emsize, nhid, nlayers, bptt, batch_size, dropout, tied
    repackage: bool
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    check: dict[str, Any] = field(default_factory=dict)  # fused vs unrolled outputs
    loss: float = 0.0

    def step_clusters(self, batch: int | None = None) -> list[Cluster]:
        return [c for c in self.clusters if c.kind == "step" and (batch is None or c.batch == batch)]

    def fused_rnn_nodes(self) -> dict[str, int]:
        """The fused path's RNN nodes (name -> count) that stand for all the steps drawn here."""
        return {k: v for k, v in self.check.get("fused_nodes", {}).items() if "rnn" in k.lower()}

    def params(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "param"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def unfused() -> Iterator[None]:
    """Run the RNN step by step (no oneDNN/cuDNN fused kernel), so the graph shows every time step."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # oneDNN's flag setter warns about TF32 on CPU builds
        with torch.backends.mkldnn.flags(enabled=False), torch.backends.cudnn.flags(enabled=False):
            yield


@dataclass
class _Batch:
    """What the rnn module saw and made in one forward (from a forward hook)."""

    rnn_input: "torch.Tensor"
    hidden_in: tuple["torch.Tensor", ...]
    rnn_output: "torch.Tensor"
    hidden_out: tuple["torch.Tensor", ...]


@dataclass
class _Step:
    batches: list[_Batch]
    output: "torch.Tensor"  # log-probabilities of the drawn batch
    hidden: tuple["torch.Tensor", ...]
    loss: "torch.Tensor"


def _as_tuple(hidden: Any) -> tuple["torch.Tensor", ...]:
    return tuple(hidden) if isinstance(hidden, (tuple, list)) else (hidden,)


def _two_batches(model: Any, stream: "torch.Tensor", cfg: RunConfig, repackage: bool) -> _Step:
    """Batch 1 then batch 2 of the training loop (get_batch, repackage_hidden, forward, loss)."""
    import torch
    import torch.nn as nn

    from lmprof.reference.loop import get_batch, repackage_hidden

    seen: list[_Batch] = []

    def keep(_module: Any, args: tuple[Any, ...], out: tuple[Any, Any]) -> None:
        seen.append(_Batch(args[0], _as_tuple(args[1]), out[0], _as_tuple(out[1])))

    handle = model.rnn.register_forward_hook(keep)
    try:
        torch.manual_seed(cfg.seed + 1)  # the same dropout masks on the fused and the unrolled path
        hidden = model.init_hidden(cfg.batch_size)
        data, _ = get_batch(stream, 0, cfg.bptt)
        _, hidden = model(data, hidden)
        if repackage:
            hidden = repackage_hidden(hidden)
        data, targets = get_batch(stream, cfg.bptt, cfg.bptt)
        output, hidden = model(data, hidden)
        loss = nn.NLLLoss()(output, targets)
    finally:
        handle.remove()
    return _Step(seen, output, _as_tuple(hidden), loss)


def _reach(start: GraphFn | None, stop: set[GraphFn]) -> list[GraphFn]:
    """Graph nodes reachable from ``start`` (itself included), not walking into ``stop``."""
    found: list[GraphFn] = []
    seen: set[GraphFn] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        if node is None or node in seen or node in stop:
            continue
        seen.add(node)
        found.append(node)
        todo.extend(child for child, _ in reversed(node.next_functions))
    return found


def _nearest(candidates: list[GraphFn], stop: set[GraphFn]) -> GraphFn:
    """The one candidate that no other candidate leads to (the closest to where the walk began)."""
    below: set[GraphFn] = set()
    for c in candidates:
        below.update(_reach(c, stop)[1:])
    top = [c for c in candidates if c not in below]
    if len(top) != 1:
        raise RuntimeError("unexpected autograd graph: cannot tell the RNN's layers apart")
    return top[0]


class _Sorter:
    """Assigns every node of the graph to one cluster, batch by batch, top layer down."""

    def __init__(self, cfg: RunConfig, params: dict[GraphFn, str]) -> None:
        self.cfg = cfg
        self.params = params  # AccumulateGrad node -> the parameter's name(s)
        self.known: set[GraphFn] = set(params)  # parameters belong to no cluster
        self.first_steps: dict[tuple[int, int], list[GraphFn]] = {}  # (batch, layer) -> step 1's nodes
        self.group: dict[GraphFn, str] = {}
        self.role: dict[GraphFn, str] = {}
        self.clusters: list[Cluster] = []

    def put(self, nodes: list[GraphFn] | set[GraphFn], cluster: Cluster) -> None:
        self.clusters.append(cluster)
        for n in nodes:
            self.group[n] = cluster.key
        self.known.update(nodes)

    def batch(self, b: int, rec: _Batch, loss_fn: GraphFn | None) -> None:
        """Cluster one batch: carried state, layers top down, embedding, and (batch 2) the head."""
        carried = [h.grad_fn for h in rec.hidden_in if h.grad_fn is not None]
        if carried:  # no repackage_hidden: the previous batch's state, split into layers
            carry = set(carried) | {n for n in _reach(rec.rnn_output.grad_fn, self.known)
                                    if any(c in carried for c, _ in n.next_functions)}
            self.put(carry, Cluster(f"b{b}/carry", "state from the previous batch, not detached: "
                                    "the graph goes on", "carry", b))
        top = rec.rnn_output.grad_fn
        for layer in range(self.cfg.nlayers, 0, -1):
            top, self.first_steps[(b, layer)] = self._layer(b, layer, top, rec)
        self.put(_reach(rec.rnn_input.grad_fn, self.known),
                 Cluster(f"b{b}/embed", "encoder (Embedding) -> dropout", "embed", b))
        if loss_fn is not None:
            self.put(_reach(loss_fn, self.known), Cluster(
                f"b{b}/head", "dropout -> decoder (Linear) -> log_softmax -> NLLLoss", "head", b))
        for kind, state in zip("hc", rec.hidden_out):  # the last step's state leaves through hidden_out
            for layer_last, _ in state.grad_fn.next_functions:
                self.role.setdefault(layer_last, kind)

    def _layer(self, b: int, layer: int, stack: GraphFn, rec: _Batch) -> tuple[GraphFn, list[GraphFn]]:
        """Cluster one layer from the node stacking its outputs; return the layer below's stack."""
        if stack is None or stack.name() != "StackBackward0":
            raise RuntimeError("unexpected autograd graph: the RNN was not unrolled into time steps")
        outputs = [h for h, _ in stack.next_functions]  # h_1 .. h_T of this layer
        reached = _reach(outputs[0], self.known)  # step 1, and everything below it
        steps: list[list[GraphFn]] = [[]]
        seen = set(reached)
        for h in outputs[1:]:
            new = _reach(h, self.known | seen)  # exactly what step t added
            steps.append(new)
            seen.update(new)
        unbinds = [n for n in reached if n.name() == "UnbindBackward0"]
        feed = _nearest(unbinds, self.known)  # the layer's input, sliced into time steps
        below = set(_reach(feed, self.known))
        steps[0] = [n for n in reached if n not in below]
        for h in outputs:
            self.role[h] = "h"
        for previous, current in zip(steps, steps[1:]):
            made_before = set(previous)
            for n in current:  # what step t takes from step t-1 is the state: h, and c for an LSTM
                for child, _ in n.next_functions:
                    if child in made_before:
                        self.role.setdefault(child, "c")
        if layer > 1:
            stacks = [n for n in below if n.name() == "StackBackward0"]
            lower = _nearest(stacks, self.known)
        else:
            lower = rec.rnn_input.grad_fn
        lower_nodes = set(_reach(lower, self.known))
        projection = [n for n in below if n not in lower_nodes]
        if layer > 1:
            projection.append(lower)  # the stacked outputs of the layer below enter here
        for t, nodes in enumerate(steps, start=1):
            self.put(nodes, Cluster(f"b{b}/l{layer}/t{t}", f"t = {t}", "step", b, layer, t))
        self.put(projection, Cluster(f"b{b}/l{layer}/in", f"layer {layer} input: x·W_ihᵀ + b_ih for all "
                                     f"{len(outputs)} steps at once, then unbind", "layer_input", b, layer))
        return lower, steps[0]


def capture(cfg: RunConfig, *, repackage: bool = True, ntokens: int = 10) -> StepGraph:
    """One forward (two batches, as the loop runs them) and the autograd graph behind the loss."""
    if cfg.model not in RNN_KINDS:
        raise UsageError(f"the BPTT graph is drawn for a recurrent model: choose --model from {', '.join(RNN_KINDS)}")
    cfg.validate()
    import torch

    from lmprof.reference.loop import build_model

    torch.manual_seed(cfg.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that dropout does nothing in a 1-layer RNN; upstream too
        model = build_model(cfg, ntokens, torch.device("cpu"))
    model.train()
    stream = torch.randint(ntokens, (2 * cfg.bptt + 1, cfg.batch_size))
    fused = _two_batches(model, stream, cfg, repackage)
    with unfused():
        step = _two_batches(model, stream, cfg, repackage)
    graph = StepGraph(config={"model": cfg.model, "ntokens": ntokens, "emsize": cfg.emsize, "nhid": cfg.nhid,
                              "nlayers": cfg.nlayers, "bptt": cfg.bptt, "batch_size": cfg.batch_size,
                              "dropout": cfg.dropout, "tied": cfg.tied},
                      repackage=repackage, loss=step.loss.item())
    graph.check = _compare(fused, step)

    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    everything = _reach(step.loss.grad_fn, set())
    params = {n: " = ".join(names[id(n.variable)]) for n in everything if n.name().endswith("AccumulateGrad")}
    sorter = _Sorter(cfg, params)
    drawn = step.batches if not repackage else step.batches[1:]  # batch 2 is the one with the loss
    for b, rec in enumerate(drawn, start=3 - len(drawn)):
        sorter.batch(b, rec, step.loss.grad_fn if b == 2 else None)
    _fill(graph, everything, sorter, step.loss.grad_fn)
    return graph


def _fill(graph: StepGraph, everything: list[GraphFn], sorter: _Sorter, loss_node: GraphFn) -> None:
    """The sorted autograd graph as plain nodes, edges and clusters (in program order)."""
    ids = {n: f"n{i}" for i, n in enumerate(everything)}
    for n in everything:
        if n in sorter.params:
            graph.nodes.append(Node(ids[n], sorter.params[n], "param", "", shape=list(n.variable.shape)))
        else:
            graph.nodes.append(Node(ids[n], n.name(), "loss" if n is loss_node else "op", sorter.group.get(n, ""),
                                    sorter.role.get(n, "")))
    leaf = Node("state_in", "hidden state from the previous batch, detached by repackage_hidden(): the cut"
                if graph.repackage else "init_hidden(): zeros at the start of the epoch", "state_in", "")
    graph.nodes.append(leaf)
    cluster_kind = {c.key: c.kind for c in sorter.clusters}
    for n in everything:
        for child, _ in n.next_functions:
            if child is not None:
                graph.edges.append(Edge(ids[child], ids[n], _edge_kind(child, n, sorter, cluster_kind)))
    first_batch = min(b for b, _ in sorter.first_steps)
    for (b, _layer), nodes in sorter.first_steps.items():
        for n in nodes if b == first_batch else []:
            # An empty input slot in step 1 is where the entering state (no grad) was used.
            if any(child is None for child, _ in n.next_functions):
                graph.edges.append(Edge(leaf.id, ids[n], "detached" if graph.repackage else "state"))
    # Program order: carried state, embedding, then layer by layer (its input, steps 1..T), the head.
    section = {"carry": 0, "embed": 1, "layer_input": 2, "step": 2, "head": 3}
    graph.clusters = sorted(sorter.clusters, key=lambda c: (c.batch, section[c.kind], c.layer or 0, c.step or 0))


def _edge_kind(src: GraphFn, dst: GraphFn, sorter: _Sorter, cluster_kind: dict[str, str]) -> str:
    """"param", "state" (a step's h or c into the next step, or across batches) or "data"."""
    if src in sorter.params:
        return "param"
    src_group, dst_group = sorter.group.get(src, ""), sorter.group.get(dst, "")
    if cluster_kind.get(src_group) == "carry":
        return "state"
    if sorter.role.get(src) and src_group != dst_group and cluster_kind.get(dst_group) in ("step", "carry"):
        return "state"
    return "data"


def _compare(fused: _Step, unrolled: _Step) -> dict[str, Any]:
    """Do the fused kernel and the step-by-step path compute the same thing? Which nodes did fusion hide?"""
    import torch

    def names(step: _Step) -> Counter[str]:
        return Counter(n.name() for n in _reach(step.loss.grad_fn, set()))

    fused_names, unrolled_names = names(fused), names(unrolled)
    pairs = [(fused.output, unrolled.output), *zip(fused.hidden, unrolled.hidden)]
    diff = max((a - b).detach().abs().max().item() for a, b in pairs)
    return {
        "allclose": all(torch.allclose(a, b, atol=1e-5) for a, b in pairs),
        "max_abs_diff": diff,
        # the nodes only the fused path has (name -> count): where the time steps went
        "fused_nodes": {k: v for k, v in sorted(fused_names.items()) if k not in unrolled_names},
    }
