"""repackage_hidden: detach the hidden state between batches, or the graph grows without end."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn as nn
from rich.console import RenderableType

from lmprof.explain import TOPICS
from lmprof.explain.page import code, page, prose, section, source, table
from lmprof.reference.loop import batchify, get_batch, repackage_hidden
from lmprof.reference.model import RNNModel


def graph_nodes(tensor: torch.Tensor) -> int:
    """Autograd nodes reachable from ``tensor``: what one backward() call would walk."""
    seen: set[Any] = set()
    stack = [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(child for child, _ in node.next_functions)
    return len(seen)


def train_steps(model: RNNModel, source_matrix: torch.Tensor, bptt: int, steps: int, *,
                detach: bool, retain_graph: bool = False, lr: float = 0.1) -> list[dict[str, float]]:
    """``steps`` training steps as the reference loop takes them, with or without repackaging.

    Returns per step: nodes of the graph behind the loss, and seconds for the step.
    """
    criterion = nn.NLLLoss()
    hidden = model.init_hidden(source_matrix.size(1))
    records = []
    for step, i in enumerate(range(0, steps * bptt, bptt)):
        start = time.perf_counter()
        data, targets = get_batch(source_matrix, i, bptt)
        model.zero_grad()
        if detach:
            hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        nodes = graph_nodes(loss)
        loss.backward(retain_graph=retain_graph)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)  # type: ignore[arg-type]
        records.append({"step": step + 1, "graph_nodes": nodes, "seconds": time.perf_counter() - start})
    return records


def demo(steps: int = 8, bptt: int = 10, batch_size: int = 8, ntokens: int = 200, size: int = 32,
         nlayers: int = 2, seed: int = 0) -> dict[str, Any]:
    """Train ``steps`` steps of a small LSTM twice (with and without detaching), then the error."""
    torch.manual_seed(seed)
    stream = torch.randint(ntokens, ((steps * bptt + 1) * batch_size,))
    source_matrix = batchify(stream, batch_size)

    def fresh_model() -> RNNModel:
        torch.manual_seed(seed)
        return RNNModel("LSTM", ntokens, size, size, nlayers, dropout=0.0)

    train_steps(fresh_model(), source_matrix, bptt, 1, detach=True)  # warm-up: first calls allocate
    with_detach = train_steps(fresh_model(), source_matrix, bptt, steps, detach=True)
    # Without detaching, backward must keep each graph alive (retain_graph) or the next step fails.
    without = train_steps(fresh_model(), source_matrix, bptt, steps, detach=False, retain_graph=True)
    try:
        train_steps(fresh_model(), source_matrix, bptt, 2, detach=False, retain_graph=False)
        error = None
    except RuntimeError as e:
        error = str(e).splitlines()[0]
    model = fresh_model()
    h = model(source_matrix[:bptt], model.init_hidden(batch_size))[1]
    return {
        "config": {"model": "LSTM", "ntokens": ntokens, "emsize": size, "nhid": size, "nlayers": nlayers,
                   "bptt": bptt, "batch_size": batch_size, "steps": steps},
        "with_repackage": with_detach,
        "without_repackage": without,
        "hidden_grad_fn_before": _node_name(h[0].grad_fn),
        "hidden_grad_fn_after": _node_name(repackage_hidden(h)[0].grad_fn),
        "error_without_retain_graph": error,
    }


def _node_name(node: Any) -> str:
    return "None" if node is None else type(node).__name__


def render(numbers: dict[str, Any]) -> RenderableType:
    c = numbers["config"]
    w, wo = numbers["with_repackage"], numbers["without_repackage"]
    rows = [(str(a["step"]), f"{a['graph_nodes']:,}", f"{a['seconds'] * 1000:.1f}",
             f"{b['graph_nodes']:,}", f"{b['seconds'] * 1000:.1f}") for a, b in zip(w, wo)]
    return page(
        "repackage_hidden", TOPICS["repackage_hidden"],
        section("The code"),
        source(repackage_hidden),
        prose(f"""
            The hidden state that leaves one batch enters the next: the text in each column
            continues, so the memory should too. But that tensor also remembers **how** it was
            computed (its `grad_fn`, here `{numbers['hidden_grad_fn_before']}`), and through it
            every operation of every batch before. `h.detach()` keeps the values and drops the
            history (`grad_fn` becomes `{numbers['hidden_grad_fn_after']}`).
        """),
        section("Live: the graph behind each loss"),
        table(f"{c['model']}, {c['nlayers']} layers, nhid {c['nhid']}, bptt {c['bptt']}, batch {c['batch_size']}",
              ["step", "nodes (detach)", "ms (detach)", "nodes (no detach)", "ms (no detach)"], rows,
              right=["step", "nodes (detach)", "ms (detach)", "nodes (no detach)", "ms (no detach)"]),
        prose(f"""
            *nodes*: autograd nodes reachable from the loss, what `loss.backward()` walks.
            With `repackage_hidden` every step's graph has the same {w[-1]['graph_nodes']:,} nodes,
            so every step costs the same. Without it, step *k* drags the graphs of all *k*
            batches behind it: {wo[0]['graph_nodes']:,} nodes, then {wo[1]['graph_nodes']:,},
            ..., {wo[-1]['graph_nodes']:,} after {len(wo)} steps. Backward walks all of them,
            so step time grows with the epoch, and every intermediate tensor stays in memory:
            over a real epoch (thousands of batches) memory runs out. Gradients would also flow
            back to the start of the data, a horizon nobody asked for.
        """),
        section("The error PyTorch raises"),
        prose("""
            The run without detaching above only worked because it called
            `loss.backward(retain_graph=True)`. The reference loop calls plain
            `loss.backward()`, which frees each graph's saved tensors once used. Leave out the
            detach and the second batch's backward reaches into the first batch's freed graph:
        """),
        code(f"# RuntimeError: {numbers['error_without_retain_graph']}"),
        prose("""
            `retain_graph=True` is the wrong fix: it silences the error and keeps the whole
            history alive (the growing column above). The right fix is to cut the history
            where the batch starts: `hidden = repackage_hidden(hidden)`. To see the cut drawn:
            `lmprof diagram bptt` (and `--no-repackage` for the graph reaching back).
        """),
    )
