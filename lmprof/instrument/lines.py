"""line_profiler over chosen functions of the reference program: ``lines.lprof`` and ``result.lines``.

This is what the course homework did by hand with kernprof: register the
functions, run, and read one row per source line (hits, time, share). The
instrument registers the code objects of the chosen functions with a
``line_profiler.LineProfiler``, enables it for the run, then writes

- ``lines.lprof``: the profiler's own stats, so ``python -m line_profiler
  lines.lprof`` prints line_profiler's classic text report;
- the ``lines`` section of result.json: per function, every source line from
  ``def`` to the end (blank and comment lines too, with 0 hits, so a table
  reads as the code does), its hits, seconds and share of the function.

A line's time includes the calls it makes: in ``train`` the ``get_batch``
line holds get_batch's whole time. For a recursive function
(``repackage_hidden`` on an LSTM's (h, c) tuple) the outer call's line holds
the inner calls too, so its total counts them twice, as line_profiler's does.
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any, Callable, Sequence

from lmprof.errors import UsageError, did_you_mean
from lmprof.instrument.base import Instrument, RunContext
from lmprof.record.files import LINES_FILE
from lmprof.record.result import RunResult
from lmprof.record.sections import (EVALUATION_CALLS, FIRST_LINE, SHARE_OF_RUN, TOTAL_SECONDS, TRAINING_CALLS,
    WALL_SECONDS)
from lmprof.record.sections import LINE_UNITS

ALL = "all"
UNITS = LINE_UNITS  # --unit: the line table's time units
SYNC_MODES = ("launch", "blocking")

# --fn name -> what it is, in the order the tables are printed (the homework's order).
FUNCTIONS: dict[str, str] = {
    "train": "one epoch of training (loop.py)",
    "evaluate": "evaluation on validation and test (loop.py)",
    "get_batch": "cuts one (input, target) pair from the batchified data (loop.py)",
    "batchify": "cuts the token stream into batch_size columns (loop.py)",
    "repackage_hidden": "detaches the hidden state between batches (loop.py)",
    "forward": "the model's forward: RNNModel.forward or TransformerModel.forward (model.py)",
    "tokenize": "reads a text file into word ids: Corpus.tokenize (data.py)",
    "main": "the epoch driver: corpus, model, epochs, checkpoint, test (loop.py)",
}
# Functions both train() and evaluate() call, and the phase that train() calls them in: their
# line tables mix training and evaluation calls, so the record counts each (see PhaseCounter).
TRAINING_PHASE: dict[str, str] = {"forward": "forward", "get_batch": "data"}
BEFORE_TRAINING = {"tokenize", "batchify", "main"}  # functions that run before the model is built
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding lmprof/


def choose_functions(names: Sequence[str] | None) -> list[str]:
    """The --fn names, checked, ``all`` expanded, in table order; default: train."""
    wanted = list(names or ["train"])
    unknown = [n for n in wanted if n != ALL and n not in FUNCTIONS]
    if unknown:
        raise UsageError(f"unknown --fn {unknown[0]!r}{did_you_mean(unknown[0], [*FUNCTIONS, ALL])}: "
                         f"choose from {', '.join(FUNCTIONS)} or {ALL}")
    if ALL in wanted:
        return list(FUNCTIONS)
    return [n for n in FUNCTIONS if n in wanted]


def resolve(name: str, model_kind: str = "LSTM") -> Callable[..., Any]:
    """The reference function that ``--fn name`` means (forward: the one the model kind runs)."""
    from lmprof.reference import loop
    from lmprof.reference.data import Corpus
    from lmprof.reference.model import RNNModel, TransformerModel

    if name == "forward":
        return TransformerModel.forward if model_kind == "Transformer" else RNNModel.forward
    if name == "tokenize":
        return Corpus.tokenize
    if name not in FUNCTIONS:
        raise UsageError(f"unknown --fn {name!r}: choose from {', '.join(FUNCTIONS)} or {ALL}")
    return getattr(loop, name)  # type: ignore[no-any-return]


def relative_file(filename: str) -> str:
    """``lmprof/reference/loop.py`` rather than where this machine keeps it."""
    path = Path(filename).resolve()
    return path.relative_to(_PACKAGE_ROOT).as_posix() if path.is_relative_to(_PACKAGE_ROOT) else path.name


def function_record(name: str, func: Callable[..., Any], timings: dict[int, tuple[int, float]],
                    wall_seconds: float) -> dict[str, Any]:
    """One function's entry of ``result.lines``: every source line, with hits and seconds.

    ``timings`` maps line number -> (hits, seconds), as line_profiler measured them.
    """
    source, first_line = inspect.getsourcelines(func)
    total = sum(seconds for _, seconds in timings.values())
    lines = []
    for number, text in enumerate(source, start=first_line):
        hits, seconds = timings.get(number, (0, 0.0))
        lines.append({"line": number, "hits": hits, "seconds": seconds,
                      "share": seconds / total if total > 0 else 0.0, "source": text.rstrip("\n\r")})
    # The first line that ran after the signature runs once per call (nothing loops before it).
    calls = next((r["hits"] for r in lines if r["hits"] and r["line"] > func.__code__.co_firstlineno), 0)
    return {"name": name, "qualname": func.__qualname__, "file": relative_file(func.__code__.co_filename),
            FIRST_LINE: first_line, "calls": calls, TOTAL_SECONDS: total,
            SHARE_OF_RUN: total / wall_seconds if wall_seconds > 0 else 0.0, "lines": lines}


class PhaseCounter:
    """Counts how often each phase marker opens: train()'s calls of a shared function, told from evaluate()'s.

    ``on_built``: called when the model is built (the tracer then starts: see LineInstrument.start).
    """

    def __init__(self) -> None:
        self.entered: dict[str, int] = {}
        self.on_built: Callable[[], None] | None = None

    def enter(self, name: str) -> None:
        self.entered[name] = self.entered.get(name, 0) + 1

    def exit(self, name: str) -> None:
        if name == "model_build" and self.on_built is not None:
            self.on_built()


def split_calls(record: dict[str, Any], training_calls: int) -> None:
    """Add training_calls and evaluation_calls to a shared function's record (line_profiler cannot split its lines)."""
    training = min(training_calls, int(record["calls"]))
    record[TRAINING_CALLS], record[EVALUATION_CALLS] = training, int(record["calls"]) - training


class LineInstrument(Instrument):
    """Line-by-line timing of the chosen reference functions (``--fn``).

    ``unit`` (auto, s, ms, us) and ``sync`` (launch, blocking) are kept in
    the section so ``lmprof show`` renders the tables as the run did; the
    command sets CUDA_LAUNCH_BLOCKING itself for blocking mode.
    """

    name = "lines"
    sampled = True  # traces one training batch in --sample-every K (lmprof.instrument.sampling)

    def __init__(self, functions: Sequence[str] = ("train",), *, unit: str = "auto", sync: str = "launch") -> None:
        if unit not in UNITS:
            raise UsageError(f"unknown --unit {unit!r}: choose one of {', '.join(UNITS)}")
        if sync not in SYNC_MODES:
            raise UsageError(f"unknown --sync {sync!r}: choose one of {', '.join(SYNC_MODES)}")
        self.names = choose_functions(functions)
        # main() runs across every batch: switching the tracer off inside it would lose its train() line's time
        self.sampled = "main" not in self.names
        self.unit = unit
        self.sync = sync
        self.functions: dict[str, Callable[..., Any]] = {}
        self.profiler: Any = None
        self.counter = PhaseCounter()
        self.tracing = False

    def recorder(self) -> PhaseCounter | None:
        wanted = self.counter.on_built is not None or any(name in TRAINING_PHASE for name in self.names)
        return self.counter if wanted else None

    def start(self, context: RunContext) -> None:
        from line_profiler import LineProfiler

        self.profiler = LineProfiler()
        self.functions = {name: resolve(name, context.cfg.model) for name in self.names}
        for func in self.functions.values():
            # line_profiler may swap in a copy of the code object (padded with no-ops, so that
            # it can tell profiled code apart); the statements and their numbers stay the same.
            self.profiler.add_function(func)
        if self.sampled and not set(self.names) & BEFORE_TRAINING:
            # Nothing profiled runs before training: trace from the model's build on, so reading the corpus
            # and torch's lazy imports do not run under the tracer (8x slower tokenizing on the H200).
            self.counter.on_built = lambda: self.watch(True)
            return
        self.profiler.enable_by_count()
        self.tracing = True

    def watch(self, on: bool) -> None:
        """Sampling: the tracer on for a watched batch only (a bare batch runs untraced)."""
        if self.profiler is not None and on != self.tracing:
            self.profiler.enable_by_count() if on else self.profiler.disable_by_count()
            self.tracing = on

    def stop(self) -> None:
        if self.profiler is not None and self.tracing:
            self.profiler.disable_by_count()
            self.tracing = False

    def contribute(self, result: RunResult, run_dir: Path) -> None:
        if self.profiler is None:
            return
        from lmprof.fsutil import write_bytes_atomic

        stats = self.profiler.get_stats()
        # What LineStats.to_file writes, written atomically.
        write_bytes_atomic(Path(run_dir) / LINES_FILE, pickle.dumps(stats, pickle.HIGHEST_PROTOCOL))
        by_code = {(Path(filename).resolve(), first): rows for (filename, first, _), rows in stats.timings.items()}
        wall = float(result.metrics.get(WALL_SECONDS) or 0.0)
        records = []
        for name, func in self.functions.items():
            code = func.__code__
            rows = by_code.get((Path(code.co_filename).resolve(), code.co_firstlineno), [])
            timings = {line: (hits, time * stats.unit) for line, hits, time in rows}
            records.append(function_record(name, func, timings, wall))
            if name in TRAINING_PHASE:
                split_calls(records[-1], self.counter.entered.get(TRAINING_PHASE[name], 0))
        result.lines = {"unit": self.unit, "sync": self.sync, "functions": records}
        result.files["lines"] = LINES_FILE
