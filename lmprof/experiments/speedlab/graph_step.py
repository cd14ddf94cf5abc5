"""speedlab's ``cuda-graph`` variant: the whole training step recorded once as a CUDA graph, replayed per batch.

A small model's GPU step is launch-bound: the default LSTM's step is ~450
small kernels, each launched from Python, and the GPU waits between them. A
CUDA graph records those launches once; a replay submits them all in one call,
so the host's launch cost goes and the kernels run back to back. The kernels
themselves are unchanged: the step cannot get faster than their summed time
(the ladder's *kernel floor*).

A graph replays fixed addresses, so everything the step reads or writes lives
in a buffer made once (the *static* buffers):

    static_data, static_targets   each batch is copied in (get_batch, then copy_)
    static_hidden                 the hidden state; the step copies its new
                                  hidden state back in (upstream's detach, in
                                  the graph: the next replay starts from it)
    neg_lr                        -lr as a device tensor: annealing fills it,
                                  no re-capture
    static_loss                   read each batch with .item(), as upstream reads it

The step itself (``_step``): grads to None, forward, NLL loss, backward,
``clip_grad_norm_(foreach=True)``, ``p += neg_lr * grad`` (foreach), hidden
copied back. It runs eagerly for ``WARMUP`` batches on a side stream (cuDNN and
the allocator settle, as capture requires), is captured on the next batch, and
replayed from then on. Dropout masks inside a graph come from the graph-safe
CUDA generator (its offset advances per replay), so with dropout > 0 the
losses differ from eager's; with dropout 0 they agree to float rounding.

``GraphApi`` is what touches CUDA (side stream, capture, replay); tests give
GraphStep a fake one that "replays" by calling the step again, so the static
buffers, the hidden carry-over and the lr tensor are checked on a CPU.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Callable

from lmprof.config import RunConfig
from lmprof.phases import phase

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

WARMUP = 3  # eager steps before the capture (the PyTorch docs' whole-network example uses 3)


class GraphApi:
    """CUDA's side of it: a side stream for the warm-up, capture of a function, replay."""

    def __init__(self, device: "torch.device") -> None:
        import torch

        self.device = device
        self.side = torch.cuda.Stream(device)

    def warmup(self) -> AbstractContextManager[Any]:
        import torch

        self.side.wait_stream(torch.cuda.current_stream(self.device))
        return torch.cuda.stream(self.side)

    def after_warmup(self) -> None:
        import torch

        torch.cuda.current_stream(self.device).wait_stream(self.side)

    def capture(self, step: Callable[[], None]) -> Callable[[], None]:
        """Record ``step`` (not run: capture only records) and return what replays it."""
        import torch

        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        return graph.replay


class EagerGraphApi:
    """A stand-in for tests and CPUs: no stream, and a "replay" that runs the step again, eagerly."""

    def __init__(self) -> None:
        self.captures = 0

    def warmup(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def after_warmup(self) -> None:
        return None

    def capture(self, step: Callable[[], None]) -> Callable[[], None]:
        self.captures += 1
        return step


def _flat(hidden: Any) -> list["torch.Tensor"]:
    import torch

    return [hidden] if isinstance(hidden, torch.Tensor) else [t for h in hidden for t in _flat(h)]


class GraphStep:
    """The reference train()'s loop, with the step replayed from a graph; same signature as train().

    One GraphStep serves one trial (its graph belongs to the model and batch
    size it was captured for). A graph replays one shape, so an epoch's short
    last batch runs the same step eagerly (``eager_steps`` counts them).
    """

    def __init__(self, model: "nn.Module", loss_fn: Callable[..., "torch.Tensor"], cfg: RunConfig,
                 device: "torch.device", api: Any = None) -> None:
        import torch

        self.model, self.loss_fn, self.clip = model, loss_fn, cfg.clip
        self.foreach = True if device.type == "cuda" else None  # foreach clip is CUDA's; elsewhere torch picks
        self.api = api if api is not None else GraphApi(device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.static_data = torch.zeros(cfg.bptt, cfg.batch_size, dtype=torch.long, device=device)
        self.static_targets = torch.zeros(cfg.bptt * cfg.batch_size, dtype=torch.long, device=device)
        self.static_hidden = model.init_hidden(cfg.batch_size)  # type: ignore[operator]
        self.neg_lr = torch.full((), -cfg.lr, device=device)
        self.static_loss = torch.zeros((), device=device)
        self.replay: Callable[[], None] | None = None
        self.steps = 0  # full-shape steps taken (eager warm-up, then replays)
        self.eager_steps = 0  # short last batches of an epoch, run eagerly

    def _step(self, data: "torch.Tensor | None" = None, targets: "torch.Tensor | None" = None) -> None:
        """One training step on the static buffers (or on ``data``, eagerly); everything it touches is captured."""
        import torch

        for p in self.params:
            p.grad = None  # backward writes fresh gradients (in a graph: the same memory each replay)
        output, hidden = self.model(self.static_data if data is None else data, self.static_hidden)
        loss = self.loss_fn(output, self.static_targets if targets is None else targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.clip, foreach=self.foreach)
        with torch.no_grad():
            grads = [p.grad for p in self.params]
            torch._foreach_mul_(grads, self.neg_lr)  # -lr * grad, the lr read from the device tensor
            torch._foreach_add_(self.params, grads)
            for static, new in zip(_flat(self.static_hidden), _flat(hidden)):
                static.copy_(new)  # detach = copy into the static buffer: the next replay starts here
            self.static_loss.copy_(loss)

    def run_step(self) -> None:
        """Warm-up steps eagerly, then capture once, then replay."""
        if self.replay is None and self.steps >= WARMUP:
            self.replay = self.api.capture(self._step)
        if self.replay is not None:
            self.replay()
        else:
            with self.api.warmup():
                self._step()
            self.api.after_warmup()
        self.steps += 1

    def train(self, model: "nn.Module", train_data: "torch.Tensor", cfg: RunConfig, criterion: Any, ntokens: int,
              *, lr: float, epoch: int, optimizer: Any = None, log: Callable[[str], None] = print) -> int:
        """One epoch, as reference.loop.train runs it: get_batch, step, loss.item(). Returns the batches run."""
        from lmprof.errors import LossNotFinite
        from lmprof.reference.loop import get_batch

        model.train()
        self.neg_lr.fill_(-lr)  # annealing: a new value in the same tensor, the graph unchanged
        for h in _flat(self.static_hidden):
            h.zero_()  # the reference starts each epoch from init_hidden's zeros
        record = getattr(criterion, "record", None)
        total_loss, batches = 0.0, 0
        for i in range(0, train_data.size(0) - 1, cfg.bptt):
            with phase("data"):
                data, targets = get_batch(train_data, i, cfg.bptt)
                short = data.size(0) != self.static_data.size(0)  # the epoch's short last chunk
                if not short:
                    self.static_data.copy_(data)
                    self.static_targets.copy_(targets)
            with phase("step"):
                if short:  # the graph replays one shape: this one runs the same step eagerly
                    self._step(data, targets)
                    self.eager_steps += 1
                else:
                    self.run_step()
            batches += 1
            with phase("logging"):
                value = self.static_loss.item()
                total_loss += value
                if record is not None:
                    record(value, targets.numel())
                if not math.isfinite(total_loss):
                    raise LossNotFinite(epoch, batches - 1)
            if batches == cfg.max_batches:
                break
        return batches
