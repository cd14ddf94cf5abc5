"""The phase table's note when the instruments changed the program they watch.

Reads the ``overhead`` section the runner writes (lmprof.instrument.sampling). Its
one-line cost, which compare writes too, is ``lmprof.record.derived.cost_line``.
"""

from __future__ import annotations

from typing import Any

from lmprof.record.sections import BARE_MS_PER_BATCH, WATCHED_MS_PER_BATCH, WATCHED_OVER_BARE

ABOVE = 1.10  # a watched step this much slower than a bare one: the tables describe a changed program


def watched_program_note(overhead: dict[str, Any]) -> str:
    """Under the phase table, when a watched step is over 10% slower than a bare one; '' otherwise."""
    ratio = overhead.get(WATCHED_OVER_BARE) if overhead else None
    if not isinstance(ratio, (int, float)) or ratio <= ABOVE:
        return ""
    return (f"These shares are of the watched program: a watched step takes {overhead[WATCHED_MS_PER_BATCH]:.2f} "
            f"ms, the bare step {overhead[BARE_MS_PER_BATCH]:.2f} ms ({ratio:.2f}x); "
            "--sample-every K with a larger K watches fewer batches.")
