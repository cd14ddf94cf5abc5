"""Gradient flow through time: per-step dLoss_T/dh_t on the unrolled model (an experiment, not an instrument).

``gradient_flow`` runs the unrolled model of ``lmprof.instrument.graph``
(the RNN step by step, outputs equal to the fused kernel's) on real batches
and records, for every layer and time step t, the norm of dLoss_T/dh_t (and
dLoss_T/dc_t for an LSTM), where Loss_T is the loss at the last step of the
batch: how much of the last prediction's error reaches t steps back. It
builds its own models (``lmprof.prepare``: the run's seed, the reference's
build) and never trains them; ``gradient_draws`` repeats it over seeds.
The training-time view of the gradient (the pre-clip norm) is an
instrument: ``lmprof.instrument.gradients.GradStatsInstrument``.

    >>> flow = gradient_flow(RunConfig(bptt=12, emsize=32, nhid=32), kinds=["RNN_TANH", "LSTM"])  # doctest: +SKIP
    >>> flow.curves["RNN_TANH"]["h"][0][:3]  # doctest: +SKIP
    [1.2e-05, 8.1e-05, 0.00041]
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from lmprof.config import RNN_KINDS, RunConfig
from lmprof.errors import UsageError
from lmprof.prepare import Prepared, prepare

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

FLOW_BATCHES = 20  # lmprof gradflow --batches default


@dataclass
class StepGradients:
    """One batch: dLoss_T/d(state) per state ("h", "c"), per layer, as a [T, batch, nhid] tensor."""

    grads: dict[str, list["torch.Tensor"]]
    states: dict[str, list["torch.Tensor"]]  # the states themselves (same shapes), for checks
    loss: "torch.Tensor"


@dataclass
class GradientFlow:
    """Per model kind, per state, per layer: the mean norm at t = 1..bptt over the batches."""

    config: dict[str, Any]
    batches: int
    curves: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "batches": self.batches, "loss": "NLL of the last time step's predictions",
                "models": {kind: {**states, "decay": {s: [decay_factor(n) for n in layers]
                                                      for s, layers in states.items()}}
                           for kind, states in self.curves.items()}}


def decay_factor(norms: Sequence[float]) -> float:
    """Mean factor per step back: (|g_1| / |g_T|) ** (1 / (T - 1)); below 1 the gradient vanishes."""
    if len(norms) < 2 or norms[-1] <= 0 or norms[0] <= 0:
        return math.nan
    return (norms[0] / norms[-1]) ** (1.0 / (len(norms) - 1))


def steps_until(norms: Sequence[float], share: float = 0.01) -> int | None:
    """Steps back from the last until the norm first falls below ``share`` of the last step's; None: never."""
    last = norms[-1]
    for back, value in enumerate(reversed(norms)):
        if value < share * last:
            return back
    return None


def step_gradients(model: Any, data: "torch.Tensor", targets: "torch.Tensor", hidden: Any,
                   cfg: RunConfig) -> tuple[StepGradients, Any]:
    """Forward and backward of one batch through the unrolled RNN; dLoss_T/dh_t for every layer and t.

    Hooks sit on the autograd nodes that make each step's state (the ones
    ``lmprof diagram bptt`` colours h and c): a node's incoming gradient is
    the whole dLoss/d(state), summed over everything that used the state.
    Returns the gradients and the detached final hidden state for the next batch.
    """
    import torch.nn.functional as F

    from lmprof.instrument.graph import unfused
    from lmprof.instrument.graph_walk import ClusterSorter, reach, rnn_calls
    from lmprof.reference.loop import repackage_hidden

    with rnn_calls(model) as seen, unfused():
        output, hidden = model(data, hidden)
    steps, batch = data.shape
    # The loss at the last step: the error of the batch's last row of predictions.
    loss = F.nll_loss(output.view(steps, batch, -1)[-1], targets.view(steps, batch)[-1])
    everything = reach(loss.grad_fn, set())
    params = {n: "" for n in everything if n.name().endswith("AccumulateGrad")}
    sorter = ClusterSorter(cfg, params)
    sorter.batch(1, seen[0], None)

    nlayers = cfg.nlayers
    grads: dict[str, list[list[Any]]] = {}
    for node, role in sorter.role.items():
        key = sorter.group.get(node, "")
        parts = key.split("/")
        if len(parts) != 3 or not parts[2].startswith("t"):
            continue
        layer, t = int(parts[1][1:]) - 1, int(parts[2][1:]) - 1
        slots = grads.setdefault(role, [[None] * steps for _ in range(nlayers)])
        node.register_prehook(_keeper(slots[layer], t))
    model.zero_grad(set_to_none=True)
    loss.backward()
    model.zero_grad(set_to_none=True)  # gradflow measures; it never updates the model
    import torch

    rnn_out = seen[0].rnn_output.detach()
    stacked = {role: [torch.stack([g if g is not None else torch.zeros_like(rnn_out[0]) for g in layer])
                      for layer in layers] for role, layers in grads.items()}
    return StepGradients(stacked, {"h": [rnn_out]}, loss.detach()), repackage_hidden(hidden)


def _keeper(slots: list[Any], t: int) -> Any:
    def keep(grad_outputs: tuple[Any, ...]) -> None:
        slots[t] = grad_outputs[0].detach() if grad_outputs[0] is not None else None
    return keep


def load_run(run: str | Path) -> tuple[RunConfig, dict[str, Any]]:
    """A run folder's config and trained weights (the checkpoint the loop saved)."""
    import torch

    from lmprof.record.files import CHECKPOINT_FILE
    from lmprof.record.result import RunResult

    from lmprof.safe_files import CHECKPOINT_BYTES, member_state, open_member

    result = RunResult.load(run)
    cfg = RunConfig.from_dict(result.config).validate()
    name = result.files.get("checkpoint", CHECKPOINT_FILE)
    if member_state(result.run_dir, name) == "missing":
        raise UsageError(f"{run} has no checkpoint ({name}): it saves one after its first epoch")
    from lmprof.experiments.memory_model import available_bytes

    limit = min(CHECKPOINT_BYTES, (available_bytes() or CHECKPOINT_BYTES) // 2)  # it must fit in memory, twice
    with open_member(result.run_dir, name, limit=limit) as f:  # no link followed, size capped
        try:  # weights only: a pickle in a received folder is never run
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's note on a pickle protocol it did not write
                state = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError, a truncated zip, not a torch file at all: all one line
            raise UsageError(f"{Path(result.run_dir) / name} is not a checkpoint lmprof can read "
                             f"({e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None
    weights = state.get("state_dict") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise UsageError(f"{Path(result.run_dir) / name} holds no state_dict: not a checkpoint lmprof wrote")
    return cfg, weights


def gradient_flow(cfg: RunConfig, *, kinds: Sequence[str] | None = None, batches: int = FLOW_BATCHES,
                  state_dict: dict[str, Any] | None = None) -> GradientFlow:
    """Mean norm of dLoss_T/dh_t (and dc_t) per kind, layer and step over the first ``batches`` batches.

    Every kind starts from the same seed and sees the same batches; with
    ``state_dict`` (one kind only) the trained weights are measured instead.
    """
    kinds = list(kinds or [cfg.model])
    bad = [k for k in kinds if k not in RNN_KINDS]
    if bad:
        raise UsageError(f"gradient flow is measured for recurrent models: {', '.join(bad)} is not one of "
                         f"{', '.join(RNN_KINDS)}")
    if batches <= 0:
        raise UsageError(f"--batches must be a positive integer, got {batches}")
    # measured on the CPU, whatever --device says; the caller has set the threads (a loaded run's are not its)
    prepared = prepare(cfg.replace(device="cpu", threads=None))
    train_data = prepared.batches("train", cfg.batch_size)
    count = min(batches, (train_data.size(0) - 1) // cfg.bptt)  # batches of the whole bptt length
    if count == 0:
        raise UsageError(f"the training text is too short for one batch of --bptt {cfg.bptt}")
    flow = GradientFlow(config={"model": kinds, "emsize": cfg.emsize, "nhid": cfg.nhid, "nlayers": cfg.nlayers,
                                "bptt": cfg.bptt, "batch_size": cfg.batch_size, "dropout": cfg.dropout,
                                "seed": cfg.seed, "data": cfg.data, "trained": state_dict is not None},
                        batches=count)
    for kind in kinds:
        kind_cfg = prepared.cfg.replace(model=kind)
        model = _measured_model(prepared, kind_cfg, state_dict)
        flow.curves[kind] = _mean_norms(model, train_data, kind_cfg, count)
    return flow


def _measured_model(prepared: Prepared, cfg: RunConfig, state_dict: dict[str, Any] | None) -> "nn.Module":
    """The run's model of ``cfg.model`` from the run's seed (or with the trained ``state_dict``), in training mode."""
    from lmprof.experiments.memory_model import too_large

    if (why := too_large(cfg, prepared.ntokens)):  # checked before torch allocates the model
        raise UsageError(f"gradient flow of {cfg.model} emsize {cfg.emsize} nhid {cfg.nhid}: {why}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropout in a 1-layer RNN does nothing; torch says so
        model = prepared.model(cfg)
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as e:  # the checkpoint's shapes are not the config's model
            raise UsageError(f"the checkpoint does not fit the run's own config ({str(e).splitlines()[0]})") from None
    model.train()  # dropout on, as training sees it
    return model


def _mean_norms(model: "nn.Module", train_data: "torch.Tensor", cfg: RunConfig,
                count: int) -> dict[str, list[list[float]]]:
    """Per state ("h" first, then "c"), per layer: the norm at each step, averaged over ``count`` batches."""
    import torch

    from lmprof.reference.loop import get_batch

    hidden = model.init_hidden(cfg.batch_size)
    sums: dict[str, list["torch.Tensor"]] = {}
    for b in range(count):
        data, targets = get_batch(train_data, b * cfg.bptt, cfg.bptt)
        step, hidden = step_gradients(model, data, targets, hidden, cfg)
        for role, layers in step.grads.items():
            norms = [g.flatten(1).norm(dim=1) for g in layers]  # one norm per step
            acc = sums.setdefault(role, [torch.zeros(cfg.bptt) for _ in layers])
            for total, n in zip(acc, norms):
                total += n
    return {role: [(total / count).tolist() for total in layers]
            for role, layers in sorted(sums.items(), key=lambda kv: kv[0] != "h")}
