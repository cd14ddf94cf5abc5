"""Where a command that computes without training (a drawing, a demonstration) runs: --device and --threads."""

from __future__ import annotations

from typing import Any

from lmprof.config import RunConfig
from lmprof.errors import UsageError


def apply_compute(device: str = "auto", threads: int | None = None, *, cpu_only: str | None = None) -> Any:
    """Set torch's thread count from ``threads``; return the torch.device that ``device`` names.

    ``cpu_only``: what runs on the CPU whatever the device (a drawing, a demo); asking
    for an accelerator by name there is refused in one line rather than ignored.
    """
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be 1 or more, got {threads}")
    from lmprof.prepare import resolve_device

    chosen = resolve_device(RunConfig(device=device))
    if cpu_only and chosen.type != "cpu":
        if device != "auto":
            raise UsageError(f"--device {device}: {cpu_only} runs on the CPU here; use --device cpu")
        import torch

        chosen = torch.device("cpu")
    if threads:
        import torch

        torch.set_num_threads(threads)
    return chosen
