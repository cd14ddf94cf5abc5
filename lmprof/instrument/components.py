"""Time per model component, forward and backward: the homework's block diagram, measured.

Forward: a pre- and a post-hook on each child module the model calls
(RNNModel: encoder, drop, rnn, drop, decoder; TransformerModel: input_emb,
pos_encoder, encoder, decoder) and on the criterion (the loss). log_softmax
is no module: it is the time from the decoder's post-hook to the model's.

Backward: each component's post-hook puts a gradient hook on the tensor it
returned. Autograd calls that hook when the gradient of the output is ready,
just before the component's own backward starts; the component's backward
ends when the next hook fires (the component before it in forward order) or,
for the first component, when ``loss.backward()`` returns. So a component's
backward includes its gradient kernels and the accumulation into its
weights' ``.grad``; the autograd engine's start (before the loss's hook) is
left out, as is anything between the components (the Transformer's
``× √emsize`` counts with pos_encoder's backward).

The model and the criterion are found, not given: a global forward pre-hook
waits for the first module called inside the "forward" phase (the model)
and inside the "loss" phase (the criterion), hooks them and removes itself.
Training steps and evaluation calls are kept apart (``model.training`` and
grad mode). On CPU a host clock times each span; on CUDA, CUDA events, read
when they have completed. The hooks only read clocks: losses stay bitwise
equal to an unwatched run's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from lmprof.instrument.base import Instrument, RunContext
from lmprof.instrument.cuda_events import EventPool
from lmprof.record.result import RunResult
from lmprof.record.sections import BACKWARD_SECONDS, FORWARD_SECONDS, WARMUP_STEPS

Clock = Callable[[], float]
LOG_SOFTMAX = "log_softmax"
LOSS = "loss"
TIMED_PHASES = ("forward", "loss", "backward")
FOLD_EVERY = 4096  # CUDA: completed event pairs are read into totals past this many pending


def first_tensor(value: Any) -> Any:
    """The tensor a module returned (an RNN returns (output, hidden): the output)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


class ComponentInstrument(Instrument):
    """Forward and backward time of each model component; contributes ``result.components``."""

    name = "components"
    sampled = True  # watches one batch in --sample-every K (lmprof.instrument.sampling)

    def __init__(self, clock: Clock = time.perf_counter, *, warmup: int = 0,
                 event_factory: Callable[[], Any] | None = None,
                 synchronize: Callable[[], None] | None = None) -> None:
        """``event_factory``/``synchronize``: CUDA events (as torch.cuda.Event(enable_timing=True) makes
        them) on any device; tests inject fakes. On a CUDA device the instrument picks torch's own."""
        self.clock = clock
        self.warmup = warmup  # training steps left out of the totals (first-call allocations, caches)
        self.cuda = event_factory is not None
        self.model_kind = ""
        self._event: Callable[[], Any] | None = event_factory
        self._pool: EventPool | None = EventPool(event_factory) if event_factory is not None else None
        self._synchronize: Callable[[], None] | None = synchronize
        self._handles: list[Any] = []
        self._finder: Any = None
        self.model: Any = None
        self.criterion: Any = None
        self._phase: str | None = None
        self._phase_start: Any = None
        # (mode, direction, component) -> seconds; mode train|evaluate, direction forward|backward
        self.seconds: dict[tuple[str, str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)  # (mode, component) -> forward calls
        self.phase_seconds: dict[str, float] = defaultdict(float)
        self.order: list[tuple[str, str]] = []  # (component, label) in forward order, first training step
        self.steps = 0
        self._open: dict[int, Any] = {}  # id(module) -> its pre-hook stamp
        self._names: dict[int, str] = {}  # id(module) -> component name
        self._calls_in_forward: dict[str, int] = defaultdict(int)
        self._last_post: Any = None  # stamp of the last child's post-hook: log_softmax starts there
        self._marks: list[tuple[str, Any]] = []  # backward: (component, stamp) as the gradient hooks fire
        self._pending: list[tuple[tuple[str, str, str], Any, Any]] = []
        self._grad_hooks: dict[str, Callable[[Any], None]] = {}

    # --- clocks ------------------------------------------------------------------------
    def _now(self) -> Any:
        if self._pool is None:
            return self.clock()
        return self._pool.stamp()

    def _add(self, key: tuple[str, str, str], start: Any, end: Any) -> None:
        if key[0] == "train" and self.steps < self.warmup:
            return
        if self._event is None:
            self.seconds[key] += end - start
            return
        self._pending.append((key, start, end))

    def _fold(self, wait: bool) -> None:
        """Read finished spans; their events go back to the pool unless a span still waiting shares them.

        Called between steps only (a span's end is often the next one's start: none may be reused while open)."""
        if wait and self._synchronize is not None:
            self._synchronize()
        keep, read = [], {}
        for key, start, end in self._pending:
            if wait or end.query():
                self.seconds[key] += start.elapsed_time(end) / 1000.0
                read[id(start)], read[id(end)] = start, end
            else:
                keep.append((key, start, end))
        self._pending = keep
        if self._pool is not None:
            waiting = {id(e) for _, start, end in keep for e in (start, end)}
            self._pool.give(*(e for i, e in read.items() if i not in waiting))

    # --- the instrument protocol -----------------------------------------------------------
    def start(self, context: RunContext) -> None:
        import torch
        from torch.nn.modules.module import register_module_forward_pre_hook

        self.model_kind = context.cfg.model
        if context.device.type == "cuda" and self._event is None:
            from lmprof.instrument.cuda_events import cuda_pool

            self.cuda = True
            self._event = lambda: torch.cuda.Event(enable_timing=True)
            self._pool = cuda_pool(context.device)
            self._synchronize = torch.cuda.synchronize
        self._watch_hook = register_module_forward_pre_hook
        self._finder = register_module_forward_pre_hook(self._find)

    def recorder(self) -> "ComponentInstrument":
        return self

    def watch(self, on: bool) -> None:
        """Sampling: hooks on for a watched batch, off (removed: a bare module call pays nothing) otherwise."""
        if not on:
            self.stop()
            return
        if self._handles or self._finder is not None:
            return
        if self.model is not None:
            self._hook_model(self.model)
        if self.criterion is not None:
            self._hook(self.criterion, LOSS)
        if self.model is None or self.criterion is None:
            self._finder = self._watch_hook(self._find)

    def stop(self) -> None:
        for handle in [self._finder, *self._handles]:
            if handle is not None:
                handle.remove()
        self._finder, self._handles = None, []

    def contribute(self, result: RunResult, run_dir: Path) -> None:
        if self.model is None:
            return  # no training step ran: nothing to say
        result.components = self.section()

    # --- phase markers ---------------------------------------------------------------------
    def enter(self, name: str) -> None:
        self._phase = name
        if name in TIMED_PHASES:
            self._phase_start = self._now()
            if name == "backward":
                self._marks = []

    def exit(self, name: str) -> None:
        if name not in TIMED_PHASES or self._phase_start is None:
            self._phase = None
            return
        end = self._now()
        self._add(("train", "phase", name), self._phase_start, end)
        if name == "backward":
            # Each component's backward runs from its hook to the next one (the last: to the end).
            for (component, start), (_, stop) in zip(self._marks, [*self._marks[1:], ("", end)]):
                self._add(("train", "backward", component), start, stop)
            self.steps += 1
            if len(self._pending) >= FOLD_EVERY:  # between steps: no event of an open span is handed back
                self._fold(wait=False)
        self._phase, self._phase_start = None, None

    # --- module hooks ----------------------------------------------------------------------
    def _find(self, module: Any, args: Any) -> None:
        """Global pre-hook: the first module called in "forward" is the model, in "loss" the criterion."""
        if self._phase == "forward" and self.model is None:
            self.model = module
            self._hook_model(module)
            self._model_pre(module, args)  # this call's own pre-hooks were collected before we added ours
        elif self._phase == "loss" and self.criterion is None:
            self.criterion = module
            self._hook(module, LOSS)
            self._pre(module, args)
        if self.model is not None and self.criterion is not None and self._finder is not None:
            self._finder.remove()
            self._finder = None

    def _hook(self, module: Any, name: str) -> None:
        self._names[id(module)] = name
        self._handles += [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _hook_model(self, model: Any) -> None:
        for name, child in model.named_children():
            self._hook(child, name)
        self._handles += [model.register_forward_pre_hook(self._model_pre),
                          model.register_forward_hook(self._model_post)]

    @staticmethod
    def _mode(module: Any) -> str:
        import torch

        return "train" if module.training and torch.is_grad_enabled() else "evaluate"

    def _model_pre(self, module: Any, args: Any) -> None:
        self._last_post = None
        self._calls_in_forward.clear()

    def _pre(self, module: Any, args: Any) -> None:
        self._open[id(module)] = self._now()

    def _post(self, module: Any, args: Any, output: Any) -> None:
        end = self._now()
        start = self._open.pop(id(module), None)
        if start is None:
            return
        name = self._names[id(module)]
        mode = self._mode(module)
        if name != LOSS:
            # A module called twice in one forward (RNNModel's drop) is two components.
            self._calls_in_forward[name] += 1
            if self._calls_in_forward[name] > 1:
                name = f"{name}#{self._calls_in_forward[name]}"
            self._last_post = end
        self._record(mode, name, type(module).__name__, start, end, output)

    def _model_post(self, module: Any, args: Any, output: Any) -> None:
        end = self._now()
        if self._last_post is not None:
            self._record(self._mode(module), LOG_SOFTMAX, "", self._last_post, end, output)
        self._last_post = None

    def _record(self, mode: str, name: str, kind: str, start: Any, end: Any, output: Any) -> None:
        self._add((mode, "forward", name), start, end)
        if mode != "train" or self.steps >= self.warmup:
            self.calls[(mode, name)] += 1
        if mode != "train":
            return
        if self.steps == 0 and all(name != n for n, _ in self.order):
            self.order.append((name, kind))
        tensor = first_tensor(output)
        if tensor is not None and tensor.requires_grad:
            tensor.register_hook(self._gradient_hook(name))

    def _gradient_hook(self, name: str) -> Callable[[Any], None]:
        """One hook per component, made once (not a new closure per tensor per step)."""
        hook = self._grad_hooks.get(name)
        if hook is None:
            def mark(grad: Any) -> None:
                self._marks.append((name, self._now()))  # returns None: the gradient passes unchanged

            hook = self._grad_hooks[name] = mark
        return hook

    # --- the section -------------------------------------------------------------------------
    def section(self) -> dict[str, Any]:
        if self._event is not None:
            self._fold(wait=True)
        rows = []
        for name, kind in self.order:
            rows.append({"name": name, "module": kind, "calls": self.calls[("train", name)],
                         FORWARD_SECONDS: self.seconds[("train", "forward", name)],
                         BACKWARD_SECONDS: self.seconds[("train", "backward", name)]})
        evaluation = [{"name": name, "module": kind, "calls": self.calls[("evaluate", name)],
                       FORWARD_SECONDS: self.seconds[("evaluate", "forward", name)]}
                      for name, kind in self.order if self.calls[("evaluate", name)]]
        return {
            "clock": "cuda events" if self.cuda else "host",
            "model": self.model_kind,
            "steps": max(self.steps - self.warmup, 0),  # training steps in the totals
            WARMUP_STEPS: min(self.warmup, self.steps),
            "rows": rows,  # training steps, forward order; backward runs them in reverse
            "phases": {name: self.seconds[("train", "phase", name)] for name in TIMED_PHASES},
            "evaluation": evaluation,  # forward only, no gradients; kept apart from training
        }
