"""`lmprof profile` and `lmprof show` in-process: the tables, the run folder, Ctrl-C, bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmprof.cli import main
from lmprof.instrument.lines import FUNCTIONS
from lmprof.reference import loop
from lmprof.record.result import RunResult
from tests.conftest import ON_CPU


@pytest.fixture(autouse=True)
def log_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # piped output: the commands' own log width


def tables_part(out: str) -> str:
    """From the run description line (the first line of the tables) to the end."""
    start = out.index("\nLSTM, emsize 16")
    return out[start:]


def train_lines(run_dir: Path) -> list[dict]:
    doc = json.loads((run_dir / "result.json").read_text())
    return next(f for f in doc["lines"]["functions"] if f["name"] == "train")["lines"]


def hits(lines: list[dict], text: str) -> int:
    (line,) = [r for r in lines if text in r["source"]]
    return int(line["hits"])


def test_profile_prints_the_tables_and_show_prints_them_again(tiny_args: list[str], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", *tiny_args, *ON_CPU, "--fn", "train", "--fn", "get_batch"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "run"
    for text in ("Where the run's time went", "Phases · clock: host", "(outside phases)", "Phases cover",
                 "train · lmprof/reference/loop.py:", "get_batch · lmprof/reference/loop.py:", "loss.backward()",
                 f"lines        {run_dir / 'lines.lprof'}"):
        assert text in out
    assert out.index("Where the run's time went") < out.index("Phases · clock") < out.index("train · lmprof")
    # the line that calls get_batch ran once per batch (--max-batches 4), in the table and in result.json
    row = next(line for line in out.splitlines() if "data, targets = get_batch(train_data" in line)
    assert row.split()[1] == "4"
    assert hits(train_lines(run_dir), "get_batch(train_data") == 4
    assert RunResult.load(run_dir).status == "ok"

    assert main(["show", str(run_dir)]) == 0
    shown = capsys.readouterr().out
    assert tables_part(shown) == tables_part(out)  # the same renderer, the same width, no training
    assert "Using device" not in shown


def test_show_takes_another_unit(tiny_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", *tiny_args, "--unit", "ms"]) == 0
    assert "time ms" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "run"), "--unit", "us"]) == 0
    assert "time µs" in capsys.readouterr().out


def test_unknown_fn_exits_2_naming_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--fn", "train", "--fn", "backprop"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'backprop'" in err
    assert all(name in err for name in [*FUNCTIONS, "all"])


def test_show_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is not a run folder" in err
    assert main(["profile", "--unit", "minutes"]) == 2  # argparse names the choices


def test_ctrl_c_during_training_still_prints_the_tables(tiny_args: list[str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    real_get_batch, calls = loop.get_batch, []

    def ctrl_c_on_third_batch(*args: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_get_batch(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "get_batch", ctrl_c_on_third_batch)
    # the loop stops training early and tests, as upstream does; the command still exits as interrupted
    assert main(["profile", *tiny_args, *ON_CPU]) == 130
    out = capsys.readouterr().out
    assert "Exiting from training early" in out and "interrupted: Ctrl-C" in out
    assert "1 call · interrupted" in out
    assert hits(train_lines(tmp_path / "run"), "loss.backward()") == 2
    assert RunResult.load(tmp_path / "run").status == "interrupted"


def test_ctrl_c_after_training_prints_what_ran_and_exits_130(tiny_args: list[str], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    real_evaluate, calls = loop.evaluate, []

    def ctrl_c_in_test_evaluation(*args: object) -> float:
        calls.append(1)
        if len(calls) == 2:  # validation runs first, inside the loop's own Ctrl-C handling
            raise KeyboardInterrupt
        return real_evaluate(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "evaluate", ctrl_c_in_test_evaluation)
    assert main(["profile", *tiny_args, *ON_CPU]) == 130
    out = capsys.readouterr().out
    assert "interrupted: Ctrl-C" in out and "loss.backward()" in out
    assert hits(train_lines(tmp_path / "run"), "loss.backward()") == 4
    assert RunResult.load(tmp_path / "run").status == "interrupted"


def test_sync_blocking_on_cpu_sets_the_mode_and_adds_no_note(tiny_args: list[str], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    monkeypatch.setenv("CUDA_LAUNCH_BLOCKING", "0")  # restored after the test
    # as from a shell: on a GPU machine earlier tests have started CUDA in this process, where blocking is refused
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert main(["profile", *tiny_args, "--sync", "blocking", "--device", "cpu"]) == 0  # on CPU, also on a GPU machine
    assert os.environ["CUDA_LAUNCH_BLOCKING"] == "1"
    assert "CUDA" not in capsys.readouterr().out
    assert RunResult.load(tmp_path / "run").lines["sync"] == "blocking"


def test_profile_help_imports_no_torch() -> None:
    code = ("import sys; from lmprof.cli import main; code = main(['profile', '--help']); "
            "print('TORCH' if 'torch' in sys.modules else 'LIGHT', code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--fn NAME" in out and "--sync {launch,blocking}" in out
    assert out.strip().endswith("LIGHT 0")
