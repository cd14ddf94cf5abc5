"""The one list of phase names, and the markers the reference loop uses.

The loop wraps each part of its work in ``with phase("forward"):``. When no
recorder listens, ``phase`` returns one shared do-nothing context manager, so
a marker costs a function call and two empty method calls (well under a
microsecond, against tens of milliseconds per training step).

A recorder (see ``lmprof.instrument.recorders``) is any object with
``enter(name)`` and ``exit(name)``; ``listening(recorder)`` installs it for the
duration of a ``with`` block. This module imports nothing heavy and knows
nothing about who listens.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Protocol


@dataclass(frozen=True)
class Phase:
    name: str
    label: str  # what a person reads in tables and on the flow chart
    scope: str  # "run": once per run; "epoch": once per epoch, after train(); "step": once per training batch


# In program order. The flow chart, the phase table and the trace all read
# this list; the reference loop uses exactly these names.
PHASES: tuple[Phase, ...] = (
    Phase("corpus", "read corpus (Dictionary, tokenize)", "run"),
    Phase("batchify", "batchify", "run"),
    Phase("model_build", "build model", "run"),
    Phase("data", "get_batch", "step"),
    Phase("zero_grad", "zero_grad", "step"),
    Phase("repackage", "repackage_hidden", "step"),  # recurrent models only
    Phase("forward", "forward", "step"),
    Phase("loss", "loss", "step"),
    Phase("backward", "backward (BPTT)", "step"),
    Phase("clip", "clip gradients", "step"),
    Phase("update", "update parameters", "step"),
    # loss.item() copies the loss to the host: on a GPU the host waits there for the step's queued kernels.
    Phase("logging", "loss.item() (waits for the device), logging", "step"),
    Phase("evaluate_valid", "evaluate on validation", "epoch"),
    Phase("checkpoint_save", "save best / anneal lr", "epoch"),
    Phase("checkpoint_load", "load best", "run"),
    Phase("evaluate_test", "evaluate on test", "run"),
)
PHASE_NAMES: tuple[str, ...] = tuple(p.name for p in PHASES)
STEP_PHASES: tuple[str, ...] = tuple(p.name for p in PHASES if p.scope == "step")
EPOCH_PHASES: tuple[str, ...] = tuple(p.name for p in PHASES if p.scope == "epoch")
LABELS: dict[str, str] = {p.name: p.label for p in PHASES}
# The row for wall time that no phase covers (loop bookkeeping, prints, ...).
UNCOVERED = "(outside phases)"
# The row for time instruments spent inside training steps but outside every phase (profiler windows).
BETWEEN = "(instruments between phases)"


class Recorder(Protocol):
    def enter(self, name: str) -> None: ...
    def exit(self, name: str) -> None: ...


class _NullSpan:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _Span:
    __slots__ = ("recorder", "name")

    def __init__(self, recorder: Recorder, name: str) -> None:
        self.recorder = recorder
        self.name = name

    def __enter__(self) -> None:
        self.recorder.enter(self.name)

    def __exit__(self, *exc: object) -> None:
        self.recorder.exit(self.name)


_NULL_SPAN = _NullSpan()
_recorder: Recorder | None = None


def phase(name: str) -> _NullSpan | _Span:
    """Mark a phase of the reference loop: ``with phase("backward"): ...``."""
    if _recorder is None:
        return _NULL_SPAN
    return _Span(_recorder, name)


@contextmanager
def listening(recorder: Recorder) -> Iterator[Recorder]:
    """Install ``recorder`` for the markers while the block runs."""
    global _recorder
    previous, _recorder = _recorder, recorder
    try:
        yield recorder
    finally:
        _recorder = previous


class Fanout:
    """One recorder that forwards every marker to several (phases + trace + progress)."""

    def __init__(self, *recorders: Recorder) -> None:
        self.recorders = recorders

    def enter(self, name: str) -> None:
        for r in self.recorders:
            r.enter(name)

    def exit(self, name: str) -> None:
        for r in reversed(self.recorders):
            r.exit(name)
