"""The kernel floor: the step time no change of launches or overhead can beat without changing the kernels.

On a GPU: the summed device time of one reference step's kernels (torch.profiler
over a few steps, after warm-up), and how many kernels a step launches. A step
that only removes launch cost (a CUDA graph) can approach this floor, never
pass it. On a CPU there are no launches; the analogue is the summed *self time
of the operators* of one step: the work the operators did, without the Python
and bookkeeping between them. Each ladder row shows its time per token as a %
of the floor's (100%: nothing left but the kernels). This module returns numbers;
their words are the view's (``lmprof.views.speedlab.floor_note``).

    >>> floor = kernel_floor(cfg, device, corpus)  # doctest: +SKIP
    >>> floor["seconds"], floor["kernels_per_step"]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lmprof.config import RunConfig

if TYPE_CHECKING:
    import torch

WARMUP, STEPS = 3, 5
KERNEL_WHAT = "the summed GPU time of one reference step's kernels"
OPERATOR_WHAT = ("the summed self time of one reference step's operators, the CPU's analogue of kernel time "
                 "(a CPU launches no kernels)")


@dataclass(frozen=True)
class FloorEvent:
    """One profiler event, reduced to what the floor needs (times in microseconds, self time in seconds)."""

    name: str
    device: str  # "cpu" (an operator or an annotation) or "cuda" (a kernel, memcpy or memset)
    start: float
    end: float
    self_seconds: float = 0.0
    annotation: bool = False  # ProfilerStep#N and record_function ranges: their self time is Python, not work

    @classmethod
    def of(cls, e: Any, cuda: Any) -> "FloorEvent":
        """From a torch FunctionEvent; ``cuda``: torch's DeviceType.CUDA."""
        annotation = bool(getattr(e, "is_user_annotation", False)) or e.name.startswith(("ProfilerStep", "lmprof:"))
        return cls(e.name, "cuda" if getattr(e, "device_type", None) == cuda else "cpu", float(e.time_range.start),
                   float(e.time_range.end), float(getattr(e, "self_cpu_time_total", 0.0)) / 1e6, annotation)


class _Stepper:
    """Steps the profiler at each batch's end (the logging phase's exit)."""

    def __init__(self, prof: Any) -> None:
        self.prof = prof

    def enter(self, name: str) -> None:
        return None

    def exit(self, name: str) -> None:
        if name == "logging":
            self.prof.step()


def floor_from_events(events: list[Any], steps: int, device_type: str) -> dict[str, Any]:
    """Per step: kernel seconds and count on CUDA; on a CPU, operator self seconds (annotations left out)."""
    if device_type == "cuda":
        kernels = [e for e in events if e.device == "cuda" and not e.annotation]  # not the GPU-side step ranges
        total = sum(e.end - e.start for e in kernels) / 1e6
        return {"seconds": total / steps, "kernels_per_step": len(kernels) / steps, "what": KERNEL_WHAT,
                "kind": "kernel"}
    total = sum(e.self_seconds for e in events if e.device == "cpu" and not e.annotation)
    return {"seconds": total / steps, "kernels_per_step": None, "what": OPERATOR_WHAT, "kind": "operator"}


def kernel_floor(cfg: RunConfig, device: "torch.device", corpus: Any, *, warmup: int = WARMUP,
                 steps: int = STEPS) -> dict[str, Any]:
    """Profile ``warmup + steps`` reference training steps; the floor per step and per token."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, schedule

    from lmprof.phases import listening
    from lmprof.prepare import seeded_model
    from lmprof.reference.loop import batchify, train

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = seeded_model(cfg, len(corpus.dictionary), device)
        train_data = batchify(corpus.train, cfg.batch_size, device)
        steps = max(1, min(steps, (train_data.size(0) - 1) // cfg.bptt - warmup))
        with profile(activities=activities, schedule=schedule(wait=0, warmup=warmup, active=steps, repeat=1)) as prof:
            with listening(_Stepper(prof)):
                train(model, train_data, cfg.replace(max_batches=warmup + steps, dry_run=False),
                      torch.nn.NLLLoss(), len(corpus.dictionary), lr=cfg.lr, epoch=1, log=lambda line: None)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = [FloorEvent.of(e, DeviceType.CUDA) for e in prof.events()]
    floor = floor_from_events(events, steps, device.type)
    tokens = cfg.bptt * cfg.batch_size
    return {**floor, "steps": steps, "batch_size": cfg.batch_size, "bptt": cfg.bptt, "tokens_per_step": tokens,
            "per_token_seconds": floor["seconds"] / tokens, "device": device.type}
