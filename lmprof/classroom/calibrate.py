"""Put runs from different machines on one scale: this machine's matmul peak and one fixed tiny reference step.

A student's ms/batch says as much about their laptop as about their code. The
bundle carries two measurements of the machine that packed it:

- the float32 matmul peak (``instrument.flops.matmul_peak``, cached for a day),
- the time of one **reference step**: a fixed tiny LSTM (emsize 32, nhid 32,
  2 layers, 1,000 words, bptt 35, batch 20) trained for one step with the
  reference loop's own model, loss, clip and SGD update; the median of 10
  steps after 3 of warm-up, on the run's device and with the run's threads.

A run's ms/batch divided by the reference step's ms is its cost in
reference steps: two students whose code is the same land on about the same
figure on a T4 and on a laptop, and a student whose code is slow stands out
whatever they ran it on.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import statistics
import time
from typing import Any, Callable

REFERENCE_STEP = {"model": "LSTM", "ntokens": 1000, "emsize": 32, "nhid": 32, "nlayers": 2, "bptt": 35,
                  "batch_size": 20, "clip": 0.25, "lr": 20.0}
WARMUP_STEPS, TIMED_STEPS = 3, 10


def machine_environment() -> dict[str, Any]:
    """The packing machine: CPU model and capability, GPUs present, torch, threads, host and user."""
    import torch

    from lmprof.runner import cpu_model

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = ""
    return {"host": socket.gethostname(), "user": user, "home": os.path.expanduser("~"),
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "gpus": gpus, "mps": mps}


def reference_step_seconds(device: Any, *, clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Median seconds of one training step of the fixed tiny reference model on ``device``."""
    import torch
    import torch.nn as nn

    from lmprof.config import RunConfig
    from lmprof.reference.loop import build_model, repackage_hidden

    spec = REFERENCE_STEP
    cfg = RunConfig(model=spec["model"], emsize=spec["emsize"], nhid=spec["nhid"], nlayers=spec["nlayers"],
                    bptt=spec["bptt"], batch_size=spec["batch_size"], dropout=0.0)
    on_cuda = getattr(device, "type", "cpu") == "cuda"
    sync: Callable[[], None] = torch.cuda.synchronize if on_cuda else (lambda: None)
    devices = [torch.cuda.current_device() if device.index is None else device.index] if on_cuda else []
    with torch.random.fork_rng(devices=devices):  # the caller's random streams are untouched
        torch.manual_seed(0)
        model = build_model(cfg, spec["ntokens"], device)
        data = torch.randint(spec["ntokens"], (spec["bptt"], spec["batch_size"]), device=device)
        targets = torch.randint(spec["ntokens"], (spec["bptt"] * spec["batch_size"],), device=device)
        criterion = nn.NLLLoss()
        hidden = model.init_hidden(spec["batch_size"])
        times = []
        for i in range(WARMUP_STEPS + TIMED_STEPS):
            sync()
            start = clock()
            hidden = repackage_hidden(hidden)
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec["clip"])
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-spec["lr"])
            sync()
            if i >= WARMUP_STEPS:
                times.append(clock() - start)
    return {"seconds": statistics.median(times), "best_seconds": min(times), "steps": len(times),
            "device": str(device), "threads": torch.get_num_threads(), "spec": dict(spec)}


def calibrate(device_name: str, threads: int | None) -> dict[str, Any]:
    """The calibration section of a bundle: matmul peak and reference step on the run's device and threads.

    A run made on a device this machine lacks (a CUDA run packed on a laptop) is calibrated on the CPU,
    and says so (``device`` differs from the run's).
    """
    import torch

    from lmprof.instrument.flops import matmul_peak

    wanted = str(device_name or "cpu").split(":")[0]
    usable = (wanted == "cuda" and torch.cuda.is_available()) or (
        wanted == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    device = torch.device(wanted if usable else "cpu")
    previous = torch.get_num_threads()
    if threads and threads > 0:
        torch.set_num_threads(int(threads))  # the run's threads: a 2-thread run is compared with 2-thread steps
    try:
        peak = matmul_peak(device)
        step = reference_step_seconds(device)
    finally:
        torch.set_num_threads(previous)
    return {"device": str(device), "run_device": str(device_name), "matmul_peak_gflops": peak.get("gflops"),
            "matmul_peak": {k: peak.get(k) for k in ("gflops", "size", "dtype", "threads", "load", "measured_at")},
            "reference_step": step}
