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
import resource
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

from lmprof.instrument.base import Instrument, RunContext
from lmprof.result import RunResult

SNAPSHOT_FILE = "memory_snapshot.pickle"
SAVING_PHASES = ("forward", "loss")
SNAPSHOT_ENTRIES = 100_000  # allocation events the CUDA history keeps (a ring buffer)
# Roles of the model's parts, by module type name (the first level under the model).
ROLES = {"Embedding": "embedding", "LSTM": "rnn", "GRU": "rnn", "RNN": "rnn", "Dropout": "dropout",
         "Linear": "decoder", "PositionalEncoding": "positional", "TransformerEncoder": "transformer"}
TOP = "log_softmax"  # saved by the model's own forward, outside every child (the RNN model's log_softmax)


def tensor_bytes(t: Any) -> int:
    return int(t.numel()) * int(t.element_size())


class ProcMemory:
    """Resident memory of this process from /proc (Linux); peak inside a span via clear_refs.

    Writing 5 to /proc/self/clear_refs resets the kernel's high-water mark
    (VmHWM), so the peak read at a phase's end is the peak inside that phase.
    Elsewhere (macOS) the peak falls back to getrusage's lifetime maximum.
    """

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.statm: Any = None
        self.clear: Any = None
        self.status: Any = None  # kept open: opening it per phase boundary cost more than reading it
        try:
            self.statm = open("/proc/self/statm", "rb", buffering=0)
            self.clear = open("/proc/self/clear_refs", "wb", buffering=0)
            self.status = open("/proc/self/status", "rb", buffering=0)
        except OSError:
            pass

    def rss(self) -> int:
        if self.statm is None:
            return peak_rss()
        self.statm.seek(0)
        return int(self.statm.read().split()[1]) * self.page

    def reset_peak(self) -> bool:
        if self.clear is None:
            return False
        try:
            self.clear.write(b"5")
            return True
        except OSError:
            self.clear = None
            return False

    def peak(self) -> int:
        if self.clear is not None and self.status is not None:
            self.status.seek(0)
            text = self.status.read(8192)
            at = text.find(b"VmHWM:")
            if at >= 0:
                return int(text[at + 6:text.index(b"kB", at)]) * 1024
        return peak_rss()

    def close(self) -> None:
        for f in (self.statm, self.clear, self.status):
            if f is not None:
                f.close()


def peak_rss() -> int:
    """The process's lifetime peak resident memory in bytes (ru_maxrss: kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class CudaMemory:
    """The CUDA allocator's figures; tests pass a fake with the same four functions.

    ``torch.cuda.memory_allocated()`` and ``max_memory_allocated()`` each build, flatten and sort the
    whole ``memory_stats()`` dictionary in Python (461k ``_recurse_add_to_result`` calls in 150 batches
    of --memory on the H200). ``raw_stats(index)``, torch's C binding under memory_stats, gives both
    figures from one nested dict; ``reset(index)`` resets the peak without the Python wrapper.
    """

    def __init__(self, torch_cuda: Any, device: Any, raw_stats: Callable[[int], Any] | None = None,
                 reset: Callable[[int], None] | None = None, index: int = 0) -> None:
        self.cuda = torch_cuda
        self.device = device
        self.raw_stats, self.raw_reset, self.index = raw_stats, reset, index

    def allocated(self) -> int:
        return self.read()[0]

    def reset_peak(self) -> None:
        if self.raw_reset is not None:
            self.raw_reset(self.index)
        else:
            self.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int:
        return self.read()[1]

    def read(self) -> tuple[int, int]:
        """(allocated, peak since the last reset) in bytes, from one call where torch allows."""
        if self.raw_stats is not None:
            allocated = self.raw_stats(self.index)["allocated_bytes"]["all"]
            return int(allocated["current"]), int(allocated["peak"])
        return int(self.cuda.memory_allocated(self.device)), int(self.cuda.max_memory_allocated(self.device))


def torch_cuda_memory(device: Any) -> CudaMemory:
    """CudaMemory on a real CUDA device, reading through torch's C bindings when this torch has them."""
    import torch

    index = torch.cuda._get_device_index(device, optional=True)
    raw = getattr(torch._C, "_cuda_memoryStats", None)
    reset = getattr(torch._C, "_cuda_resetPeakMemoryStats", None)
    try:  # the binding's shape is torch's business: check it once, fall back to the public calls
        raw(index)["allocated_bytes"]["all"]["peak"]  # type: ignore[misc]
    except Exception:
        raw = reset = None
    return CudaMemory(torch.cuda, device, raw, reset, index)


class SavedCounter:
    """Live bytes held by autograd's saved tensors, once per storage, split by role.

    ``pack`` returns a token; autograd keeps it as long as the graph needs
    the tensor, and ``unpack`` gives the tensor back unchanged. When the last
    token of a storage goes, its bytes leave the count.
    """

    def __init__(self) -> None:
        self.live: dict[int, list[Any]] = {}  # storage pointer -> [tokens alive, bytes, role]
        self.live_bytes = 0
        self.packed_bytes: dict[str, int] = defaultdict(int)  # this batch's new saved bytes by role
        self.role = TOP
        self.exclude: set[int] = set()  # parameter storages: counted as parameters, not activations
        self.partial: dict[int, int] = {}  # storage -> 0: lives anyway; count only the viewed part

    def pack(self, t: Any) -> "_Token":
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        entry = self.live.get(ptr)
        if entry is None:
            if ptr in self.exclude:
                return _Token(self, -1, t.detach())
            size = tensor_bytes(t) if ptr in self.partial else storage.nbytes()
            entry = self.live[ptr] = [0, size, self.role]
            self.live_bytes += size
            self.packed_bytes[self.role] += size
        entry[0] += 1
        return _Token(self, ptr, t.detach())

    def release(self, ptr: int) -> None:
        entry = self.live.get(ptr)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            del self.live[ptr]
            self.live_bytes -= entry[1]


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
            self.counter.partial[args[1].untyped_storage().data_ptr()] = 0  # the loss's targets
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
            self.counter.partial[args[0].untyped_storage().data_ptr()] = 0  # the batch: a view of the corpus

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
        peaks["rss_peak_bytes"] = max(peaks.get("rss_peak_bytes", 0), rss)
        if self.cuda is not None:
            allocated, peak = self.cuda.read()  # one allocator query per boundary
            peaks["cuda_peak_bytes"] = max(peaks.get("cuda_peak_bytes", 0), peak)
            peaks["cuda_allocated_bytes"] = self._allocated = allocated
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
            "saved_bytes_peak": max(self.batch_saved, default=0),
            "saved_bytes_by_module": self.by_role,
            "saved_bytes_per_batch": self.batch_saved,
            "param_bytes": params,
            "grad_bytes": self.grad_bytes,
            "optimizer_bytes": self.optimizer_bytes,
            "rss_peak_bytes": max([peak_rss(), *(v.get("rss_peak_bytes", 0) for v in self.phase_peaks.values())]),
            "rss_per_batch": self.batch_rss,
            "rss_peak_scope": "phase" if self.proc.clear is not None else "process",
            "phases": {name: dict(v) for name, v in self.phase_peaks.items()},
        }
        if self.cuda is not None:
            out["cuda_allocated_per_batch"] = self.batch_cuda
            out["cuda_peak_bytes"] = max((v.get("cuda_peak_bytes", 0) for v in self.phase_peaks.values()), default=0)
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

            tmp = run_dir / f".{SNAPSHOT_FILE}.{os.getpid()}.tmp"
            torch.cuda.memory._dump_snapshot(str(tmp))
            os.replace(tmp, run_dir / SNAPSHOT_FILE)  # atomic: a reader never sees half a snapshot
            torch.cuda.memory._record_memory_history(enabled=None)
            result.files["snapshot"] = SNAPSHOT_FILE  # for https://pytorch.org/memory_viz
