"""The terminal side of commands that train: the console, log lines, a progress bar.

Only commands own the console. On a terminal, an epoch shows a rich progress
bar under upstream's log lines; piped, the log lines are printed plain, so a
log file reads exactly like upstream's.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lmprof.instrument.base import Instrument, RunContext

if TYPE_CHECKING:
    from rich.console import Console


def make_console(*, stderr: bool = False) -> "Console":
    """The console a command prints to: rich, with a stranger's strings kept inert (``safe_console_class``)."""
    from lmprof.views.safe_console import safe_console_class

    # force_jupyter=False: in a notebook, lmprof.api shows results itself
    return safe_console_class()(highlight=False, force_jupyter=False, stderr=stderr)


def log_to(console: "Console") -> Callable[[str], None]:
    if not console.is_terminal:
        def plain(line: str) -> None:
            print(line, flush=True)
        return plain

    def rich_line(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return rich_line


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


EpochProgress = StageProgress  # the name the first version had


def sweep_progress(console: "Console") -> "Callable[[Any, int, int], list[Instrument]] | None":
    """For a sweep's inline runs: a StageProgress named "run i/n LABEL" per run (None when piped)."""
    if not (console.is_terminal and sys.stdout.isatty()):
        return None

    def watchers(task: Any, i: int, n: int) -> list[Instrument]:
        return [StageProgress(console, prefix=f"run {i}/{n} {task.label}")]

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


_progress_stream: list[Any] = []  # set by progress_on: plain Python's terminal (lmprof.api), while stdout is captured


@contextmanager
def progress_on(stream: Any) -> Iterator[None]:
    """While the block runs, a command's progress bar goes to ``stream`` (a terminal) whatever its stdout is."""
    previous = list(_progress_stream)
    _progress_stream[:] = [stream]
    try:
        yield
    finally:
        _progress_stream[:] = previous


def progress_instruments(console: "Console", *, prefix: str = "") -> list[Instrument]:
    """A live display of the run's stages: in a notebook cell, or on a terminal (``prefix``: what runs)."""
    from lmprof.commands import notebook_progress

    if notebook_progress.active():  # run from a notebook (lmprof.profile(...), %lmprof): a bar in the cell
        return [notebook_progress.NotebookProgress()]
    if _progress_stream:  # lmprof.profile(...) from plain Python on a terminal
        from lmprof.views.safe_console import safe_console_class

        return [StageProgress(safe_console_class()(file=_progress_stream[0], highlight=False), prefix=prefix)]
    return [StageProgress(console, prefix=prefix)] if console.is_terminal and sys.stdout.isatty() else []


def print_files(console: "Console", run_dir: Path, files: dict[str, str]) -> None:
    """End a command by saying where each file is."""
    from lmprof.views.format import from_file  # a folder's name and its file names are text, never markup

    console.print(f"\n[bold]Run folder[/bold] {from_file(run_dir)}")
    for role, name in files.items():
        if (run_dir / name).exists():
            console.print(f"  {from_file(role):<12} {from_file(run_dir / name)}", highlight=False)


def dropout_note(args: Any) -> str | None:
    """One line when the command's base config gives a one-layer RNN dropout (else None)."""
    from lmprof.config import RNN_KINDS

    if not hasattr(args, "epochs"):
        return None  # a command that trains nothing (a drawing) needs no note
    models = getattr(args, "models", None) or [getattr(args, "model", None)]
    dropout, nlayers = getattr(args, "dropout", None), getattr(args, "nlayers", None)
    # a sweep's --vary nlayers=1,2 gives some of its runs one layer
    varied = [v.split("=", 1)[1] for v in getattr(args, "vary", None) or []
              if v.replace("-", "_").startswith("nlayers=")]
    one_layer = nlayers == 1 or any(w.strip() == "1" for values in varied for w in values.split(","))
    if not (dropout and one_layer and any(m in RNN_KINDS for m in models)):
        return None
    where = "--nlayers 1" if nlayers == 1 else "one layer (--vary nlayers)"
    return (f"note: --dropout {dropout:g} with {where}: PyTorch's recurrent layers drop only between "
            "layers, so there is none inside the RNN; the model's nn.Dropout on the embeddings and on the "
            "decoder's input still applies (PyTorch warns about this; lmprof says it once)")


def say_library_notes(args: Any) -> None:
    """Before a command runs: silence the duplicated library warnings, say each once on stderr."""
    from lmprof.config import quiet_library_warnings

    quiet_library_warnings()
    note = dropout_note(args)
    if note:
        print(f"lmprof {getattr(args, 'command', '')}: {note}", file=sys.stderr)


# --- standard output closed under a running command (`lmprof profile ... | head -1`) -----------------
CLOSED_NOTE = ("standard output closed (the reader of the pipe stopped): printing stops here, "
               "the command goes on and its folder keeps everything it measures")


class PipeGuard:
    """sys.stdout for a command's lifetime: once the pipe's reader has gone, writes are dropped, not raised.

    A BrokenPipeError in a log line used to end a training as "cannot write a file" and lose
    the run; in rich it exits 1 without a word. Here the first one says so on stderr (once),
    points the real file descriptor at /dev/null (so the interpreter's last flush is quiet too),
    and the measurement carries on.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.closed_pipe = False

    def write(self, text: str) -> int:
        if not self.closed_pipe:
            try:
                return int(self.stream.write(text))
            except BrokenPipeError:
                self._closed()
        return len(text)

    def flush(self) -> None:
        if not self.closed_pipe:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._closed()

    def _closed(self) -> None:
        import os

        self.closed_pipe = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no real descriptor (a test's capture)
            pass
        print(f"lmprof: {CLOSED_NOTE}", file=sys.stderr, flush=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextmanager
def guarded_stdout() -> Iterator[PipeGuard]:
    """Within the block, sys.stdout is a PipeGuard around the real one."""
    original = sys.stdout
    guard = PipeGuard(original)
    sys.stdout = guard  # type: ignore[assignment]
    try:
        yield guard
    finally:
        if sys.stdout is guard:
            sys.stdout = original
