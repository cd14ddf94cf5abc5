"""Fixtures shared by the test files: tiny corpora and configs that train in a second."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lmprof.record.result import RunResult

# ../shared beside the project: wikitext-2-lite and upstream's example, the oracle. Elsewhere (a lent GPU
# machine) benchmarks/gpu_check.sh points at copies through these two variables.
SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = Path(os.environ.get("LMPROF_TEST_DATA") or SHARED / "data" / "wikitext-2-lite")
UPSTREAM_EXAMPLE = Path(os.environ.get("LMPROF_TEST_UPSTREAM") or SHARED / "upstream" / "word_language_model")
TINY_SIZES = {"train": 3000, "valid": 600, "test": 600}
# Tests that compare with a CPU oracle or with exact figures run here, whatever `--device auto` would pick:
# on a GPU machine auto means CUDA, whose kernels give other last bits (and, for dropout, other masks).
ORACLE_DEVICE = "cpu"
os.environ["LMPROF_STRICT_RECORD"] = "1"  # every result.json the suite writes is checked strictly (lmprof.record.result)


CUDA_SKIP = "needs a CUDA device (torch.cuda.is_available() is False here); benchmarks/gpu_check.sh runs these on a GPU"
# --pretend-cuda: torch.cuda.is_available() says True here and in every python the tests start (this
# sitecustomize, first on their PYTHONPATH). Nothing else of CUDA works on a CPU machine, so a test that
# trains on `--device auto` fails, as it would run on CUDA; one that names its device passes, as there.
PRETEND_CUDA_SITE = """import os
if os.environ.get("LMPROF_TEST_PRETEND_CUDA") == "1":  # tests/conftest.py's --pretend-cuda
    import torch
    torch.cuda.is_available = lambda: True
"""


# Flags for a test whose figures are the CPU's (every batch watched, host clocks, bitwise losses, upstream's
# "Using device: cpu"): on a GPU machine `--device auto` means CUDA, where the expensive instruments watch
# one batch in 16 and a tiny step is launch-bound. tests/test_cuda.py covers the CUDA runs.
ON_CPU = ["--device", "cpu"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pretend-cuda", action="store_true",
                     help="torch.cuda.is_available() says True (in subprocesses too): shows which tests "
                          "keep their device where `--device auto` would mean CUDA")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--pretend-cuda"):
        return
    import tempfile

    import torch

    site = Path(tempfile.mkdtemp(prefix="lmprof-pretend-cuda-"))
    (site / "sitecustomize.py").write_text(PRETEND_CUDA_SITE, encoding="utf-8")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ["LMPROF_TEST_PRETEND_CUDA"] = "1"
    torch.cuda.is_available = lambda: True


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `cuda` run the real CUDA paths: skipped where torch sees no CUDA device, before their
    fixtures start (raised here, so the skips fold into one line of the summary)."""
    if item.get_closest_marker("cuda") is None:
        return
    import torch

    if item.config.getoption("--pretend-cuda") or not torch.cuda.is_available():
        pytest.skip(CUDA_SKIP)


@pytest.fixture
def cuda_reported_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.cuda.is_available() says True, as on a GPU machine (nothing else of CUDA works on a CPU build)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small copy of the embedded corpus (a few thousand tokens)."""
    from lmprof.corpora import synth

    return synth.write(tmp_path_factory.mktemp("tiny-corpus"), seed=0, sizes=TINY_SIZES)


@pytest.fixture
def tiny_args(tiny_corpus: Path, tmp_path: Path) -> list[str]:
    """CLI flags for a run that takes about a second."""
    return ["--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--epochs", "1",
            "--max-batches", "4", "--bptt", "8", "--out", str(tmp_path / "run")]


def _hand_made_result() -> RunResult:
    """A small profile run written by hand: every number is known, so views can be checked exactly."""
    from lmprof.phases import LABELS, UNCOVERED
    from lmprof.record.result import RunResult

    def phase(name: str, calls: int, seconds: float, host: float | None = None) -> dict:
        host = seconds if host is None else host
        return {"name": name, "label": LABELS.get(name, "time outside every phase"), "calls": calls,
                "seconds": seconds, "host_seconds": host, "mean_seconds": seconds / calls if calls else 0.0,
                "share": seconds / 10.0}

    source = ["def train(model, data):", "    # one epoch", "    for batch in data:",
              "        output = model(batch)", "", "        output.backward()", "    return batch"]
    timings = {12: (5, 0.01), 13: (4, 2.0), 15: (4, 5.0), 16: (1, 0.99)}  # line -> (hits, seconds): 8 s in all
    lines = [{"line": n, "hits": timings.get(n, (0, 0.0))[0], "seconds": timings.get(n, (0, 0.0))[1],
              "share": timings.get(n, (0, 0.0))[1] / 8.0, "source": text} for n, text in enumerate(source, start=10)]
    return RunResult(
        command="profile",
        config={"model": "LSTM", "emsize": 16, "nhid": 16, "nlayers": 2, "bptt": 8, "batch_size": 20},
        environment={"device": "cpu", "torch": "2.13.0"},
        metrics={"status": "ok", "wall_seconds": 10.0,
                 "epochs": [{"epoch": 1, "batches": 4, "train_seconds": 8.5}]},
        phases=[phase("corpus", 1, 0.5), phase("forward", 4, 2.0), phase("backward", 4, 5.0),
                phase("logging", 4, 1.0), phase("evaluate_valid", 1, 0.25), phase("evaluate_test", 1, 0.75),
                phase(UNCOVERED, 0, 0.5)],
        phase_summary={"clock": "host", "wall_seconds": 10.0, "train_seconds": 8.5, "train_coverage": 8.0 / 8.5},
        lines={"unit": "auto", "sync": "launch", "functions": [
            {"name": "train", "qualname": "train", "file": "lmprof/reference/loop.py", "first_line": 10,
             "calls": 1, "total_seconds": 8.0, "share_of_run": 0.8, "lines": lines}]},
        files={"lines": "lines.lprof"},
    )


@pytest.fixture
def profile_result() -> RunResult:
    """A hand-made profile RunResult (one function, seven phases), shared by the view tests."""
    return _hand_made_result()


@pytest.fixture
def empty_result() -> RunResult:
    """A RunResult with nothing measured: every view must still render."""
    from lmprof.record.result import RunResult

    return RunResult(command="profile", config={"model": "LSTM"})


@pytest.fixture
def ctrl_c_after_first_row(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Presses Ctrl-C in a sweep's driver as soon as its first epoch row is stored; call the result to stop."""
    from lmprof.sweeps.driver import Driver

    real_progress = Driver.progress

    def progress_then_ctrl_c(self: Driver, task: object) -> None:
        real_progress(self, task)
        if self.store.epochs(task.key):  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    monkeypatch.setattr(Driver, "progress", progress_then_ctrl_c)
    return lambda: monkeypatch.setattr(Driver, "progress", real_progress)


@pytest.fixture(scope="session")
def instrumented_run(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """A real tiny run watched by torch.profiler, the phase timer and line_profiler on train.

    Shared: tests that add files to a run folder copy it first. On the CPU wherever run: the view
    tests that read it check the views against a CPU run's sections (test_cuda.py has CUDA runs).
    """
    from lmprof.config import RunConfig
    from lmprof.instrument.lines import LineInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.instrument.trace import TraceSchedule, TraceInstrument
    from lmprof.runner import run

    folder = tmp_path_factory.mktemp("instrumented") / "run"
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, epochs=1, max_batches=5, bptt=8,
                    device=ORACLE_DEVICE)
    run(cfg, command="profile", run_dir=folder, log=lambda line: None,
        instruments=[TraceInstrument(TraceSchedule(wait=1, warmup=1, active=2)), PhaseInstrument(), LineInstrument(["train"])])
    return folder
