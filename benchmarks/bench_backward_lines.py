"""Cost of `--backward-lines` (sampled: a torch.profiler window on batches 2-4) beside the bare loop.

    python benchmarks/bench_backward_lines.py --pairs 5 --batches 40          # the embedded corpus
    python benchmarks/bench_backward_lines.py --pairs 5 --batches 40 --data DIR

Interleaved pairs (A B, B A, ...) of the reference train() over the same
number of batches, as bench_loop.interleaved_ratio does. The watched side
pays what a run pays: the profiler's start and stop, the line annotations in
the three watched forwards, the hooks on the watched backwards, and reading
the events into the section afterwards (``contribute``). It is a fixed cost,
so the ratio falls as the run grows: 40 batches is less than a third of one
epoch of the embedded corpus (142 batches at the default sizes). Target: 1.10.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_loop import interleaved_ratio, prepare, time_train  # noqa: E402

TARGET = 1.10


def time_with_backward_lines(setup: dict[str, Any], batches: int) -> float:
    """Seconds for ``batches`` batches with --backward-lines watching, its section built after them."""
    import time

    import torch

    from lmprof.instrument.backward_lines import BackwardLineInstrument
    from lmprof.instrument.base import RunContext
    from lmprof.record.result import RunResult

    instrument = BackwardLineInstrument()
    run_dir = Path(tempfile.gettempdir())
    instrument.start(RunContext(cfg=setup["cfg"], device=torch.device("cpu"), run_dir=run_dir,
                                batches_per_epoch=batches))
    try:
        seconds = time_train(setup, batches, instrument.recorder())
    finally:
        instrument.stop()
    start = time.perf_counter()
    instrument.contribute(RunResult(), run_dir)
    return seconds + time.perf_counter() - start


def backward_lines_ratio(data: str | Path | None = None, pairs: int = 5, batches: int = 40) -> dict[str, Any]:
    """--backward-lines on / off over interleaved pairs: median, min, max of the time ratios."""
    return interleaved_ratio(prepare(data), time_with_backward_lines, TARGET, pairs, batches)


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--data", default=None)
    parser.add_argument("--save", action="store_true", help="also write results/backward-lines-<time>-<host>.json")
    args = parser.parse_args()
    doc = backward_lines_ratio(args.data, args.pairs, args.batches)
    if args.save:
        import time

        from run import machine

        from lmprof.fsutil import write_text_atomic

        import torch

        doc = {"machine": {**machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability()},
               "date": time.strftime("%Y-%m-%d %H:%M"), "data": args.data or "embedded corpus",
               "backward_lines_ratio": doc}
        out = Path(__file__).resolve().parent / "results" / f"backward-lines-{time.strftime('%Y%m%d-%H%M%S')}-{doc['machine']['host']}.json"
        write_text_atomic(out, json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
