"""Every forward line with its backward: operator time per source line of ``forward``, both directions.

``--backward-lines`` watches a few training batches (``WATCHED`` from batch
``WATCH_FROM``) in a torch.profiler session and answers, for each line of the
model's forward: what its operators cost forward, and what the backward
operators it created cost in ``loss.backward()``.

How each operator finds its line:

- forward: while forward runs in a watched batch, a TorchFunctionMode wraps
  every torch call made under ``forward`` in ``record_function("lmprof-line:N")``,
  N the line of forward that is running (read from its frame). An operator
  belongs to the line annotation it runs inside.
- backward: autograd numbers each node it creates (the profiler records that
  *sequence number* on the forward operator, and again on the node's
  ``autograd::engine::evaluate_function`` event in backward, with the forward
  thread). A backward operator belongs to the node it runs in, the node to the
  forward operator with the same (thread, sequence number), hence to its line.
  The number is used, never timing order: backward runs in its own order,
  and on CUDA on another thread.
- gradient accumulation into a parameter's ``.grad`` (an AccumulateGrad node,
  which has no forward operator) is named by a hook on that node and counted
  on the first line that used the parameter; a parameter used by several
  lines (``--tied``) is listed with the line it was counted on.

CPU: an operator's time is its self time. CUDA: the summed time of the kernels
it launched (its self device time), with the launch (self CPU) time beside it.
Everything else in the watched steps (the loss, the engine's start, clipping,
the update, ...) is listed as such, so the rows add up to the step.

What it cannot see: work inside one operator is one line's. cuDNN's (or
oneDNN's) fused LSTM is a single forward operator and a single backward node,
so the ``self.rnn(...)`` line is one number, not one per time step.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lmprof.instrument.backward_attribution import (GRAD_PREFIX, LINE_PREFIX, PHASE_PREFIX, Op, attribute,
                                                    component_agreement)
from lmprof.instrument.base import Instrument, RunContext
from lmprof.instrument.sampling import run_every
from lmprof.phases import STEP_PHASES
from lmprof.record.sections import COMPONENTS_AGREEMENT, FIRST_BATCH, FIRST_LINE, WATCHED_BATCHES

if TYPE_CHECKING:
    from lmprof.record.result import RunResult

WATCH_FROM = 2  # the first watched batch: the first calls pay for allocations and kernel choice
WATCHED = 3


def line_marks(function: Callable[..., Any]) -> Any:
    """A TorchFunctionMode that annotates each torch call made under ``function`` with the line running there.

    It also notes which parameters each line passes to torch (``params``: id -> (parameter, [lines]))
    and the module whose ``forward`` it is (``owner``), so gradient accumulation can be named.
    """
    from torch.nn import Parameter
    from torch.overrides import TorchFunctionMode
    from torch.profiler import record_function

    code = function.__code__
    # line_profiler may run a copy of the code object: the same file, first line and name
    key = (code.co_filename, code.co_firstlineno, code.co_name)

    class LineMarks(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.params: dict[int, tuple[Any, list[int]]] = {}
            self.owner: Any = None

        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            frame = sys._getframe(1)
            while frame is not None and not (frame.f_code is code or (
                    frame.f_code.co_filename, frame.f_code.co_firstlineno, frame.f_code.co_name) == key):
                frame = frame.f_back
            if frame is None:
                return func(*args, **kwargs)
            line = frame.f_lineno
            if self.owner is None:
                self.owner = frame.f_locals.get("self")
            for arg in args:
                for value in arg if isinstance(arg, (list, tuple)) else (arg,):
                    if isinstance(value, Parameter):
                        lines = self.params.setdefault(id(value), (value, []))[1]
                        if line not in lines:
                            lines.append(line)
            with record_function(f"{LINE_PREFIX}{line}"):  # the mode is off inside: torch's own calls pass
                return func(*args, **kwargs)

    return LineMarks()


def _metric(device: str) -> tuple[Callable[[Any], float], Callable[[Any], float]]:
    """(self, total) time in µs of a profiler event: CPU self time, or on CUDA its kernels' time."""
    from torch.autograd.profiler_util import FunctionEvent

    if device != "cuda":
        return (lambda e: float(e.self_cpu_time_total)), (lambda e: float(e.cpu_time_total))
    # torch 2.4 renamed cuda_time to device_time (the old names warn)
    self_name, total_name = (("self_device_time_total", "device_time_total") if hasattr(FunctionEvent, "device_time_total")
                             else ("self_cuda_time_total", "cuda_time_total"))
    return (lambda e: float(getattr(e, self_name) or 0.0)), (lambda e: float(getattr(e, total_name) or 0.0))


def ops_of(events: Any, device: str) -> list[Op]:
    """A profiler's host-side events (operators and annotations) as Ops, times in seconds."""
    from torch.autograd import DeviceType

    host = [e for e in events if getattr(e, "device_type", DeviceType.CPU) == DeviceType.CPU]
    index = {id(e): i for i, e in enumerate(host)}
    self_of, total_of = _metric(device)
    launch_self = _metric("cpu")[0]
    ops = []
    for e in host:
        parent = getattr(e, "cpu_parent", None)
        annotation = bool(getattr(e, "is_user_annotation", False)) or e.name.startswith("lmprof-")
        ops.append(Op(name=e.name, annotation=annotation, thread=int(e.thread),
                      start=float(e.time_range.start), end=float(e.time_range.end), seq=int(e.sequence_nr),
                      fwd_thread=int(e.fwd_thread or 0), self_seconds=self_of(e) / 1e6,
                      total_seconds=total_of(e) / 1e6, launch_seconds=launch_self(e) / 1e6,
                      parent=index.get(id(parent)) if parent is not None else None))
    return ops


class LineBackwardRecorder:
    """Listens to the markers; profiles the watched batches, marks forward's lines, names gradient accumulation."""

    def __init__(self, function: Callable[..., Any], first: int, count: int, cuda: bool) -> None:
        self.function, self.first, self.count, self.cuda = function, first, count, cuda
        self.batch = 0  # training batches this recorder heard end (a sampled run lets it hear the watched ones)
        self.prof: Any = None
        self.finished: list[Any] = []  # one stopped profiler per watched batch, read after the run (not timed here)
        self.marks: Any = None
        self.marking = False
        self.open: dict[str, Any] = {}
        self.grad_open: dict[str, Any] = {}
        self.hooks: list[Any] = []
        self.param_lines: dict[str, list[int]] = {}  # parameter name -> the lines that used it, in order
        self.batches = 0

    def _start(self) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        self.prof = profile(activities=activities)
        self.prof.start()
        self.marks = self.marks or line_marks(self.function)

    def _stop(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()  # the last batch's kernels end inside the session
        self.prof.stop()
        self.finished.append(self.prof)
        self.prof = None
        for handle in self.hooks:
            handle.remove()
        self.hooks = []

    def enter(self, name: str) -> None:
        if self.prof is None and name == "data" and self.first <= self.batch < self.first + self.count:
            self._start()  # one session per watched batch: nothing between batches lands in it
        if self.prof is None or name not in STEP_PHASES:
            return
        from torch.profiler import record_function

        span = record_function(PHASE_PREFIX + name)
        span.__enter__()
        self.open[name] = span
        if name == "forward":
            self.marks.__enter__()
            self.marking = True

    def exit(self, name: str) -> None:
        if name == "forward" and self.marking:
            self.marks.__exit__(None, None, None)
            self.marking = False
            self.batches += 1
            if not self.hooks:
                self._name_accumulation()
        span = self.open.pop(name, None)
        if span is not None:
            span.__exit__(None, None, None)
        if name == "logging":
            self.batch += 1
            if self.prof is not None:
                self._stop()

    def _name_accumulation(self) -> None:
        """A pre- and a post-hook on each used parameter's AccumulateGrad node: its work annotated by name."""
        from torch.autograd.graph import get_gradient_edge
        from torch.profiler import record_function

        names = {id(p): n for n, p in self.marks.owner.named_parameters()} if self.marks.owner is not None else {}
        for pid, (param, lines) in self.marks.params.items():
            name = names.get(pid, "parameter of shape " + "x".join(map(str, param.shape)))
            self.param_lines[name] = lines
            if not param.requires_grad:
                continue
            node = get_gradient_edge(param).node

            def before(grad_outputs: Any, name: str = name) -> None:
                span = record_function(GRAD_PREFIX + name)
                span.__enter__()
                self.grad_open[name] = span

            def after(grad_inputs: Any, grad_outputs: Any, name: str = name) -> None:
                span = self.grad_open.pop(name, None)
                if span is not None:
                    span.__exit__(None, None, None)

            self.hooks += [node.register_prehook(before), node.register_hook(after)]

    def close(self) -> None:
        """The run ended inside the window (a short run, Ctrl-C): keep what was watched."""
        if self.marking:
            self.marks.__exit__(None, None, None)
            self.marking = False
        for span in [*self.grad_open.values(), *self.open.values()]:
            span.__exit__(None, None, None)
        self.open.clear()
        self.grad_open.clear()
        if self.prof is not None:
            self._stop()


class BackwardLineInstrument(Instrument):
    """``result.backward_lines``: per line of forward, forward and backward operator time per watched step."""

    name = "backward_lines"
    outermost = True  # the profiler starts and stops outside the phase timer's spans
    sampled = True  # with --sample-every K the runner lets its recorder hear the watched batches only

    def __init__(self, function: Callable[..., Any] | None = None, *, watched: int = WATCHED,
                 watch_from: int = WATCH_FROM) -> None:
        self.function, self.watched, self.watch_from = function, watched, watch_from
        self.rec: LineBackwardRecorder | None = None
        self.device = "cpu"
        self.every = 0  # --sample-every K, as the runner applies it (0 or 1: every batch)

    def start(self, context: RunContext) -> None:
        from lmprof.instrument.lines import resolve

        function = self.function or resolve("forward", context.cfg.model)
        self.function = getattr(function, "__func__", function)
        self.device = "cuda" if getattr(context.device, "type", "cpu") == "cuda" else "cpu"
        self.every = run_every(context.cfg, context.device)
        # sampled, the batches it hears are past the first already (1, K + 1, ...): watch the first ones heard
        first = 0 if self.every > 1 else min(self.watch_from, max(0, context.batches_per_epoch - self.watched))
        self.rec = LineBackwardRecorder(self.function, first, self.watched, self.device == "cuda")

    def recorder(self) -> LineBackwardRecorder | None:
        return self.rec

    def stop(self) -> None:
        if self.rec is not None:
            self.rec.close()

    def contribute(self, result: "RunResult", run_dir: Path) -> None:
        if self.rec is None or not self.rec.finished or not self.rec.batches:
            return
        ops: list[Op] = []
        for prof in self.rec.finished:  # one session per watched batch: its parents index it, its clock starts at 0
            more = ops_of(prof.events(), self.device)
            offset, later = len(ops), max((o.end for o in ops), default=0.0) + 1.0
            ops += [replace(o, start=o.start + later, end=o.end + later,
                            parent=None if o.parent is None else o.parent + offset) for o in more]
        result.backward_lines = self.section(ops)
        if result.components.get("rows"):
            result.backward_lines[COMPONENTS_AGREEMENT] = component_agreement(result.backward_lines,
                                                                                result.components)

    def section(self, ops: list[Op]) -> dict[str, Any]:
        from lmprof.instrument.lines import relative_file

        assert self.rec is not None and self.function is not None
        found = attribute(ops, self.rec.param_lines)
        source, first_line = inspect.getsourcelines(self.function)
        texts = {first_line + i: text.rstrip("\n\r") for i, text in enumerate(source)}
        return found.section(
            batches=self.rec.batches, texts=texts, device=self.device,
            about={"function": "forward", "qualname": self.function.__qualname__,
                   "file": relative_file(self.function.__code__.co_filename), FIRST_LINE: first_line,
                   FIRST_BATCH: self.rec.first if self.every <= 1 else 1, "sample_every": self.every,
                   WATCHED_BATCHES: [self.rec.first + i if self.every <= 1 else 1 + i * self.every
                                       for i in range(len(self.rec.finished))]})


def watch_steps(function: Callable[..., Any], forward: Callable[[], Any], loss_of: Callable[[Any], Any], *,
                update: Callable[[], None] | None = None, steps: int = 4, watched: int = 3) -> dict[str, Any]:
    """Training steps outside a run (a walkthrough, a test), marked as the reference loop marks them and
    watched as ``--backward-lines`` watches a run; returns the section. The first step is not watched.

    ``forward()`` returns the output, ``loss_of(output)`` the loss; ``update()`` runs after backward.
    """
    import torch

    from lmprof.config import RunConfig
    from lmprof.phases import listening, phase
    from lmprof.record.result import RunResult

    instrument = BackwardLineInstrument(function, watched=watched, watch_from=max(steps - watched, 0))
    instrument.start(RunContext(cfg=RunConfig(), device=torch.device("cpu"), run_dir=Path("."),
                                batches_per_epoch=steps))
    try:
        with listening(instrument.recorder()):  # type: ignore[arg-type]
            for _ in range(steps):
                with phase("data"):
                    pass
                with phase("forward"):
                    output = forward()
                with phase("loss"):
                    loss = loss_of(output)
                with phase("backward"):
                    loss.backward()
                with phase("update"):
                    if update is not None:
                        update()
                with phase("logging"):
                    loss.item()
    finally:
        instrument.stop()
    result = RunResult()
    instrument.contribute(result, Path("."))
    return result.backward_lines
