"""Does a sweep add time per epoch over `lmprof train`? Same config, run both ways, alternately.

    python benchmarks/bench_sweep.py [--epochs 3 --max-batches 50 --repeats 3]

The sweep's extras all fall between epochs (result.json saved atomically,
a row appended and fsynced): the training seconds of an epoch should be the
same, and the wall time per epoch should differ by milliseconds. Run it on
an otherwise idle machine; the numbers are this machine's, not a constant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def measure(*, epochs: int = 3, max_batches: int = 50, emsize: int = 200, nhid: int = 200,
            data: str | None = None, repeats: int = 3, model: str = "LSTM") -> dict[str, Any]:
    """Median per-epoch training seconds and wall seconds, plain runner.run vs a one-run sweep."""
    from lmprof.config import RunConfig
    from lmprof.runner import run
    from lmprof.sweeps import InlineExecutor, build_plan, run_sweep

    cfg = RunConfig(model=model, emsize=emsize, nhid=nhid, epochs=epochs, max_batches=max_batches, data=data)
    quiet = lambda line: None  # noqa: E731
    plain_train: list[float] = []
    sweep_train: list[float] = []
    plain_wall: list[float] = []
    sweep_wall: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run(cfg.replace(epochs=1, max_batches=2), log=quiet, run_dir=root / "warmup")  # first-run costs
        for i in range(repeats):
            start = time.perf_counter()
            result = run(cfg, log=quiet, run_dir=root / f"plain{i}")
            plain_wall.append((time.perf_counter() - start) / epochs)
            plain_train += [e["train_seconds"] for e in result.epochs]

            start = time.perf_counter()
            run_sweep(build_plan(cfg, [model], []), root / f"sweep{i}", InlineExecutor(), log=quiet)
            sweep_wall.append((time.perf_counter() - start) / epochs)
            rows = [json.loads(line) for line in (root / f"sweep{i}" / "results.jsonl").read_text().splitlines()]
            sweep_train += [r["train_seconds"] for r in rows if r["kind"] == "epoch"]
    plain, swept = statistics.median(plain_train), statistics.median(sweep_train)
    return {
        "config": {"model": model, "emsize": emsize, "nhid": nhid, "epochs": epochs,
                   "max_batches": max_batches, "data": data or "embedded", "repeats": repeats},
        "plain_train_seconds_per_epoch": plain, "sweep_train_seconds_per_epoch": swept,
        "plain_wall_seconds_per_epoch": statistics.median(plain_wall),
        "sweep_wall_seconds_per_epoch": statistics.median(sweep_wall),
        "train_overhead_percent": 100.0 * (swept - plain) / plain,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-batches", type=int, default=50)
    parser.add_argument("--emsize", type=int, default=200)
    parser.add_argument("--nhid", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=None)
    a = parser.parse_args()
    print(json.dumps(measure(epochs=a.epochs, max_batches=a.max_batches, emsize=a.emsize, nhid=a.nhid,
                             repeats=a.repeats, data=a.data), indent=1))
