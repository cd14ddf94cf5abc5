"""A run's progress as it happens: a rich bar on a terminal, an HTML bar in a notebook cell (progress_notebook).

Both listen to the phase markers, as an instrument does, and draw nothing
into the run folder. The command line asks ``progress_instruments(console)``
for its run; the API asks ``api_progress()`` (no console of its own: the bar
goes to the notebook cell, or to a terminal's stderr).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lmprof.instrument.base import Instrument, RunContext

if TYPE_CHECKING:
    from rich.console import Console


# The long stages outside the training batches, and what the display calls them.
STAGES = {
    "corpus": "reading the corpus",
    "evaluate_valid": "validation",
    "checkpoint_save": "saving the best model",
    "checkpoint_load": "loading the best checkpoint",
    "evaluate_test": "test",
}


class StageProgress(Instrument):
    """A live display of what the loop is doing (a listener on the phase markers).

    Each epoch's training batches get a bar; validation, test, checkpoint load and
    the other long stages get a spinner with their name and the seconds so far,
    so the terminal is never silent. ``prefix`` names the run (a sweep's label).
    """

    name = "progress"

    def __init__(self, console: "Console", *, prefix: str = "") -> None:
        self.console = console
        self.prefix = prefix
        self.progress: Any = None
        self.task: Any = None  # the epoch's bar
        self.stage: Any = None  # the running stage's spinner
        self.epoch = 0
        self.done = 0  # batches of this epoch so far
        self.total: int | None = None

    def start(self, context: RunContext) -> None:
        from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.total = context.batches_per_epoch
        self.progress = Progress(SpinnerColumn(finished_text=" "), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[count]}"), TimeRemainingColumn(compact=True),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.progress.start()

    def recorder(self) -> "StageProgress":
        return self

    def _label(self, text: str) -> str:
        return f"{self.prefix}: {text}" if self.prefix else text

    def _count(self, done: int) -> str:
        return f"{done}/{self.total} batches" if self.total else f"{done} batches"

    def enter(self, name: str) -> None:
        if name == "data" and self.task is None:
            self.epoch += 1
            self.done = 0
            self.task = self.progress.add_task(self._label(f"epoch {self.epoch}"), total=self.total,
                                               count=self._count(0))
            self.progress.refresh()  # once an epoch: show the new bar at once
        elif name in STAGES:
            if self.task is not None:
                self.progress.refresh()  # the finished count, before the bar gives way to the stage
                self.progress.remove_task(self.task)
                self.task = None
            self.stage = self.progress.add_task(self._label(STAGES[name]), total=None, count="")
            self.progress.refresh()

    def exit(self, name: str) -> None:
        if name == "update" and self.task is not None:
            self.done += 1
            self.progress.update(self.task, advance=1, count=self._count(self.done))
        elif name in STAGES and self.stage is not None:
            self.progress.remove_task(self.stage)
            self.stage = None

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None




def sweep_run_name(task: Any, i: int, n: int) -> str:
    """What a sweep's run i of n is called on its progress bar."""
    return f"run {i}/{n} {task.label}"


def sweep_progress(console: "Console") -> "Callable[[Any, int, int], list[Instrument]] | None":
    """For a sweep's inline runs: a StageProgress named "run i/n LABEL" per run (None when piped)."""
    if not (console.is_terminal and sys.stdout.isatty()):
        return None

    def watchers(task: Any, i: int, n: int) -> list[Instrument]:
        return [StageProgress(console, prefix=sweep_run_name(task, i, n))]

    return watchers


@contextmanager
def sweep_runs_progress(console: "Console", executor_name: str) -> "Iterator[Callable[[int, int], None] | None]":
    """For runs in other processes or on a cluster: one line counting finished runs, with the time so far.

    Yields the ``on_run_end(finished, to_run)`` callback for ``run_sweep`` (None when piped: the
    epoch lines are the progress there).
    """
    if not (console.is_terminal and sys.stdout.isatty()):
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("runs"), TimeElapsedColumn(), console=console, transient=True)
    task = progress.add_task(f"sweep ({executor_name}): runs finished", total=None)

    def on_run_end(finished: int, to_run: int) -> None:
        progress.update(task, completed=finished, total=to_run)

    with progress:
        yield on_run_end


_progress_stream: list[Any] = []  # set by progress_on: a terminal the bar goes to while stdout is captured


@contextmanager
def progress_on(stream: Any) -> Iterator[None]:
    """While the block runs, a command's progress bar goes to ``stream`` (a terminal) whatever its stdout is
    (``%lmprof`` in IPython on a terminal captures the command's printing, not its bar)."""
    previous = list(_progress_stream)
    _progress_stream[:] = [stream]
    try:
        yield
    finally:
        _progress_stream[:] = previous


def progress_instruments(console: "Console", *, prefix: str = "") -> list[Instrument]:
    """A live display of the run's stages: in a notebook cell, or on a terminal (``prefix``: what runs)."""
    from lmprof.views import progress_notebook

    if progress_notebook.active():  # run from a notebook (lmprof.profile(...), %lmprof): a bar in the cell
        return [progress_notebook.NotebookProgress()]
    if _progress_stream:
        return [_stderr_bar(_progress_stream[0], prefix)]
    return [StageProgress(console, prefix=prefix)] if console.is_terminal and sys.stdout.isatty() else []


def api_progress(prefix: str = "") -> list[Instrument]:
    """The API's live display: a bar in the notebook cell, or on a terminal's stderr; nothing when piped."""
    from lmprof.views import progress_notebook

    if progress_notebook.in_notebook():
        return [progress_notebook.NotebookProgress()]
    stream = sys.stderr
    return [_stderr_bar(stream, prefix)] if hasattr(stream, "isatty") and stream.isatty() else []


def _stderr_bar(stream: Any, prefix: str) -> StageProgress:
    from lmprof.views.safe_console import safe_console_class

    return StageProgress(safe_console_class()(file=stream, highlight=False), prefix=prefix)
