"""What every instrument is: something that watches one run and adds a section to its RunResult.

The runner calls, in order: ``start(context)`` before the reference loop,
``recorder()`` to learn what listens to the phase markers, ``stop()`` when
the loop has ended (normally, by Ctrl-C or by an error), then
``contribute(result)`` to write its section and files into the run folder.
An instrument never draws and never prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmprof.phases import Recorder

if TYPE_CHECKING:
    from lmprof.config import RunConfig
    from lmprof.record.result import RunResult


@dataclass
class RunContext:
    cfg: "RunConfig"
    device: Any  # torch.device
    run_dir: Path
    batches_per_epoch: int  # training batches each epoch will run (after --max-batches)
    full_batches_per_epoch: int | None = None  # a whole epoch's batches (before --max-batches / --dry-run)


class Instrument:
    name = "instrument"

    def start(self, context: RunContext) -> None:
        return None

    def recorder(self) -> Recorder | None:
        return None

    def stop(self) -> None:
        return None

    def contribute(self, result: "RunResult", run_dir: Path) -> None:
        return None
