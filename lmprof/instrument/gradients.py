"""The gradient norm that clipping sees, per training batch: the --grad-stats instrument.

``GradStatsInstrument`` watches a training run. At the boundary between
the ``backward`` and ``clip`` phases it reads the global L2 norm of every
gradient, the very number ``clip_grad_norm_`` is about to compare with
``--clip``, and keeps, per epoch, the median and the largest norm and the
fraction of batches that clipping scaled down. It only reads gradients, so
every loss stays bitwise equal to ``lmprof train``'s.

What flows back through time (dLoss/dh_t per step, on the unrolled model) is
an experiment, not an instrument: ``lmprof.experiments.gradient_flow``.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmprof.instrument.base import Instrument, RunContext
from lmprof.record.sections import CLIPPED_FRACTION, NONFINITE_BATCHES, PRECLIP_NORM_MAX, PRECLIP_NORM_MEDIAN

if TYPE_CHECKING:
    import torch

    from lmprof.record.result import RunResult

NORM_TYPE = 2.0  # clip_grad_norm_'s default: the L2 norm of all gradients as one vector
CLIP_EPS = 1e-6  # clip_grad_norm_ scales by clip / (norm + 1e-6) when that is below 1
CLIP_FIELDS = (PRECLIP_NORM_MEDIAN, PRECLIP_NORM_MAX, CLIPPED_FRACTION)  # per epoch, in result.json

class GradStatsInstrument(Instrument):
    """Pre-clip gradient norm of every training batch; per epoch median, max and clipped fraction.

    The recorder finds the model at its first forward (a one-shot global
    forward pre-hook: the outermost module is called first), then on
    ``exit("backward")`` computes the norm once per batch. Norms stay on the
    device until the epoch ends, so a GPU run does not synchronise per batch.
    """

    name = "gradients"
    sampled = True  # reads the norm on one batch in --sample-every K (lmprof.instrument.sampling)

    def __init__(self) -> None:
        self.clip = 0.0
        self.params: list["torch.nn.Parameter"] | None = None
        self.norms: list["torch.Tensor"] = []
        self.epochs: list[dict[str, Any]] = []
        self._hook: Any = None

    def start(self, context: RunContext) -> None:
        self.clip = context.cfg.clip

    def recorder(self) -> "GradStatsInstrument":
        return self

    def enter(self, name: str) -> None:
        if name == "forward" and self.params is None and self._hook is None:
            import torch

            self._hook = torch.nn.modules.module.register_module_forward_pre_hook(self._find_model)
        elif name == "evaluate_valid":  # train() has returned: the epoch's batches are all seen
            self._close_epoch()

    def exit(self, name: str) -> None:
        if name == "backward" and self.params:
            import torch

            grads = [p.grad for p in self.params if p.grad is not None]
            if grads:
                with torch.no_grad():
                    self.norms.append(torch.nn.utils.get_total_norm(grads, NORM_TYPE))

    def _find_model(self, module: Any, _args: Any) -> None:
        self.params = list(module.parameters())  # the same list clip_grad_norm_ is given
        self._remove_hook()

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _close_epoch(self) -> None:
        if not self.norms:
            return
        import torch

        norms = torch.stack(self.norms).float().cpu().tolist()
        self.norms = []
        self.epochs.append(clip_statistics(len(self.epochs) + 1, norms, self.clip))

    def stop(self) -> None:
        self._remove_hook()
        self._close_epoch()  # an interrupted or diverged epoch keeps what it saw

    def contribute(self, result: "RunResult", run_dir: Path) -> None:
        result.gradients = {
            "norm": "L2 norm of all gradients, read after backward, before clip_grad_norm_",
            "clip": self.clip,
            "epochs": self.epochs,
        }


def clip_statistics(epoch: int, norms: list[float], clip: float) -> dict[str, Any]:
    """One epoch's record from its batches' pre-clip norms (a non-finite norm counts as clipped)."""
    ordered = [n if math.isfinite(n) else math.inf for n in norms]  # NaN sorts nowhere: count it as infinite
    clipped = sum(1 for n in ordered if clip / (n + CLIP_EPS) < 1.0)
    return {
        "epoch": epoch,
        "batches": len(norms),
        PRECLIP_NORM_MEDIAN: statistics.median(ordered),
        PRECLIP_NORM_MAX: max(ordered),
        CLIPPED_FRACTION: clipped / len(norms),
        NONFINITE_BATCHES: sum(1 for n in ordered if n == math.inf),
    }


def clip_summary(gradients: dict[str, Any]) -> str:
    """One phrase for a message: 'pre-clip norm 3.1e+04 at epoch 1, 100% of batches clipped'."""
    epochs = [e for e in gradients.get("epochs", []) if e.get("batches")]
    if not epochs:
        return ""
    worst = max(epochs, key=lambda e: math.inf if e.get(PRECLIP_NORM_MAX) is None else e[PRECLIP_NORM_MAX])
    top = worst.get(PRECLIP_NORM_MAX)
    norm = "non-finite" if top is None or not math.isfinite(top) else f"{top:.2g}"
    return (f"pre-clip norm {norm} at epoch {worst['epoch']}, "
            f"{worst[CLIPPED_FRACTION]:.0%} of batches clipped (--clip {gradients.get('clip', '?')})")
