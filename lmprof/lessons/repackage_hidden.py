"""repackage_hidden: detach the hidden state between batches, or the graph grows without end."""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn as nn
from rich.console import RenderableType

from lmprof.lessons import TOPICS
from lmprof.lessons.page import code, page, prose, section, source, table
from lmprof.instrument.memory import MemoryRecorder
from lmprof.phases import listening, phase
from lmprof.reference.loop import batchify, get_batch, repackage_hidden
from lmprof.reference.model import RNNModel
from lmprof.views.format import size


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
                detach: bool, retain_graph: bool = False, lr: float = 0.1,
                count: bool = True) -> list[dict[str, float]]:
    """``steps`` training steps as the reference loop takes them, with or without repackaging.

    Returns per step the seconds it took and, with ``count``, the nodes of the graph behind the
    loss and the bytes autograd holds for backward (the memory instrument's count, live: a graph
    kept alive by the next batch still counts). Counting costs time, so timed runs leave it off.
    """
    criterion = nn.NLLLoss()
    hidden = model.init_hidden(source_matrix.size(1))
    recorder = MemoryRecorder() if count else None
    records = []
    if recorder is not None:
        recorder.install()
    try:
        with listening(recorder) if recorder is not None else nullcontext():
            for step, i in enumerate(range(0, steps * bptt, bptt)):
                start = time.perf_counter()
                data, targets = get_batch(source_matrix, i, bptt)
                model.zero_grad()
                if detach:
                    hidden = repackage_hidden(hidden)
                with phase("forward"):
                    output, hidden = model(data, hidden)
                with phase("loss"):
                    loss = criterion(output, targets)
                record: dict[str, float] = {"step": step + 1}
                if recorder is not None:
                    record.update(graph_nodes=graph_nodes(loss), saved_bytes=recorder.batch_saved[-1])
                loss.backward(retain_graph=retain_graph)
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-lr)  # type: ignore[arg-type]
                record["seconds"] = time.perf_counter() - start
                records.append(record)
    finally:
        if recorder is not None:
            recorder.uninstall()
            recorder.proc.close()
    return records


def timed(runs: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per step, the median of several runs' seconds and their spread (min, max)."""
    per_step = list(zip(*[[r["seconds"] for r in run] for run in runs]))
    return [{"step": n + 1, "seconds": statistics.median(s), "min_seconds": min(s), "max_seconds": max(s)}
            for n, s in enumerate(per_step)]


def demo(steps: int = 8, bptt: int = 10, batch_size: int = 8, ntokens: int = 200, size: int = 32,
         nlayers: int = 2, seed: int = 0, repeats: int = 5) -> dict[str, Any]:
    """Train ``steps`` steps of a small LSTM with and without detaching: graph, saved bytes, time; then the error.

    Times are the median of ``repeats`` runs of each (alternating which goes first), after a warm-up
    run of each, so one slow first call or a busy moment of the machine does not make a trend.
    """
    torch.manual_seed(seed)
    stream = torch.randint(ntokens, ((steps * bptt + 1) * batch_size,))
    source_matrix = batchify(stream, batch_size)

    def fresh_model() -> RNNModel:
        torch.manual_seed(seed)
        return RNNModel("LSTM", ntokens, size, size, nlayers, dropout=0.0)

    def run(detach: bool, count: bool = False) -> list[dict[str, float]]:
        # Without detaching, backward must keep each graph alive (retain_graph) or the next step fails.
        return train_steps(fresh_model(), source_matrix, bptt, steps, detach=detach, retain_graph=not detach,
                           count=count)

    run(True), run(False)  # warm-up: first calls allocate and start the thread pool
    counted = {True: run(True, count=True), False: run(False, count=True)}
    runs: dict[bool, list[list[dict[str, float]]]] = {True: [], False: []}
    for r in range(repeats):
        for detach in ((True, False) if r % 2 == 0 else (False, True)):
            runs[detach].append(run(detach))
    try:
        train_steps(fresh_model(), source_matrix, bptt, 2, detach=False, retain_graph=False, count=False)
        error = None
    except RuntimeError as e:
        error = str(e).splitlines()[0]
    model = fresh_model()
    h = model(source_matrix[:bptt], model.init_hidden(batch_size))[1]

    def merged(detach: bool) -> list[dict[str, float]]:
        return [{**c, **t} for c, t in zip(counted[detach], timed(runs[detach]))]

    return {
        "config": {"model": "LSTM", "ntokens": ntokens, "emsize": size, "nhid": size, "nlayers": nlayers,
                   "bptt": bptt, "batch_size": batch_size, "steps": steps, "repeats": repeats,
                   "threads": torch.get_num_threads()},
        "with_repackage": merged(True),
        "without_repackage": merged(False),
        "hidden_grad_fn_before": _node_name(h[0].grad_fn),
        "hidden_grad_fn_after": _node_name(repackage_hidden(h)[0].grad_fn),
        "error_without_retain_graph": error,
    }


def _node_name(node: Any) -> str:
    return "None" if node is None else type(node).__name__


def _ms(record: dict[str, float]) -> str:
    """Median ms and the spread of the repeats: '1.23 (1.10-1.40)'."""
    return f"{record['seconds'] * 1e3:.2f} ({record['min_seconds'] * 1e3:.2f}-{record['max_seconds'] * 1e3:.2f})"


def time_statement(w: list[dict[str, float]], wo: list[dict[str, float]]) -> str:
    """What the timings show, read from them (a busy machine can make them say little)."""
    steady = [r["seconds"] for r in w]
    spread = max(steady) / min(steady)
    first, last = wo[0]["seconds"], wo[-1]["seconds"]
    grown = last / first
    with_text = (f"With the detach, the median step time stays between {min(steady) * 1e3:.2f} and "
                 f"{max(steady) * 1e3:.2f} ms ({spread:.2f}x from the fastest to the slowest step)")
    if grown >= 1.5:
        return (f"{with_text}. Without it, step {len(wo)} takes {grown:.1f}x as long as step 1 "
                f"({last * 1e3:.2f} vs {first * 1e3:.2f} ms): backward walks every batch's graph.")
    return (f"{with_text}. Without it, step {len(wo)} takes {grown:.2f}x step 1 here: at this small size "
            f"a step's fixed costs hide most of the longer walk, so here the bytes and nodes above show the "
            f"growth better than the clock.")


def render(numbers: dict[str, Any]) -> RenderableType:
    c = numbers["config"]
    w, wo = numbers["with_repackage"], numbers["without_repackage"]
    rows = [(str(a["step"]), f"{a['graph_nodes']:,}", size(a["saved_bytes"]), _ms(a),
             f"{b['graph_nodes']:,}", size(b["saved_bytes"]), _ms(b)) for a, b in zip(w, wo)]
    columns = ["step", "nodes", "saved", "ms (spread)", "nodes ", "saved ", "ms (spread) "]
    flat = len({r["saved_bytes"] for r in w}) == 1
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
        section("Live: the graph and the bytes behind each loss"),
        table(f"{c['model']}, {c['nlayers']} layers, nhid {c['nhid']}, bptt {c['bptt']}, batch {c['batch_size']}"
              f" · with repackage_hidden (left), without (right) · ms: median of {c['repeats']} runs after a "
              f"warm-up, {c['threads']} thread(s)", columns, rows, right=columns),
        prose(f"""
            *nodes*: autograd nodes reachable from the loss, what `loss.backward()` walks.
            *saved*: the bytes autograd holds for backward when it starts (counted as
            `lmprof profile --memory` counts them). With `repackage_hidden` every step's graph has
            {w[-1]['graph_nodes']:,} nodes and the saved bytes are
            {f"the same {size(w[-1]['saved_bytes'])} at every step" if flat else
             f"between {size(min(r['saved_bytes'] for r in w))} and {size(max(r['saved_bytes'] for r in w))}"}.
            Without it, step *k* drags the graphs of all *k* batches behind it:
            {wo[0]['graph_nodes']:,} nodes and {size(wo[0]['saved_bytes'])} at step 1,
            {wo[-1]['graph_nodes']:,} nodes and {size(wo[-1]['saved_bytes'])} at step {len(wo)}
            ({wo[-1]['saved_bytes'] / wo[0]['saved_bytes']:.1f}x): every batch's intermediate tensors
            stay in memory, and over a real epoch (thousands of batches) memory runs out.
            {time_statement(w, wo)} Gradients would also flow back to the start of the data, a
            horizon nobody asked for.
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
