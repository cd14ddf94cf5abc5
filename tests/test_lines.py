"""The line instrument on real tiny runs: every line of train, hits that match the batches, lines.lprof."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lmprof.config import RunConfig
from lmprof.errors import UsageError
from lmprof.instrument.base import Instrument
from lmprof.instrument.lines import FUNCTIONS, LINES_FILE, LineInstrument, choose_functions, resolve
from lmprof.instrument.recorders import PhaseInstrument
from lmprof.reference import loop
from lmprof.reference.model import RNNModel, TransformerModel
from lmprof.record.result import RunResult
from lmprof.runner import run

ROOT = Path(__file__).resolve().parents[1]
BATCHES = 4


def tiny(corpus: Path, **changes: object) -> RunConfig:
    values = dict(data=str(corpus), emsize=16, nhid=16, epochs=1, max_batches=BATCHES, bptt=8, device="cpu")
    values.update(changes)
    return RunConfig(**values)  # type: ignore[arg-type]


def profiled(corpus: Path, run_dir: Path, functions: list[str], **changes: object) -> RunResult:
    return run(tiny(corpus, **changes), command="profile", instruments=[PhaseInstrument(), LineInstrument(functions)],
               log=lambda line: None, run_dir=run_dir)


def function(result: RunResult, name: str) -> dict:
    return next(f for f in result.lines["functions"] if f["name"] == name)


def hits_of(record: dict, text: str) -> int:
    """Hits of the one line of ``record`` whose source contains ``text``."""
    (line,) = [r for r in record["lines"] if text in r["source"]]
    return int(line["hits"])


def test_choose_functions_checks_expands_and_orders() -> None:
    assert choose_functions(None) == ["train"]
    assert choose_functions(["get_batch", "train", "train"]) == ["train", "get_batch"]
    assert choose_functions(["all"]) == list(FUNCTIONS) and len(FUNCTIONS) == 8
    with pytest.raises(UsageError) as e:
        choose_functions(["train", "trian"])
    message = str(e.value)
    assert "'trian'" in message and "\n" not in message
    assert all(name in message for name in [*FUNCTIONS, "all"])


def test_forward_means_the_forward_of_the_model_kind_that_runs() -> None:
    assert resolve("forward", "LSTM") is RNNModel.forward
    assert resolve("forward", "Transformer") is TransformerModel.forward
    assert resolve("main") is loop.main and resolve("get_batch") is loop.get_batch


def test_train_table_has_every_line_and_hits_match_the_batches(tiny_corpus: Path, tmp_path: Path) -> None:
    result = profiled(tiny_corpus, tmp_path / "run", ["train", "get_batch"])
    train = function(result, "train")
    source, first = inspect.getsourcelines(loop.train)
    assert train["file"] == "lmprof/reference/loop.py" and train["first_line"] == first
    # every source line, in order, as the file has it: the table reads as the code does
    assert [r["line"] for r in train["lines"]] == list(range(first, first + len(source)))
    assert [r["source"] for r in train["lines"]] == [s.rstrip("\n") for s in source]
    statements = {first - 1 + node.lineno for node in ast.walk(ast.parse(textwrap.dedent("".join(source))))
                  if isinstance(node, ast.stmt)}
    assert statements <= {r["line"] for r in train["lines"]}
    # hits a reader can check: once per batch, once per call
    assert hits_of(train, "get_batch(train_data") == BATCHES
    assert hits_of(train, "loss.backward()") == BATCHES
    assert hits_of(train, "model.train()") == 1 and train["calls"] == 1
    assert hits_of(train, "optimizer.step()") == 0  # plain SGD ran, not AdamW
    # shares of a function add up to 100%; its total is the sum of its lines
    assert sum(r["share"] for r in train["lines"]) == pytest.approx(1.0)
    assert train["total_seconds"] == pytest.approx(sum(r["seconds"] for r in train["lines"]))
    assert 0 < train["share_of_run"] <= 1
    assert train["share_of_run"] == pytest.approx(train["total_seconds"] / result.metrics["wall_seconds"])
    # get_batch runs in training and in both evaluations: its calls are its first line's hits
    get_batch = function(result, "get_batch")
    assert get_batch["calls"] == hits_of(get_batch, "seq_len = ") > BATCHES
    assert result.lines["unit"] == "auto" and result.lines["sync"] == "launch"


def test_lines_lprof_loads_in_line_profiler(tiny_corpus: Path, tmp_path: Path) -> None:
    result = profiled(tiny_corpus, tmp_path / "run", ["train"])
    path = tmp_path / "run" / LINES_FILE
    assert result.files["lines"] == LINES_FILE and path.is_file()
    stats = pickle.loads(path.read_bytes())
    ((filename, first, name), rows), = stats.timings.items()
    assert name == "train" and first == function(result, "train")["first_line"]
    by_line = {line: hits for line, hits, _ in rows}
    backward = next(r["line"] for r in function(result, "train")["lines"] if "loss.backward()" in r["source"])
    assert by_line[backward] == BATCHES
    shown = subprocess.run([sys.executable, "-m", "line_profiler", str(path)], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "Function: train" in shown.stdout and "loss.backward()" in shown.stdout


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")  # torch's note on the Transformer's layout
def test_all_functions_on_a_transformer(tiny_corpus: Path, tmp_path: Path) -> None:
    result = profiled(tiny_corpus, tmp_path / "run", ["all"], model="Transformer", nhead=2)
    names = [f["name"] for f in result.lines["functions"]]
    assert names == list(FUNCTIONS)
    assert function(result, "forward")["qualname"] == "TransformerModel.forward"
    assert function(result, "tokenize")["qualname"] == "Corpus.tokenize"
    assert function(result, "tokenize")["calls"] == 3  # train, valid, test
    assert function(result, "batchify")["calls"] == 3
    assert function(result, "main")["calls"] == 1 and function(result, "evaluate")["calls"] == 2
    assert function(result, "repackage_hidden")["calls"] == 0  # a Transformer carries no hidden state
    # the driver's lines hold all the rest: main takes most of the run
    assert function(result, "main")["share_of_run"] > function(result, "train")["share_of_run"]


def test_profiling_changes_no_number_and_counts_afresh_each_run(tiny_corpus: Path, tmp_path: Path) -> None:
    bare = run(tiny(tiny_corpus), log=lambda line: None, run_dir=tmp_path / "bare")
    first = profiled(tiny_corpus, tmp_path / "first", ["train"])
    second = profiled(tiny_corpus, tmp_path / "second", ["train"])
    assert first.epochs[0]["val_loss"] == bare.epochs[0]["val_loss"] == second.epochs[0]["val_loss"]
    assert first.metrics["test_loss"] == bare.metrics["test_loss"]
    assert hits_of(function(second, "train"), "loss.backward()") == BATCHES  # not 2 * BATCHES


class CtrlCOnBatch(Instrument):
    """Presses Ctrl-C as training batch ``batch`` (1-based) begins."""

    def __init__(self, batch: int) -> None:
        self.batch, self.seen = batch, 0

    def recorder(self) -> "CtrlCOnBatch":
        return self

    def enter(self, name: str) -> None:
        if name == "data":
            self.seen += 1
            if self.seen == self.batch:
                raise KeyboardInterrupt

    def exit(self, name: str) -> None:
        return None


def test_ctrl_c_during_training_keeps_the_lines_of_what_ran(tiny_corpus: Path, tmp_path: Path) -> None:
    result = run(tiny(tiny_corpus), command="profile", instruments=[LineInstrument(["train"]), CtrlCOnBatch(3)],
                 log=lambda line: None, run_dir=tmp_path / "run")
    assert result.status == "interrupted"
    assert hits_of(function(result, "train"), "loss.backward()") == 2
    saved = RunResult.load(tmp_path / "run")
    assert saved.status == "interrupted" and hits_of(function(saved, "train"), "loss.backward()") == 2
    assert (tmp_path / "run" / LINES_FILE).is_file()


def test_bad_unit_or_sync_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--unit"):
        LineInstrument(["train"], unit="minutes")
    with pytest.raises(UsageError, match="--sync"):
        LineInstrument(["train"], sync="eventually")


def _bench_lines() -> Any:
    spec = importlib.util.spec_from_file_location("bench_lines", ROOT / "benchmarks" / "bench_lines.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_lines_measure_smoke(tiny_corpus: Path) -> None:
    report = _bench_lines().measure(pairs=2, max_batches=2, data=str(tiny_corpus), emsize=16, nhid=16, bptt=8)
    bare, profiled = report["bare_seconds"], report["profiled_seconds"]
    assert len(bare) == len(profiled) == 2 and all(seconds > 0 for seconds in bare + profiled)
    # pair 2 runs profiled first (B A): its ratio is still its own profiled / bare
    assert report["ratios"] == [pytest.approx(p / b) for b, p in zip(bare, profiled)]
    assert report["target"] == 1.05


def test_bench_lines_pairs_each_side_with_its_own_and_reports_the_median(tiny_corpus: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench_lines()
    # the seconds each timed run takes, in the order the bench must run them: a warm-up of each side,
    # then A B, B A, A B (bare A, profiled B)
    script = iter([("bare", 9.0), ("profiled", 9.0), ("bare", 1.0), ("profiled", 1.8),
                   ("profiled", 2.2), ("bare", 2.0), ("bare", 1.0), ("profiled", 1.3)])

    def timed(side: str) -> float:
        expected, seconds = next(script)
        assert side == expected
        return seconds

    monkeypatch.setattr(bench.bench_loop, "time_train", lambda setup, batches: timed("bare"))
    monkeypatch.setattr(bench, "time_profiled", lambda setup, batches, run_dir: timed("profiled"))
    report = bench.measure(pairs=3, max_batches=2, data=str(tiny_corpus), emsize=16, nhid=16, bptt=8)
    assert (report["bare_seconds"], report["profiled_seconds"]) == ([1.0, 2.0, 1.0], [1.8, 2.2, 1.3])
    assert report["ratios"] == [pytest.approx(1.8), pytest.approx(1.1), pytest.approx(1.3)]
    # the median, not the mean (1.4)
    assert (report["median"], report["min"], report["max"]) == (pytest.approx(1.3), pytest.approx(1.1),
                                                                pytest.approx(1.8))


def test_forward_table_says_how_many_calls_were_training_and_how_many_evaluation(tiny_corpus: Path,
                                                                                 tmp_path: Path) -> None:
    from lmprof.views.rows import line_table_data

    result = profiled(tiny_corpus, tmp_path / "run", ["forward", "get_batch", "train"])
    forward = function(result, "forward")
    # evaluate() runs one forward per bptt chunk of valid and of test (eval batch size 10)
    tokens = result.metrics["corpus_tokens"]
    chunks = sum(-(-(tokens[part] // 10 - 1) // 8) for part in ("valid", "test"))
    assert (forward["training_calls"], forward["evaluation_calls"]) == (BATCHES, chunks)
    assert forward["calls"] == BATCHES + chunks
    assert function(result, "get_batch")["training_calls"] == BATCHES
    assert "training_calls" not in function(result, "train")  # only train() calls train
    assert line_table_data(forward).callers == f"{BATCHES} training + {chunks} evaluation calls, mixed in this table"
