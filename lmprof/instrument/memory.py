"""Where the bytes go: saved activations, parameters, gradients, optimizer state, RSS and CUDA memory.

Saved activations are what the autograd graph keeps for backward. They are
counted exactly with ``torch.autograd.graph.saved_tensors_hooks``: the pack
hook sees every tensor an operation saves, and wraps it in a small token that
lives exactly as long as the graph keeps it. A storage counts once, however
many views of it are saved (the LSTM's four gates are views of one tensor);
a storage that lives anyway (a parameter, the batch's slice of the corpus)
counts only for the part the graph reads, or not at all for parameters.

The hooks are on only inside the ``forward`` and ``loss`` phases, so the
numbers of the run do not change (the tensors are the same tensors). Module
hooks tell which part of the model saved each tensor (embedding, rnn,
decoder, ...). At each phase boundary the recorder reads the process's
resident memory (and on CUDA the allocator's allocated and peak bytes), so
each phase gets its peak.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lmprof.instrument.base import Instrument, RunContext
from lmprof.instrument.memory_readers import CudaMemory, ProcMemory, peak_rss, torch_cuda_memory  # noqa: F401 (re-exported)
from lmprof.record.files import MEMORY_SNAPSHOT_FILE
from lmprof.record.result import RunResult
from lmprof.record.sections import (CUDA_ALLOCATED_BYTES, CUDA_ALLOCATED_PER_BATCH, CUDA_PEAK_BYTES, GRAD_BYTES,
    OPTIMIZER_BYTES, PARAM_BYTES, RSS_PEAK_BYTES, RSS_PEAK_SCOPE, RSS_PER_BATCH, SAVED_BYTES_BY_MODULE,
    SAVED_BYTES_PEAK, SAVED_BYTES_PER_BATCH)

SAVING_PHASES = ("forward", "loss")
SNAPSHOT_ENTRIES = 100_000  # allocation events the CUDA history keeps (a ring buffer)
# Roles of the model's parts, by module type name (the first level under the model).
ROLES = {"Embedding": "embedding", "LSTM": "rnn", "GRU": "rnn", "RNN": "rnn", "Dropout": "dropout",
         "Linear": "decoder", "PositionalEncoding": "positional", "TransformerEncoder": "transformer"}
TOP = "log_softmax"  # saved by the model's own forward, outside every child (the RNN model's log_softmax)


def tensor_bytes(t: Any) -> int:
    return int(t.numel()) * int(t.element_size())


@dataclass
class SavedStorage:
    """One storage autograd holds for backward: how many saved tensors use it, its bytes, whose it is."""

    tokens: int
    bytes: int
    role: str


class SavedCounter:
    """Live bytes held by autograd's saved tensors, once per storage, split by role.

    ``pack`` returns a token; autograd keeps it as long as the graph needs
    the tensor, and ``unpack`` gives the tensor back unchanged. When the last
    token of a storage goes, its bytes leave the count.
    """

    def __init__(self) -> None:
        self.live: dict[int, SavedStorage] = {}  # storage pointer -> its tokens alive, bytes and role
        self.live_bytes = 0
        self.packed_bytes: dict[str, int] = defaultdict(int)  # this batch's new saved bytes by role
        self.role = TOP
        self.exclude: set[int] = set()  # parameter storages: counted as parameters, not activations
        self.partial: set[int] = set()  # storages that live anyway (the corpus, the targets): count only the view

    def pack(self, t: Any) -> "_Token":
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        entry = self.live.get(ptr)
        if entry is None:
            if ptr in self.exclude:
                return _Token(self, -1, t.detach())
            size = tensor_bytes(t) if ptr in self.partial else storage.nbytes()
            entry = self.live[ptr] = SavedStorage(0, size, self.role)
            self.live_bytes += size
            self.packed_bytes[self.role] += size
        entry.tokens += 1
        return _Token(self, ptr, t.detach())

    def release(self, ptr: int) -> None:
        entry = self.live.get(ptr)
        if entry is None:
            return
        entry.tokens -= 1
        if entry.tokens == 0:
            del self.live[ptr]
            self.live_bytes -= entry.bytes


class _Token:
    """What autograd stores in place of a saved tensor while the counter watches."""

    __slots__ = ("counter", "ptr", "tensor")

    def __init__(self, counter: SavedCounter, ptr: int, tensor: Any) -> None:
        self.counter, self.ptr, self.tensor = counter, ptr, tensor

    def __del__(self) -> None:
        if self.ptr >= 0:
            self.counter.release(self.ptr)


def unpack(token: _Token) -> Any:
    return token.tensor


class MemoryRecorder:
    """Listens to the phase markers: saved-tensor hooks in forward/loss, RSS (and CUDA) at every boundary."""

    def __init__(self, proc: ProcMemory | None = None, cuda: CudaMemory | None = None) -> None:
        import torch

        self.torch = torch
        self.proc = proc or ProcMemory()
        self.cuda = cuda
        self.counter = SavedCounter()
        self.hooks: Any = None
        self.module_hooks: list[Any] = []
        self.model: Any = None
        self.names: dict[int, str] = {}
        self.depth = 0
        self.optimizer: Any = None
        self.phase_peaks: dict[str, dict[str, int]] = defaultdict(dict)
        self.rss_peak_ok = False
        self.batch_saved: list[int] = []  # live saved bytes when backward starts, per training batch
        self.batch_rss: list[int] = []
        self.batch_cuda: list[int] = []
        self.by_role: dict[str, int] = {}
        self.grad_bytes = 0
        self.optimizer_bytes = 0
        self._open: list[str] = []
        self._allocated = 0

    # --- module hooks: which part of the model is running -------------------------

    def install(self) -> None:
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.module_hooks = [register_module_forward_pre_hook(self._module_enter),
                             register_module_forward_hook(self._module_exit),
                             register_optimizer_step_post_hook(self._optimizer_step)]

    def uninstall(self) -> None:
        for handle in self.module_hooks:
            handle.remove()
        self.module_hooks = []

    def _module_enter(self, module: Any, args: Any) -> None:
        if self.hooks is None:
            return
        if self.depth == 0 and self._open[-1:] == ["forward"]:
            self._see_model(module, args)
        elif self.depth == 0 and len(args) > 1 and hasattr(args[1], "untyped_storage"):
            self.counter.partial.add(args[1].untyped_storage().data_ptr())  # the loss's targets
        elif self.depth == 1 and self._open[-1:] == ["forward"]:
            self.counter.role = self.names.get(id(module), self.counter.role)
        self.depth += 1

    def _module_exit(self, module: Any, args: Any, output: Any) -> None:
        if self.hooks is None:
            return
        self.depth -= 1
        if self.depth == 1 and self._open[-1:] == ["forward"]:
            self.counter.role = TOP

    def _see_model(self, model: Any, args: Any) -> None:
        if model is not self.model:
            self.model = model
            self.names = {id(child): ROLES.get(type(child).__name__, name) for name, child in model.named_children()}
            self.counter.exclude = {p.untyped_storage().data_ptr() for p in model.parameters()}
        if args and hasattr(args[0], "untyped_storage"):
            self.counter.partial.add(args[0].untyped_storage().data_ptr())  # the batch: a view of the corpus

    def _optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.optimizer is None:
            self.optimizer = optimizer
            self.optimizer_bytes = state_bytes(optimizer)

    # --- the phase markers ---------------------------------------------------------

    def enter(self, name: str) -> None:
        self._open.append(name)
        if self.cuda is not None:
            self.cuda.reset_peak()
        self.rss_peak_ok = self.proc.reset_peak()
        if name in SAVING_PHASES:
            if name == "forward":
                self.counter.packed_bytes = defaultdict(int)
            self.counter.role = TOP if name == "forward" else "loss"
            self.hooks = self.torch.autograd.graph.saved_tensors_hooks(self.counter.pack, unpack)
            self.hooks.__enter__()

    def exit(self, name: str) -> None:
        if name in SAVING_PHASES and self.hooks is not None:
            self.hooks.__exit__(None, None, None)
            self.hooks = None
        self._open.pop()
        peaks = self.phase_peaks[name]
        rss = self.proc.peak() if self.rss_peak_ok else self.proc.rss()
        peaks[RSS_PEAK_BYTES] = max(peaks.get(RSS_PEAK_BYTES, 0), rss)
        if self.cuda is not None:
            allocated, peak = self.cuda.read()  # one allocator query per boundary
            peaks[CUDA_PEAK_BYTES] = max(peaks.get(CUDA_PEAK_BYTES, 0), peak)
            peaks[CUDA_ALLOCATED_BYTES] = self._allocated = allocated
        if name == "loss":
            self._end_of_batch()
        elif name == "backward" and not self.grad_bytes and self.model is not None:
            self.grad_bytes = grad_bytes(self.model)

    def _end_of_batch(self) -> None:
        """What backward will need: the live saved bytes, and where this batch's came from."""
        self.batch_saved.append(self.counter.live_bytes)
        self.batch_rss.append(self.proc.rss())
        if self.cuda is not None:
            self.batch_cuda.append(self._allocated)  # read at this same boundary
        if self.counter.live_bytes >= max(self.batch_saved):
            self.by_role = dict(self.counter.packed_bytes)

    def summary(self) -> dict[str, Any]:
        params = param_bytes(self.model) if self.model is not None else 0
        out: dict[str, Any] = {
            SAVED_BYTES_PEAK: max(self.batch_saved, default=0),
            SAVED_BYTES_BY_MODULE: self.by_role,
            SAVED_BYTES_PER_BATCH: self.batch_saved,
            PARAM_BYTES: params,
            GRAD_BYTES: self.grad_bytes,
            OPTIMIZER_BYTES: self.optimizer_bytes,
            RSS_PEAK_BYTES: max([peak_rss(), *(v.get(RSS_PEAK_BYTES, 0) for v in self.phase_peaks.values())]),
            RSS_PER_BATCH: self.batch_rss,
            RSS_PEAK_SCOPE: "phase" if self.proc.clear is not None else "process",
            "phases": {name: dict(v) for name, v in self.phase_peaks.items()},
        }
        if self.cuda is not None:
            out[CUDA_ALLOCATED_PER_BATCH] = self.batch_cuda
            out[CUDA_PEAK_BYTES] = max((v.get(CUDA_PEAK_BYTES, 0) for v in self.phase_peaks.values()), default=0)
        return out


def unique_storage_bytes(tensors: Any) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        if t is not None:
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def param_bytes(model: Any) -> int:
    return unique_storage_bytes(model.parameters())


def grad_bytes(model: Any) -> int:
    return unique_storage_bytes(p.grad for p in model.parameters())


def state_bytes(optimizer: Any) -> int:
    """Bytes of the optimizer's per-parameter state (AdamW: two moments and a step count per tensor)."""
    return unique_storage_bytes(v for state in optimizer.state.values() for v in state.values()
                                if hasattr(v, "untyped_storage"))


class MemoryInstrument(Instrument):
    """``--memory``: contributes result.memory; ``snapshot`` (CUDA) also writes memory_snapshot.pickle."""

    name = "memory"
    sampled = True  # watches one batch in --sample-every K (lmprof.instrument.sampling)

    def __init__(self, snapshot: bool = False, cuda_factory: Callable[[Any], CudaMemory | None] | None = None,
                 ) -> None:
        self.snapshot = snapshot
        self.cuda_factory = cuda_factory
        self.rec: MemoryRecorder | None = None
        self.recording_history = False

    def start(self, context: RunContext) -> None:
        cuda = None
        if self.cuda_factory is not None:
            cuda = self.cuda_factory(context.device)
        elif getattr(context.device, "type", "") == "cuda":
            cuda = torch_cuda_memory(context.device)
        if self.snapshot and cuda is not None:
            import torch

            torch.cuda.memory._record_memory_history(max_entries=SNAPSHOT_ENTRIES)
            self.recording_history = True
        self.rec = MemoryRecorder(cuda=cuda)
        self.rec.install()

    def recorder(self) -> MemoryRecorder | None:
        return self.rec

    def watch(self, on: bool) -> None:
        """Sampling: the global module hooks only while a watched batch runs (a bare module call pays nothing)."""
        if self.rec is None:
            return
        if on and not self.rec.module_hooks:
            self.rec.install()
        elif not on:
            self.rec.uninstall()

    def stop(self) -> None:
        if self.rec is not None:
            if self.rec.hooks is not None:  # stopped inside forward or loss (an error, Ctrl-C): hooks off
                self.rec.hooks.__exit__(None, None, None)
                self.rec.hooks = None
            self.rec.uninstall()
            self.rec.proc.close()

    def contribute(self, result: RunResult, run_dir: Path) -> None:
        if self.rec is None:
            return
        result.memory = self.rec.summary()
        if self.recording_history:
            import torch

            tmp = run_dir / f".{MEMORY_SNAPSHOT_FILE}.{os.getpid()}.tmp"
            torch.cuda.memory._dump_snapshot(str(tmp))
            os.replace(tmp, run_dir / MEMORY_SNAPSHOT_FILE)  # atomic: a reader never sees half a snapshot
            torch.cuda.memory._record_memory_history(enabled=None)
            result.files["snapshot"] = MEMORY_SNAPSHOT_FILE  # for https://pytorch.org/memory_viz
