"""Overhead of line profiling: train() under `lmprof profile --fn train`'s line profiler vs bare.

    python benchmarks/bench_lines.py --pairs 7 --max-batches 40                # the embedded corpus
    python benchmarks/bench_lines.py --pairs 7 --max-batches 40 --data DIR     # e.g. wikitext-2-lite

Each pair times the same number of training batches twice on one model:
A bare, then B with lmprof's LineInstrument watching train (the
instrument `lmprof profile` uses, started and stopped around the batches).
Pairs run interleaved, A B B A A B ..., so drift in the machine's speed hits
both sides; per pair, ratio = B / A, and the report gives the median, min
and max. Target (issue 3): at most 1.05.

line_profiler pads a profiled function's code with no-ops the first time it
sees it; a warm-up of both sides comes first, so every measured A runs the
same (padded) code as B, minus the tracing. Run it on an otherwise idle
machine; it prints one JSON object.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_loop  # noqa: E402  (the bare loop: same preparation, same clock)

TARGET = 1.05


def time_profiled(setup: dict[str, Any], batches: int, run_dir: Path) -> float:
    """Seconds for ``batches`` batches of train() with line_profiler on train, as `lmprof profile` runs it."""
    import torch

    from lmprof.instrument.base import RunContext
    from lmprof.instrument.lines import LineInstrument

    lines = LineInstrument(["train"])
    lines.start(RunContext(cfg=setup["cfg"], device=torch.device("cpu"), run_dir=run_dir, batches_per_epoch=batches))
    try:
        return bench_loop.time_train(setup, batches)
    finally:
        lines.stop()


def measure(pairs: int = 5, max_batches: int = 20, data: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Median, min and max of profiled / bare over ``pairs`` interleaved pairs (overrides: RunConfig fields)."""
    setup = bench_loop.prepare(data, **overrides)
    with tempfile.TemporaryDirectory(prefix="lmprof-bench-lines-") as tmp:
        run_dir = Path(tmp)
        bench_loop.time_train(setup, 2)  # warm-up: allocations, thread pools
        time_profiled(setup, 2, run_dir)  # warm-up: line_profiler pads train's code once
        bare, profiled = [], []
        for i in range(pairs):
            # A B, then B A: whichever side runs second gets no systematic advantage
            if i % 2:
                profiled.append(time_profiled(setup, max_batches, run_dir))
                bare.append(bench_loop.time_train(setup, max_batches))
            else:
                bare.append(bench_loop.time_train(setup, max_batches))
                profiled.append(time_profiled(setup, max_batches, run_dir))
    ratios = [b / a for a, b in zip(bare, profiled)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "ratios": ratios,
            "bare_seconds": bare, "profiled_seconds": profiled, "pairs": pairs, "batches": max_batches,
            "data": data or "embedded corpus", "target": TARGET}


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="A/B pairs (median of their ratios)")
    parser.add_argument("--max-batches", type=int, default=20, help="training batches per timed run")
    parser.add_argument("--data", default=None, help="corpus folder (default: the embedded corpus)")
    args = parser.parse_args()
    print(json.dumps(measure(args.pairs, args.max_batches, args.data), indent=1))
