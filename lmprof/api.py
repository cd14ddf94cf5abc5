"""lmprof from Python: the commands as functions that return objects which display themselves.

Each function calls the library function its command calls (``lmprof.library``),
with the keywords checked against the options the command declares: a
misspelt name or a wrong value raises ``ValueError`` carrying the very line the
command line prints for the same mistake (``lmprof train: error: ...``). No
command line is built or parsed here; the terminal's face (``lmprof.cli``) and
this one sit side by side over the same library.

    >>> import lmprof
    >>> run = lmprof.profile(fn=["train"], max_batches=20)        # doctest: +SKIP
    >>> run                                                       # doctest: +SKIP
    (in a notebook: the summary, the phase table with bars, the hot lines)
    >>> lmprof.diagram.bptt(bptt=3)                               # doctest: +SKIP
    (in a notebook: the unrolled graph as SVG)

Flags take upstream's names with underscores (``batch_size``, ``max_batches``,
``log_interval``); a list repeats a repeatable flag (``fn=["train", "evaluate"]``).
A run shows its progress as a bar in the notebook cell (or on a terminal's
stderr); upstream's log lines are not printed: the RunResult holds what they say.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import lmprof.views.notebook  # noqa: F401  (registers how a RunResult and a Comparison show in a notebook)
from lmprof.display import register_terminal

if TYPE_CHECKING:
    from lmprof.comparison import Comparison
    from lmprof.library.options import Option
    from lmprof.record.result import RunResult


@contextlib.contextmanager
def _said_as(prog: str | None = None) -> Iterator[None]:
    """A UsageError as the ValueError carrying the command line's line (``lmprof PROG: error: ...``; the
    message alone where no command's line frames it: load, pack, compare, explain)."""
    from lmprof.errors import UsageError
    from lmprof.library.options import error_line

    try:
        yield
    except UsageError as e:
        raise ValueError(error_line(f"lmprof {prog}", str(e)) if prog else str(e)) from None


@contextlib.contextmanager
def _command(prog: str) -> Iterator[None]:
    """What ``lmprof PROG`` does around its work: library warnings said once, SIGTERM as Ctrl-C, its errors."""
    import sys

    from lmprof.config import quiet_library_warnings
    from lmprof.errors import stop_requests_as_interrupts

    quiet_library_warnings()
    try:
        with _said_as(prog), stop_requests_as_interrupts():
            yield
    finally:  # the command line prints these once on stderr; here the returned object holds them
        getattr(sys.modules.get("lmprof.record.result"), "READING_NOTES", []).clear()


def _checked(prog: str, options: Sequence["Option"], flags: dict[str, Any]) -> dict[str, Any]:
    """The keywords read as ``lmprof PROG``'s parser reads its flags (its message when one is wrong)."""
    from lmprof.library.options import check

    with _said_as(prog):
        return check(options, flags)


def _progress(prefix: str) -> list[Any]:
    from lmprof.views.progress import api_progress

    return api_progress(prefix)


def _finished(command: str, result: "RunResult", report: bool = False) -> "RunResult":
    """The report when asked; a run the loop stopped on Ctrl-C raises KeyboardInterrupt, as the command exits 130."""
    if report:
        from lmprof.views.files import write_report

        write_report(result.run_dir)
    if result.status == "interrupted":
        raise KeyboardInterrupt(f"lmprof {command}: interrupted")
    return result  # a diverged run too: its status and message say so


# --- runs ----------------------------------------------------------------------------------
def train(**flags: Any) -> "RunResult":
    """Train as upstream does (``lmprof train``); returns the run's RunResult.

    >>> run = lmprof.train(epochs=1, max_batches=20)   # doctest: +SKIP
    """
    from lmprof.library.runs import TRAIN_OPTIONS, train_from

    values = _checked("train", TRAIN_OPTIONS, flags)
    with _command("train"):
        return _finished("train", train_from(values, progress=_progress))


def profile(fn: Sequence[str] = ("train",), **flags: Any) -> "RunResult":
    """Time training line by line and phase by phase (``lmprof profile --fn ...``).

    >>> run = lmprof.profile(fn=["train"], max_batches=50)   # doctest: +SKIP
    """
    from lmprof.library.runs import PROFILE_OPTIONS, profile_from

    values = _checked("profile", PROFILE_OPTIONS, {"fn": list(fn), **flags})
    with _command("profile"):
        return _finished("profile", profile_from(values, progress=_progress), values["report"])


def trace(**flags: Any) -> "RunResult":
    """Watch training with torch.profiler (``lmprof trace``); the run's top operators."""
    from lmprof.library.trace import TRACE_OPTIONS, trace_from

    values = _checked("trace", TRACE_OPTIONS, flags)
    with _command("trace"):
        return _finished("trace", trace_from(values, progress=_progress), values["report"])


def load(folder: str | Path) -> "RunResult":
    """A run folder's RunResult; ValueError when the folder is not a run (the command line's message)."""
    from lmprof.record.result import RunResult

    with _said_as():
        return RunResult.load(folder)


def pack(run: "RunResult | str | Path", out: str | Path | None = None, *, anonymize: bool = False) -> Path:
    """A run's hand-in bundle (``lmprof pack``): one zip of JSON with this machine's calibration; its path.

    >>> lmprof.pack("runs/demo", "alice.zip", anonymize=True)   # doctest: +SKIP
    """
    from lmprof.classroom.bundle import pack as pack_bundle

    with _said_as():
        return pack_bundle(getattr(run, "run_dir", run), out, anonymize=anonymize)


def compare(*runs: "RunResult | str | Path", drift_margin: float | None = None) -> "Comparison":
    """What changed between runs (``lmprof compare``): the first is the baseline; RunResults or folders.

    >>> lmprof.compare(lstm, gru)   # doctest: +SKIP
    (in a notebook: what differs, outcomes, phases with verdicts, FLOPs, lines, operators)
    """
    from lmprof.library.compare import compare_runs

    with _said_as():  # drift_margin None: this machine's drift, or the default
        return compare_runs([str(getattr(r, "run_dir", r)) for r in runs], drift_margin)[0]


# --- sweeps, diagrams, walkthroughs ----------------------------------------------------------
@dataclass
class SweepResult:
    """A sweep folder: its tables and plots display in a notebook, as ``lmprof report`` shows them."""

    folder: Path
    log: str = ""  # what the sweep said as it ran (each run's start and end, what was skipped)

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
    from lmprof.library.sweep import (SWEEP_OPTIONS, default_folder, plan_sweep, run_planned, runs_inline,
                                      set_watchers, summarize)
    from lmprof.views.files import save_sweep_plots, write_report
    from lmprof.views.progress import sweep_run_name

    factors = [f"{name}={','.join(str(v) for v in _listed(values))}" for name, values in (vary or {}).items()]
    values = _checked("sweep", SWEEP_OPTIONS, {"models": models, "vary": factors, **flags,
                                               "out": flags.get("out") or default_folder()})
    lines: list[str] = []
    with _command("sweep"):
        setup = plan_sweep(values)
        if runs_inline(setup):
            set_watchers(setup, lambda task, i, n: _progress(sweep_run_name(task, i, n)))
        run_planned(setup, log=lines.append)
        save_sweep_plots(summarize(setup.folder), setup.folder, mixed_hardware=values["mixed_hardware"])
        if values["report"]:
            write_report(setup.folder, mixed_hardware=values["mixed_hardware"])
    return SweepResult(setup.folder, "\n".join(lines))


def _listed(values: Any) -> list[Any]:
    return list(values) if isinstance(values, (list, tuple)) else [values]


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
        from lmprof.views.render import output_path, render

        with _said_as():
            picture, chosen = output_path(str(path), fmt, "diagram")
            return render(self.dot, picture, chosen).picture

    def __repr__(self) -> str:
        return f"Diagram({self.title!r}, {len(self.svg):,} bytes of SVG)"


def drawn(graph: Any, title: str, stem: str, values: dict[str, Any], folder: str | Path = ".") -> Diagram:
    """A graphviz graph as a Diagram (rendered to SVG here); also written where ``out``/``format`` say, if given."""
    from lmprof.views.render import output_path, render

    with tempfile.TemporaryDirectory() as tmp:
        picture = render(graph, Path(tmp) / f"{stem}.svg", "svg").picture
        diagram = Diagram(title, picture.read_text(encoding="utf-8"), str(graph.source))
    if values["out"] is not None or values["format"] is not None:
        render(graph, *output_path(values["out"], values["format"], stem, folder))
    return diagram


class _Diagrams:
    """``lmprof.diagram.flow(run)`` and ``lmprof.diagram.bptt(**flags)``."""

    @staticmethod
    def flow(run: "RunResult | str | Path | None" = None, **flags: Any) -> Diagram:
        """The flow chart, shaded by a run's measured time (a RunResult or its folder); plain without one.

        ``vs=`` another run: each phase coloured by its time ratio to ``run`` (``--from A --vs B``).
        """
        from lmprof.library.diagram import FLOW_OPTIONS, flow_comparison, flow_run, vs_stem
        from lmprof.record.files import FLOW_STEM

        folder = getattr(run, "run_dir", run)
        values = _checked("diagram flow", FLOW_OPTIONS, {"run": str(folder) if folder else None, **flags})
        with _command("diagram"):
            result, where = flow_run(values, watchers=_progress("") if values["profile"] else [], log=_silent)
            if values["vs"] is not None:
                from lmprof.views.flowchart_compare import vs_chart

                comparison, base, other = flow_comparison(values["run"], values["vs"])
                return drawn(vs_chart(comparison, base, other), "flow chart by time ratio", vs_stem(other), values,
                             values["run"])
            from lmprof.views.flowchart import flow_chart

            graph = flow_chart(result) if result is not None else flow_chart()
            return drawn(graph, "flow chart", FLOW_STEM, values, where)

    @staticmethod
    def bptt(**flags: Any) -> Diagram:
        """The unrolled BPTT graph of one training step (``lmprof diagram bptt``'s flags)."""
        from lmprof.library.diagram import BPTT_OPTIONS, bptt_capture, bptt_config
        from lmprof.record.files import BPTT_RAW_STEM, BPTT_STEM
        from lmprof.views.bptt import bptt_graph, raw_graph

        values = _checked("diagram bptt", BPTT_OPTIONS, flags)
        with _command("diagram"):
            captured = bptt_capture(bptt_config(values), values)
            if values["raw"]:
                return drawn(raw_graph(captured.data), "autograd graph", BPTT_RAW_STEM, values)
            return drawn(bptt_graph(captured.data, captured.grads), "BPTT graph", BPTT_STEM, values)


diagram = _Diagrams()


def _silent(line: str) -> None:
    """Log lines a Python caller does not see printed (the RunResult holds them)."""


@dataclass
class Explanation:
    """A walkthrough topic with its live numbers: the page in a notebook, ``.numbers`` for code."""

    topic: str
    numbers: dict[str, Any]

    def _repr_html_(self) -> str:
        from lmprof.views.notebook import explanation_html

        return explanation_html(_explanation_page(self))

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
    """Run a walkthrough's live demonstration (``lmprof explain TOPIC``): ``lmprof.explain("tied")``.

    ``options`` go to the topic's demonstration itself (``lmprof.explain("dropout", p=0.3)``).
    """
    from lmprof.lessons import topic_module

    with _said_as():
        module = topic_module(topic)
    return Explanation(topic, module.demo(**options))
