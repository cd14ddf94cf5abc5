"""What the instruments cost on this run, in one line (show, the report, the notebook, compare).

Reads the ``overhead`` section the runner writes (lmprof.instrument.sampling):

    >>> cost_line({"sample_every": 4, "instruments": ["components"], "batches": 24, "watched_batches": 6,
    ...            "watched_ms_per_batch": 13.0, "bare_ms_per_batch": 10.0, "ratio": 1.3, "run_cost": 0.075})
    'instruments cost +8% on this run (components watched 6 of 24 batches, 1 in 4; a watched batch 13.00 ms, a bare one 10.00 ms: 1.30x)'
"""

from __future__ import annotations

from typing import Any

from lmprof.record.derived import cost_line  # noqa: F401  (the line compare writes too: lmprof.record.derived)
from lmprof.record.sections import BARE_MS_PER_BATCH, WATCHED_MS_PER_BATCH

ABOVE = 1.10  # a watched step this much slower than a bare one: the tables describe a changed program


def watched_program_note(overhead: dict[str, Any]) -> str:
    """Under the phase table, when a watched step is over 10% slower than a bare one; '' otherwise."""
    ratio = overhead.get("ratio") if overhead else None
    if not isinstance(ratio, (int, float)) or ratio <= ABOVE:
        return ""
    return (f"These shares are of the watched program: a watched step takes {overhead[WATCHED_MS_PER_BATCH]:.2f} "
            f"ms, the bare step {overhead[BARE_MS_PER_BATCH]:.2f} ms ({ratio:.2f}x); "
            "--sample-every K with a larger K watches fewer batches.")
