"""`lmprof train`: the run folder, the log lines, and every bad input as one line with exit 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmprof.cli import main
from lmprof.record.result import RunResult
from tests.conftest import ON_CPU


def test_train_writes_result_and_a_weights_only_checkpoint(tiny_args, tmp_path, capsys) -> None:
    assert main(["train", *tiny_args, *ON_CPU, "--log-interval", "2"]) == 0
    out = capsys.readouterr().out
    assert "Using device: cpu" in out
    # upstream's layout, field for field
    step = next(line for line in out.splitlines() if line.startswith("| epoch   1 |"))
    assert step.startswith("| epoch   1 |     2/") and " batches | lr 20.00 | ms/batch " in step
    assert "-" * 89 in out and "=" * 89 in out
    result = RunResult.load(tmp_path / "run")
    epoch = result.epochs[0]
    assert result.status == "ok" and epoch["batches"] == 4
    assert epoch["tokens"] == 4 * 8 * 20 and epoch["tokens_per_s"] > 0
    assert f"valid ppl {epoch['val_ppl']:8.2f}" in out
    assert f"test ppl {result.metrics['test_ppl']:8.2f}" in out
    assert math.isclose(epoch["val_ppl"], math.exp(epoch["val_loss"]))
    assert result.environment["torch"] == torch.__version__ and result.environment["threads"] >= 1
    ckpt = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert ckpt["config"]["nhid"] == 16 and "encoder.weight" in ckpt["state_dict"]


def test_save_flag_puts_the_checkpoint_where_asked(tiny_args, tmp_path) -> None:
    assert main(["train", *tiny_args, "--save", str(tmp_path / "best.pt")]) == 0
    assert (tmp_path / "best.pt").is_file() and not (tmp_path / "run" / "model.pt").exists()


def test_same_seed_same_numbers(tiny_args, tmp_path) -> None:
    args = [a if a != str(tmp_path / "run") else str(tmp_path / "again") for a in tiny_args]
    assert main(["train", *tiny_args]) == 0 and main(["train", *args]) == 0
    a = RunResult.load(tmp_path / "run").metrics
    b = RunResult.load(tmp_path / "again").metrics
    assert a["test_loss"] == b["test_loss"] and a["epochs"][0]["val_loss"] == b["epochs"][0]["val_loss"]


@pytest.mark.parametrize("kind", ["GRU", "RNN_TANH", "RNN_RELU", "Transformer"])
def test_every_model_kind_trains(kind, tiny_args, tmp_path) -> None:
    assert main(["train", *tiny_args, "--model", kind, "--nhead", "2"]) == 0
    assert RunResult.load(tmp_path / "run").metrics["test_ppl"] > 1


def test_use_optimizer_and_dry_run(tiny_args, tmp_path) -> None:
    assert main(["train", *tiny_args, "--use-optimizer", "--lr", "0.001", "--dry-run", "--epochs", "2"]) == 0
    epochs = RunResult.load(tmp_path / "run").epochs
    assert [e["batches"] for e in epochs] == [1, 1]


def test_nan_loss_stops_with_a_message_and_keeps_the_result(tiny_args, tmp_path, capsys) -> None:
    code = main(["train", *tiny_args, "--lr", "1e38", "--clip", "1e38", "--max-batches", "20", "--epochs", "2"])
    out = capsys.readouterr().out
    assert code == 1 and "NaN or infinite" in out
    doc = json.loads((tmp_path / "run" / "result.json").read_text())
    assert doc["metrics"]["status"] == "diverged"


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def _corpus(folder: Path, train: bytes = b"a b c\n" * 400, other: bytes = b"a b\n" * 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_bytes(train)
    (folder / "valid.txt").write_bytes(other)
    (folder / "test.txt").write_bytes(other)
    return folder


@pytest.mark.parametrize("flags, message", [
    (["--model", "CNN"], "unknown --model 'CNN'"),
    (["--tied", "--emsize", "16", "--nhid", "32"], "--tied needs --nhid equal to --emsize"),
    (["--emsize", "0"], "--emsize must be a positive integer"),
    (["--nhid", "-3"], "--nhid must be a positive integer"),
    (["--lr", "0"], "--lr must be positive"),
    (["--lr", "-1"], "--lr must be positive"),
    (["--bptt", "0"], "--bptt must be a positive integer"),
    (["--batch_size", "-2"], "--batch_size must be a positive integer"),
    (["--epochs", "0"], "--epochs must be a positive integer"),
    (["--max-batches", "0"], "--max-batches must be a positive integer"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
])
def test_bad_flags_are_one_line_exit_2_and_write_nothing(flags, message, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *flags]) == 2
    assert message in _error(capsys)
    assert not out.exists()


def test_device_cuda_without_cuda_is_one_line_exit_2(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine, even on a GPU one
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--device", "cuda"]) == 2
    assert "no CUDA device is available" in _error(capsys)
    assert not out.exists()


def test_bad_corpora_are_one_line_exit_2_and_write_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    cases = {
        "does not exist": tmp_path / "nowhere",
        "lacks valid.txt": _corpus(tmp_path / "lacks"),
        "is empty": _corpus(tmp_path / "empty", train=b""),
        "is not UTF-8": _corpus(tmp_path / "latin", train="caf\xe9 au lait\n".encode("latin-1") * 400),
        "too few for --batch_size 20": _corpus(tmp_path / "small", train=b"a b c\n" * 100),
        "too few for 10 evaluation columns": _corpus(tmp_path / "smallval", other=b"a\n" * 5),
    }
    (tmp_path / "lacks" / "valid.txt").unlink()
    for message, folder in cases.items():
        assert main(["train", "--data", str(folder), "--out", str(out)]) == 2, message
        assert message in _error(capsys)
        assert not out.exists(), message


def test_unwritable_out_is_one_line_exit_2(tiny_corpus, tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # a folder inside a file cannot be made; a file given as the folder is refused before trying
    assert main(["train", "--data", str(tiny_corpus), "--out", str(blocker / "run")]) == 2
    err = _error(capsys)
    assert err.startswith(f"lmprof train: error: cannot write the run folder {blocker / 'run'}: "), err
    assert err.endswith(": choose another --out"), err
    assert main(["train", "--data", str(tiny_corpus), "--out", str(blocker)]) == 2
    assert _error(capsys) == f"lmprof train: error: --out {blocker} exists and is not a folder: choose another --out"
    assert blocker.read_text() == "x"  # the file is left as it was


def test_help_is_fast_and_does_not_import_torch() -> None:
    code = "import sys, lmprof.cli; lmprof.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert main(["--help"]) == 0 and main(["train", "--help"]) == 0
