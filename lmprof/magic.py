"""``%load_ext lmprof``: the ``%lmprof`` line magic, which takes exactly the command line's arguments.

    %load_ext lmprof
    %lmprof profile --fn train --max-batches 50      # runs here, in the kernel; shows the run
    %lmprof diagram bptt --bptt 3                    # shows the SVG
    %lmprof explain tied

It is the command line inside a notebook: the line goes to ``lmprof.cli.main``
in this kernel, its printed output is kept, and what the command made (a run
folder, a picture) comes back as the object the API returns for it, which
the notebook displays. IPython is imported only here, when the extension loads.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

RUN_COMMANDS = ("train", "profile", "trace")  # commands whose result is a run folder


def lmprof_magic(line: str) -> Any:
    """Run ``lmprof LINE`` in this kernel and return what it made, which the notebook displays.

    A usage mistake prints the command line's one-line message, not a traceback.
    """
    try:
        return run_magic(line)
    except ValueError as e:
        print(f"%lmprof: {e}")
        return None


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext lmprof``."""
    ipython.register_magic_function(lmprof_magic, magic_kind="line", magic_name="lmprof")


@dataclass
class CommandOutput:
    """What one command printed."""

    code: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {self.code}"


def run_command(argv: Sequence[str]) -> CommandOutput:
    """Run ``lmprof ARGV`` in this process, its output captured; ValueError on a usage error (exit 2).

    In a notebook, long stages show a live progress bar in the cell instead of log lines.
    """
    from lmprof.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _progress_bar(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    result = CommandOutput(code, out.getvalue(), err.getvalue())
    if code == 2:
        raise ValueError(result.error_line())
    if code == 130 or code == 143:
        raise KeyboardInterrupt(result.error_line())
    return result


def _progress_bar() -> Any:
    """Where the command's progress shows while its printing is captured: the notebook cell, or the terminal."""
    import sys

    from lmprof.views import progress, progress_notebook

    if progress_notebook.in_notebook():
        return progress_notebook.enabled()
    stream = sys.stderr
    return progress.progress_on(stream) if hasattr(stream, "isatty") and stream.isatty() else contextlib.nullcontext()


def magic_argv(line: str) -> list[str]:
    """``%lmprof ARGS``: the words of the line, exactly as a shell would split them."""
    argv = shlex.split(line)
    if not argv:
        raise ValueError("usage: %lmprof COMMAND [ARGS]  (the command line's arguments, e.g. "
                         "%lmprof profile --fn train --max-batches 50)")
    return argv


def run_magic(line: str) -> Any:
    """What ``%lmprof ARGS`` shows: the object its command's result displays as."""
    from lmprof import api

    argv = magic_argv(line)
    command = argv[0]
    if command in RUN_COMMANDS:
        from lmprof.record.result import RunResult

        folder = _flag_value(argv, "--out")
        if folder is None:
            folder = _default_folder(command, _flag_value(argv, "--model"))
            argv += ["--out", folder]
        run_command(argv)
        return RunResult.load(folder)
    if command == "show" and len(argv) == 2:
        return api.load(argv[1])
    if command == "compare" and not any(a.startswith("-") for a in argv[1:]):
        return api.compare(*argv[1:])
    if command == "explain" and len(argv) == 2:
        return api.explain(argv[1])
    if command == "diagram" and len(argv) >= 2 and _flag_value(argv, "--out") is None:
        with tempfile.TemporaryDirectory() as tmp:
            picture = Path(tmp) / f"{argv[1]}.svg"
            run_command([*argv, "--out", str(picture), "--format", "svg"])
            return api.Diagram(f"{argv[1]} diagram", picture.read_text(encoding="utf-8"),
                               picture.with_suffix(".dot").read_text())
    return Printed(run_command(argv).stdout)


def _default_folder(command: str, model: str | None) -> str:
    """The run folder the command would choose (runs/<command>-<model>-<time>), chosen here so the magic can load it."""
    from lmprof.config import RunConfig
    from lmprof.runner import default_run_dir

    return str(default_run_dir(command, RunConfig(model=model or RunConfig.model)))


def _flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in a command line (``--out DIR`` or ``--out=DIR``), if it has one."""
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


@dataclass
class Printed:
    """A command's printed output, shown as it printed it."""

    text: str

    def __repr__(self) -> str:
        return self.text.rstrip()
