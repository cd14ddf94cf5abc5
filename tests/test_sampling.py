"""Sampled instrumentation (lmprof.instrument.sampling): expensive instruments watch one batch in K.

The Sampler's routing and clocks with fakes; then a real tiny CPU run with every sampled instrument,
checked against a bare run of the same config: the same losses, the instruments' tables counting the
watched batches only, and an overhead section whose figures agree with each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lmprof.instrument.sampling import Sampler, default_every, overhead_section
from lmprof.phases import STEP_PHASES, listening, phase


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Log:
    """A recorder (and switch) that writes down what it hears."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.switched: list[bool] = []

    def enter(self, name: str) -> None:
        self.heard.append(name)

    def exit(self, name: str) -> None:
        pass

    def watch(self, on: bool) -> None:
        self.switched.append(on)


def batches(clock: FakeClock, seconds: list[float], watched_extra: float, sampler: Sampler) -> None:
    """Training batches of the given bare seconds; a watched batch takes ``watched_extra`` longer."""
    for bare in seconds:
        for name in STEP_PHASES:
            with phase(name):
                if name == "forward":
                    clock.now += bare + (watched_extra if sampler.on else 0.0)


def test_a_sampled_recorder_hears_the_watched_batches_and_an_always_one_every_batch() -> None:
    clock, always, sampled = FakeClock(), Log(), Log()
    sampler = Sampler(4, [(always, False), (sampled, True)], [sampled], clock=clock)
    with listening(sampler):
        batches(clock, [0.010] * 10, 0.005, sampler)
        with phase("evaluate_valid"):  # outside training steps everything watches
            pass
    assert always.heard.count("forward") == 10
    assert sampled.heard.count("forward") == 3  # batches 1, 5 and 9
    assert sampled.heard[-1] == "evaluate_valid"
    # switched on for each watched batch and off right after it; on again for the evaluation
    assert sampled.switched == [False, True, False, True, False, True, False, True]
    assert sampler.watched_seconds == pytest.approx([0.015] * 3)
    assert sampler.bare_seconds == pytest.approx([0.010] * 6)  # batch 0 (warm-up) is left out


def test_every_batch_watched_with_sample_every_0_and_nothing_switches() -> None:
    clock, sampled = FakeClock(), Log()
    sampler = Sampler(0, [(sampled, True)], [sampled], clock=clock)
    with listening(sampler):
        batches(clock, [0.010] * 5, 0.002, sampler)
    assert sampled.heard.count("forward") == 5 and sampled.switched == [True]  # told once, at the first batch
    section = sampler.section(["components"], batch_size=20, bptt=35)
    assert section["watched_batches"] == 5 and section["bare_batches"] == 0
    assert "ratio" not in section and "bare_ms_per_batch" not in section


def test_a_one_batch_epoch_watches_its_only_batch() -> None:
    sampler = Sampler(16, [], [], batches_per_epoch=1)
    assert sampler.watches(0) and sampler.watches(1)


def test_default_sampling_is_one_in_16_on_cuda_and_every_batch_elsewhere() -> None:
    from types import SimpleNamespace

    assert default_every(SimpleNamespace(type="cuda")) == 16
    assert default_every(SimpleNamespace(type="cpu")) == 0


def test_overhead_section_figures_agree() -> None:
    section = overhead_section(4, ["memory"], bare=[0.010, 0.012, 0.011], watched=[0.022, 0.020],
                               batches=6, tokens_per_batch=700)
    assert section["bare_ms_per_batch"] == pytest.approx(11.0)  # medians: a shared machine's outliers
    assert section["watched_ms_per_batch"] == pytest.approx(21.0)
    assert section["ratio"] == pytest.approx(21.0 / 11.0)
    assert section["run_cost"] == pytest.approx((21.0 / 11.0 - 1) * 2 / 6)
    assert section["bare_tokens_per_s"] == pytest.approx(700 / 0.011)


def test_cuda_phase_events_on_watched_batches_only_scaled_to_every_call() -> None:
    from tests.test_recorders import FakeClock as Clock
    from tests.test_recorders import FakeGpu

    from lmprof.instrument.recorders import CudaEventRecorder, phase_rows

    gpu, clock = FakeGpu(), Clock()
    rec = CudaEventRecorder(gpu.event, gpu.synchronize, clock)
    with listening(rec):
        for i, ms in enumerate((2.0, 4.0, 6.0, 8.0)):
            rec.watch(i % 2 == 1)  # batches 1 and 3 watched
            with phase("forward"):
                gpu.launch(ms)
            with phase("logging"):
                gpu.run_until(gpu.queue_end_ms)
    assert rec.device_samples()["forward"] == pytest.approx([0.004, 0.008])
    assert rec.device_seconds()["forward"] == pytest.approx((0.004 + 0.008) * 4 / 2)
    row = next(r for r in phase_rows(rec, wall_seconds=1.0) if r["name"] == "forward")
    assert row["calls"] == 4 and row["watched_calls"] == 2
    assert gpu.events_made == 2 * 2 * 2  # two phases of the two watched batches; a bare one stamps nothing


def test_components_hooks_are_removed_on_bare_batches() -> None:
    import torch

    from lmprof.instrument.components import ComponentInstrument

    timer = ComponentInstrument()
    model = torch.nn.Sequential(torch.nn.Linear(3, 3))
    timer.model, timer.criterion = model, torch.nn.NLLLoss()
    timer.watch(True)
    assert model[0]._forward_hooks and model._forward_pre_hooks
    timer.watch(False)
    assert not model[0]._forward_hooks and not model._forward_pre_hooks
    timer.watch(True)
    assert len(model[0]._forward_hooks) == 1  # hooked again, once


def _run(corpus: Path, out: Path, every: int | None, instruments: list[Any]) -> Any:
    from lmprof.config import RunConfig
    from lmprof.runner import run

    cfg = RunConfig(data=str(corpus), emsize=16, nhid=16, bptt=8, epochs=1, max_batches=12, device="cpu",
                    threads=1, sample_every=every)
    return run(cfg, command="profile", instruments=instruments, log=lambda line: None, run_dir=out)


def test_a_sampled_cpu_run_keeps_the_losses_and_counts_watched_batches(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.instrument.components import ComponentInstrument
    from lmprof.instrument.gradients import GradStatsInstrument
    from lmprof.instrument.lines import LineInstrument
    from lmprof.instrument.memory import MemoryInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.record.result import RunResult

    bare = _run(tiny_corpus, tmp_path / "bare", None, [])
    watched = _run(tiny_corpus, tmp_path / "sampled", 4, [PhaseInstrument(), ComponentInstrument(), LineInstrument(["train"]),
                                                          GradStatsInstrument(), MemoryInstrument()])
    assert [e["val_loss"] for e in watched.epochs] == [e["val_loss"] for e in bare.epochs]  # bitwise
    assert watched.metrics["test_loss"] == bare.metrics["test_loss"]
    # the expensive instruments saw batches 1, 5 and 9 of 12; the phase timer saw every batch
    assert watched.components["steps"] == 3
    assert len(watched.memory["saved_bytes_per_batch"]) == 3
    assert watched.gradients["epochs"][0]["batches"] == 3
    train = watched.lines["functions"][0]
    backward = next(r for r in train["lines"] if r["source"].strip() == "loss.backward()")
    assert backward["hits"] == 3
    phases = {r["name"]: r for r in watched.phases}
    assert phases["backward"]["calls"] == 12
    overhead = RunResult.load(tmp_path / "sampled").overhead  # saved, and read back through the checker
    assert overhead["sample_every"] == 4 and overhead["batches"] == 12
    assert overhead["watched_batches"] == 3 and overhead["bare_batches"] == 8  # batch 0 counts in neither
    assert overhead["ratio"] == pytest.approx(overhead["watched_ms_per_batch"] / overhead["bare_ms_per_batch"])
    assert overhead["bare_tokens_per_s"] == pytest.approx(20 * 8 / (overhead["bare_ms_per_batch"] / 1000))
    assert set(overhead["instruments"]) == {"components", "lines", "grad-stats", "memory"}
    assert not bare.overhead  # nothing watched, nothing to say


def test_phases_alone_on_a_cpu_do_not_sample(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.instrument.recorders import PhaseInstrument

    result = _run(tiny_corpus, tmp_path / "run", 4, [PhaseInstrument()])
    assert not result.overhead  # a host clock per phase costs nothing worth sampling
    assert {r["name"]: r["calls"] for r in result.phases}["forward"] == 12


def test_an_instrument_listening_outside_the_phase_timer_is_named_not_lost() -> None:
    """gpu_busy opens a profiler window before the phase timer's span: that time is its own row, and covered."""
    from lmprof.instrument.recorders import HostRecorder, phase_rows
    from lmprof.phases import BETWEEN

    class Window(Log):
        def enter(self, name: str) -> None:
            if name == "data":
                clock.now += 0.050  # starting a profiler window

    clock = FakeClock()
    timer = HostRecorder(clock)
    sampler = Sampler(4, [(Window(), False), (timer, False), (Log(), True)], [], clock=clock)
    with listening(sampler):
        batches(clock, [0.010] * 2, 0.0, sampler)
    assert timer.between_seconds == pytest.approx(0.100)
    assert timer.host_seconds["data"] == 0.0  # the window's start is not get_batch's time
    rows = {r["name"]: r for r in phase_rows(timer, wall_seconds=0.120)}
    assert rows[BETWEEN]["seconds"] == pytest.approx(0.100)
    assert rows["(outside phases)"]["seconds"] == pytest.approx(0.0)


@pytest.mark.cuda
def test_sampled_on_real_cuda_keeps_the_losses_and_scales_phase_events(tiny_corpus: Path, tmp_path: Path) -> None:
    """The CUDA default (1 in 16) on a real GPU: pooled events on the cached stream, the allocator read through
    its C binding, the same losses as a bare run, the phase table's GPU totals from the watched calls."""
    from lmprof.config import RunConfig
    from lmprof.instrument.components import ComponentInstrument
    from lmprof.instrument.memory import MemoryInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run

    cfg = RunConfig(data=str(tiny_corpus), emsize=32, nhid=32, bptt=4, epochs=1, max_batches=34, device="cuda")
    bare = run(cfg, log=lambda line: None, run_dir=tmp_path / "bare")
    result = run(cfg, command="profile", instruments=[PhaseInstrument(), ComponentInstrument(), MemoryInstrument()],
                 log=lambda line: None, run_dir=tmp_path / "watched")
    assert [e["val_loss"] for e in result.epochs] == [e["val_loss"] for e in bare.epochs]
    assert result.overhead["sample_every"] == 16 and result.overhead["watched_batches"] == 3  # 1, 17, 33
    assert result.overhead["ratio"] > 0 and result.components["steps"] == 3
    forward = next(r for r in result.phases if r["name"] == "forward")
    assert forward["calls"] == 34 and forward["watched_calls"] == 3 and len(forward["samples"]) == 3
    assert forward["seconds"] == pytest.approx(sum(forward["samples"]) * 34 / 3)
    assert len(result.memory["cuda_allocated_per_batch"]) == 3
    assert all(b > 0 for b in result.memory["cuda_allocated_per_batch"])


def test_line_tracing_starts_at_the_model_build_or_at_the_first_watched_batch() -> None:
    """Nothing profiled runs before training: the tracer waits for the model (corpus reading runs untraced)."""
    from types import SimpleNamespace

    from lmprof.instrument.lines import LineInstrument

    for every, marker_seen in ((0, False), (0, True), (4, True)):
        lines = LineInstrument(["train"])
        lines.start(SimpleNamespace(cfg=SimpleNamespace(model="LSTM")))  # type: ignore[arg-type]
        assert not lines.tracing
        sampler = Sampler(every, [(lines.recorder(), True)], [lines], clock=FakeClock())
        try:
            with listening(sampler):
                if marker_seen:
                    with phase("model_build"):
                        pass
                    assert lines.tracing
                with phase("data"):  # batch 0: watched at every batch, bare at 1 in 4
                    assert lines.tracing is (every == 0)
        finally:
            lines.stop()
