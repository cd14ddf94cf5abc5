"""bptt: back-propagation through time is loss.backward() over the graph unrolled for one window."""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn
from rich.console import RenderableType

from lmprof.lessons import TOPICS
from lmprof.lessons.page import code, number, page, prose, section, table
from lmprof.lessons.repackage_hidden import graph_nodes
from lmprof.instrument.graph import unfused  # noqa: F401  (examples import it from here too)
from lmprof.record.sections import BACKWARD_SECONDS, BWD_SECONDS, FWD_DEVICE_SECONDS
from lmprof.reference.loop import repackage_hidden
from lmprof.reference.model import RNNModel


@contextmanager
def saved_activation_bytes(model: nn.Module) -> Iterator[dict[str, int]]:
    """Bytes autograd saves for backward while the block runs, parameters not counted (they exist anyway)."""
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}
    total = {"bytes": 0}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_storages:
            storages[storage.data_ptr()] = storage.nbytes()
            total["bytes"] = sum(storages.values())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def one_window(model: RNNModel, data: torch.Tensor, targets: torch.Tensor, repeats: int = 5) -> dict[str, Any]:
    """Forward and backward of one bptt window: graph nodes, saved bytes, backward seconds.

    The window runs once to warm up (first calls pay for allocations and kernel choice),
    then ``repeats`` times; backward's time is their median, with the fastest and slowest.
    """
    criterion = nn.NLLLoss()
    times = []
    for i in range(repeats + 1):
        model.zero_grad()
        with saved_activation_bytes(model) as saved:
            output, _ = model(data, model.init_hidden(data.size(1)))
            loss = criterion(output, targets)
        nodes = graph_nodes(loss)
        start = time.perf_counter()
        loss.backward()
        if i:  # the first is the warm-up
            times.append(time.perf_counter() - start)
    return {"graph_nodes": nodes, "saved_bytes": saved["bytes"], BACKWARD_SECONDS: statistics.median(times),
            "backward_min_seconds": min(times), "backward_max_seconds": max(times), "repeats": repeats}


def gradient_reach(model: RNNModel, windows: torch.Tensor, *, detach: bool) -> dict[str, Any]:
    """Gradient of window 2's last-step loss w.r.t. each step's embedding, in windows 1 and 2.

    ``windows`` is (2 * bptt + 1, batch) token ids (the last row: the targets of
    the last step). With ``detach`` the hidden state is repackaged between the
    windows, as the training loop does.
    """
    embeddings: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        out.retain_grad()
        embeddings.append(out)

    handle = model.encoder.register_forward_hook(keep)
    try:
        bptt, batch = (windows.size(0) - 1) // 2, windows.size(1)
        hidden = model.init_hidden(batch)
        _, hidden = model(windows[:bptt], hidden)
        if detach:
            hidden = repackage_hidden(hidden)
        output, _ = model(windows[bptt:2 * bptt], hidden)
        last_step = output[-batch:]  # rows of the window's last time step (output is flattened)
        nn.NLLLoss()(last_step, windows[2 * bptt]).backward()
    finally:
        handle.remove()

    def norms(emb: torch.Tensor) -> list[float] | None:
        return None if emb.grad is None else [float(g.norm()) for g in emb.grad]

    return {"previous_window": norms(embeddings[0]), "this_window": norms(embeddings[1])}


def gradient_flow_curves(bptt: int, size: int, batch_size: int, batches: int, seed: int,
                         draws: int = 3) -> dict[str, Any]:
    """|dLoss_T/dh_t| for a tanh RNN and an LSTM over ``draws`` seeds: the measurement `lmprof gradflow` makes.

    `lmprof gradflow` with FLOW_COMMAND's flags (this config and seed) prints the same figures.
    """
    from lmprof.config import RunConfig
    from lmprof.experiments.gradient_draws import gradient_flow_draws
    from lmprof.views.gradflow import draws_rows

    cfg = RunConfig(bptt=bptt, emsize=size, nhid=size, nlayers=1, batch_size=batch_size, dropout=0.0, seed=seed)
    measured = gradient_flow_draws(cfg, kinds=["RNN_TANH", "LSTM"], batches=batches, draws=draws)
    mean = measured.mean_flow()
    curves = {f"{kind} {state}": layers[0] for kind, states in mean.curves.items() for state, layers in states.items()}
    figures = {f"{f['kind']} {f['state']}": f for f in measured.figures()}
    return {"bptt": bptt, "batches": mean.batches, "curves": curves, "seeds": measured.seeds,
            "steps_to_1pct": {key: f["steps_to_1pct"] for key, f in figures.items()},
            "decay": {key: f["decay"] for key, f in figures.items()},
            "rows": draws_rows(measured),
            "command": FLOW_COMMAND.format(bptt=bptt, size=size, batch_size=batch_size, batches=batches,
                                           seed=seed, draws=draws)}


FLOW_COMMAND = ("lmprof gradflow --models RNN_TANH LSTM --bptt {bptt} --emsize {size} --nhid {size} --nlayers 1 "
                "--batch_size {batch_size} --dropout 0 --batches {batches} --seed {seed} --draws {draws}")


def rnn_line_backward(model: RNNModel, stream: torch.Tensor, bptt: int) -> dict[str, Any]:
    """Each line of forward, forward and in backward, as `lmprof profile --fn forward --backward-lines` measures
    a training step (operator times; backward by autograd sequence number)."""
    from lmprof.instrument.backward_lines import watch_steps

    data, targets, hidden = stream[:bptt], stream[1:bptt + 1].reshape(-1), model.init_hidden(stream.size(1))
    section = watch_steps(RNNModel.forward, lambda: model(data, hidden)[0], lambda out: nn.NLLLoss()(out, targets))
    return {"bptt": bptt, "lines": [{k: r[k] for k in ("source", FWD_DEVICE_SECONDS, BWD_SECONDS, "nodes")}
                                    for r in section["lines"]]}


def _rnn_line_parts(measured: dict[str, Any] | None) -> list[RenderableType]:
    if not measured:
        return []
    rows = measured["lines"]
    rnn = next(r for r in rows if "self.rnn(" in r["source"])
    ms = lambda s: f"{s * 1000:.2f}"  # noqa: E731
    return [
        table(f"each line of forward with its backward, one step at bptt {measured['bptt']} (the fused LSTM)",
              ["line", "forward ms", "backward ms"], [(r["source"].strip(), ms(r[FWD_DEVICE_SECONDS]),
                                                       ms(r[BWD_SECONDS])) for r in rows],
              right=["forward ms", "backward ms"], caption="operator time per step, the mean of 3 watched steps"),
        prose(f"""
            Measured now, the `self.rnn(...)` line took {ms(rnn[FWD_DEVICE_SECONDS])} ms forward and
            {ms(rnn[BWD_SECONDS])} ms in backward: its backward is {', '.join(rnn['nodes']) or 'one node'},
            the whole window's BPTT inside one fused operator per layer, so no profiler can split it by
            time step. In a training run: `lmprof profile --fn forward --backward-lines`.
        """),
    ]


def demo(bptts: Sequence[int] = (5, 10, 20, 35), batch_size: int = 4, size: int = 32, nlayers: int = 1,
         ntokens: int = 100, reach_bptt: int = 8, seed: int = 0, flow_bptt: int = 20,
         flow_batches: int = 5, flow_draws: int = 3) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = RNNModel("LSTM", ntokens, size, size, nlayers, dropout=0.0)
    stream = torch.randint(ntokens, (max(max(bptts), 2 * reach_bptt) + 1, batch_size))
    fused_out, _ = model(stream[:-1], model.init_hidden(batch_size))
    windows = []
    with unfused():
        unrolled_out, _ = model(stream[:-1], model.init_hidden(batch_size))
        for bptt in bptts:
            windows.append({"bptt": bptt, **one_window(model, stream[:bptt], stream[1:bptt + 1].reshape(-1))})
        reach = gradient_reach(model, stream[:2 * reach_bptt + 1], detach=True)
        reach_no_detach = gradient_reach(model, stream[:2 * reach_bptt + 1], detach=False)
    return {
        "config": {"model": "LSTM", "ntokens": ntokens, "emsize": size, "nhid": size, "nlayers": nlayers,
                   "batch_size": batch_size},
        "windows": windows,
        "fused_equals_unrolled": bool(torch.allclose(fused_out, unrolled_out, atol=1e-5)),
        "reach_bptt": reach_bptt,
        "reach_with_repackage": reach,
        "reach_without_repackage": reach_no_detach,
        "flow": gradient_flow_curves(flow_bptt, size, batch_size, flow_batches, seed, flow_draws),
        "rnn_line": rnn_line_backward(model, stream, max(bptts)),  # last: its steps leave gradients behind
    }


def _time_reading(windows: list[dict[str, Any]]) -> str:
    """What the measured backward times show, said from the numbers, not assumed."""
    time_ratio = windows[-1][BACKWARD_SECONDS] / windows[0][BACKWARD_SECONDS]
    step_ratio = windows[-1]["bptt"] / windows[0]["bptt"]
    if time_ratio < 0.8 * step_ratio:
        return ": less than in proportion, as each backward also pays a fixed cost per call"
    if time_ratio > 1.25 * step_ratio:
        return ": more than in proportion (caches, or a busy machine: rerun to see)"
    return ": about in proportion"


def _reach_said(steps: list[int | None], bptt: int) -> str:
    """'after 8 steps back in every draw' / 'after 7 to 9 steps back' / 'not within the window's 19 steps back'."""
    known = sorted(s for s in steps if s is not None)
    if not known:
        return f"not within the window's {bptt - 1} steps back, in any draw"
    tail = f" (in {len(steps) - len(known)} draw(s) not within the window)" if len(known) < len(steps) else ""
    if known[0] == known[-1]:
        return f"after {known[0]} steps back in {'every draw' if not tail else 'the others'}{tail}"
    return f"after {known[0]} to {known[-1]} steps back{tail}"


def _ranking(a: list[int | None], b: list[int | None], names: tuple[str, str]) -> str:
    """Only what the draws show: one reaches further in every draw, or they overlap."""
    far = [float("inf") if s is None else s for s in a], [float("inf") if s is None else s for s in b]
    if min(far[0]) > max(far[1]):
        return f"in every draw the {names[0]} kept 1% further back than the {names[1]}"
    if min(far[1]) > max(far[0]):
        return f"in every draw the {names[1]} kept 1% further back than the {names[0]}"
    return "the draws overlap: at initialisation this measurement does not separate the two"


def _flow_parts(flow: dict[str, Any]) -> list[RenderableType]:
    """The measured curves, over several seeds: how many steps back the gradient keeps 1% of the last step's."""
    T, curves = flow["bptt"], flow["curves"]
    backs = sorted({b for b in (0, 1, 2, 5, 10, 15, T - 1) if b < T})
    rows = [(str(b), *(number(curves[k][T - 1 - b] / curves[k][-1], 3) for k in curves)) for b in backs]
    reach = flow["steps_to_1pct"]
    seeds = flow.get("seeds") or [0]
    which = f"seeds {seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    summary = [(r["kind"], r["state"], r["decay"], r["steps"]) for r in flow.get("rows", [])]
    return [
        section(f"Live: how much gradient reaches back (bptt {T})"),
        table(f"|dLoss_T/d state_t| ÷ its value at t = T (h: hidden, c: LSTM cell state), one layer, "
              f"mean of {flow['batches']} batches of the embedded corpus and {len(seeds)} draws ({which})",
              ["steps back", *curves], rows, right=["steps back", *curves]),
        *([table(f"median (range) over the {len(seeds)} draws: `lmprof gradflow` prints the same",
                 ["model", "gradient", "decay per step", "steps to 1%"], summary,
                 right=["decay per step", "steps to 1%"])] if summary else []),
        prose(f"""
            The loss at the window's last step sends its gradient back through h_t, one step at a
            time; each step multiplies it by the cell's Jacobian. Measured now, at initialisation,
            over {len(seeds)} draws ({which}): the tanh RNN's gradient fell below 1% of the last
            step's {_reach_said(reach['RNN_TANH h'], T)}; the LSTM cell state's
            {_reach_said(reach['LSTM c'], T)}; the LSTM hidden state's
            {_reach_said(reach['LSTM h'], T)}. Of the tanh RNN and the LSTM cell state,
            {_ranking(reach['RNN_TANH h'], reach['LSTM c'], ('tanh RNN', 'LSTM cell state'))}.
            A tanh RNN multiplies by W_hh·(1 − h²) at every step; an LSTM's cell state passes back
            through its forget gate, about sigmoid(0) = 0.5 at initialisation. Whether training
            opens the gate is a measurement of a trained run: `lmprof gradflow --from RUN`. The
            same figures, with every layer and state: `{flow.get('command', 'lmprof gradflow')}`.
        """),
    ]


def render(numbers: dict[str, Any]) -> RenderableType:
    c, w = numbers["config"], numbers["windows"]
    r, r_no = numbers["reach_with_repackage"], numbers["reach_without_repackage"]
    T = numbers["reach_bptt"]
    reach_rows = [(f"t = {t + 1}", number(g, 3)) for t, g in enumerate(r["this_window"])]
    prev = r_no["previous_window"] or []
    return page(
        "bptt", TOPICS["bptt"],
        section("Where it happens"),
        code("""
            output, hidden = model(data, hidden)   # forward: the cell applied bptt times
            loss = criterion(output, targets)      # one number for the whole window
            loss.backward()                        # <- back-propagation through time
        """),
        prose("""
            There is no separate BPTT routine. The forward pass applies the same cell (the same
            `weight_ih`, `weight_hh`) once per time step, and autograd records every application:
            the network **unrolled** over the `bptt` steps of the window. `loss.backward()` walks
            that unrolled graph from the last step back to the first, and the gradient of each
            shared weight is the **sum** of its gradients at every step. The window is cut at its
            start by `repackage_hidden`, so backward stops there.
        """),
        section("Live: the window bounds the graph and the memory"),
        table(f"one forward + backward, {c['model']} {c['nlayers']} layer, nhid {c['nhid']}, batch {c['batch_size']}",
              ["bptt", "graph nodes", "saved for backward", "backward ms", "fastest – slowest"],
              [(str(x["bptt"]), f"{x['graph_nodes']:,}", f"{x['saved_bytes'] / 1024:,.1f} KiB",
                f"{x[BACKWARD_SECONDS] * 1000:.2f}",
                f"{x['backward_min_seconds'] * 1000:.2f} – {x['backward_max_seconds'] * 1000:.2f}") for x in w],
              right=["bptt", "graph nodes", "saved for backward", "backward ms", "fastest – slowest"],
              caption=f"backward ms: median of {w[0]['repeats']} runs after a warm-up"),
        prose(f"""
            Nodes and saved activations grow in proportion to `bptt`: every step keeps its gates
            and states until backward has used them. Memory is what limits the window (and the
            batch). Measured now, backward took {w[0][BACKWARD_SECONDS] * 1000:.2f} ms at bptt
            {w[0]['bptt']} and {w[-1][BACKWARD_SECONDS] * 1000:.2f} ms at bptt {w[-1]['bptt']}
            ({w[-1][BACKWARD_SECONDS] / w[0][BACKWARD_SECONDS]:.1f}× the time for
            {w[-1]['bptt'] / w[0]['bptt']:.1f}× the steps{_time_reading(w)}). Counted on the step-by-step path; the fused oneDNN/cuDNN kernel that training
            uses computes the same outputs (checked now: {numbers['fused_equals_unrolled']}) but
            shows up as one node per layer. On a GPU, check it in float32: from Ampere on, cuDNN
            multiplies in TF32 by default (a 10-bit mantissa), so fused and unrolled outputs differ
            by about 1e-4 (6.5e-5 on an H200) until `torch.backends.cudnn.allow_tf32 = False`.
        """),
        *_rnn_line_parts(numbers.get("rnn_line")),
        section(f"Live: the gradient horizon (bptt {T})"),
        table("d loss(T) / d input(t)", ["step", "gradient norm"], reach_rows,
              right=["gradient norm"]),
        prose(f"""
            The loss at step {T} depends on all {T} inputs of its window, mostly the nearest. It
            gets **no** gradient from the window before: with `repackage_hidden` the previous
            window's embeddings received {'no gradient at all' if r['previous_window'] is None
            else 'a gradient'}. Without the detach the gradient reaches back
            (norm {number(prev[-1], 3) if prev else 'none'} at the previous window's last step),
            and so on to the start of the data. So `bptt` is also the longest dependency the model
            is trained to use. Draw the unrolled graph: `lmprof diagram bptt --bptt 4`.
        """),
        *(_flow_parts(numbers["flow"]) if "flow" in numbers else []),
    )
