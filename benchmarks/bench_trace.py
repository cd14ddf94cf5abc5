"""Overhead of watching: phase recording on vs off, and torch.profiler's active steps vs no profiler.

    python benchmarks/bench_trace.py --pairs 7 --max-batches 40            # the embedded corpus
    python benchmarks/bench_trace.py --pairs 7 --max-batches 40 --data DIR --emsize 650 --nhid 650

Each pair runs the same training twice, A (off) then B (on); the four runs
of a pair (phases A, B; profiler A, B) are interleaved, so drift in the
machine's speed hits both sides. Per pair, ratio = B / A; the report gives
the median, min and max ratio. Targets (issue 4): phase recording at most
1.02, the profiler's active steps at most 1.30.

- Phase recording: train()'s wall time (the loop's own perf_counter) with
  no listener vs with lmprof's PhaseInstrument.
- Profiler: the summed time of the recorded steps (schedule wait 1, warmup
  1, active max_batches - 2), timed by a step clock that both sides carry,
  vs the same steps with no profiler. Writing the trace happens between
  steps and is not counted: this is the cost a traced step pays.

Run it on an otherwise idle machine; it prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lmprof.config import RunConfig
from lmprof.instrument.base import Instrument
from lmprof.instrument.recorders import PhaseInstrument
from lmprof.instrument.trace import TraceSchedule, TraceInstrument
from lmprof.runner import run


class StepClock(Instrument):
    """Seconds of each training step, from its "data" phase to the end of its "logging" phase."""

    name = "step_clock"

    def __init__(self) -> None:
        self.steps: list[float] = []
        self._t0 = 0.0

    def recorder(self) -> "StepClock":
        return self

    def enter(self, name: str) -> None:
        if name == "data":
            self._t0 = time.perf_counter()

    def exit(self, name: str) -> None:
        if name == "logging":
            self.steps.append(time.perf_counter() - self._t0)


def _summary(off: list[float], on: list[float], target: float) -> dict[str, Any]:
    ratios = [b / a for a, b in zip(off, on)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "target": target,
            "ratios": ratios, "off_seconds": off, "on_seconds": on}


def measure(pairs: int, max_batches: int, data: str | Path | None, cfg: RunConfig | None = None) -> dict[str, Any]:
    """Interleaved A/B runs; returns ratios for phase recording and for the profiler's active steps."""
    if pairs < 1 or max_batches < 3:
        raise ValueError("need pairs >= 1 and max_batches >= 3 (1 step waited, 1 warm-up, the rest recorded)")
    base = (cfg or RunConfig()).replace(data=str(data) if data else None, epochs=1, max_batches=max_batches)
    schedule = TraceSchedule(wait=1, warmup=1, active=max_batches - 2, repeat=1)
    recorded = slice(schedule.wait + schedule.warmup, None)
    results: dict[str, list[float]] = {k: [] for k in ("phases_off", "phases_on", "profiler_off", "profiler_on")}
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        def train_seconds(instruments: list[Instrument], name: str) -> float:
            result = run(base, command="bench", instruments=instruments, log=lambda line: None,
                         run_dir=Path(tmp) / name)
            return float(sum(e["train_seconds"] for e in result.metrics["epochs"]))

        def step_seconds(traced: bool, name: str) -> float:
            clock = StepClock()
            # The trace goes first, as in `lmprof trace`: its step() and trace writing fall between steps.
            instruments: list[Instrument] = [TraceInstrument(schedule), clock] if traced else [clock]
            run(base, command="bench", instruments=instruments, log=lambda line: None, run_dir=Path(tmp) / name)
            return sum(clock.steps[recorded])

        for i in range(pairs):
            results["phases_off"].append(train_seconds([], f"{i}-phases-off"))
            results["phases_on"].append(train_seconds([PhaseInstrument()], f"{i}-phases-on"))
            results["profiler_off"].append(step_seconds(False, f"{i}-profiler-off"))
            results["profiler_on"].append(step_seconds(True, f"{i}-profiler-on"))
    return {
        "config": {k: getattr(base, k) for k in ("model", "emsize", "nhid", "nlayers", "bptt", "batch_size",
                                                 "max_batches", "threads")},
        "pairs": pairs,
        "phase_recording": _summary(results["phases_off"], results["phases_on"], target=1.02),
        "profiler_active_steps": _summary(results["profiler_off"], results["profiler_on"], target=1.30),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--max-batches", type=int, default=40)
    parser.add_argument("--data", default=None, help="corpus folder (default: lmprof's embedded corpus)")
    parser.add_argument("--model", default="LSTM")
    parser.add_argument("--emsize", type=int, default=200)
    parser.add_argument("--nhid", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    cfg = RunConfig(model=args.model, emsize=args.emsize, nhid=args.nhid, threads=args.threads)
    print(json.dumps(measure(args.pairs, args.max_batches, args.data, cfg), indent=1))


if __name__ == "__main__":
    main()
