"""The reference loop without any instrument: ms/batch and tokens/s for a fixed number of batches.

Times `train()` only (corpus, model and a warm-up batch are prepared first), as
upstream's `ms/batch` log field does, with a monotonic clock.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable


def prepare(data: str | Path | None, **overrides: Any) -> dict[str, Any]:
    """Corpus, batchified training data and a model for the default config (or overrides)."""
    import torch

    from lmprof.config import RunConfig
    from lmprof.corpora import synth
    from lmprof.reference.data import Corpus
    from lmprof.reference.loop import batchify, build_model

    cfg = RunConfig(data=str(data) if data else None, epochs=1, **overrides)
    torch.manual_seed(cfg.seed)
    corpus = Corpus(str(data or synth.default_corpus()))
    train_data = batchify(corpus.train, cfg.batch_size)
    ntokens = len(corpus.dictionary)
    model = build_model(cfg, ntokens, torch.device("cpu"))
    return {"cfg": cfg, "train_data": train_data, "ntokens": ntokens, "model": model,
            "criterion": torch.nn.NLLLoss()}


def time_train(setup: dict[str, Any], batches: int, recorder: Any = None) -> float:
    """Seconds for `batches` training batches of the reference train(), with `recorder` listening if given."""
    from contextlib import nullcontext

    from lmprof.phases import listening
    from lmprof.reference.loop import train

    cfg = setup["cfg"].replace(max_batches=batches, log_interval=10**9)
    with listening(recorder) if recorder is not None else nullcontext():
        start = time.perf_counter()
        train(setup["model"], setup["train_data"], cfg, setup["criterion"], setup["ntokens"],
              lr=cfg.lr, epoch=1, log=lambda line: None)
        return time.perf_counter() - start


def interleaved_ratio(setup: dict[str, Any], watched: Callable[[dict[str, Any], int], float], target: float,
                      pairs: int = 25, batches: int = 4) -> dict[str, Any]:
    """An instrument on / off over interleaved pairs (A B, B A, ...): median, min and max of the time ratios.

    ``watched(setup, batches)`` times ``batches`` training batches with the instrument on; alternating
    which side goes first puts the machine's drift on both sides, so the median sees the instrument.
    """
    import statistics

    time_train(setup, 2)
    watched(setup, 2)  # warm-up on both sides
    ratios = []
    for i in range(pairs):
        if i % 2:
            on = watched(setup, batches)
            off = time_train(setup, batches)
        else:
            off = time_train(setup, batches)
            on = watched(setup, batches)
        ratios.append(on / off)
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "ratios": ratios,
            "pairs": pairs, "batches": batches, "target": target}


def phase_recording_ratio(data: str | Path | None = None, pairs: int = 25, batches: int = 4) -> dict[str, Any]:
    """Phase recorder on / off over many short interleaved pairs: median, min, max."""
    from lmprof.instrument.recorders import HostRecorder

    return interleaved_ratio(prepare(data), lambda setup, n: time_train(setup, n, HostRecorder()), 1.02,
                             pairs, batches)


def measure(data: str | Path | None = None, batches: int = 40, repeats: int = 3) -> dict[str, Any]:
    setup = prepare(data)
    time_train(setup, 2)  # warm-up: first-call allocations, thread pool start
    runs = sorted(time_train(setup, batches) for _ in range(repeats))
    median = runs[len(runs) // 2]
    cfg = setup["cfg"]
    return {"batches": batches, "ms_per_batch": 1000 * median / batches,
            "tokens_per_s": batches * cfg.batch_size * cfg.bptt / median,
            "min_ms_per_batch": 1000 * runs[0] / batches, "max_ms_per_batch": 1000 * runs[-1] / batches,
            "vocabulary": setup["ntokens"]}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure(sys.argv[1] if len(sys.argv) > 1 else None, batches=10, repeats=1), indent=1))
