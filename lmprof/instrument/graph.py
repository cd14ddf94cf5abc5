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
from lmprof.instrument.graph_walk import Cluster, ClusterSorter, GraphFn, RnnCall, as_tuple, reach, rnn_calls

if TYPE_CHECKING:
    import torch

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
class _Step:
    batches: list[RnnCall]
    output: "torch.Tensor"  # log-probabilities of the drawn batch
    hidden: tuple["torch.Tensor", ...]
    loss: "torch.Tensor"


def _two_batches(model: Any, stream: "torch.Tensor", cfg: RunConfig, repackage: bool) -> _Step:
    """Batch 1 then batch 2 of the training loop (get_batch, repackage_hidden, forward, loss)."""
    import torch
    import torch.nn as nn

    from lmprof.reference.loop import get_batch, repackage_hidden

    with rnn_calls(model) as seen:
        torch.manual_seed(cfg.seed + 1)  # the same dropout masks on the fused and the unrolled path
        hidden = model.init_hidden(cfg.batch_size)
        data, _ = get_batch(stream, 0, cfg.bptt)
        _, hidden = model(data, hidden)
        if repackage:
            hidden = repackage_hidden(hidden)
        data, targets = get_batch(stream, cfg.bptt, cfg.bptt)
        output, hidden = model(data, hidden)
        loss = nn.NLLLoss()(output, targets)
    return _Step(seen, output, as_tuple(hidden), loss)


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
    everything = reach(step.loss.grad_fn, set())
    params = {n: " = ".join(names[id(n.variable)]) for n in everything if n.name().endswith("AccumulateGrad")}
    sorter = ClusterSorter(cfg, params)
    drawn = step.batches if not repackage else step.batches[1:]  # batch 2 is the one with the loss
    for b, rec in enumerate(drawn, start=3 - len(drawn)):
        sorter.batch(b, rec, step.loss.grad_fn if b == 2 else None)
    _fill(graph, everything, sorter, step.loss.grad_fn)
    return graph


def _fill(graph: StepGraph, everything: list[GraphFn], sorter: ClusterSorter, loss_node: GraphFn) -> None:
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


def _edge_kind(src: GraphFn, dst: GraphFn, sorter: ClusterSorter, cluster_kind: dict[str, str]) -> str:
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
        return Counter(n.name() for n in reach(step.loss.grad_fn, set()))

    fused_names, unrolled_names = names(fused), names(unrolled)
    pairs = [(fused.output, unrolled.output), *zip(fused.hidden, unrolled.hidden)]
    diff = max((a - b).detach().abs().max().item() for a, b in pairs)
    return {
        "allclose": all(torch.allclose(a, b, atol=1e-5) for a, b in pairs),
        "max_abs_diff": diff,
        # the nodes only the fused path has (name -> count): where the time steps went
        "fused_nodes": {k: v for k, v in sorted(fused_names.items()) if k not in unrolled_names},
    }
