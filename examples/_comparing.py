"""What the three classroom comparisons share: a short profile of one configuration into its folder.

Imported by examples/compare_tied.py, compare_lstm_gru.py and compare_bptt.py
(run from anywhere: Python puts the script's own folder on the path).
"""

from __future__ import annotations

import os
from pathlib import Path

from lmprof import RunConfig, RunResult, run
from lmprof.instrument.flops import FlopInstrument
from lmprof.instrument.recorders import PhaseInstrument

BATCHES = 40  # enough batches for a median and its interval; one epoch on the embedded corpus
# The test suite runs each lesson short (tests/test_examples.py): the numbers it checks (FLOP ratios,
# parameter counts) do not depend on how many batches ran; a class runs the lesson as written.
BATCHES = int(os.environ.get("LMPROF_EXAMPLE_BATCHES", BATCHES))


def profile(folder: Path, **changes: object) -> RunResult:
    """A short run under the phase timer and FLOP counter: what `lmprof profile` records, minus line times."""
    cfg = RunConfig(epochs=1, max_batches=BATCHES, device="cpu", **changes)  # type: ignore[arg-type]
    return run(cfg, command="profile", instruments=[PhaseInstrument(), FlopInstrument()], log=lambda line: None,
               run_dir=folder, force=True)  # a second run of the example replaces its own folders
