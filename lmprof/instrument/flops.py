"""Achieved speed: FLOPs of a training step's forward and backward, per second, against this machine's peak.

Counting. ``torch.utils.flop_counter.FlopCounterMode`` runs one training
step (forward, loss, backward) of a fresh model with the run's config on the
"meta" device: tensors with shapes and no data, so nothing is computed and
the count costs milliseconds whatever the model's size. It counts matrix
products (addmm, mm, bmm, attention), which is where a language model's
arithmetic is; the elementwise work (gates, softmax) is left out, as every
published FLOP/s figure does. For an LSTM the forward count is the textbook
formula, 2 * bptt * batch * (sum over layers of (input + nhid) * 4 nhid
+ nhid * ntokens), and backward is about twice forward (a gradient for the
weights and one for the inputs). A model the meta device cannot run (the
Transformer checks its mask with ``.item()``) is counted on a CPU copy with
real numbers, inside ``fork_rng`` so the run's random stream is untouched.

Peak. A short float32 matrix-multiply benchmark on the run's device, cached
in lmprof's cache folder (``matmul-peak.json``; key: host, device, threads,
torch version) with the time it was measured, the thread count and the load
average then (a peak measured on a busy machine is low, and every share
divided by it high). It is measured again when older than a day, when the
thread count differs (another key), or when asked (``--remeasure-peak``).

``FlopInstrument`` needs the phases: put it after ``PhaseInstrument`` in the
instrument list (contribute() is called in that order).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from lmprof.instrument.base import Instrument, RunContext
from lmprof.phases import LABELS
from lmprof.record.result import RunResult
from lmprof.record.sections import (COUNTED_ON, FLOPS_PER_CALL, GFLOPS_PER_S, LENGTH_SCALE, MEAN_SECONDS,
    SHARE_OF_PEAK, STEP_FLOPS, TRAIN_TOKENS)

PEAK_FILE = "matmul-peak.json"
PEAK_MAX_AGE = 24 * 3600.0  # seconds: a day-old peak is measured again (load, clocks and torch change)
FLOP_PHASES = ("forward", "backward")


def count_step_flops(cfg: Any, ntokens: int) -> dict[str, Any]:
    """Matmul FLOPs of one full-length training step (bptt x batch_size) of ``cfg``'s model."""
    import torch

    # Building a model draws from the random stream: fork it, so counting never changes a run's numbers.
    with torch.random.fork_rng(devices=[]):
        try:
            counts = _count_on(torch.device("meta"), cfg, ntokens)
            counts[COUNTED_ON] = "meta"
        except (RuntimeError, NotImplementedError):
            counts = _count_on(torch.device("cpu"), cfg, ntokens)
            counts[COUNTED_ON] = "cpu"
    return counts


def _count_on(device: Any, cfg: Any, ntokens: int) -> dict[str, Any]:
    import torch
    import torch.nn as nn
    from torch.utils.flop_counter import FlopCounterMode

    from lmprof.reference.loop import build_model

    with torch.device(device):
        model = build_model(cfg, ntokens, device)
        data = torch.zeros(cfg.bptt, cfg.batch_size, dtype=torch.long)
        targets = torch.zeros(cfg.bptt * cfg.batch_size, dtype=torch.long)
    model.train()  # dropout on, as in train(); it adds no matmul FLOPs either way
    forward = FlopCounterMode(display=False)
    with forward:
        if cfg.model == "Transformer":
            output = model(data).view(-1, ntokens)
        else:
            output, _ = model(data, model.init_hidden(cfg.batch_size))
        loss = nn.NLLLoss()(output, targets)
    backward = FlopCounterMode(display=False)
    with backward:
        loss.backward()
    return {"forward": int(forward.get_total_flops()), "backward": int(backward.get_total_flops())}


# --- this machine's matmul peak -------------------------------------------------------

def peak_key(device: Any) -> str:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        where = f"cuda:{torch.cuda.get_device_name(device)}"
    else:
        where = f"{getattr(device, 'type', 'cpu')}:threads={torch.get_num_threads()}"
    return f"{socket.gethostname()}|{where}|torch={torch.__version__}"


def measure_matmul_peak(device: Any, size: int | None = None, seconds: float = 0.3) -> dict[str, Any]:
    """Best float32 GFLOP/s of an n x n matmul on ``device`` (a few repetitions, after a warm-up)."""
    import torch

    on_cuda = getattr(device, "type", "cpu") == "cuda"
    n = size or (8192 if on_cuda else 1024)
    own_stream = torch.Generator(device=device).manual_seed(0)  # leaves the global random stream alone
    a = torch.randn(n, n, device=device, generator=own_stream)
    b = torch.randn(n, n, device=device, generator=own_stream)
    sync: Callable[[], None] = torch.cuda.synchronize if on_cuda else (lambda: None)
    for _ in range(2):  # warm-up: thread pools, cuBLAS handles, caches
        torch.mm(a, b)
    sync()
    best = float("inf")
    reps = 0
    start = time.perf_counter()
    while reps < 3 or (time.perf_counter() - start < seconds and reps < 50):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return {"gflops": 2 * n**3 / best / 1e9, "size": n, "dtype": "float32", "repetitions": reps,
            "device": str(device), "threads": torch.get_num_threads(), "load": _load_average(),
            "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "measured_unix": time.time()}


def _load_average() -> float | None:
    """The 1-minute load average when measured: runnable processes, against the cores the matmul wanted."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not on every platform
        return None


def peak_is_fresh(record: dict[str, Any], now: float | None = None) -> bool:
    """A cached peak is used when measured less than PEAK_MAX_AGE seconds ago (older files: never)."""
    measured = record.get("measured_unix")
    if not isinstance(measured, (int, float)) or record.get("gflops", 0) <= 0:
        return False
    age = (time.time() if now is None else now) - measured
    return 0 <= age < PEAK_MAX_AGE


def matmul_peak(device: Any, *, cache_file: Path | None = None, remeasure: bool = False,
                measure: Callable[[Any], dict[str, Any]] = measure_matmul_peak) -> dict[str, Any]:
    """This machine's matmul peak for ``device``: from the cache while fresh, else measured and cached."""
    from lmprof.corpora.synth import cache_dir
    from lmprof.fsutil import write_text_atomic

    path = cache_file or cache_dir() / PEAK_FILE
    key = peak_key(device)
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(cached, dict):
            cached = {}
    except (OSError, ValueError):
        cached = {}
    if not remeasure and isinstance(cached.get(key), dict) and peak_is_fresh(cached[key]):
        return {**cached[key], "cached": True}
    record = measure(device)
    cached[key] = {"measured_unix": time.time(), **record}  # a measure that gives no time: stamped now
    try:
        write_text_atomic(path, json.dumps(cached, indent=1) + "\n")
    except OSError:
        pass  # a read-only cache folder costs a re-measure next time, nothing else
    return {**record, "cached": False}


# --- the instrument -------------------------------------------------------------------

class FlopInstrument(Instrument):
    """Contributes ``flops``: forward and backward GFLOP/s of the run and their share of the peak.

    Works after the loop (in contribute), so nothing it does is timed.
    ``peak`` and ``step_flops`` can be given (tests, or a peak measured elsewhere).
    """

    name = "flops"

    def __init__(self, *, peak: dict[str, Any] | None = None, step_flops: dict[str, Any] | None = None,
                 remeasure_peak: bool = False) -> None:
        self.peak = peak
        self.remeasure_peak = remeasure_peak
        self.step_flops = step_flops
        self.context: RunContext | None = None

    def start(self, context: RunContext) -> None:
        self.context = context

    def contribute(self, result: RunResult, run_dir: Path) -> None:
        if self.context is None:
            return
        rows = {r["name"]: r for r in result.phases}
        ntokens = int(result.metrics.get("ntokens") or 0)
        if ntokens <= 0 or not any(rows.get(name, {}).get("calls") for name in FLOP_PHASES):
            return  # the run stopped before a training step, or no PhaseInstrument ran before this
        cfg = self.context.cfg
        step = self.step_flops or count_step_flops(cfg, ntokens)
        peak = self.peak or matmul_peak(self.context.device, remeasure=self.remeasure_peak)
        result.flops = achieved(step, rows, result.metrics, cfg.bptt * cfg.batch_size, peak)


def achieved(step: dict[str, Any], phase_rows: dict[str, dict[str, Any]], metrics: dict[str, Any],
             tokens_per_full_step: int, peak: dict[str, Any]) -> dict[str, Any]:
    """The ``flops`` section from step FLOPs, the phase rows (by name), the metrics and the peak.

    A step's FLOPs grow with its length, and the last batch of an epoch may be
    shorter than bptt, so the FLOPs per call are scaled by tokens trained over
    tokens that full-length steps would have held.
    """
    batches = sum(int(e.get("batches", 0)) for e in metrics.get("epochs", []))
    tokens = int(metrics.get(TRAIN_TOKENS) or 0)
    scale = tokens / (batches * tokens_per_full_step) if batches and tokens else 1.0
    peak_gflops = float(peak.get("gflops") or 0.0)
    phases = []
    for name in FLOP_PHASES:
        row = phase_rows.get(name)
        if not row or not row.get("calls") or row.get("seconds", 0) <= 0:
            continue
        mean = row["seconds"] / row["calls"]
        flops = step[name] * scale
        gflops = flops / mean / 1e9
        phases.append({"name": name, "label": LABELS[name], FLOPS_PER_CALL: flops, MEAN_SECONDS: mean,
                       GFLOPS_PER_S: gflops, SHARE_OF_PEAK: gflops / peak_gflops if peak_gflops else None})
    return {"method": f"torch.utils.flop_counter, one step on the {step.get(COUNTED_ON, 'meta')} device "
                      "(matrix products only)",
            STEP_FLOPS: {k: step[k] for k in FLOP_PHASES}, LENGTH_SCALE: scale,
            "peak": peak, "phases": phases}
