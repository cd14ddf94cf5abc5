"""Phase recorders: listen to the reference loop's markers and total the time of each phase.

On CPU a monotonic host clock is the truth. On CUDA, work is queued and the
host runs ahead, so a host clock charges a kernel's time to whichever line
next waits for the GPU (usually ``loss.item()``). The CUDA recorder records a
CUDA event at each phase boundary instead, and reads the events only when
they have completed (no synchronisation per step), so GPU time lands in the
phase that launched it. It keeps the host time beside it: the gap between
the two columns is what a host-clock profiler gets wrong.

Each step phase also keeps its per-call times, in call order (``samples``
in result.json): a comparison bootstraps over them, and a run cut short by
--max-batches is projected from them to a whole epoch.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from lmprof.instrument.base import Instrument, RunContext
from lmprof.instrument.cuda_events import EventPool
from lmprof.phases import BETWEEN, LABELS, PHASE_NAMES, STEP_PHASES, UNCOVERED
from lmprof.record.derived import phase_row
from lmprof.record.result import RunResult
from lmprof.record.sections import (FULL_BATCHES_PER_EPOCH, HOST_SECONDS, SAMPLES_EVERY, TRAIN_COVERAGE,
    TRAIN_SECONDS, WALL_SECONDS, WATCHED_CALLS)

Clock = Callable[[], float]
SAMPLES_KEPT = 4096  # per phase: 40 WikiText-2 epochs made ~1M floats; a bootstrap needs a few thousand


class BoundedSamples(list):  # type: ignore[type-arg]
    """A phase's per-call seconds, at most SAMPLES_KEPT of them: every call until then, then one in 2, 4, 8 ...

    The calls kept are the same in every phase (call 0, k, 2k, ...: each phase is called once a batch),
    so a comparison can still add the step phases batch by batch, and they stay in call order.
    """

    def __init__(self, limit: int = SAMPLES_KEPT) -> None:
        super().__init__()
        self.limit = limit
        self.every = 1  # one call in ``every`` is kept
        self.calls = 0

    def append(self, seconds: float) -> None:
        if self.calls % self.every == 0:
            super().append(seconds)
            if len(self) >= self.limit:
                self[:] = self[::2]
                self.every *= 2
        self.calls += 1


class HostRecorder:
    """Seconds per phase from a host clock (``clock`` is injectable for tests)."""

    clock_name = "host"

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self.clock = clock
        self.host_seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.host_samples: dict[str, BoundedSamples] = defaultdict(BoundedSamples)  # step phases only: seconds per call
        self._open: list[tuple[str, float]] = []
        # inside training steps but outside every phase: instruments listening before this timer (gpu_busy's
        # profiler windows); the Sampler adds it (lmprof.instrument.sampling), the table names it
        self.between_seconds = 0.0

    def enter(self, name: str) -> None:
        self._open.append((name, self.clock()))

    def exit(self, name: str) -> None:
        opened, t0 = self._open.pop()
        seconds = self.clock() - t0
        self.host_seconds[opened] += seconds
        self.calls[opened] += 1
        if opened in STEP_PHASES:
            self.host_samples[opened].append(seconds)

    def device_seconds(self) -> dict[str, float]:
        return dict(self.host_seconds)

    def device_samples(self) -> dict[str, list[float]]:
        """Per-call seconds of each step phase on the device's clock, in call order (one in ``sample_every``)."""
        return {name: list(values) for name, values in self.host_samples.items()}

    def sample_every(self) -> dict[str, int]:
        """Per step phase: one call in how many has its sample kept (1: every call)."""
        return {name: values.every for name, values in self.host_samples.items()}


class CudaEventRecorder(HostRecorder):
    """Host time plus GPU time from CUDA events recorded at each phase's start and end.

    ``event_factory`` makes an object with ``record()``, ``query()`` and
    ``elapsed_time(other)`` (ms), as ``torch.cuda.Event(enable_timing=True)``
    does; tests inject a fake to run this logic on a CPU. ``pool``: where the
    events come from (make_recorder gives the pooled, cached-stream one).

    Sampled (``watch(False)``, lmprof.instrument.sampling): a bare batch's step
    phases keep the host clock only; a step phase's GPU total is then its
    watched calls' total scaled to all its calls, and its samples are the
    watched calls'. The events sit inside the host clock's span (clock, then
    event; event, then clock), so their host cost is inside the phases.
    """

    clock_name = "cuda events"
    FOLD_EVERY = 2048  # completed event pairs are folded into totals past this many pending

    def __init__(self, event_factory: Callable[[], Any], synchronize: Callable[[], None],
                 clock: Clock = time.perf_counter, pool: EventPool | None = None) -> None:
        super().__init__(clock)
        self.pool = pool or EventPool(event_factory)
        self.synchronize = synchronize
        self.events_on = True
        self.gpu_seconds: dict[str, float] = defaultdict(float)
        self.gpu_calls: dict[str, int] = defaultdict(int)
        self.gpu_samples: dict[str, BoundedSamples] = defaultdict(BoundedSamples)
        self._events: list[Any] = []  # start events still open (None: opened bare)
        self._pending: list[tuple[str, Any, Any]] = []  # (name, start, end) not yet read

    def watch(self, on: bool) -> None:
        """Sampling: events on the step phases of watched batches only (every phase outside them)."""
        self.events_on = on

    def enter(self, name: str) -> None:
        super().enter(name)
        self._events.append(self.pool.stamp() if self.events_on else None)

    def exit(self, name: str) -> None:
        start = self._events.pop()
        if start is not None:
            self._pending.append((name, start, self.pool.stamp()))
            if len(self._pending) >= self.FOLD_EVERY:
                self._fold(wait=False)
        super().exit(name)

    def _fold(self, wait: bool) -> None:
        """Read finished event pairs into totals; with wait, synchronise first (once, at the end)."""
        if wait:
            self.synchronize()
        keep = []
        for name, start, end in self._pending:
            # events on one stream complete in order, so the pairs read here are in call order
            if wait or end.query():
                seconds = start.elapsed_time(end) / 1000.0
                self.gpu_seconds[name] += seconds
                self.gpu_calls[name] += 1
                if name in STEP_PHASES:
                    self.gpu_samples[name].append(seconds)
                self.pool.give(start, end)
            else:
                keep.append((name, start, end))
        self._pending = keep

    def device_seconds(self) -> dict[str, float]:
        """GPU seconds per phase; a sampled step phase's watched total scaled to all its calls."""
        self._fold(wait=True)
        return {name: seconds * self.calls[name] / self.gpu_calls[name] if self.gpu_calls[name] else seconds
                for name, seconds in self.gpu_seconds.items()}

    def device_samples(self) -> dict[str, list[float]]:
        self._fold(wait=True)
        return {name: list(values) for name, values in self.gpu_samples.items()}

    def sample_every(self) -> dict[str, int]:
        return {name: values.every for name, values in self.gpu_samples.items()}

    def watched_calls(self) -> dict[str, int]:
        """Per step phase: the calls its GPU time was measured on (fewer than its calls when sampled)."""
        self._fold(wait=True)
        return {name: self.gpu_calls[name] for name in STEP_PHASES if name in self.gpu_calls}


class SyncedHostRecorder(HostRecorder):
    """MPS: the host clock, read after waiting for the device at each phase boundary.

    MPS runs asynchronously like CUDA, and lmprof has no MPS timing events: without the wait a phase's
    kernels would land on whichever phase next waits (loss.item()). The waits cost throughput, not truth.
    """

    clock_name = "host, synchronised"

    def __init__(self, synchronize: Callable[[], None], clock: Clock = time.perf_counter) -> None:
        super().__init__(clock)
        self.synchronize = synchronize

    def enter(self, name: str) -> None:
        self.synchronize()
        super().enter(name)

    def exit(self, name: str) -> None:
        self.synchronize()
        super().exit(name)


def make_recorder(device: Any, clock: Clock = time.perf_counter) -> HostRecorder:
    if getattr(device, "type", str(device)) == "mps":
        import torch

        return SyncedHostRecorder(torch.mps.synchronize, clock)
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        from lmprof.instrument.cuda_events import cuda_pool

        return CudaEventRecorder(lambda: torch.cuda.Event(enable_timing=True), torch.cuda.synchronize, clock,
                                 pool=cuda_pool(device))
    return HostRecorder(clock)


def phase_rows(recorder: HostRecorder, wall_seconds: float) -> list[dict[str, Any]]:
    """One row per phase that ran, in program order, plus the uncovered remainder."""
    device = recorder.device_seconds()
    samples = recorder.device_samples()
    every = recorder.sample_every()
    watched = recorder.watched_calls() if isinstance(recorder, CudaEventRecorder) else {}
    rows = []
    for name in sorted(recorder.calls, key=lambda n: PHASE_NAMES.index(n) if n in PHASE_NAMES else len(PHASE_NAMES)):
        calls = recorder.calls[name]
        row = phase_row(name, LABELS.get(name, name), calls=calls, seconds=device.get(name, 0.0),
                        host_seconds=recorder.host_seconds[name], wall_seconds=wall_seconds,
                        samples=samples.get(name, []) if name in STEP_PHASES else None)
        if name in STEP_PHASES:
            if watched.get(name, calls) < calls:  # sampled CUDA events: seconds scaled from these calls
                row[WATCHED_CALLS] = watched[name]
            if every.get(name, 1) > 1:  # a long run: one call in this many kept (SAMPLES_KEPT at most)
                row[SAMPLES_EVERY] = every[name]
        rows.append(row)
    if recorder.between_seconds > 0:
        between = recorder.between_seconds
        rows.append(phase_row(BETWEEN, "instruments' own work (profiler windows)", calls=0, seconds=between,
                              host_seconds=between, wall_seconds=wall_seconds))
    covered = sum(r[HOST_SECONDS] for r in rows)
    rest = max(wall_seconds - covered, 0.0)
    rows.append(phase_row(UNCOVERED, "time outside every phase", calls=0, seconds=rest, host_seconds=rest,
                          wall_seconds=wall_seconds))
    return rows


class PhaseInstrument(Instrument):
    """The phases instrument: records every marker; contributes ``phases`` and ``phase_summary``."""

    name = "phases"

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self.clock = clock
        self.rec: HostRecorder | None = None
        self.started = self.stopped = 0.0
        self.full_batches_per_epoch: int | None = None

    def start(self, context: RunContext) -> None:
        self.rec = make_recorder(context.device, self.clock)
        self.full_batches_per_epoch = context.full_batches_per_epoch
        self.started = self.clock()

    def recorder(self) -> HostRecorder | None:
        return self.rec

    @property
    def switched(self) -> bool:
        """On CUDA the sampler switches the events (lmprof.instrument.sampling); a host clock costs too little."""
        return isinstance(self.rec, CudaEventRecorder)

    def watch(self, on: bool) -> None:
        if isinstance(self.rec, CudaEventRecorder):
            self.rec.watch(on)

    def stop(self) -> None:
        self.stopped = self.clock()

    def contribute(self, result: RunResult, run_dir: Path) -> None:
        assert self.rec is not None
        wall = self.stopped - self.started
        result.phases = phase_rows(self.rec, wall)
        train_seconds = sum(e.get(TRAIN_SECONDS, 0.0) for e in result.metrics.get("epochs", []))
        # the step phases, and the named instruments' work between them (BETWEEN), are train()'s known time
        step_host = sum(r[HOST_SECONDS] for r in result.phases if r["name"] in (*STEP_PHASES, BETWEEN))
        result.phase_summary = {
            "clock": self.rec.clock_name,
            WALL_SECONDS: wall,
            TRAIN_SECONDS: train_seconds,
            # share of train()'s wall time that the step phases explain (host clock on both sides)
            TRAIN_COVERAGE: step_host / train_seconds if train_seconds > 0 else None,
            # a whole epoch's batch count, and whether --max-batches / --dry-run (or Ctrl-C) cut training
            # short: views project a cut run's shares to whole epochs (lmprof.views.projection)
            FULL_BATCHES_PER_EPOCH: self.full_batches_per_epoch,
            "cut": self._cut(result),
        }

    def _cut(self, result: RunResult) -> bool:
        full = self.full_batches_per_epoch
        epochs = result.metrics.get("epochs", [])
        return bool(full) and any(int(e.get("batches", 0)) < full for e in epochs)
