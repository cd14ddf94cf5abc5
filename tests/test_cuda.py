"""The suite on a GPU machine: the real CUDA paths (marked `cuda`), and proof on CPU that the oracle tests stay put.

Where torch sees a CUDA device, `--device auto` means CUDA, so every test that
trains without naming a device runs there. The tests that compare with a CPU
oracle or exact figures name the CPU instead (test_equivalence.py, the host-clock
tests of test_components.py and test_recorders.py, speedlab's exact variants);
the first test below shows, on any machine, that a CUDA device being present does
not move them.

The rest run the CUDA paths for real: CUDA events for phases and components,
CUDA memory statistics, blocking launches, kernel rows in a trace, the side by
side with upstream's `--accel`, and speedlab's CUDA variants. All at tiny sizes
in this one process (CUDA starts once), but for the two that need a fresh one:
upstream's program, and `--sync blocking` (read when CUDA starts). Without CUDA
they skip with one reason; `benchmarks/gpu_check.sh` runs them with `pytest -m cuda`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lmprof.config import RunConfig
from lmprof.record.result import RunResult

from .conftest import ORACLE_DEVICE, SHARED_DATA

BATCHES = 6


def tiny_cuda_config(corpus: Path, **overrides: Any) -> RunConfig:
    values: dict[str, Any] = dict(data=str(corpus), emsize=32, nhid=32, epochs=1, max_batches=BATCHES, bptt=8,
                                  device="cuda")
    if "sample_every" in RunConfig.__dataclass_fields__:
        values["sample_every"] = 0  # every batch watched: the counts below are per batch
    return RunConfig(**{**values, **overrides})


def run_with(cfg: RunConfig, folder: Path, *instruments: Any) -> RunResult:
    from lmprof.runner import run

    return run(cfg, command="profile", instruments=instruments, log=lambda line: None, run_dir=folder)


# --- on any machine: a CUDA device being present does not move the oracle tests ----------------

def test_the_oracle_tests_stay_on_the_cpu_where_cuda_is_present(cuda_reported_present: None,
                                                                 tmp_path: Path) -> None:
    from lmprof.cli import build_parser
    from lmprof.commands.common import config_from_args
    from lmprof.prepare import resolve_device

    from .test_components import tiny_config
    from .test_equivalence import command_lines

    assert resolve_device(RunConfig()).type == "cuda"  # what `--device auto` picks on a GPU machine

    def device_of(argv: list[str]) -> str:
        assert argv[:3] == ["-m", "lmprof", "train"], argv
        return str(resolve_device(config_from_args(build_parser().parse_args(argv[2:]))).type)

    upstream, ours = command_lines(tmp_path, tmp_path / "corpus", ["--epochs", "1"], ORACLE_DEVICE)
    assert "--accel" not in upstream and device_of(ours) == "cpu"  # the side by side stays on the CPU
    upstream, ours = command_lines(tmp_path, tmp_path / "corpus", ["--epochs", "1"], "cuda")
    assert "--accel" in upstream and device_of(ours) == "cuda"  # ... and moves both when asked
    assert resolve_device(tiny_config(tmp_path)).type == "cpu"  # the host-clock component tests


# --- the real CUDA paths ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def watched(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RunResult]:
    """One tiny CUDA run under phases, components and memory, and the same run unwatched."""
    from lmprof.instrument.components import ComponentInstrument
    from lmprof.instrument.memory import MemoryInstrument
    from lmprof.instrument.recorders import PhaseInstrument

    folder = tmp_path_factory.mktemp("cuda")
    bare = run_with(tiny_cuda_config(tiny_corpus), folder / "bare")
    result = run_with(tiny_cuda_config(tiny_corpus), folder / "watched", PhaseInstrument(), ComponentInstrument(),
                      MemoryInstrument())
    return result, bare


@pytest.mark.cuda
def test_phases_on_cuda_events_and_the_losses_of_an_unwatched_run(watched: tuple[RunResult, RunResult]) -> None:
    result, bare = watched
    assert result.environment["device"].startswith("cuda") and result.environment.get("gpu")
    assert result.phase_summary["clock"] == "cuda events"
    rows = {r["name"]: r for r in result.phases}
    for name in ("forward", "backward"):
        assert rows[name]["calls"] == BATCHES and rows[name]["seconds"] > 0, name
        assert len(rows[name]["samples"]) == BATCHES, name  # GPU time per call
        assert sum(rows[name]["samples"]) == pytest.approx(rows[name]["seconds"]), name
        assert rows[name]["host_seconds"] > 0, name  # the host's view beside the GPU's
    assert 0.5 < result.phase_summary["train_coverage"] <= 1.0
    # watching changes no number on CUDA either
    assert result.metrics["test_loss"] == bare.metrics["test_loss"]
    assert [e["val_loss"] for e in result.epochs] == [e["val_loss"] for e in bare.epochs]


@pytest.mark.cuda
def test_cuda_memory_statistics_per_phase_and_batch(watched: tuple[RunResult, RunResult]) -> None:
    memory = watched[0].memory
    per_batch = memory["cuda_allocated_per_batch"]
    assert len(per_batch) == BATCHES and all(b > 0 for b in per_batch)
    assert memory["cuda_peak_bytes"] >= max(per_batch)
    assert memory["param_bytes"] < memory["cuda_peak_bytes"]  # the weights live on the GPU, and more beside
    assert memory["saved_bytes_peak"] > 0  # saved activations are counted on CUDA tensors too


@pytest.mark.cuda
def test_components_timed_with_real_cuda_events(watched: tuple[RunResult, RunResult]) -> None:
    result = watched[0]
    c = result.components
    assert c["clock"] == "cuda events" and c["steps"] == BATCHES
    assert [r["name"] for r in c["rows"]] == ["encoder", "drop", "rnn", "drop#2", "decoder", "log_softmax", "loss"]
    for r in c["rows"]:
        assert r["calls"] == BATCHES and r["forward_seconds"] > 0 and r["backward_seconds"] > 0, r["name"]
    # the components tile backward: their GPU spans add up to the backward phase's, give or take the
    # engine's start and the gaps between them (launch-bound at this size, so gaps are real time too)
    backward = sum(r["backward_seconds"] for r in c["rows"])
    assert 0.5 * c["phases"]["backward"] <= backward <= 1.05 * c["phases"]["backward"]


@pytest.mark.cuda
def test_sync_blocking_sets_launch_blocking_before_cuda_starts(tiny_corpus: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_LAUNCH_BLOCKING"}
    argv = [sys.executable, "-m", "lmprof", "profile", "--fn", "train", "--sync", "blocking", "--device", "cuda",
            "--data", str(tiny_corpus), "--emsize", "32", "--nhid", "32", "--bptt", "8", "--epochs", "1",
            "--max-batches", "4", "--out", str(tmp_path / "run")]
    if "sample_every" in RunConfig.__dataclass_fields__:
        argv += ["--sample-every", "0"]  # every batch's lines: 4 batches at CUDA's default 1 in 16 would watch none
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = RunResult.load(tmp_path / "run")
    assert result.lines["sync"] == "blocking" and result.environment["device"].startswith("cuda")
    assert "blocking launches" in " ".join(done.stdout.split())  # the note under the line table


@pytest.mark.cuda
def test_trace_has_kernel_rows_with_short_names(tiny_corpus: Path, tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from lmprof.instrument.trace import TraceSchedule, TraceInstrument
    from lmprof.views.ops import SHORT_NAME_LIMIT, ops_table, short_op_name

    result = run_with(tiny_cuda_config(tiny_corpus, max_batches=5), tmp_path / "run",
                      TraceInstrument(TraceSchedule(wait=1, warmup=1, active=2)))
    ops = result.ops
    assert ops["device"] == "cuda" and ops["sort_by"] == "self_cuda" and ops["steps"] == 2
    kernels = [r for r in ops["rows"] if (r.get("self_cuda_seconds") or 0) > 0 and not r["name"].startswith("aten::")]
    assert kernels, [r["name"] for r in ops["rows"][:10]]
    signatures = [r["name"] for r in kernels if "<" in r["name"] or r["name"].startswith("void ")]
    assert signatures, [r["name"] for r in kernels[:10]]
    for name in signatures:  # C++ signatures: the table shows a name without templates or parameters
        short = short_op_name(name)
        assert len(short) <= SHORT_NAME_LIMIT and "<" not in short and "(" not in short, (short, name)
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(ops_table(result))
    assert "self CUDA" in console.export_text()
    saved = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))["ops"]["rows"]
    assert {r["name"] for r in saved} == {r["name"] for r in ops["rows"]}  # result.json keeps the full names


@pytest.mark.cuda
def test_same_figures_as_upstream_accel_on_cuda(tmp_path: Path) -> None:
    from .test_equivalence import UPSTREAM, assert_same_figures, side_by_side, slice_corpus

    if not (UPSTREAM.is_file() and (SHARED_DATA / "train.txt").is_file()):
        pytest.skip("upstream's main.py and wikitext-2-lite are not here (LMPROF_TEST_UPSTREAM, LMPROF_TEST_DATA)")
    corpus = slice_corpus(tmp_path / "corpus", train_lines=200, eval_lines=60)
    upstream, ours = side_by_side(tmp_path, corpus, ["--epochs", "1", "--log-interval", "5"], device="cuda")
    assert_same_figures(upstream, ours, epochs=1)


@pytest.mark.cuda
def test_speedlab_cuda_variants_at_a_tiny_size(tiny_corpus: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.cli import main
    from lmprof.experiments.speedlab.ladder import REFERENCE
    from lmprof.experiments.speedlab.variants import BY_NAME

    variants = ["foreach"] + [name for name in ("cuda-graph",) if name in BY_NAME]  # cuda-graph: being added
    code = main(["speedlab", "--device", "cuda", "--data", str(tiny_corpus), "--emsize", "32", "--nhid", "32",
                 "--bptt", "8", "--budget-batches", "4", "--repeats", "1", "--eval-every", "2", "--valid-tokens",
                 "400", "--no-combine", "--variants", ",".join(variants), "--out", str(tmp_path / "lab"), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in data["rows"]}
    assert list(rows) == [REFERENCE, *variants] and data["environment"]["device"].startswith("cuda")
    for name, row in rows.items():
        assert row["status"] == "measured", (name, row.get("reason"))
        assert row["tokens_per_s"] > 0 and math.isfinite(row["val_ppl"]), name
