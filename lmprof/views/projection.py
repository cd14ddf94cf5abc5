"""Shares projected to whole epochs, for a run that --max-batches (or --dry-run) cut short.

A run cut to 50 of 310 training batches still evaluates the whole
validation and test splits, so its measured shares make evaluation look
like the program's main cost; in a whole epoch training is most of it. The
projection scales each training-step phase from the batches that ran to
whole epochs (its mean seconds per batch × a whole epoch's batches × the
epochs run) and keeps every other phase (evaluation, set-up, checkpoints,
time outside phases) as measured. Shares are then of that projected run.

    >>> projected_shares(RunResult.load("runs/demo"))  # doctest: +SKIP
    {'data': 0.004, 'forward': 0.21, ..., 'evaluate_valid': 0.05, ...}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lmprof.phases import STEP_PHASES
from lmprof.record.sections import FULL_BATCHES_PER_EPOCH

if TYPE_CHECKING:
    from lmprof.record.result import RunResult


def batches_run(result: "RunResult") -> int:
    return sum(int(e.get("batches", 0)) for e in result.epochs)


def scale(result: "RunResult") -> float | None:
    """Whole epochs' batches over the batches that ran; None when training ran whole epochs (or not at all)."""
    summary = result.phase_summary
    full = summary.get(FULL_BATCHES_PER_EPOCH)
    ran = batches_run(result)
    if not summary.get("cut") or not full or ran <= 0:
        return None
    return int(full) * len(result.epochs) / ran


def projected_seconds(result: "RunResult") -> dict[str, float] | None:
    """Each phase's seconds in the projected run (step phases scaled, the rest as measured); None if not cut."""
    factor = scale(result)
    if factor is None:
        return None
    return {r["name"]: float(r.get("seconds", 0.0)) * (factor if r["name"] in STEP_PHASES else 1.0)
            for r in result.phases}


def projected_shares(result: "RunResult") -> dict[str, float] | None:
    """Each phase's share of the projected run's time; None when the run was not cut."""
    seconds = projected_seconds(result)
    if seconds is None:
        return None
    total = sum(seconds.values())
    return {name: value / total if total > 0 else 0.0 for name, value in seconds.items()}


def projection_note(result: "RunResult") -> str:
    """One sentence that says what the projected column is ("" when the run was not cut)."""
    if scale(result) is None:
        return ""
    full = int(result.phase_summary[FULL_BATCHES_PER_EPOCH])
    epochs = len(result.epochs)
    ran = batches_run(result)
    return (f"Training was cut short ({ran:,} of {full * epochs:,} batches in {epochs} epoch"
            f"{'s' if epochs != 1 else ''}): 'full epoch' shares project each training step phase to whole "
            f"epochs (its mean per batch × {full:,} batches per epoch); evaluation and the rest as measured.")
