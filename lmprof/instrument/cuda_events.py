"""CUDA events made once and reused, recorded on a stream looked up once: a time stamp on the GPU's timeline.

On a launch-bound GPU every microsecond of host work at a marker is added
to the step. ``torch.cuda.Event(enable_timing=True)`` per stamp creates a
driver event each time, and ``Event.record()`` with no stream asks
``torch.cuda.current_stream()`` again, which walks the lazy-initialisation
checks (``is_initialized``, ``device_count``) on every call: 31k and 16k
calls in 150 batches of ``--components`` on the H200. The pool keeps
finished events for reuse and records each on the stream it looked up when
the run started (the reference loop never switches streams).

Tests pass a fake ``factory`` whose events have ``record()``, ``query()`` and
``elapsed_time(other)`` (ms), as torch's do.
"""

from __future__ import annotations

from typing import Any, Callable


class EventPool:
    """``stamp()``: an event recorded now on the cached stream; ``give(*events)``: back for reuse once read."""

    __slots__ = ("factory", "spare", "made", "_record", "_stream", "_stream_of")

    def __init__(self, factory: Callable[[], Any], record: Callable[[Any, Any], None] | None = None,
                 stream_of: Callable[[], Any] | None = None) -> None:
        self.factory = factory
        self.spare: list[Any] = []
        self.made = 0
        self._record = record  # (event, stream) -> None; None: event.record()
        self._stream: Any = None
        self._stream_of = stream_of  # looked up at the first stamp (CUDA may start after the pool is made)

    def stamp(self) -> Any:
        if self.spare:
            event = self.spare.pop()
        else:
            event = self.factory()
            self.made += 1
        if self._record is None:
            event.record()
        else:
            if self._stream is None and self._stream_of is not None:
                self._stream = self._stream_of()
            self._record(event, self._stream)
        return event

    def give(self, *events: Any) -> None:
        self.spare += events


def cuda_pool(device: Any = None) -> EventPool:
    """Timing events on ``device``'s current stream, recorded through the C binding (no per-call stream lookup)."""
    import torch

    base = getattr(torch._C, "_CudaEventBase", None)
    record = base.record if base is not None and hasattr(base, "record") else (lambda e, s: e.record(s))
    return EventPool(lambda: torch.cuda.Event(enable_timing=True), record, lambda: torch.cuda.current_stream(device))
