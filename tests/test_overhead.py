"""What the instruments cost, said by each view; and the CUDA details of issue 27 checked on a CPU with fakes:
--accel never overrides an explicit --device, --sync blocking is set before CUDA starts or refused,
MPS synchronises its phase clock and refuses the span timers."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lmprof.cli import main
from lmprof.record.result import RunResult
from lmprof.record.derived import cost_line
from lmprof.views.overhead import watched_program_note

OVERHEAD = {"sample_every": 4, "instruments": ["components", "memory"], "bare_ms_per_batch": 10.0,
            "watched_ms_per_batch": 15.0, "ratio": 1.5, "run_cost": 0.125, "batches": 24, "watched_batches": 6,
            "bare_batches": 17, "bare_tokens_per_s": 70000.0}


def test_the_cost_line_says_the_run_cost_the_sampling_and_both_steps() -> None:
    line = cost_line(OVERHEAD)
    assert line.startswith("instruments cost +12% on this run")
    assert "watched 6 of 24 batches, 1 in 4" in line and "15.00 ms" in line and "10.00 ms" in line
    assert "1.50x" in line
    unmeasured = {**OVERHEAD, "sample_every": 0, "watched_batches": 24, "bare_batches": 0}
    for key in ("bare_ms_per_batch", "ratio", "run_cost"):
        unmeasured.pop(key)
    assert "not measured" in cost_line(unmeasured) and "every batch" in cost_line(unmeasured)


def test_above_10_percent_the_phase_table_says_its_shares_are_of_the_watched_program() -> None:
    note = watched_program_note(OVERHEAD)
    assert "watched program" in note and "10.00 ms" in note
    assert watched_program_note({**OVERHEAD, "ratio": 1.08}) == ""
    assert watched_program_note({}) == ""


def _saved(profile_result: RunResult, tmp_path: Path) -> Path:
    profile_result.overhead = dict(OVERHEAD)
    profile_result.save(tmp_path)
    return tmp_path


def test_show_prints_the_cost_and_the_watched_program_note(profile_result: RunResult, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(_saved(profile_result, tmp_path))]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "instruments cost +12% on this run" in out
    assert "shares are of the watched program" in out


def test_the_report_and_compare_say_it_too(profile_result: RunResult, tmp_path: Path) -> None:
    from lmprof.comparison import compare
    from lmprof.views.report import run_report

    folder = _saved(profile_result, tmp_path)
    assert "instruments cost +12% on this run" in run_report(RunResult.load(folder), folder)
    other = RunResult.load(folder)
    other.run_dir = str(tmp_path / "other")
    notes = compare([RunResult.load(folder), other]).notes
    assert any("instruments cost +12%" in n for n in notes)


def test_a_damaged_overhead_section_is_one_line(profile_result: RunResult, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    profile_result.overhead = {**OVERHEAD, "ratio": "fast"}
    profile_result.save(tmp_path)
    assert main(["show", str(tmp_path)]) == 2
    assert "overhead.ratio" in capsys.readouterr().err


def test_sample_every_must_be_0_or_more(tiny_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", *tiny_args, "--sample-every", "-1"]) == 2
    assert "--sample-every must be 0" in capsys.readouterr().err


# --- --accel and --device ---------------------------------------------------------------------------
def test_accel_never_overrides_an_explicit_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from lmprof.config import RunConfig, device_choice_note
    from lmprof.prepare import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    assert resolve_device(RunConfig(device="cpu", accel=True)).type == "cpu"
    assert resolve_device(RunConfig(device="auto", accel=True)).type == "cuda"
    note = device_choice_note("cpu", True)
    assert "--device cpu wins" in note and "--accel" in note
    assert device_choice_note("auto", True) == device_choice_note("cpu", False) == ""


def test_a_run_given_both_says_which_won(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.config import RunConfig
    from lmprof.runner import run

    lines: list[str] = []
    run(RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, bptt=8, epochs=1, max_batches=2, device="cpu",
                  accel=True), log=lines.append, run_dir=tmp_path / "run")
    assert any("--device cpu wins" in line for line in lines)
    assert "Using device: cpu" in lines


# --- --sync blocking ---------------------------------------------------------------------------------
def test_blocking_is_set_before_cuda_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from lmprof.config import set_launch_blocking

    monkeypatch.delenv("CUDA_LAUNCH_BLOCKING", raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)  # as in a fresh process, on any machine
    set_launch_blocking()
    assert os.environ["CUDA_LAUNCH_BLOCKING"] == "1"


def test_blocking_is_refused_in_one_line_once_cuda_has_started(
        tiny_args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    monkeypatch.delenv("CUDA_LAUNCH_BLOCKING", raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # a notebook that already used the GPU
    assert main(["profile", *tiny_args, "--sync", "blocking"]) == 2
    err = capsys.readouterr().err
    assert "CUDA has already started" in err and len(err.strip().splitlines()) == 1
    assert "CUDA_LAUNCH_BLOCKING" not in os.environ
    assert not Path(tiny_args[tiny_args.index("--out") + 1]).exists()  # refused before anything was written


# --- MPS ------------------------------------------------------------------------------------------
@pytest.fixture
def fake_mps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import torch

    syncs: list[int] = []
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "synchronize", lambda: syncs.append(1))
    return syncs


def test_the_phase_clock_waits_for_mps_at_each_boundary(fake_mps: list[int]) -> None:
    from lmprof.instrument.recorders import SyncedHostRecorder, make_recorder
    from lmprof.phases import listening, phase

    rec = make_recorder(SimpleNamespace(type="mps"))
    assert isinstance(rec, SyncedHostRecorder) and rec.clock_name == "host, synchronised"
    with listening(rec):
        with phase("forward"):
            pass
    assert len(fake_mps) == 2 and rec.calls["forward"] == 1


def test_components_are_refused_on_mps_before_the_folder_exists(
        fake_mps: list[Any], tiny_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", *tiny_args, "--device", "mps", "--components"]) == 2
    err = capsys.readouterr().err
    assert "--components on --device mps" in err and len(err.strip().splitlines()) == 1
    assert not Path(tiny_args[tiny_args.index("--out") + 1]).exists()


# --- the benches: their machinery runs (no timing asserted) -------------------------------------------
def _bench(name: str) -> Any:
    import importlib.util
    import sys

    here = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(here))
    spec = importlib.util.spec_from_file_location(name, here / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_standin_rows_run_each_instrument_as_a_run_installs_it() -> None:
    import torch

    standin = _bench("bench_standin")
    threads = torch.get_num_threads()
    setup = standin.prepare(None, **standin.STANDIN)
    rows = standin.overhead_rows(setup, pairs=1, default_every=2)
    assert [r["instrument"] for r in rows[:5]] == list(standin.TARGETS)
    assert all(r["median"] > 0 for r in rows) and rows[0]["target"] == 1.05 and rows[5]["target"] is None
    text = standin.markdown({"rows": rows, "ms_per_batch": 2.5}, "stand-in")
    assert "| --components | 1 in 2 |" in text and "| --memory | every batch |" in text
    assert torch.get_num_threads() == threads


def test_the_cuda_bench_says_no_cuda_in_one_line_and_exits_0(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cuda_overhead.py"
    env = {k: v for k, v in os.environ.items() if k != "LMPROF_TEST_PRETEND_CUDA"}  # a real "no CUDA"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "t.md")], capture_output=True,
                          text=True, env={**env, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0 and done.stdout.strip().startswith("no CUDA")
    assert len(done.stdout.strip().splitlines()) == 1 and not (tmp_path / "t.md").exists()
