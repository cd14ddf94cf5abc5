"""Cost of `--components` (module hooks, one gradient hook per component, a clock read at each) beside the bare loop.

Many short interleaved pairs (A B, B A, ...) of the reference train(), as
bench_loop.phase_recording_ratio does; the median ratio, min and max.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench_loop import interleaved_ratio, prepare, time_train

TARGET = 1.03


def time_with_components(setup: dict[str, Any], batches: int) -> float:
    import torch

    from lmprof.instrument.base import RunContext
    from lmprof.instrument.components import ComponentInstrument

    timer = ComponentInstrument()
    timer.start(RunContext(cfg=setup["cfg"], device=torch.device("cpu"), run_dir=Path(tempfile.gettempdir()),
                           batches_per_epoch=batches))
    try:
        return time_train(setup, batches, timer)
    finally:
        timer.stop()


def components_ratio(data: str | Path | None = None, pairs: int = 25, batches: int = 4) -> dict[str, Any]:
    """--components on / off over interleaved pairs: median, min, max of the time ratios."""
    return interleaved_ratio(prepare(data), time_with_components, TARGET, pairs, batches)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(components_ratio(sys.argv[1] if len(sys.argv) > 1 else None, pairs=9), indent=1))
