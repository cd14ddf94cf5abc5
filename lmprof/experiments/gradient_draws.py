"""Gradient flow through time over several draws: the one measurement `lmprof gradflow` and `explain bptt` share.

One draw is ``gradient_flow`` (``lmprof.experiments.gradient_flow``) from one seed:
the model's initial weights (and its dropout masks) come from it, the batches
are the corpus's first ones. A single draw can rank two model kinds either way
when their curves are close, so both commands measure ``draws`` seeds (seed,
seed + 1, ...) and report each figure as its median and range over the draws.
The same config and seed give the same figures in both.

    >>> d = gradient_flow_draws(RunConfig(emsize=16, nhid=16, bptt=8), kinds=["LSTM"], batches=2)  # doctest: +SKIP
    >>> d.figures()[0]["steps_to_1pct"]                                                             # doctest: +SKIP
    [7, 6, 7]
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from lmprof.config import RunConfig
from lmprof.experiments.gradient_flow import FLOW_BATCHES, GradientFlow, decay_factor, gradient_flow, steps_until

DRAWS = 3
SHARE = 0.01  # "steps back until the gradient is 1% of the last step's"


@dataclass
class FlowDraws:
    flows: list[GradientFlow]  # one per seed, same kinds, layers and batches
    seeds: list[int]

    @property
    def bptt(self) -> int:
        return int(self.flows[0].config["bptt"])

    @property
    def batches(self) -> int:
        return self.flows[0].batches

    def mean_flow(self) -> GradientFlow:
        """The curves averaged over the draws (what the step tables and the plot show)."""
        first = self.flows[0]
        curves = {kind: {state: [[statistics.fmean(f.curves[kind][state][layer][t] for f in self.flows)
                                  for t in range(len(norms))] for layer, norms in enumerate(layers)]
                         for state, layers in states.items()} for kind, states in first.curves.items()}
        return GradientFlow(config={**first.config, "seeds": self.seeds}, batches=first.batches, curves=curves)

    def figures(self) -> list[dict[str, Any]]:
        """Per kind, state and layer: each draw's decay per step and steps back to 1% (None: not within the window)."""
        out = []
        for kind, states in self.flows[0].curves.items():
            for state, layers in states.items():
                for layer in range(len(layers)):
                    curves = [f.curves[kind][state][layer] for f in self.flows]
                    out.append({"kind": kind, "state": state, "layer": layer + 1,
                                "decay": [decay_factor(c) for c in curves],
                                "steps_to_1pct": [steps_until(c, SHARE) for c in curves]})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**self.mean_flow().to_dict(), "draws": {"seeds": self.seeds, "figures": self.figures()}}


def gradient_flow_draws(cfg: RunConfig, *, kinds: Sequence[str] | None = None, batches: int = FLOW_BATCHES,
                        draws: int = DRAWS, state_dict: dict[str, Any] | None = None) -> FlowDraws:
    """``gradient_flow`` from seeds cfg.seed, cfg.seed + 1, ... (``draws`` of them)."""
    from lmprof.errors import UsageError

    if draws <= 0:
        raise UsageError(f"--draws must be a positive integer, got {draws}")
    seeds = [cfg.seed + i for i in range(draws)]
    return FlowDraws([gradient_flow(cfg.replace(seed=s), kinds=kinds, batches=batches, state_dict=state_dict)
                      for s in seeds], seeds)


def median_steps(steps: Sequence[int | None]) -> int | float | None:
    """The median of steps back, a draw that never fell below 1% counting as the longest (None: most never did)."""
    ranked = sorted(steps, key=lambda s: float("inf") if s is None else s)
    mid = ranked[len(ranked) // 2] if len(ranked) % 2 else None
    if len(ranked) % 2 == 0:
        a, b = ranked[len(ranked) // 2 - 1], ranked[len(ranked) // 2]
        mid = None if a is None or b is None else (a + b) / 2
    return mid
