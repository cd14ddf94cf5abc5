"""Cost of `--memory` (saved-tensor hooks, module hooks, RSS reads at each phase) beside the bare loop.

Many short interleaved pairs (A B, B A, ...) of the reference train(), as
bench_loop.phase_recording_ratio does; the median ratio, min and max.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench_loop import interleaved_ratio, prepare, time_train

TARGET = 1.03


def time_with_memory(setup: dict[str, Any], batches: int) -> float:
    from lmprof.instrument.memory import MemoryRecorder

    recorder = MemoryRecorder()
    recorder.install()
    try:
        return time_train(setup, batches, recorder)
    finally:
        recorder.uninstall()
        recorder.proc.close()


def memory_ratio(data: str | Path | None = None, pairs: int = 25, batches: int = 4) -> dict[str, Any]:
    """--memory on / off over interleaved pairs: median, min, max of the time ratios."""
    return interleaved_ratio(prepare(data), time_with_memory, TARGET, pairs, batches)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(memory_ratio(sys.argv[1] if len(sys.argv) > 1 else None, pairs=9), indent=1))
