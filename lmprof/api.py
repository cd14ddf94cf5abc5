"""lmprof from Python: the commands as functions that return objects which display themselves.

Every function here runs the command line's own composition (``lmprof.cli.main``)
with the flags turned into arguments, then loads what the command wrote. So a
notebook and a terminal can never disagree, and a wrong flag raises a
``ValueError`` carrying exactly the message the command line prints.

    >>> import lmprof
    >>> run = lmprof.profile(fn=["train"], max_batches=20)        # doctest: +SKIP
    >>> run                                                       # doctest: +SKIP
    (in a notebook: the summary, the phase table with bars, the hot lines)
    >>> lmprof.diagram.bptt(bptt=3)                               # doctest: +SKIP
    (in a notebook: the unrolled graph as SVG)

Flags take upstream's names with underscores (``batch_size``, ``max_batches``,
``log_interval``); a list repeats a repeatable flag (``fn=["train", "evaluate"]``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import lmprof.views.notebook  # noqa: F401  (registers how a RunResult and a Comparison show in a notebook)
from lmprof.display import register_terminal

if TYPE_CHECKING:
    from lmprof.comparison import Comparison
    from lmprof.record.result import RunResult

# Commands whose result is a run folder, and the object each displays as.
RUN_COMMANDS = ("train", "profile", "trace")


class CommandFailed(RuntimeError):
    """A command ran and failed (exit 1: a diverged run, an error while training)."""


@dataclass
class CommandOutput:
    """What one command printed, kept beside its result (``.log`` on the objects below)."""

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
    with _notebook_progress(), _terminal_progress(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    result = CommandOutput(code, out.getvalue(), err.getvalue())
    if code == 2:
        raise ValueError(result.error_line())
    if code == 130 or code == 143:
        raise KeyboardInterrupt(result.error_line())
    return result


@contextlib.contextmanager
def _notebook_progress() -> Iterator[None]:
    from lmprof.commands import notebook_progress

    if not _in_notebook():
        yield
        return
    with notebook_progress.enabled():
        yield


@contextlib.contextmanager
def _terminal_progress() -> Iterator[None]:
    """Plain Python on a terminal: the command's progress bar on the terminal's stderr, as the CLI shows it
    (its printed tables stay captured: ``.show()`` prints them)."""
    import sys

    from lmprof.commands import console

    stream = sys.stderr
    if _in_notebook() or not (hasattr(stream, "isatty") and stream.isatty()):
        yield
        return
    with console.progress_on(stream):
        yield


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"


# --- flags -> arguments ------------------------------------------------------------------
def command_parser(*path: str) -> argparse.ArgumentParser:
    """The argparse parser of ``lmprof PATH...`` (e.g. "diagram", "bptt")."""
    from lmprof.cli import build_parser

    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def to_argv(path: Sequence[str], flags: dict[str, Any]) -> list[str]:
    """Keyword flags as the command line spells them: ``max_batches=5`` -> ``--max-batches 5``.

    A name the command does not know is passed through as ``--name``, so the command
    line's own parser refuses it with its own message (and suggestion).
    """
    by_dest = {a.dest: a for a in command_parser(*path)._actions if a.option_strings}
    argv = list(path)
    for name, value in flags.items():
        if value is None:
            continue
        action = by_dest.get(name)
        option = _option(action) if action is not None else f"--{name}"
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if value is not isinstance(action, argparse._StoreFalseAction):
                argv.append(option)
            continue
        if isinstance(value, dict):  # vary={"nhid": [200, 400]}
            for key, values in value.items():
                items = values if isinstance(values, (list, tuple)) else [values]
                argv += [option, f"{key}={','.join(str(v) for v in items)}"]
        elif isinstance(value, (list, tuple)):
            if isinstance(action, argparse._AppendAction):
                for item in value:
                    argv += [option, str(item)]
            else:
                argv += [option, *(str(item) for item in value)]
        else:
            argv += [option, str(value)]
    return argv


def _option(action: argparse.Action) -> str:
    """The spelling a student reads in upstream's code: ``--batch_size`` before ``--batch-size``."""
    return next((o for o in action.option_strings if "_" in o), action.option_strings[-1])


def _run_folder(command: str, flags: dict[str, Any]) -> str:
    if flags.get("out"):
        return str(flags["out"])
    from lmprof.config import RunConfig
    from lmprof.runner import default_run_dir

    return str(default_run_dir(command, RunConfig(model=str(flags.get("model") or RunConfig.model))))


# --- runs ----------------------------------------------------------------------------------
def _run(command: str, flags: dict[str, Any]) -> "RunResult":
    from lmprof.record.result import RunResult

    folder = _run_folder(command, flags)
    output = run_command(to_argv([command], {**flags, "out": folder}))
    result = RunResult.load(folder)
    if output.code != 0 and result.status != "diverged":
        raise CommandFailed(output.error_line())
    return result


def train(**flags: Any) -> "RunResult":
    """Train as upstream does (``lmprof train``); returns the run's RunResult.

    >>> run = lmprof.train(epochs=1, max_batches=20)   # doctest: +SKIP
    """
    return _run("train", flags)


def profile(fn: Sequence[str] = ("train",), **flags: Any) -> "RunResult":
    """Time training line by line and phase by phase (``lmprof profile --fn ...``).

    >>> run = lmprof.profile(fn=["train"], max_batches=50)   # doctest: +SKIP
    """
    return _run("profile", {"fn": list(fn), **flags})


def trace(**flags: Any) -> "RunResult":
    """Watch training with torch.profiler (``lmprof trace``); the run's top operators."""
    return _run("trace", flags)


def load(folder: str | Path) -> "RunResult":
    """A run folder's RunResult; ValueError when the folder is not a run (the command line's message)."""
    from lmprof.errors import UsageError
    from lmprof.record.result import RunResult

    try:
        return RunResult.load(folder)
    except UsageError as e:
        raise ValueError(str(e)) from None


def pack(run: "RunResult | str | Path", out: str | Path | None = None, *, anonymize: bool = False) -> Path:
    """A run's hand-in bundle (``lmprof pack``): one zip of JSON with this machine's calibration; its path.

    >>> lmprof.pack("runs/demo", "alice.zip", anonymize=True)   # doctest: +SKIP
    """
    from lmprof.classroom.bundle import pack as pack_bundle
    from lmprof.errors import UsageError

    try:
        return pack_bundle(getattr(run, "run_dir", run), out, anonymize=anonymize)
    except UsageError as e:
        raise ValueError(str(e)) from None


def compare(*runs: "RunResult | str | Path", drift_margin: float | None = None) -> "Comparison":
    """What changed between runs (``lmprof compare``): the first is the baseline; RunResults or folders.

    >>> lmprof.compare(lstm, gru)   # doctest: +SKIP
    (in a notebook: what differs, outcomes, phases with verdicts, FLOPs, lines, operators)
    """
    from lmprof.comparison import load_runs
    from lmprof.comparison import compare as comparison
    from lmprof.errors import UsageError

    folders = [str(getattr(r, "run_dir", r)) for r in runs]
    try:
        results, notes = load_runs(folders)
    except UsageError as e:
        raise ValueError(str(e)) from None
    return comparison(results, notes, drift_margin=drift_margin)  # None: this machine's drift, or the default


# --- sweeps, diagrams, walkthroughs ----------------------------------------------------------
@dataclass
class SweepResult:
    """A sweep folder: its tables and plots display in a notebook, as ``lmprof report`` shows them."""

    folder: Path
    log: str = ""

    def _repr_html_(self) -> str:
        from lmprof.sweeps import load_rows
        from lmprof.views.notebook import sweep_html

        plan, rows = load_rows(self.folder)
        return sweep_html(plan, rows, self.folder)

    def __repr__(self) -> str:
        return f"SweepResult({str(self.folder)!r})"


def sweep(models: Sequence[str] | None = None, vary: dict[str, Sequence[Any]] | None = None,
          **flags: Any) -> SweepResult:
    """Train a grid (``lmprof sweep``): ``lmprof.sweep(models=["LSTM", "GRU"], vary={"nhid": [32, 64]})``."""
    folder = flags.pop("out", None) or f"sweeps/sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    output = run_command(to_argv(["sweep"], {"models": models, "vary": vary or {}, **flags, "out": folder}))
    return SweepResult(Path(folder), output.stdout)


@dataclass
class Diagram:
    """A drawn diagram: SVG in a notebook, ``save(path)`` in svg, png, pdf or dot."""

    title: str
    svg: str
    dot: str = field(repr=False)

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the picture (format from ``fmt`` or the suffix; the .dot beside it, as the commands do)."""
        from lmprof.errors import UsageError
        from lmprof.views.render import output_path, render

        try:
            picture, chosen = output_path(str(path), fmt, "diagram")
            return render(self.dot, picture, chosen).picture
        except UsageError as e:
            raise ValueError(str(e)) from None

    def __repr__(self) -> str:
        return f"Diagram({self.title!r}, {len(self.svg):,} bytes of SVG)"


def _diagram(kind: str, flags: dict[str, Any], title: str) -> Diagram:
    with tempfile.TemporaryDirectory() as tmp:
        picture = Path(tmp) / f"{kind}.svg"
        run_command(to_argv(["diagram", kind], {**flags, "out": str(picture), "format": "svg"}))
        return Diagram(title, picture.read_text(encoding="utf-8"), picture.with_suffix(".dot").read_text())


class _Diagrams:
    """``lmprof.diagram.flow(run)`` and ``lmprof.diagram.bptt(**flags)``."""

    @staticmethod
    def flow(run: "RunResult | str | Path | None" = None, **flags: Any) -> Diagram:
        """The flow chart, shaded by a run's measured time (a RunResult or its folder); plain without one."""
        folder = getattr(run, "run_dir", run)
        return _diagram("flow", {"run": str(folder) if folder else None, **flags}, "flow chart")

    @staticmethod
    def bptt(**flags: Any) -> Diagram:
        """The unrolled BPTT graph of one training step (``lmprof diagram bptt``'s flags)."""
        return _diagram("bptt", flags, "BPTT graph")


diagram = _Diagrams()


@dataclass
class Explanation:
    """A walkthrough topic with its live numbers: the page in a notebook, ``.numbers`` for code."""

    topic: str
    numbers: dict[str, Any]

    def _repr_html_(self) -> str:
        from lmprof.lessons import topic_module
        from lmprof.views.notebook import explanation_html

        return explanation_html(topic_module(self.topic).render(self.numbers))

    def __repr__(self) -> str:
        return f"Explanation({self.topic!r}, numbers={sorted(self.numbers)})"

    def show(self, width: int | None = None) -> None:
        """Print the walkthrough as ``lmprof explain TOPIC`` does, with these numbers."""
        from lmprof.display import show

        show(self, width)


def _explanation_page(explanation: Explanation) -> Any:
    from lmprof.lessons import topic_module

    return topic_module(explanation.topic).render(explanation.numbers)


register_terminal(Explanation, _explanation_page)


def explain(topic: str, **options: Any) -> Explanation:
    """Run a walkthrough's live demonstration (``lmprof explain TOPIC``): ``lmprof.explain("tied")``."""
    from lmprof.errors import UsageError
    from lmprof.lessons import topic_module

    try:
        module = topic_module(topic)
    except UsageError as e:
        raise ValueError(str(e)) from None
    return Explanation(topic, module.demo(**options))


def magic_argv(line: str) -> list[str]:
    """``%lmprof ARGS``: the words of the line, exactly as a shell would split them."""
    argv = shlex.split(line)
    if not argv:
        raise ValueError("usage: %lmprof COMMAND [ARGS]  (the command line's arguments, e.g. "
                         "%lmprof profile --fn train --max-batches 50)")
    return argv


def run_magic(line: str) -> Any:
    """What ``%lmprof ARGS`` shows: the object its command's result displays as."""
    argv = magic_argv(line)
    command = argv[0]
    if command in RUN_COMMANDS:
        from lmprof.record.result import RunResult

        folder = _out_of(argv)
        if folder is None:
            folder = _run_folder(command, {})
            argv += ["--out", folder]
        run_command(argv)
        return RunResult.load(folder)
    if command == "show" and len(argv) == 2:
        return load(argv[1])
    if command == "compare" and not any(a.startswith("-") for a in argv[1:]):
        return compare(*argv[1:])
    if command == "explain" and len(argv) == 2:
        return explain(argv[1])
    if command == "diagram" and len(argv) >= 2 and "--out" not in argv:
        flags = argv[2:]
        with tempfile.TemporaryDirectory() as tmp:
            picture = Path(tmp) / f"{argv[1]}.svg"
            run_command([*argv[:2], *flags, "--out", str(picture), "--format", "svg"])
            return Diagram(f"{argv[1]} diagram", picture.read_text(encoding="utf-8"),
                           picture.with_suffix(".dot").read_text())
    output = run_command(argv)
    return _Printed(output.stdout)


def _out_of(argv: Sequence[str]) -> str | None:
    """The value of --out in a command line, if it has one."""
    for i, word in enumerate(argv):
        if word == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith("--out="):
            return word.split("=", 1)[1]
    return None


@dataclass
class _Printed:
    """A command's printed output, shown as it printed it."""

    text: str

    def __repr__(self) -> str:
        return self.text.rstrip()
