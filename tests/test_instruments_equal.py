"""Watching never changes the numbers: every instrument leaves each loss bitwise equal to `lmprof train`'s."""

from __future__ import annotations

from pathlib import Path

from lmprof.cli import main
from lmprof.record.result import RunResult


def losses(run_dir: Path) -> tuple[list[float], float]:
    """Each epoch's validation loss and the test loss, as result.json holds them (full float precision)."""
    result = RunResult.load(run_dir)
    return [float(e["val_loss"]) for e in result.epochs], float(result.metrics["test_loss"])


def test_profile_trace_and_the_phase_recorder_leave_every_loss_bitwise_equal(
        tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.config import RunConfig
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run

    flags = ["--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--bptt", "8", "--epochs", "2",
             "--max-batches", "6", "--lr", "30"]
    assert main(["train", *flags, "--out", str(tmp_path / "train")]) == 0
    assert main(["profile", "--fn", "all", *flags, "--out", str(tmp_path / "profile")]) == 0
    assert main(["trace", *flags, "--out", str(tmp_path / "trace")]) == 0
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, bptt=8, epochs=2, max_batches=6, lr=30)
    run(cfg, instruments=[PhaseInstrument()], log=lambda line: None, run_dir=tmp_path / "phases")

    plain = losses(tmp_path / "train")
    assert len(plain[0]) == 2
    for watched in ("profile", "trace", "phases"):
        assert losses(tmp_path / watched) == plain, watched  # == on floats: bitwise, not approximately
