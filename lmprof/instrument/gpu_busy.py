"""Where the GPU waits: each phase's GPU busy fraction, from a short torch.profiler window on a few batches.

On a GPU the host launches kernels and the device runs them. A phase whose
kernels are small finishes each one before the host has launched the next:
the device is idle most of the phase's time, and the phase is *launch-bound*
(a faster GPU would not help; fewer launches would). A phase whose kernels
keep the device busy is *compute-bound* (bigger or fewer-but-fused kernels, or
a faster GPU, would help).

The measurement: for ``WATCHED`` batches after a few warm ones, every phase is
an annotated window in a torch.profiler session, with a synchronisation at its
start and end, so the window holds exactly that phase's kernels and ends when
the last of them has run. Then

    GPU busy = time covered by kernels inside the window / the window's length

(overlapping kernels counted once). The synchronisations change those few
batches only; the phase table's times come from every batch.

    >>> busy_by_phase([Event("lmprof:forward", "cpu", 0, 100), Event("k", "cuda", 10, 40)])["forward"]["busy"]
    0.3
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from lmprof.instrument.base import Instrument, RunContext
from lmprof.phases import STEP_PHASES
from lmprof.record.sections import GPU_BUSY

if TYPE_CHECKING:
    from lmprof.record.result import RunResult

PREFIX = "lmprof:"  # the annotation name of a phase's window: lmprof:forward
ANNOTATIONS = (PREFIX, "ProfilerStep")  # ranges, not work: on the GPU's timeline they span their kernels
WATCH_FROM = 5  # the first watched batch: cuDNN's algorithm search and the allocator have settled by then
WATCHED = 3
LAUNCH_BOUND, MIXED, COMPUTE_BOUND = "launch-bound", "mixed", "compute-bound"
REGIMES = (LAUNCH_BOUND, MIXED, COMPUTE_BOUND)
LAUNCH_BELOW = 0.40  # busy under this: the device idles most of the phase (well under half)
COMPUTE_FROM = 0.75  # busy from this: the kernels keep the device busy


@dataclass(frozen=True)
class Event:
    """One profiler event, reduced to what the computation needs (times in microseconds)."""

    name: str
    device: str  # "cpu" (an operator or an annotation) or "cuda" (a kernel, memcpy or memset on the device)
    start: float
    end: float


def regime(busy: float) -> str:
    """One word for a busy fraction: launch-bound (well under half), compute-bound, or mixed."""
    if busy < LAUNCH_BELOW:
        return LAUNCH_BOUND
    return COMPUTE_BOUND if busy >= COMPUTE_FROM else MIXED


def covered(intervals: Iterable[tuple[float, float]], lo: float, hi: float) -> float:
    """Length of [lo, hi] covered by the union of ``intervals`` (overlaps counted once)."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi)
    total, reach = 0.0, lo
    for a, b in clipped:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def busy_by_phase(events: list[Event], prefix: str = PREFIX) -> dict[str, dict[str, float]]:
    """Per phase: its windows' seconds, the kernel seconds inside them, busy (their ratio), and windows seen."""
    ranges = (prefix, *ANNOTATIONS)
    kernels = [(e.start, e.end) for e in events if e.device == "cuda" and not e.name.startswith(ranges)]
    out: dict[str, dict[str, float]] = {}
    for e in events:
        if e.device != "cpu" or not e.name.startswith(prefix):
            continue
        row = out.setdefault(e.name[len(prefix):], {"window_seconds": 0.0, "kernel_seconds": 0.0, "windows": 0})
        row["window_seconds"] += (e.end - e.start) / 1e6
        row["kernel_seconds"] += covered(kernels, e.start, e.end) / 1e6
        row["windows"] += 1
    for row in out.values():
        row["busy"] = row["kernel_seconds"] / row["window_seconds"] if row["window_seconds"] > 0 else 0.0
    return out


def events_of(prof: Any) -> list[Event]:
    """A finished torch.profiler session's events as Events (device events: kernels, memcpy, memset)."""
    from torch.autograd import DeviceType

    out = []
    for e in prof.events():
        device = "cuda" if getattr(e, "device_type", None) == DeviceType.CUDA else "cpu"
        if device == "cuda" and (getattr(e, "is_user_annotation", False) or e.name.startswith(ANNOTATIONS)):
            continue  # the GPU-side copy of an annotation spans the whole window: it is not a kernel
        out.append(Event(e.name, device, float(e.time_range.start), float(e.time_range.end)))
    return out


class BusyRecorder:
    """Listens to the markers; profiles each watched batch (one profiler session each) and annotates its phases.

    It watches ``count`` of the batches it hears, from its ``first``: with a Sampler in front (on CUDA,
    --sample-every K), it hears only the batches the Sampler watches, so the profiler's cost falls on
    batches that already pay for watching and the bare batches stay bare.
    """

    def __init__(self, first: int, count: int, activities: list[Any] | None = None) -> None:
        self.first, self.count = first, count
        self.activities = activities  # None: CPU and CUDA (tests on a CPU pass the CPU's alone)
        self.batch = 0  # batches heard and ended so far (a batch ends when its logging phase exits)
        self.prof: Any = None
        self.finished: list[Any] = []  # one stopped profiler per watched batch, parsed by collect()
        self.open: dict[str, Any] = {}
        self.sessions: list[list[Event]] = []  # each session's events (each has its own time base)
        self.done = False

    @property
    def events(self) -> list[Event]:
        return [e for session in self.sessions for e in session]

    def _start(self) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile

        torch.cuda.synchronize()
        self.prof = profile(activities=self.activities or [ProfilerActivity.CPU, ProfilerActivity.CUDA])
        self.prof.start()

    def _stop(self) -> None:
        import torch

        torch.cuda.synchronize()
        self.prof.stop()
        self.finished.append(self.prof)  # read after the run: parsing takes time
        self.prof = None
        self.done = len(self.finished) >= self.count

    def collect(self) -> None:
        """The watched batches' events, parsed now (after the run, off its clock)."""
        self.sessions += [events_of(prof) for prof in self.finished]
        self.finished = []

    def enter(self, name: str) -> None:
        if self.prof is None and not self.done and name == "data" and self.batch >= self.first:
            self._start()
        if self.prof is not None and name in STEP_PHASES:
            import torch

            torch.cuda.synchronize()  # the window starts with the device idle: only this phase's kernels in it
            span = torch.profiler.record_function(PREFIX + name)
            span.__enter__()
            self.open[name] = span

    def exit(self, name: str) -> None:
        span = self.open.pop(name, None)
        if span is not None:
            import torch

            torch.cuda.synchronize()  # the window ends when the phase's last kernel has run
            span.__exit__(None, None, None)
        if name == "logging":
            self.batch += 1
            if self.prof is not None:
                self._stop()

    def close(self) -> None:
        """The run ended inside a watched batch (Ctrl-C, an error): keep what was watched."""
        for span in self.open.values():
            span.__exit__(None, None, None)
        self.open.clear()
        if self.prof is not None:
            self._stop()


def busy_by_sessions(sessions: list[list[Event]]) -> dict[str, dict[str, float]]:
    """busy_by_phase over several profiler sessions (each in its own time base), summed per phase."""
    out: dict[str, dict[str, float]] = {}
    for events in sessions:
        for name, row in busy_by_phase(events).items():
            total = out.setdefault(name, {"window_seconds": 0.0, "kernel_seconds": 0.0, "windows": 0})
            for key in ("window_seconds", "kernel_seconds", "windows"):
                total[key] += row[key]
    for row in out.values():
        row["busy"] = row["kernel_seconds"] / row["window_seconds"] if row["window_seconds"] > 0 else 0.0
    return out


class GpuBusyInstrument(Instrument):
    """On CUDA: adds ``gpu_busy`` and ``regime`` to each step phase's row, and how they were measured.

    Its recorder must listen outermost (``outermost``): its enter runs before the
    phase timer's and its exit after, so the profiler's start and stop fall outside
    the phases' times.
    """

    name = GPU_BUSY
    outermost = True
    sampled = True  # with a Sampler: hears only the watched batches (see BusyRecorder)

    def __init__(self, watched: int = WATCHED, watch_from: int = WATCH_FROM) -> None:
        self.watched, self.watch_from = watched, watch_from
        self.rec: BusyRecorder | None = None

    def start(self, context: RunContext) -> None:
        from torch.profiler import ProfilerActivity, profile

        self.rec = BusyRecorder(self.first_heard(context), self.watched)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]):
            pass  # CUPTI's one-off start-up now, before training, not inside a watched batch

    def first_heard(self, context: RunContext) -> int:
        """The first batch to watch, counted in the batches the recorder hears: past the warm-up, within the run."""
        from lmprof.instrument.sampling import run_every

        every = run_every(context.cfg, context.device)
        if every > 1:  # a Sampler watches batch 1, K + 1, 2K + 1, ...: from the second of those
            heard = -(-context.batches_per_epoch // every)
            return min(1, max(0, heard - self.watched))
        return min(self.watch_from, max(0, context.batches_per_epoch - self.watched))

    def recorder(self) -> BusyRecorder | None:
        return self.rec

    def stop(self) -> None:
        if self.rec is not None:
            self.rec.close()

    def contribute(self, result: "RunResult", run_dir: Path) -> None:
        if self.rec is not None and hasattr(self.rec, "collect"):
            self.rec.collect()
        if self.rec is None or not self.rec.events:
            return
        sessions = getattr(self.rec, "sessions", None) or [self.rec.events]
        busy = busy_by_sessions(sessions)
        for row in result.phases:
            b = busy.get(row.get("name", ""))
            if b is not None and b["window_seconds"] > 0:
                row[GPU_BUSY] = b["busy"]
                row["regime"] = regime(b["busy"])
        watched = max((int(b["windows"]) for b in busy.values()), default=0)
        result.phase_summary[GPU_BUSY] = {
            "batches": watched,
            "method": "kernel time inside each phase's window over the window, from a torch.profiler session "
                      "on a few batches with a synchronisation at each phase's start and end",
            "launch_below": LAUNCH_BELOW, "compute_from": COMPUTE_FROM}
