"""The terminal side of commands that train: the console, log lines, a progress bar.

Only commands own the console. On a terminal, an epoch shows a rich progress
bar under upstream's log lines; piped, the log lines are printed plain, so a
log file reads exactly like upstream's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lmprof.instrument.base import Instrument, RunContext

if TYPE_CHECKING:
    from rich.console import Console


def make_console() -> "Console":
    from rich.console import Console

    return Console(highlight=False)


def log_to(console: "Console") -> Callable[[str], None]:
    if not console.is_terminal:
        def plain(line: str) -> None:
            print(line, flush=True)
        return plain

    def rich_line(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return rich_line


class EpochProgress(Instrument):
    """A progress bar over each epoch's training batches (a listener on the phase markers)."""

    name = "progress"

    def __init__(self, console: "Console") -> None:
        self.console = console
        self.progress: Any = None
        self.task: Any = None
        self.epoch = 0
        self.total = 0

    def start(self, context: RunContext) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.total = context.batches_per_epoch
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("batches"), TimeRemainingColumn(), console=self.console,
                                 transient=True)
        self.progress.start()

    def recorder(self) -> "EpochProgress":
        return self

    def enter(self, name: str) -> None:
        if name == "data" and self.task is None:
            self.epoch += 1
            self.task = self.progress.add_task(f"epoch {self.epoch}", total=self.total)
            self.progress.refresh()  # once an epoch: show the new bar at once
        elif name in ("evaluate_valid", "evaluate_test") and self.task is not None:
            self.progress.refresh()  # the finished count, before the bar gives way to evaluation
            self.progress.remove_task(self.task)
            self.task = None

    def exit(self, name: str) -> None:
        if name == "update" and self.task is not None:
            self.progress.advance(self.task)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def progress_instruments(console: "Console") -> list[Instrument]:
    from lmprof.commands import notebook_progress

    if notebook_progress.active():  # run from a notebook (lmprof.profile(...), %lmprof): a bar in the cell
        return [notebook_progress.NotebookProgress()]
    return [EpochProgress(console)] if console.is_terminal and sys.stdout.isatty() else []


def print_files(console: "Console", run_dir: Path, files: dict[str, str]) -> None:
    """End a command by saying where each file is."""
    console.print(f"\n[bold]Run folder[/bold] {run_dir}")
    for role, name in files.items():
        if (run_dir / name).exists():
            console.print(f"  {role:<12} {run_dir / name}", highlight=False)


def dropout_note(args: Any) -> str | None:
    """One line when the command's base config gives a one-layer RNN dropout (else None)."""
    from lmprof.config import RNN_KINDS

    if not hasattr(args, "epochs"):
        return None  # a command that trains nothing (a drawing) needs no note
    models = getattr(args, "models", None) or [getattr(args, "model", None)]
    dropout, nlayers = getattr(args, "dropout", None), getattr(args, "nlayers", None)
    if not (dropout and nlayers == 1 and any(m in RNN_KINDS for m in models)):
        return None
    return (f"note: --dropout {dropout:g} with --nlayers 1: PyTorch's recurrent layers drop only between "
            "layers, so there is none inside the RNN; the model's nn.Dropout on the embeddings and on the "
            "decoder's input still applies (PyTorch warns about this; lmprof says it once)")


def say_library_notes(args: Any) -> None:
    """Before a command runs: silence the duplicated library warnings, say each once on stderr."""
    from lmprof.config import quiet_library_warnings

    quiet_library_warnings()
    note = dropout_note(args)
    if note:
        print(f"lmprof {getattr(args, 'command', '')}: {note}", file=sys.stderr)
