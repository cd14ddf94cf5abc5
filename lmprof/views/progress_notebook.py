"""A live progress bar in a notebook cell, for runs started from Python (``lmprof.profile(...)``, ``%lmprof``).

A terminal gets rich's progress bar; a notebook gets one HTML ``<progress>``
element per run that updates in place (IPython's display handles: no widget
library needed), naming the stage it is in: training epoch N, evaluation on
validation or test, the checkpoint. It listens to the phase markers, as the
terminal's bar does.
"""

from __future__ import annotations

import html
import time
from contextlib import contextmanager
from typing import Any, Iterator

from lmprof.instrument.base import Instrument, RunContext

STAGES = {"evaluate_valid": "evaluating on validation", "evaluate_test": "evaluating on test",
          "checkpoint_save": "saving the best model", "checkpoint_load": "loading the best model",
          "corpus": "reading the corpus"}
REFRESH_S = 0.25  # at most four updates a second: a cell that redraws per batch slows the kernel

_active = False


@contextmanager
def enabled() -> Iterator[None]:
    """While the block runs, commands show their progress as a notebook bar."""
    global _active
    previous, _active = _active, True
    try:
        yield
    finally:
        _active = previous


def active() -> bool:
    return _active


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where a run's progress is an HTML bar in the cell)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


class NotebookProgress(Instrument):
    """One updating ``<progress>`` line per run: the stage, batches done of the epoch's total."""

    name = "progress"

    def __init__(self) -> None:
        self.handle: Any = None
        self.total = 0
        self.done = 0
        self.epoch = 0
        self.stage = "starting"
        self.shown_at = 0.0

    def start(self, context: RunContext) -> None:
        from IPython.display import HTML, display

        self.total = context.batches_per_epoch
        self.handle = display(HTML(self.html()), display_id=True)

    def recorder(self) -> "NotebookProgress":
        return self

    def enter(self, name: str) -> None:
        if name == "data" and self.stage != "training":
            self.epoch += 1
            self.done = 0
            self.stage = "training"
            self.show(force=True)
        elif name in STAGES:
            self.stage = STAGES[name]
            self.show(force=True)

    def exit(self, name: str) -> None:
        if name == "update":
            self.done += 1
            self.show(force=self.done == self.total)

    def stop(self) -> None:
        self.stage = f"done: {self.epoch} epoch(s) trained" if self.epoch else "done"
        self.show(force=True)

    def html(self) -> str:
        if self.stage == "training":
            label = f"epoch {self.epoch}: {self.done:,} / {self.total:,} batches"
            bar = f'<progress value="{self.done}" max="{max(self.total, 1)}" style="width: 20em"></progress>'
        else:
            label, bar = self.stage, ""
        return f'<div class="lmprof-progress" style="font-family: monospace">{bar} {html.escape(label)}</div>'

    def show(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.handle is None or not (force or now - self.shown_at >= REFRESH_S):
            return
        from IPython.display import HTML

        self.shown_at = now
        self.handle.update(HTML(self.html()))
