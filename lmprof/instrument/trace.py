"""torch.profiler as an instrument: a trace folder for TensorBoard and Perfetto, and the ``ops`` section.

The profiler follows a schedule (as in nanoGPT's bench.py): it skips ``wait``
training steps, runs ``warmup`` steps with tracing on but discarded (the
first traced steps pay for the profiler's own set-up), then records
``active`` steps, ``repeat`` times. One training step, for the profiler, runs
from the "data" phase of a batch to the end of its "logging" phase: the
recorder starts the profiler at the first "data" and calls ``prof.step()``
as each "logging" phase ends, so ``ProfilerStep#N`` is training step N+1.

While the profiler traces, every phase marker also opens a
``record_function`` range named after the phase, so the trace shows
"forward", "backward", ... as spans around their operators.

Each recorded cycle goes through ``tensorboard_trace_handler`` into a hidden
staging folder and is then renamed into ``RUN/trace/`` (atomic: TensorBoard
never reads half a trace), and its operator averages are added up for the
``ops`` section of result.json. This module never draws and never prints.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from lmprof.errors import UsageError
from lmprof.instrument.base import Instrument, RunContext
from lmprof.phases import PHASE_NAMES
from lmprof.record.files import TRACE_DIR, TRACE_STAGING_DIR
from lmprof.record.result import RunResult
from lmprof.record.sections import (CPU_MEMORY_BYTES, CPU_TOTAL_SECONDS, CUDA_SHARE, INPUT_SHAPES, PHASE_SPANS,
    SELF_CPU_MEMORY_BYTES, SELF_CPU_SECONDS, SELF_CUDA_MEMORY_BYTES, SELF_CUDA_SECONDS, SORT_BY,
    TOTAL_SELF_CPU_SECONDS, TOTAL_SELF_CUDA_SECONDS, TRACE_DIR_KEY, TRACE_FILES)

_STAGING_DIR = TRACE_STAGING_DIR  # beside trace/, not in it: the plugin scans trace/ recursively
STEP_SPAN = "ProfilerStep"  # ProfilerStep#N: the range torch.profiler opens around each step


@dataclass(frozen=True)
class TraceSchedule:
    """torch.profiler.schedule's numbers; the defaults trace 3 steps after 1 skipped and 1 warm-up."""

    wait: int = 1
    warmup: int = 1
    active: int = 3
    repeat: int = 1

    @property
    def steps(self) -> int:
        """Training steps the whole schedule spans."""
        return (self.wait + self.warmup + self.active) * self.repeat

    def validate(self) -> "TraceSchedule":
        for name in ("wait", "warmup"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("active", "repeat"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be 1 or more, got {getattr(self, name)}")
        return self


# torch's C++ (kineto) writes "USDT: ... profiler_start/stop" straight to file descriptor 2 as the
# profiler switches on and off: Python's sys.stderr never sees it, so it is filtered at the descriptor.
LIBRARY_NOISE = ("USDT:",)


@contextmanager
def quiet_fd2(noise: tuple[str, ...] = LIBRARY_NOISE) -> Iterator[None]:
    """Run the block with fd 2 captured; write back every line but the library's ``noise``."""
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (an embedding host): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except ValueError:
                pass
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True)
                    if not line.lstrip().startswith(tuple(n.encode() for n in noise))]
            if kept:
                os.write(2, b"".join(kept))


class PhaseRanges:
    """The trace's recorder: drives the profiler's steps and names phase spans in the trace."""

    def __init__(self, session: "TraceInstrument") -> None:
        self.session = session
        self._open: list[Any] = []  # record_function contexts (None where the profiler was off)

    def enter(self, name: str) -> None:
        prof = self.session.prof
        if name == "data" and not self.session.started:
            with quiet_fd2():
                prof.start()
            self.session.started = True
        span = None
        if self.session.started and self.session.tracing():
            span = self.session.record_function(name)
            span.__enter__()
        self._open.append(span)

    def exit(self, name: str) -> None:
        span = self._open.pop()
        if span is not None:
            span.__exit__(None, None, None)
        if name == "logging" and self.session.started:
            with quiet_fd2():  # a step can switch the profiler on or off
                self.session.prof.step()  # the step has ended; the schedule moves on


class TraceInstrument(Instrument):
    """Runs the reference loop's training steps under torch.profiler; contributes ``ops``."""

    name = "trace"

    def __init__(self, schedule: TraceSchedule = TraceSchedule(), *, group_by_shape: bool = False,
                 memory: bool = False, gzip: bool = False) -> None:
        self.schedule = schedule.validate()
        self.group_by_shape = group_by_shape
        self.memory = memory
        self.gzip = gzip
        self.prof: Any = None
        self.started = False
        self.on_cuda = False
        self.trace_files: list[str] = []  # names under trace/, in the order written
        self._ops: dict[tuple[str, str], dict[str, Any]] = {}
        self._steps = 0  # training steps recorded, over all cycles
        self._run_dir = Path(".")
        self._worker = "lmprof"
        self._idle: Any = None  # ProfilerAction.NONE, once torch is imported
        self.record_function: Any = None  # torch.profiler.record_function, likewise

    # --- the instrument protocol -------------------------------------------------
    def start(self, context: RunContext) -> None:
        from torch.profiler import ProfilerAction, ProfilerActivity, profile, record_function, schedule

        s = self.schedule
        steps = context.batches_per_epoch * context.cfg.epochs
        if steps < s.wait + s.warmup + 1:
            raise UsageError(
                f"the run has {steps} training step(s), but the trace schedule waits {s.wait} and warms up "
                f"{s.warmup} before recording: raise --max-batches (or --epochs) or lower --wait/--warmup")
        self._run_dir = context.run_dir
        self._idle = ProfilerAction.NONE
        self.record_function = record_function
        self._worker = context.cfg.model
        self.on_cuda = context.device.type == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.on_cuda else [])
        self.prof = profile(
            activities=activities,
            schedule=schedule(wait=s.wait, warmup=s.warmup, active=s.active, repeat=s.repeat),
            on_trace_ready=self._trace_ready,
            record_shapes=self.group_by_shape,
            profile_memory=self.memory,
        )

    def recorder(self) -> PhaseRanges:
        return PhaseRanges(self)

    def stop(self) -> None:
        # Stopping inside an active cycle saves what that cycle recorded so far.
        if self.started:
            self.started = False
            # Ctrl-C or SIGTERM inside the profiler's own set-up leaves it half made (no profiler
            # object yet): it recorded nothing, and stopping it would fail; the run's other tables stand.
            if getattr(self.prof, "profiler", None) is not None:
                with quiet_fd2():
                    self.prof.stop()
        shutil.rmtree(self._run_dir / _STAGING_DIR, ignore_errors=True)

    def contribute(self, result: RunResult, run_dir: Path) -> None:
        result.ops = self.ops_section()
        for i, name in enumerate(self.trace_files):
            result.files["trace" if i == 0 else f"trace_{i + 1}"] = f"{TRACE_DIR}/{name}"

    # --- the profiler's side --------------------------------------------------------
    def tracing(self) -> bool:
        """True while the profiler collects (warm-up or recording), when phase spans are worth opening."""
        return self.prof.current_action != self._idle

    def _trace_ready(self, prof: Any) -> None:
        from torch.profiler import tensorboard_trace_handler

        staging = self._run_dir / _STAGING_DIR
        tensorboard_trace_handler(str(staging), worker_name=self._worker, use_gzip=self.gzip)(prof)
        final = self._run_dir / TRACE_DIR
        final.mkdir(exist_ok=True)
        for written in sorted(staging.iterdir()):
            os.replace(written, final / written.name)
            self.trace_files.append(written.name)
        self._add_averages(prof.key_averages(group_by_input_shape=self.group_by_shape))

    def _add_averages(self, averages: Any) -> None:
        """Add one cycle's per-operator averages (microseconds, bytes) to the running totals."""
        for avg in averages:
            key = str(avg.key)
            if key.startswith(STEP_SPAN):  # averaged as one row, "ProfilerStep*"
                self._steps += int(avg.count)
            shapes = str(avg.input_shapes) if self.group_by_shape and avg.input_shapes else ""
            row = self._ops.setdefault((key, shapes), {
                "name": key, INPUT_SHAPES: shapes, "calls": 0, "self_cpu_us": 0.0, "cpu_total_us": 0.0,
                "self_cuda_us": 0.0, SELF_CPU_MEMORY_BYTES: 0, CPU_MEMORY_BYTES: 0,
                SELF_CUDA_MEMORY_BYTES: 0})
            row["calls"] += int(avg.count)
            row["self_cpu_us"] += float(avg.self_cpu_time_total)
            row["cpu_total_us"] += float(avg.cpu_time_total)
            row["self_cuda_us"] += float(getattr(avg, "self_device_time_total", 0) or 0)
            row[SELF_CPU_MEMORY_BYTES] += int(avg.self_cpu_memory_usage)
            row[CPU_MEMORY_BYTES] += int(avg.cpu_memory_usage)
            row[SELF_CUDA_MEMORY_BYTES] += int(getattr(avg, "self_device_memory_usage", 0) or 0)

    def ops_section(self) -> dict[str, Any]:
        """The ``ops`` section: every operator of the recorded steps, heaviest first, and the phase spans."""
        rows = list(self._ops.values())
        total_cpu = sum(r["self_cpu_us"] for r in rows)
        total_cuda = sum(r["self_cuda_us"] for r in rows)
        sort_key = "self_cuda_us" if self.on_cuda and total_cuda > 0 else "self_cpu_us"
        ops, spans = [], []
        for r in sorted(rows, key=lambda r: (-r[sort_key], r["name"], r[INPUT_SHAPES])):
            if r["name"] in PHASE_NAMES:
                spans.append({"name": r["name"], "calls": r["calls"], "seconds": r["cpu_total_us"] / 1e6})
                continue
            if r["name"].startswith(STEP_SPAN):
                continue
            op = {"name": r["name"], "calls": r["calls"],
                  SELF_CPU_SECONDS: r["self_cpu_us"] / 1e6, CPU_TOTAL_SECONDS: r["cpu_total_us"] / 1e6,
                  "share": r["self_cpu_us"] / total_cpu if total_cpu > 0 else 0.0}
            if self.group_by_shape:
                op[INPUT_SHAPES] = r[INPUT_SHAPES]
            if self.on_cuda:
                op[SELF_CUDA_SECONDS] = r["self_cuda_us"] / 1e6
                op[CUDA_SHARE] = r["self_cuda_us"] / total_cuda if total_cuda > 0 else 0.0
            if self.memory:
                op[SELF_CPU_MEMORY_BYTES] = r[SELF_CPU_MEMORY_BYTES]
                op[CPU_MEMORY_BYTES] = r[CPU_MEMORY_BYTES]
                if self.on_cuda:
                    op[SELF_CUDA_MEMORY_BYTES] = r[SELF_CUDA_MEMORY_BYTES]
            ops.append(op)
        spans.sort(key=lambda s: PHASE_NAMES.index(s["name"]))
        return {
            "schedule": asdict(self.schedule),
            "steps": self._steps,  # training steps recorded (all cycles)
            SORT_BY: "self_cuda" if sort_key == "self_cuda_us" else "self_cpu",
            "group_by_shape": self.group_by_shape,
            "memory": self.memory,
            "device": "cuda" if self.on_cuda else "cpu",
            # every event's self time: operators, phase spans' own Python time, step spans
            TOTAL_SELF_CPU_SECONDS: total_cpu / 1e6,
            TOTAL_SELF_CUDA_SECONDS: total_cuda / 1e6 if self.on_cuda else None,
            "rows": ops,
            PHASE_SPANS: spans,  # the phases as the profiler saw them (wall time of each range)
            TRACE_DIR_KEY: TRACE_DIR,
            TRACE_FILES: list(self.trace_files),
        }
