"""Where a run's memory figures come from: the process's resident memory (/proc) and the CUDA allocator.

Read at every phase boundary of a watched batch by ``lmprof.instrument.memory``, so each read is one cheap
call: a file kept open and re-read from its start, or one C-binding call to the allocator.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any, Callable


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
