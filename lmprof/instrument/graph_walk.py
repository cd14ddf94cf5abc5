"""Walking a step's autograd graph and sorting its nodes into clusters: time step, layer, head.

``reach`` lists what a node leads to; ``ClusterSorter`` puts every node of
one forward's graph (recorded with ``rnn_calls``) into one cluster: the
state carried from the previous batch, each layer's steps t = 1..T top layer
down, the layer's input projection, the embedding and the decoder head, and
marks the nodes that hand a step's state (h, and c for an LSTM) to the next.
``lmprof.instrument.graph`` turns the result into the BPTT diagram's data;
``lmprof.experiments.gradient_flow`` hooks the state nodes to measure dLoss/dh_t.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from lmprof.config import RunConfig

if TYPE_CHECKING:
    import torch

GraphFn = Any  # a torch.autograd graph node (grad_fn); its Python type is internal to torch


@dataclass
class Cluster:
    key: str
    label: str
    kind: str  # "step", "layer_input", "embed", "head", "carry"
    batch: int  # 1: the previous batch (drawn with --no-repackage only), 2: this batch
    layer: int | None = None  # 1-based
    step: int | None = None  # 1-based time step t


@dataclass
class RnnCall:
    """What the rnn module saw and made in one forward (from a forward hook)."""

    rnn_input: "torch.Tensor"
    hidden_in: tuple["torch.Tensor", ...]
    rnn_output: "torch.Tensor"
    hidden_out: tuple["torch.Tensor", ...]


def as_tuple(hidden: Any) -> tuple["torch.Tensor", ...]:
    return tuple(hidden) if isinstance(hidden, (tuple, list)) else (hidden,)


@contextmanager
def rnn_calls(model: Any) -> Iterator[list[RnnCall]]:
    """What ``model.rnn`` saw and made in each forward run inside the block, in order."""
    seen: list[RnnCall] = []

    def keep(_module: Any, args: tuple[Any, ...], out: tuple[Any, Any]) -> None:
        seen.append(RnnCall(args[0], as_tuple(args[1]), out[0], as_tuple(out[1])))

    handle = model.rnn.register_forward_hook(keep)
    try:
        yield seen
    finally:
        handle.remove()


def reach(start: GraphFn | None, stop: set[GraphFn]) -> list[GraphFn]:
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


def nearest(candidates: list[GraphFn], stop: set[GraphFn]) -> GraphFn:
    """The one candidate that no other candidate leads to (the closest to where the walk began)."""
    below: set[GraphFn] = set()
    for c in candidates:
        below.update(reach(c, stop)[1:])
    top = [c for c in candidates if c not in below]
    if len(top) != 1:
        raise RuntimeError("unexpected autograd graph: cannot tell the RNN's layers apart")
    return top[0]


class ClusterSorter:
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

    def batch(self, b: int, rec: RnnCall, loss_fn: GraphFn | None) -> None:
        """Cluster one batch: carried state, layers top down, embedding, and (batch 2) the head."""
        carried = [h.grad_fn for h in rec.hidden_in if h.grad_fn is not None]
        if carried:  # no repackage_hidden: the previous batch's state, split into layers
            carry = set(carried) | {n for n in reach(rec.rnn_output.grad_fn, self.known)
                                    if any(c in carried for c, _ in n.next_functions)}
            self.put(carry, Cluster(f"b{b}/carry", "state from the previous batch, not detached: "
                                    "the graph goes on", "carry", b))
        top = rec.rnn_output.grad_fn
        for layer in range(self.cfg.nlayers, 0, -1):
            top, self.first_steps[(b, layer)] = self._layer(b, layer, top, rec)
        self.put(reach(rec.rnn_input.grad_fn, self.known),
                 Cluster(f"b{b}/embed", "encoder (Embedding) -> dropout", "embed", b))
        if loss_fn is not None:
            self.put(reach(loss_fn, self.known), Cluster(
                f"b{b}/head", "dropout -> decoder (Linear) -> log_softmax -> NLLLoss", "head", b))
        for kind, state in zip("hc", rec.hidden_out):  # the last step's state leaves through hidden_out
            for layer_last, _ in state.grad_fn.next_functions:
                self.role.setdefault(layer_last, kind)

    def _layer(self, b: int, layer: int, stack: GraphFn, rec: RnnCall) -> tuple[GraphFn, list[GraphFn]]:
        """Cluster one layer from the node stacking its outputs; return the layer below's stack."""
        if stack is None or stack.name() != "StackBackward0":
            raise RuntimeError("unexpected autograd graph: the RNN was not unrolled into time steps")
        outputs = [h for h, _ in stack.next_functions]  # h_1 .. h_T of this layer
        reached = reach(outputs[0], self.known)  # step 1, and everything below it
        steps: list[list[GraphFn]] = [[]]
        seen = set(reached)
        for h in outputs[1:]:
            new = reach(h, self.known | seen)  # exactly what step t added
            steps.append(new)
            seen.update(new)
        unbinds = [n for n in reached if n.name() == "UnbindBackward0"]
        feed = nearest(unbinds, self.known)  # the layer's input, sliced into time steps
        below = set(reach(feed, self.known))
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
            lower = nearest(stacks, self.known)
        else:
            lower = rec.rnn_input.grad_fn
        lower_nodes = set(reach(lower, self.known))
        projection = [n for n in below if n not in lower_nodes]
        if layer > 1:
            projection.append(lower)  # the stacked outputs of the layer below enter here
        for t, nodes in enumerate(steps, start=1):
            self.put(nodes, Cluster(f"b{b}/l{layer}/t{t}", f"t = {t}", "step", b, layer, t))
        self.put(projection, Cluster(f"b{b}/l{layer}/in", f"layer {layer} input: x·W_ihᵀ + b_ih for all "
                                     f"{len(outputs)} steps at once, then unbind", "layer_input", b, layer))
        return lower, steps[0]
