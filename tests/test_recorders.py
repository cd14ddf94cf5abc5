"""Phase recorders: the host clock (injected), the CUDA-event logic (fake events on CPU), PhaseInstrument on a real run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from lmprof.instrument.recorders import CudaEventRecorder, HostRecorder, PhaseInstrument, make_recorder, phase_rows
from lmprof.phases import PHASE_NAMES, STEP_PHASES, UNCOVERED, listening, phase


class FakeClock:
    """A host clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_host_recorder_totals_seconds_and_calls_per_phase() -> None:
    clock = FakeClock()
    rec = HostRecorder(clock)
    with listening(rec):
        for _ in range(3):
            with phase("forward"):
                clock.advance(0.010)
            clock.advance(0.001)  # between phases: belongs to no phase
            with phase("backward"):
                clock.advance(0.025)
    assert rec.calls == {"forward": 3, "backward": 3}
    assert rec.host_seconds["forward"] == pytest.approx(0.030)
    assert rec.host_seconds["backward"] == pytest.approx(0.075)
    assert rec.device_seconds() == rec.host_seconds


def test_host_recorder_charges_nested_phases_to_each_level() -> None:
    clock = FakeClock()
    rec = HostRecorder(clock)
    rec.enter("evaluate_valid")
    clock.advance(1.0)
    rec.enter("data")
    clock.advance(0.5)
    rec.exit("data")
    rec.exit("evaluate_valid")
    assert rec.host_seconds == {"evaluate_valid": 1.5, "data": 0.5}


def test_phase_rows_are_in_program_order_with_the_uncovered_remainder_last() -> None:
    clock = FakeClock()
    rec = HostRecorder(clock)
    for name, seconds in (("backward", 3.0), ("forward", 2.0), ("data", 1.0)):
        rec.enter(name)
        clock.advance(seconds)
        rec.exit(name)
    rows = phase_rows(rec, wall_seconds=8.0)
    assert [r["name"] for r in rows] == ["data", "forward", "backward", UNCOVERED]
    assert rows[-1]["seconds"] == pytest.approx(2.0)
    assert [r["share"] for r in rows] == pytest.approx([0.125, 0.25, 0.375, 0.25])
    assert rows[2]["mean_seconds"] == pytest.approx(3.0)


class FakeGpu:
    """A stream: launched work queues up; events complete when the GPU has reached them."""

    def __init__(self) -> None:
        self.queue_end_ms = 0.0  # GPU time at which everything launched so far is done
        self.completed_ms = 0.0  # how far the GPU has got
        self.syncs = 0
        self.events_made = 0

    def launch(self, ms: float) -> None:
        self.queue_end_ms = max(self.queue_end_ms, self.completed_ms) + ms

    def run_until(self, ms: float) -> None:
        self.completed_ms = max(self.completed_ms, ms)

    def synchronize(self) -> None:
        self.syncs += 1
        self.completed_ms = self.queue_end_ms

    def event(self) -> "FakeEvent":
        self.events_made += 1
        return FakeEvent(self)


class FakeEvent:
    def __init__(self, gpu: FakeGpu) -> None:
        self.gpu = gpu
        self.at_ms: float | None = None

    def record(self) -> None:
        self.at_ms = self.gpu.queue_end_ms

    def query(self) -> bool:
        assert self.at_ms is not None
        return self.gpu.completed_ms >= self.at_ms

    def elapsed_time(self, end: "FakeEvent") -> float:
        assert self.at_ms is not None and end.at_ms is not None
        assert self.query() and end.query(), "elapsed_time on an event that has not completed"
        return end.at_ms - self.at_ms


def gpu_steps(rec: CudaEventRecorder, gpu: FakeGpu, clock: FakeClock, steps: int) -> None:
    """Training steps as on a GPU: forward and backward only launch kernels; logging (loss.item()) waits."""
    for _ in range(steps):
        with phase("forward"):
            gpu.launch(5.0)  # 5 ms of kernels, queued in 1 ms of host time
            clock.advance(0.001)
        with phase("backward"):
            gpu.launch(10.0)
            clock.advance(0.002)
        with phase("logging"):  # the host blocks until the GPU has caught up
            clock.advance((gpu.queue_end_ms - gpu.completed_ms) / 1000.0)
            gpu.run_until(gpu.queue_end_ms)


def test_cuda_event_recorder_puts_gpu_time_in_the_phase_that_launched_it() -> None:
    gpu, clock = FakeGpu(), FakeClock()
    rec = CudaEventRecorder(gpu.event, gpu.synchronize, clock)
    with listening(rec):
        gpu_steps(rec, gpu, clock, steps=4)
    assert gpu.syncs == 0  # nothing synchronises while training
    device = rec.device_seconds()
    assert gpu.syncs == 1  # once, when the totals are read
    assert device["forward"] == pytest.approx(4 * 0.005)
    assert device["backward"] == pytest.approx(4 * 0.010)
    # The host clock tells another story: launches look cheap, the wait lands in logging.
    assert rec.host_seconds["forward"] == pytest.approx(4 * 0.001)
    assert rec.host_seconds["logging"] > 4 * 0.010
    assert rec.calls == {"forward": 4, "backward": 4, "logging": 4}


def test_cuda_event_recorder_folds_finished_events_and_reuses_them() -> None:
    gpu, clock = FakeGpu(), FakeClock()
    rec = CudaEventRecorder(gpu.event, gpu.synchronize, clock)
    rec.FOLD_EVERY = 4  # fold often: each fold reads only the pairs the GPU has finished
    with listening(rec):
        gpu_steps(rec, gpu, clock, steps=50)
    assert gpu.events_made < 20  # 300 events recorded, a handful ever made
    assert gpu.syncs == 0
    device = rec.device_seconds()
    assert device["forward"] == pytest.approx(50 * 0.005)
    assert device["backward"] == pytest.approx(50 * 0.010)


def test_cuda_event_recorder_leaves_unfinished_events_for_later() -> None:
    gpu, clock = FakeGpu(), FakeClock()
    rec = CudaEventRecorder(gpu.event, gpu.synchronize, clock)
    rec.FOLD_EVERY = 1
    with listening(rec):
        with phase("forward"):
            gpu.launch(5.0)
    assert rec.gpu_seconds == {}  # the GPU has not finished: nothing read yet, no error
    assert rec.device_seconds() == {"forward": pytest.approx(0.005)}


def test_make_recorder_picks_cuda_events_for_a_cuda_device_only() -> None:
    assert isinstance(make_recorder(SimpleNamespace(type="cuda")), CudaEventRecorder)
    cpu = make_recorder(SimpleNamespace(type="cpu"))
    assert type(cpu) is HostRecorder and cpu.clock_name == "host"


def test_phase_timer_on_a_real_cpu_run(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.config import RunConfig
    from lmprof.runner import run

    batches = 8
    cfg = RunConfig(data=str(tiny_corpus), emsize=32, nhid=32, bptt=16, epochs=1, max_batches=batches,
                    device="cpu")  # the host clock's run, also on a GPU machine (test_cuda.py has the events')
    result = run(cfg, instruments=[PhaseInstrument()], log=lambda line: None, run_dir=tmp_path / "run")
    rows = {r["name"]: r for r in result.phases}
    assert set(PHASE_NAMES) <= set(rows), f"missing: {set(PHASE_NAMES) - set(rows)}"
    assert list(rows)[-1] == UNCOVERED
    for name in STEP_PHASES:
        assert rows[name]["calls"] == batches, name
    assert rows["evaluate_valid"]["calls"] == rows["evaluate_test"]["calls"] == 1
    summary = result.phase_summary
    assert summary["clock"] == "host"
    # the step phases explain train() but for the Python between their markers: ~99% here, a few percent
    # less for 8 tiny batches on a loaded machine; a phase left unmarked would lose far more than that
    assert 0.9 <= summary["train_coverage"] <= 1.0
    assert sum(r["share"] for r in result.phases) == pytest.approx(1.0)
    # per-call samples of each step phase add up to its total; the whole epoch's batch count is kept
    for name in STEP_PHASES:
        assert len(rows[name]["samples"]) == batches, name
        assert sum(rows[name]["samples"]) == pytest.approx(rows[name]["seconds"]), name
    assert "samples" not in rows["evaluate_valid"]
    assert summary["cut"] is True
    from lmprof.corpora.check import check_corpus

    rows_of_20 = check_corpus(tiny_corpus, 20, 16, 10).train // 20
    assert summary["full_batches_per_epoch"] == -(-(rows_of_20 - 1) // 16) > batches  # one batch per bptt window
    # what was saved is what was returned
    from lmprof.record.result import RunResult

    assert RunResult.load(tmp_path / "run").phases == result.phases


def test_host_recorder_keeps_each_step_call_in_order_and_nothing_for_other_phases() -> None:
    clock = FakeClock()
    rec = HostRecorder(clock)
    with listening(rec):
        for seconds in (0.030, 0.010, 0.020):
            with phase("forward"):
                clock.advance(seconds)
        with phase("evaluate_valid"):
            clock.advance(1.0)
    assert rec.device_samples() == {"forward": [pytest.approx(0.030), pytest.approx(0.010), pytest.approx(0.020)]}
    rows = {r["name"]: r for r in phase_rows(rec, wall_seconds=2.0)}
    assert rows["forward"]["samples"] == rec.device_samples()["forward"]
    assert "samples" not in rows["evaluate_valid"]


def test_cuda_event_samples_are_gpu_times_per_call_in_call_order() -> None:
    gpu, clock = FakeGpu(), FakeClock()
    rec = CudaEventRecorder(gpu.event, gpu.synchronize, clock)
    rec.FOLD_EVERY = 4  # folds part-way: finished pairs are read first, the rest at the end
    with listening(rec):
        for ms in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
            with phase("forward"):
                gpu.launch(ms)
            with phase("logging"):
                gpu.run_until(gpu.queue_end_ms)
    samples = rec.device_samples()
    assert samples["forward"] == pytest.approx([0.001, 0.002, 0.003, 0.004, 0.005, 0.006])
    assert rec.host_samples["forward"] == [0.0] * 6  # the host clock saw only the launches
