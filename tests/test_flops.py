"""FLOPs of a step, the cached matmul peak, FlopInstrument on a real run, and the FLOP/s lines."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from lmprof.config import RunConfig
from lmprof.instrument.flops import FlopInstrument, achieved, count_step_flops, matmul_peak, measure_matmul_peak
from lmprof.record.result import RunResult
from lmprof.views.ops import flops_lines, flops_text

GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1}


@pytest.mark.parametrize("kind", sorted(GATES))
def test_rnn_step_flops_match_the_textbook_formula(kind: str) -> None:
    cfg = RunConfig(model=kind, emsize=24, nhid=40, nlayers=2, bptt=7, batch_size=5)
    ntokens = 300
    counts = count_step_flops(cfg, ntokens)
    tokens = cfg.bptt * cfg.batch_size
    gates = GATES[kind]
    recurrent = sum((inp + cfg.nhid) * gates * cfg.nhid for inp in (cfg.emsize, cfg.nhid))
    forward = 2 * tokens * (recurrent + cfg.nhid * ntokens)
    assert counts["counted_on"] == "meta"
    assert counts["forward"] == forward
    # Backward: a gradient for the weights and one for the inputs, each as big as forward,
    # less, in each layer, the gradient for the initial hidden state, which nothing needs.
    initial_state_grad = cfg.nlayers * 2 * cfg.batch_size * cfg.nhid * gates * cfg.nhid
    assert counts["backward"] == 2 * forward - initial_state_grad


def test_transformer_is_counted_on_a_cpu_copy_without_touching_the_random_stream() -> None:
    cfg = RunConfig(model="Transformer", emsize=16, nhid=32, nlayers=1, nhead=2, bptt=6, batch_size=3)
    before = torch.random.get_rng_state()
    counts = count_step_flops(cfg, 50)
    assert torch.equal(before, torch.random.get_rng_state())
    assert counts["counted_on"] == "cpu"
    decoder = 2 * 6 * 3 * 16 * 50
    assert counts["forward"] > decoder and counts["backward"] > counts["forward"]


def test_matmul_peak_is_measured_once_and_then_read_from_the_cache(tmp_path: Path) -> None:
    calls: list[Any] = []

    def fake_measure(device: Any) -> dict[str, Any]:
        calls.append(device)
        return {"gflops": 123.0, "size": 8, "dtype": "float32", "device": str(device)}

    cache = tmp_path / "cache" / "matmul-peak.json"
    first = matmul_peak(torch.device("cpu"), cache_file=cache, measure=fake_measure)
    second = matmul_peak(torch.device("cpu"), cache_file=cache, measure=fake_measure)
    assert len(calls) == 1
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["gflops"] == 123.0
    assert list(json.loads(cache.read_text()).values())[0]["gflops"] == 123.0


def test_a_corrupt_peak_cache_is_measured_again(tmp_path: Path) -> None:
    cache = tmp_path / "matmul-peak.json"
    cache.write_text("{not json")
    peak = matmul_peak(torch.device("cpu"), cache_file=cache,
                       measure=lambda device: {"gflops": 7.0, "size": 8, "dtype": "float32", "device": "cpu"})
    assert peak == {"gflops": 7.0, "size": 8, "dtype": "float32", "device": "cpu", "cached": False}


def test_measure_matmul_peak_on_a_small_matrix() -> None:
    before = torch.random.get_rng_state()
    peak = measure_matmul_peak(torch.device("cpu"), size=64, seconds=0.01)
    assert peak["gflops"] > 0 and peak["size"] == 64 and peak["repetitions"] >= 3
    assert torch.equal(before, torch.random.get_rng_state())


def test_achieved_divides_step_flops_by_mean_phase_time_and_scales_short_batches() -> None:
    step = {"forward": 1e9, "backward": 2e9}
    rows = {"forward": {"calls": 10, "seconds": 0.5}, "backward": {"calls": 10, "seconds": 2.0}}
    # 10 batches of 20 x 35 would hold 7000 tokens; the last one was short: 6300.
    metrics = {"epochs": [{"batches": 10}], "train_tokens": 6300}
    section = achieved(step, rows, metrics, tokens_per_full_step=700, peak={"gflops": 80.0})
    assert section["length_scale"] == pytest.approx(0.9)
    forward, backward = section["phases"]
    assert forward["gflops_per_s"] == pytest.approx(0.9e9 / 0.05 / 1e9)  # 18 GFLOP/s
    assert forward["share_of_peak"] == pytest.approx(18 / 80)
    assert backward["gflops_per_s"] == pytest.approx(1.8e9 / 0.2 / 1e9)  # 9 GFLOP/s


def test_achieved_flops_on_a_real_run(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run

    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, bptt=8, epochs=1, max_batches=4,
                    device="cpu")  # the given peak is a CPU's: the run is on the CPU too, also on a GPU machine
    peak = {"gflops": 50.0, "size": 1024, "dtype": "float32", "device": "cpu", "cached": True}
    result = run(cfg, instruments=[PhaseInstrument(), FlopInstrument(peak=peak)], log=lambda line: None,
                 run_dir=tmp_path / "run")
    flops = RunResult.load(tmp_path / "run").flops
    assert flops == json.loads(json.dumps(result.flops))
    assert [p["name"] for p in flops["phases"]] == ["forward", "backward"]
    phase_seconds = {r["name"]: r["seconds"] / r["calls"] for r in result.phases if r["calls"]}
    for row in flops["phases"]:
        assert row["mean_seconds"] == pytest.approx(phase_seconds[row["name"]])
        assert row["gflops_per_s"] == pytest.approx(row["flops_per_call"] / row["mean_seconds"] / 1e9)
        assert row["share_of_peak"] == pytest.approx(row["gflops_per_s"] / 50.0)
    assert flops["step_flops"]["forward"] == count_step_flops(cfg, result.metrics["ntokens"])["forward"]
    for line in flops_lines(result):
        assert re.fullmatch(r"(forward|backward): [\d.]+ GFLOP/s, \d+% of this machine's matmul peak", line), line


def test_achieved_flops_writes_nothing_without_phases(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.runner import run

    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, bptt=8, epochs=1, max_batches=2)
    result = run(cfg, instruments=[FlopInstrument(peak={"gflops": 1.0})], log=lambda line: None,
                 run_dir=tmp_path / "run")
    assert result.flops == {}
    assert flops_text(result) == ""


def test_flops_text_reads_like_a_sentence() -> None:
    result = RunResult(flops={
        "step_flops": {"forward": 3_696_000_000, "backward": 7_379_200_000},
        "peak": {"gflops": 74.2, "size": 1024, "dtype": "float32", "device": "cpu"},
        "phases": [{"name": "forward", "gflops_per_s": 12.34, "share_of_peak": 12.34 / 74.2},
                   {"name": "backward", "gflops_per_s": 31.0, "share_of_peak": 0.42}],
    })
    assert flops_text(result) == (
        "forward: 12 GFLOP/s, 17% of this machine's matmul peak\n"
        "backward: 31 GFLOP/s, 42% of this machine's matmul peak\n"
        "  (peak: 74 GFLOP/s, float32 1024x1024 matmul on cpu; one step: forward 3.7 GFLOP, "
        "backward 7.38 GFLOP, matrix products only)")


def test_a_day_old_peak_or_remeasure_measures_again_and_stores_when_and_how(tmp_path: Path) -> None:
    import time

    from lmprof.instrument.flops import PEAK_MAX_AGE, peak_key

    calls: list[Any] = []

    def fake_measure(device: Any) -> dict[str, Any]:
        calls.append(device)
        return {"gflops": 50.0 + len(calls), "size": 8, "dtype": "float32", "device": "cpu"}

    cache = tmp_path / "matmul-peak.json"
    key = peak_key(torch.device("cpu"))
    old = {"gflops": 9.0, "size": 8, "measured_unix": time.time() - PEAK_MAX_AGE - 60}
    cache.write_text(json.dumps({key: old}))
    assert matmul_peak(torch.device("cpu"), cache_file=cache, measure=fake_measure)["gflops"] == 51.0
    assert matmul_peak(torch.device("cpu"), cache_file=cache, measure=fake_measure)["cached"] is True
    again = matmul_peak(torch.device("cpu"), cache_file=cache, measure=fake_measure, remeasure=True)
    assert (again["gflops"], again["cached"], len(calls)) == (52.0, False, 2)
    real = measure_matmul_peak(torch.device("cpu"), size=32, seconds=0.01)
    assert real["threads"] == torch.get_num_threads() and real["measured_unix"] <= time.time()
    assert real["load"] is None or real["load"] >= 0


def test_the_flops_lines_say_which_peak_they_divided_by() -> None:
    from lmprof.record.result import RunResult
    from lmprof.views.ops import flops_text

    result = RunResult(command="profile")
    result.flops = {"peak": {"gflops": 50.0, "size": 1024, "dtype": "float32", "device": "cpu", "threads": 2,
                             "load": 1.5, "measured_at": "2026-01-02 03:04:05", "cached": True},
                    "step_flops": {"forward": 1e9, "backward": 2e9},
                    "phases": [{"name": "forward", "gflops_per_s": 10.0, "share_of_peak": 0.2}]}
    text = flops_text(result)
    assert "20% of this machine's matmul peak" in text
    assert "measured 2026-01-02 03:04:05, 2 thread(s), load average 1.50, from the cache" in " ".join(text.split())
