"""The terminal side of the commands: the console, log lines, the files a command ends with, a closed pipe.

Only commands own the console. On a terminal, an epoch shows a rich progress
bar (lmprof.views.progress) under upstream's log lines; piped, the log lines
are printed plain, so a log file reads exactly like upstream's.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lmprof.views.progress import progress_instruments

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


def progress_for(console: "Console") -> "Callable[[str], list[Any]]":
    """What a library run calls for its progress display: a run's name -> the watchers that show it here."""
    def watchers(prefix: str) -> list[Any]:
        return progress_instruments(console, prefix=prefix)

    return watchers


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
