"""--memory: saved activations counted exactly, the analytic model, CUDA figures (with fakes), views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from lmprof.cli import main
from lmprof.config import RunConfig
from lmprof.instrument.memory import CudaMemory, MemoryInstrument, MemoryRecorder
from lmprof.experiments.memory_model import predicted_param_bytes, predicted_saved_bytes
from lmprof.phases import listening, phase
from lmprof.reference.loop import repackage_hidden
from lmprof.reference.model import RNNModel
from lmprof.record.result import RunResult
from lmprof.runner import run
from tests.conftest import ON_CPU


def profiled(tiny_corpus: Path, tmp_path: Path, name: str, **overrides: Any) -> RunResult:
    # on the CPU wherever run: the analytic model counts the tensors the CPU's kernels save (cuDNN's
    # LSTM saves a reserve buffer of its own instead)
    settings = {"data": str(tiny_corpus), "emsize": 16, "nhid": 16, "epochs": 1, "max_batches": 3, "bptt": 8,
                "device": "cpu"}
    cfg = RunConfig(**{**settings, **overrides})
    return run(cfg, command="profile", instruments=[MemoryInstrument()], log=lambda line: None,
               run_dir=tmp_path / name)


def test_saved_bytes_double_with_bptt_and_with_batch(tiny_corpus: Path, tmp_path: Path) -> None:
    base = profiled(tiny_corpus, tmp_path, "base").memory["saved_bytes_peak"]
    long = profiled(tiny_corpus, tmp_path, "bptt", bptt=16).memory["saved_bytes_peak"]
    wide = profiled(tiny_corpus, tmp_path, "batch", batch_size=40).memory["saved_bytes_peak"]
    assert base > 0
    assert long / base == pytest.approx(2.0, rel=0.10)
    assert wide / base == pytest.approx(2.0, rel=0.10)


def test_tied_saves_vocabulary_x_emsize_floats_of_parameters(tiny_corpus: Path, tmp_path: Path) -> None:
    untied = profiled(tiny_corpus, tmp_path, "untied")
    tied = profiled(tiny_corpus, tmp_path, "tied", tied=True)
    vocabulary = untied.metrics["ntokens"]
    assert untied.memory["param_bytes"] - tied.memory["param_bytes"] == vocabulary * 16 * 4
    assert untied.memory["param_bytes"] == predicted_param_bytes(untied.config, vocabulary)
    assert tied.memory["grad_bytes"] == tied.memory["param_bytes"]  # one gradient per parameter, once


def test_adamw_state_is_two_moments_per_parameter(tiny_corpus: Path, tmp_path: Path) -> None:
    m = profiled(tiny_corpus, tmp_path, "adamw", use_optimizer=True).memory
    # exp_avg and exp_avg_sq per parameter, plus a one-float step count per tensor
    assert 2 * m["param_bytes"] <= m["optimizer_bytes"] <= 2 * m["param_bytes"] + 4 * 64


def test_memory_leaves_every_loss_bitwise_unchanged(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, epochs=2, max_batches=3, bptt=8)
    bare = run(cfg, log=lambda line: None, run_dir=tmp_path / "bare")
    watched = run(cfg, command="profile", instruments=[MemoryInstrument()], log=lambda line: None,
                  run_dir=tmp_path / "watched")
    assert [e["val_loss"] for e in watched.epochs] == [e["val_loss"] for e in bare.epochs]
    assert watched.metrics["test_loss"] == bare.metrics["test_loss"]


def steps(detach: bool, count: int = 4) -> list[int]:
    """Live saved bytes when each backward starts, for a small LSTM with or without repackage_hidden."""
    torch.manual_seed(0)
    model = RNNModel("LSTM", 30, 8, 8, 1, dropout=0.0)
    data = torch.randint(30, (count * 5 + 1, 3))
    recorder = MemoryRecorder()
    recorder.install()
    hidden = model.init_hidden(3)
    try:
        with listening(recorder):
            for i in range(0, count * 5, 5):
                if detach:
                    hidden = repackage_hidden(hidden)
                with phase("forward"):
                    output, hidden = model(data[i:i + 5], hidden)
                with phase("loss"):
                    loss = nn.NLLLoss()(output, data[i + 1:i + 6].reshape(-1))
                with phase("backward"):
                    loss.backward(retain_graph=not detach)
    finally:
        recorder.uninstall()
    return recorder.batch_saved


def test_without_repackage_hidden_saved_bytes_grow_with_every_batch() -> None:
    flat, growing = steps(detach=True), steps(detach=False)
    assert len(set(flat)) == 1
    assert all(b > a for a, b in zip(growing, growing[1:]))
    assert growing[-1] == pytest.approx(4 * flat[0], rel=0.10)  # four batches' graphs alive at once


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN_TANH"])
def test_prediction_within_ten_percent_of_measurement(kind: str) -> None:
    from lmprof.lessons.memory import measure_step

    for layers, dropout in ((2, 0.2), (1, 0.0)):
        cfg = RunConfig(model=kind, emsize=32, nhid=32, nlayers=layers, dropout=dropout, bptt=20, batch_size=8)
        measured = measure_step(cfg, ntokens=500)
        predicted = predicted_saved_bytes(cfg, 500)
        assert predicted is not None
        assert sum(predicted.values()) == pytest.approx(measured["saved"], rel=0.10)
        assert measured["by_module"]["log_softmax"] == predicted["log_softmax"] == 20 * 8 * 500 * 4


class FakeProc:
    clear = None

    def __init__(self) -> None:
        self.value = 100

    def rss(self) -> int:
        return self.value

    def reset_peak(self) -> bool:
        return False

    def peak(self) -> int:
        return self.value

    def close(self) -> None:
        pass


class FakeCuda:
    """torch.cuda's four memory functions, driven by the test."""

    def __init__(self) -> None:
        self.now = 0
        self.high = 0

    def memory_allocated(self, device: Any) -> int:
        return self.now

    def reset_peak_memory_stats(self, device: Any) -> None:
        self.high = self.now

    def max_memory_allocated(self, device: Any) -> int:
        return self.high

    def allocate(self, n: int) -> None:
        self.now += n
        self.high = max(self.high, self.now)


def test_cuda_allocated_and_peak_per_phase_with_a_fake_allocator() -> None:
    from lmprof.views.memory import phase_memory_cells, phase_memory_headers

    fake = FakeCuda()
    recorder = MemoryRecorder(proc=FakeProc(), cuda=CudaMemory(fake, "cuda:0"))  # type: ignore[arg-type]
    for _ in range(2):
        recorder.enter("backward")
        fake.allocate(3000)  # a temporary buffer ...
        fake.allocate(-3000)  # ... freed before the phase ends
        fake.allocate(500)
        recorder.exit("backward")
    recorder.enter("update")
    recorder.exit("update")
    summary = recorder.summary()
    assert summary["phases"]["backward"] == {"rss_peak_bytes": 100, "cuda_peak_bytes": 3500,
                                             "cuda_allocated_bytes": 1000}
    assert summary["phases"]["update"]["cuda_peak_bytes"] == 1000  # reset at the phase's start
    assert summary["cuda_peak_bytes"] == 3500
    result = RunResult(memory=summary)
    assert phase_memory_headers(result) == ["allocated", "peak"]
    assert phase_memory_cells(result, "backward") == ["1000 B", "3.4 KiB"]


def test_memory_snapshot_is_refused_on_a_cpu_before_anything_is_written(
        tiny_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", *tiny_args, "--device", "cpu", "--memory-snapshot"]) == 2
    err = capsys.readouterr().err
    assert "--memory-snapshot records the CUDA allocator's history" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_memory_run_round_trips_through_show_and_report(tiny_args: list[str], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", *tiny_args, *ON_CPU, "--fn", "train", "--memory"]) == 0
    first = capsys.readouterr().out
    run_dir = tmp_path / "run"
    memory = RunResult.load(run_dir).memory
    assert memory["saved_bytes_peak"] == max(memory["saved_bytes_per_batch"]) > 0
    assert len(memory["saved_bytes_per_batch"]) == 4
    assert set(memory["saved_bytes_by_module"]) >= {"embedding", "rnn", "decoder", "log_softmax"}
    assert memory["rss_peak_bytes"] > 0 and memory["phases"]["forward"]["rss_peak_bytes"] > 0
    assert main(["show", str(run_dir)]) == 0
    again = capsys.readouterr().out
    for text in ("peak RSS", "Saved activations of one batch", "predicted / measured", "logits 8 x 20 = 160 rows"):
        assert text in first and text in again
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    assert 'id="memory"' in page and "saved activations per batch" in page


def test_trace_with_memory_prints_the_memory_view_beside_the_operators(
        tiny_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", *tiny_args, "--active", "2", "--memory"]) == 0
    out = capsys.readouterr().out
    assert "Memory allocated by each operator" in out and "Memory · where the bytes go" in out
    assert RunResult.load(tmp_path / "run").memory["saved_bytes_peak"] > 0


def test_a_sweep_run_records_its_memory_peaks(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.sweeps.worker import run_one

    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, epochs=1, max_batches=2, bptt=8)
    record = run_one(cfg, tmp_path / "one")
    assert record["status"] == "ok"
    assert record["memory"]["saved_bytes_peak"] > 0 and record["memory"]["rss_peak_bytes"] > 0
    assert record["memory"]["param_bytes"] == predicted_param_bytes(cfg, record["ntokens"])


def hand_made_memory_result() -> RunResult:
    """A run whose memory figures are known: measured saved bytes equal to the model's prediction."""
    cfg = {"model": "LSTM", "emsize": 16, "nhid": 16, "nlayers": 2, "bptt": 8, "batch_size": 20, "dropout": 0.2,
           "tied": False}
    saved = predicted_saved_bytes(cfg, 100) or {}
    return RunResult(config=cfg, metrics={"ntokens": 100}, memory={
        "param_bytes": 3 * 2**20, "grad_bytes": 3 * 2**20, "optimizer_bytes": 0,
        "saved_bytes_peak": 503_044, "saved_bytes_by_module": saved, "saved_bytes_per_batch": [503_044] * 4,
        "rss_peak_bytes": 300 * 2**20, "rss_peak_scope": "phase",
        "phases": {"forward": {"rss_peak_bytes": 290 * 2**20}}})


def test_memory_view_renders_the_known_figures_at_a_fixed_width() -> None:
    import io

    from rich.console import Console

    from lmprof.views.memory import memory_view

    console = Console(width=100, record=True, file=io.StringIO(), color_system=None)
    console.print(memory_view(hand_made_memory_result()))
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    # params 3 MiB of 3 + 3 MiB + 491.3 KiB = 46.3%; logits 160 x 100 x 4 B = 64,000 B = 12.7% of 503,044
    assert lines == [
        "Memory · where the bytes go · peak RSS 300.0 MiB",
        " part                                bytes  share",
        " parameters                        3.0 MiB  46.3%  ████▋",
        " gradients                         3.0 MiB  46.3%  ████▋",
        " optimizer state                       0 B   0.0%",
        " saved activations (peak batch)  491.3 KiB   7.4%  ▊",
        "",
        "Saved activations of one batch, by part of the model",
        " part          measured  share             predicted",
        " embedding      1.2 KiB   0.3%               1.2 KiB",
        " dropout       20.0 KiB   4.1%  ▍           20.0 KiB",
        " rnn          397.5 KiB  80.9%  ████████▏  397.5 KiB",
        " decoder       10.0 KiB   2.0%  ▎           10.0 KiB",
        " log_softmax   62.5 KiB  12.7%  █▎          62.5 KiB",
        " loss               4 B   0.0%                   4 B",
        "predicted / measured: 1.000 (the analytic model: lmprof explain memory)",
        "logits 8 x 20 = 160 rows x 100 words x 4 B = 62.5 KiB, 13% of the saved activations",
        "saved bytes per batch: flat at 491.3 KiB over 4 batches (the last chunk of an epoch may be shorter)",
    ]


def test_memory_view_of_a_run_without_memory_says_which_flag_records_it() -> None:
    from lmprof.views.memory import memory_view, phase_memory_headers

    empty = RunResult()
    assert "lmprof profile --memory" in str(memory_view(empty))
    assert phase_memory_headers(empty) == []


def test_a_sweep_shows_each_runs_memory_in_its_summary(tiny_corpus: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import csv

    out = tmp_path / "sw"
    assert main(["sweep", "--models", "LSTM", "--vary", "bptt=8,16", "--emsize", "16", "--nhid", "16", "--epochs",
                 "1", "--max-batches", "2", "--data", str(tiny_corpus), "--device", "cpu", "--out", str(out)]) == 0
    capsys.readouterr()
    rows = {r["value"]: r for r in csv.DictReader((out / "summary.csv").open())}
    saved = {value: float(r["saved_bytes_peak"]) for value, r in rows.items()}
    assert saved["16"] / saved["8"] == pytest.approx(2.0, rel=0.10)
    assert all(float(r["rss_peak_bytes"]) > 0 for r in rows.values())
    assert main(["report", str(out)]) == 0
    assert "saved activations MiB" in (out / "report.html").read_text()


def test_memory_snapshot_writes_the_pickle_with_a_fake_cuda(tiny_corpus: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    calls: list[Any] = []
    monkeypatch.setattr(torch.cuda.memory, "_record_memory_history",
                        lambda *args, **kwargs: calls.append(("record", kwargs)))
    monkeypatch.setattr(torch.cuda.memory, "_dump_snapshot",
                        lambda path: Path(path).write_bytes(pickle.dumps({"segments": [], "device_traces": []})))
    fake = FakeCuda()
    instrument = MemoryInstrument(snapshot=True, cuda_factory=lambda device: CudaMemory(fake, device))
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, epochs=1, max_batches=2, bptt=8,
                    device="cpu")  # the fake allocator only, also on a GPU machine
    result = run(cfg, command="profile", instruments=[instrument], log=lambda line: None, run_dir=tmp_path / "r")
    snapshot = tmp_path / "r" / result.files["snapshot"]
    assert pickle.loads(snapshot.read_bytes()) == {"segments": [], "device_traces": []}
    assert [c[1] for c in calls] == [{"max_entries": 100_000}, {"enabled": None}]  # on, then off again
    assert "cuda_peak_bytes" in result.memory and len(result.memory["cuda_allocated_per_batch"]) == 2


def test_an_error_inside_forward_leaves_no_hook_behind(tiny_corpus: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, input: Any, hidden: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(RNNModel, "forward", broken)
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, epochs=1, max_batches=2, bptt=8)
    instrument = MemoryInstrument()
    with pytest.raises(RuntimeError, match="boom"):
        run(cfg, command="profile", instruments=[instrument], log=lambda line: None, run_dir=tmp_path / "r")
    assert instrument.rec is not None and instrument.rec.hooks is None
    x = torch.ones(3, requires_grad=True)
    (x * x).sum()  # saves x twice: a leftover pack hook would count it
    assert dict(instrument.rec.counter.packed_bytes) == {}
    assert RunResult.load(tmp_path / "r").memory["saved_bytes_per_batch"] == []
