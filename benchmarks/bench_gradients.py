"""Cost of `--grad-stats` (one global gradient norm per batch, after backward) beside the bare loop.

Many short interleaved pairs (A B, B A, ...) of the reference train(), as
bench_loop.phase_recording_ratio does; the median ratio, min and max.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_loop import interleaved_ratio, prepare, time_train

TARGET = 1.02


def time_with_grad_stats(setup: dict[str, Any], batches: int) -> float:
    from lmprof.instrument.gradients import GradStatsInstrument

    stats = GradStatsInstrument()
    stats.clip = setup["cfg"].clip
    try:
        return time_train(setup, batches, stats)
    finally:
        stats.stop()


def grad_stats_ratio(data: str | Path | None = None, pairs: int = 25, batches: int = 4) -> dict[str, Any]:
    """--grad-stats on / off over interleaved pairs: median, min, max of the time ratios."""
    return interleaved_ratio(prepare(data), time_with_grad_stats, TARGET, pairs, batches)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(grad_stats_ratio(sys.argv[1] if len(sys.argv) > 1 else None, pairs=25), indent=1))
