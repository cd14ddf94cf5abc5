"""The GPU lesson: GPU busy per phase (synthetic profiler events), the whole-step graph's plumbing (a fake
graph on the CPU), the views that show the regime, and `lmprof explain gpu` on a CPU-only machine."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest

from lmprof.config import RunConfig
from lmprof.instrument.gpu_busy import (COMPUTE_BOUND, LAUNCH_BOUND, MIXED, Event, GpuBusyInstrument, busy_by_phase,
                                        busy_by_sessions, covered, regime)


# --- GPU busy from a profiler's events ---------------------------------------------------------------
def _window(name: str, start: float, end: float) -> Event:
    return Event("lmprof:" + name, "cpu", start, end)


def _kernel(start: float, end: float) -> Event:
    return Event("void kernel<float>", "cuda", start, end)


def test_covered_counts_overlapping_kernels_once_and_clips_to_the_window() -> None:
    assert covered([(10, 20), (15, 30), (40, 50)], 0, 100) == 30  # 10..30 and 40..50
    assert covered([(90, 120)], 0, 100) == 10  # a kernel running past the window's end counts inside only
    assert covered([(-5, 5), (200, 300)], 0, 100) == 5
    assert covered([], 0, 100) == 0


def test_busy_by_phase_on_a_synthetic_event_list() -> None:
    events = [
        # batch 1: forward 0..100 us with 30 us of kernels; backward 100..300 with 170 us (two overlapping)
        _window("forward", 0, 100), _kernel(10, 20), _kernel(50, 70),
        _window("backward", 100, 300), _kernel(100, 200), _kernel(150, 270),
        # batch 2: forward 1000..1100, 50 us; an operator (cpu, not a window) and a kernel outside any window
        _window("forward", 1000, 1100), _kernel(1020, 1070), Event("aten::mm", "cpu", 1000, 1090),
        _kernel(5000, 6000),
        # the GPU-side copies of the annotations span their windows: ranges, not kernels
        Event("lmprof:forward", "cuda", 0, 100), Event("ProfilerStep#7", "cuda", 0, 1100),
    ]
    busy = busy_by_phase(events)
    assert set(busy) == {"forward", "backward"}
    assert busy["forward"]["windows"] == 2
    assert busy["forward"]["window_seconds"] == pytest.approx(200e-6)
    assert busy["forward"]["kernel_seconds"] == pytest.approx(80e-6)
    assert busy["forward"]["busy"] == pytest.approx(0.4)
    assert busy["backward"]["busy"] == pytest.approx(170 / 200)


def test_the_floor_sums_kernels_per_step_and_leaves_annotations_out() -> None:
    from lmprof.experiments.speedlab.floor import FloorEvent, floor_from_events

    events = [FloorEvent("ProfilerStep#3", "cuda", 0, 5000, annotation=True),
              FloorEvent("ProfilerStep#3", "cpu", 0, 5000, self_seconds=4e-3, annotation=True),
              FloorEvent("sgemm", "cuda", 0, 300), FloorEvent("lstm_cell", "cuda", 400, 600),
              FloorEvent("sgemm", "cuda", 5000, 5300), FloorEvent("lstm_cell", "cuda", 5400, 5600),
              FloorEvent("aten::mm", "cpu", 0, 100, self_seconds=90e-6), FloorEvent("aten::add_", "cpu", 0, 10,
                                                                                     self_seconds=10e-6)]
    gpu = floor_from_events(events, 2, "cuda")
    assert gpu["seconds"] == pytest.approx(500e-6) and gpu["kernels_per_step"] == 2 and gpu["kind"] == "kernel"
    cpu = floor_from_events(events, 2, "cpu")  # the operators' self time, not the step's Python
    assert cpu["seconds"] == pytest.approx(50e-6) and cpu["kind"] == "operator"


def test_regime_words() -> None:
    assert regime(0.1) == LAUNCH_BOUND and regime(0.39) == LAUNCH_BOUND
    assert regime(0.4) == MIXED and regime(0.74) == MIXED
    assert regime(0.75) == COMPUTE_BOUND and regime(1.0) == COMPUTE_BOUND


def _result_with_busy(tmp_path: Path):  # a hand-made CUDA run whose GPU-busy instrument saw these events
    from lmprof.phases import LABELS, UNCOVERED
    from lmprof.record.result import RunResult

    seconds = {"forward": 0.03, "backward": 0.06, "update": 0.009, UNCOVERED: 0.1}
    result = RunResult(command="profile", config=RunConfig().to_dict(), environment={"device": "cuda"})
    result.phases = [{"name": n, "label": LABELS.get(n, n), "calls": 0 if n == UNCOVERED else 3, "seconds": t,
                      "host_seconds": t, "mean_seconds": t / 3, "share": t / 0.2} for n, t in seconds.items()]
    result.phase_summary = {"clock": "cuda events", "wall_seconds": 0.2}
    instrument = GpuBusyInstrument()
    instrument.rec = type("R", (), {"events": [_window("forward", 0, 100), _kernel(0, 25),
                                               _window("backward", 100, 200), _kernel(100, 190),
                                               _window("update", 200, 300), _kernel(200, 260)],
                                    "first": 5})()
    instrument.contribute(result, tmp_path)
    return result


def test_the_instrument_adds_busy_and_regime_to_the_phase_rows(tmp_path: Path) -> None:
    result = _result_with_busy(tmp_path)
    rows = {r["name"]: r for r in result.phases}
    assert rows["forward"]["gpu_busy"] == pytest.approx(0.25) and rows["forward"]["regime"] == LAUNCH_BOUND
    assert rows["backward"]["gpu_busy"] == pytest.approx(0.9) and rows["backward"]["regime"] == COMPUTE_BOUND
    assert rows["update"]["regime"] == MIXED
    assert "gpu_busy" not in rows["(outside phases)"]
    assert result.phase_summary["gpu_busy"]["batches"] == 1


def test_phase_table_report_and_flow_chart_show_the_regime(tmp_path: Path) -> None:
    from rich.console import Console

    from lmprof.views.flowchart import measured
    from lmprof.views.report import run_report
    from lmprof.views.tables import phase_table

    result = _result_with_busy(tmp_path)
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(phase_table(result))
    text = out.getvalue()
    assert "GPU busy" in text and "regime" in text
    forward = next(line for line in text.splitlines() if line.strip().startswith("forward"))
    assert "25%" in forward and "launch-bound" in forward
    assert "compute-bound" in text and "launch-bound: busy under 40%" in text
    page = run_report(result, tmp_path)
    assert "<th class=\"num\">GPU busy</th>" in page and ">launch-bound<" in page
    row = next(r for r in result.phases if r["name"] == "forward")
    assert "GPU busy 25%: launch-bound" in measured(row)


def test_without_busy_data_the_table_has_no_column_and_bad_values_are_ignored(tmp_path: Path) -> None:
    from rich.console import Console

    from lmprof.views.rows import gpu_busy
    from lmprof.views.tables import phase_table

    result = _result_with_busy(tmp_path)
    for r in result.phases:  # a stranger's file: values lmprof never writes are not shown
        r.pop("gpu_busy", None)
        r["regime"] = "\x1b[2Jpwned"
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(phase_table(result))
    assert "GPU busy" not in out.getvalue() and "pwned" not in out.getvalue()
    assert gpu_busy({"gpu_busy": "x", "regime": "mixed"}) is None
    assert gpu_busy({"gpu_busy": math.inf, "regime": "mixed"}) is None
    assert gpu_busy({"gpu_busy": 0.5, "regime": "mixed"}) == (0.5, "mixed")


def test_the_recorder_watches_the_chosen_batches_outside_the_phase_timer(tiny_corpus: Path, monkeypatch) -> None:
    """The reference train() with the busy recorder outermost: three watched batches, one window per phase each,
    and the phase timer's recorder sees every batch (a CPU profiler stands in; no kernels, so busy is 0)."""
    import torch
    from torch.profiler import ProfilerActivity

    from lmprof.instrument.gpu_busy import BusyRecorder
    from lmprof.instrument.recorders import HostRecorder
    from lmprof.phases import Fanout, listening
    from lmprof.reference.data import Corpus
    from lmprof.reference.loop import batchify, build_model, train

    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, bptt=8, device="cpu")
    corpus = Corpus(str(tiny_corpus))
    model = build_model(cfg, len(corpus.dictionary), torch.device("cpu"))
    busy, timer = BusyRecorder(2, 3, [ProfilerActivity.CPU]), HostRecorder()
    with listening(Fanout(busy, timer)):
        train(model, batchify(corpus.train, cfg.batch_size), cfg.replace(max_batches=8), torch.nn.NLLLoss(),
              len(corpus.dictionary), lr=cfg.lr, epoch=1, log=lambda line: None)
    busy.collect()
    found = busy_by_sessions(busy.sessions)
    assert busy.done and timer.calls["forward"] == 8 and len(busy.sessions) == 3  # one profiler session a batch
    assert {name: int(row["windows"]) for name, row in found.items()} == {
        name: 3 for name in ("data", "zero_grad", "repackage", "forward", "loss", "backward", "clip", "update",
                             "logging")}
    assert all(row["busy"] == 0.0 and row["window_seconds"] > 0 for row in found.values())


def test_sessions_are_summed_each_in_its_own_time_base() -> None:
    first = [_window("forward", 0, 100), _kernel(0, 20)]
    second = [_window("forward", 0, 100), _kernel(50, 90), _kernel(200, 300)]  # same times, another session
    busy = busy_by_sessions([first, second])["forward"]
    assert busy["windows"] == 2 and busy["busy"] == pytest.approx(60 / 200)


@pytest.mark.parametrize("every, batches, first", [(16, 200, 1), (16, 10, 0), (0, 200, 5), (0, 6, 3), (None, 4, 1)])
def test_the_first_watched_batch_in_the_batches_the_recorder_hears(every, batches, first, tmp_path) -> None:
    import torch

    from lmprof.instrument.base import RunContext

    context = RunContext(cfg=RunConfig(sample_every=every), device=torch.device("cpu" if every is None else "cuda"),
                         run_dir=tmp_path, batches_per_epoch=batches)
    assert GpuBusyInstrument().first_heard(context) == first


def test_the_runner_adds_gpu_busy_on_cuda_only_and_never_beside_a_trace() -> None:
    import torch

    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import with_gpu_busy

    phases = [PhaseInstrument()]
    assert [i.name for i in with_gpu_busy(phases, torch.device("cuda"))] == ["phases", "gpu_busy"]
    assert [i.name for i in with_gpu_busy(phases, torch.device("cpu"))] == ["phases"]
    trace = type("T", (), {"name": "trace"})()
    assert [i.name for i in with_gpu_busy([*phases, trace], torch.device("cuda"))] == ["phases", "trace"]


# --- the whole-step graph's plumbing, with a fake graph ---------------------------------------------
@pytest.fixture(scope="module")
def tiny(tiny_corpus: Path):
    from lmprof.reference.data import Corpus

    return RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, bptt=8, dropout=0.0, device="cpu"), \
        Corpus(str(tiny_corpus))


def _graph_step(cfg: RunConfig, ntokens: int):
    import torch

    from lmprof.reference.loop import build_model
    from lmprof.experiments.speedlab.graph_step import EagerGraphApi, GraphStep

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, ntokens, torch.device("cpu"))
    api = EagerGraphApi()
    return model, GraphStep(model, torch.nn.NLLLoss(), cfg, torch.device("cpu"), api), api


class _Losses:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.tokens: list[int] = []

    def record(self, loss: float, tokens: int) -> None:
        self.values.append(loss)
        self.tokens.append(tokens)


def _reference_recording_losses(cfg, ntokens: int):
    """The reference model (seeded as a run seeds it) and a criterion that records each loss, as upstream reads it."""
    import torch

    from lmprof.reference.loop import build_model

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, ntokens, torch.device("cpu"))
    reference: list[float] = []

    def criterion(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = torch.nn.NLLLoss()(output, targets)
        reference.append(loss.item())
        return loss

    return model, criterion, reference


def test_graph_step_matches_the_reference_train_with_dropout_0(tiny) -> None:
    """Warm-up, capture, replays: the losses of the reference's train(), to float rounding (same batches)."""
    import torch

    from lmprof.reference.loop import batchify, build_model, train

    cfg, corpus = tiny
    ntokens, batches = len(corpus.dictionary), 8
    train_data = batchify(corpus.train, cfg.batch_size)
    model, criterion, reference = _reference_recording_losses(cfg, ntokens)
    train(model, train_data, cfg.replace(max_batches=batches), criterion, ntokens, lr=cfg.lr, epoch=1,  # type: ignore[arg-type]
          log=lambda line: None)
    graph_model, step, api = _graph_step(cfg, ntokens)
    losses = _Losses()
    ran = step.train(graph_model, train_data, cfg.replace(max_batches=batches), losses, ntokens, lr=cfg.lr, epoch=1)
    assert ran == batches and api.captures == 1 and step.steps == batches
    assert losses.tokens == [cfg.bptt * cfg.batch_size] * batches
    assert max(abs(a - b) for a, b in zip(losses.values, reference)) < 1e-4
    assert losses.values != reference[:1] * batches  # it learned: not one loss repeated


def test_graph_step_static_buffers_hidden_carry_and_lr_tensor(tiny) -> None:
    import torch

    from lmprof.reference.loop import batchify, get_batch

    cfg, corpus = tiny
    ntokens = len(corpus.dictionary)
    train_data = batchify(corpus.train, cfg.batch_size)
    model, step, api = _graph_step(cfg, ntokens)
    pointers = (step.static_data.data_ptr(), step.static_targets.data_ptr(),
                [h.data_ptr() for h in step.static_hidden])
    step.train(model, train_data, cfg.replace(max_batches=5), _Losses(), ntokens, lr=cfg.lr, epoch=1)
    # the same buffers throughout (a graph replays fixed addresses), holding the last batch
    assert (step.static_data.data_ptr(), step.static_targets.data_ptr(),
            [h.data_ptr() for h in step.static_hidden]) == pointers
    data, targets = get_batch(train_data, 4 * cfg.bptt, cfg.bptt)
    assert torch.equal(step.static_data, data) and torch.equal(step.static_targets, targets)
    # hidden carried over: one more step from the static hidden gives what the model computes from it
    before = [h.clone() for h in step.static_hidden]
    nxt, _ = get_batch(train_data, 5 * cfg.bptt, cfg.bptt)
    with torch.no_grad():
        _, expected = model(nxt, tuple(before))
    step.static_data.copy_(nxt)
    step.run_step()
    for got, want in zip(step.static_hidden, expected):
        assert torch.allclose(got, want, atol=1e-6)
    # a new lr reaches the update through the device tensor, without a new capture
    params = [p.detach().clone() for p in model.parameters()]
    step.train(model, train_data, cfg.replace(max_batches=1), _Losses(), ntokens, lr=0.0, epoch=2)
    assert step.neg_lr.item() == 0.0 and api.captures == 1
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))  # lr 0: nothing moved
    assert all(float(h.abs().sum()) > 0 for h in step.static_hidden)  # the epoch started from zeros, then stepped


def test_graph_step_runs_the_epochs_short_last_batch_eagerly(tiny) -> None:
    """Two epochs of 5 whole batches and a short one: the short ones run eagerly, the losses stay the reference's."""
    import torch

    from lmprof.reference.loop import batchify, build_model, train

    cfg, corpus = tiny
    ntokens = len(corpus.dictionary)
    train_data = batchify(corpus.train[:cfg.batch_size * (5 * cfg.bptt + 4)], cfg.batch_size)
    model, criterion, reference = _reference_recording_losses(cfg, ntokens)
    graph_model, step, api = _graph_step(cfg, ntokens)
    losses = _Losses()
    for epoch in (1, 2):
        train(model, train_data, cfg, criterion, ntokens, lr=cfg.lr, epoch=epoch, log=lambda line: None)  # type: ignore[arg-type]
        assert step.train(graph_model, train_data, cfg, losses, ntokens, lr=cfg.lr, epoch=epoch) == 6
    assert step.eager_steps == 2 and api.captures == 1 and step.steps == 10
    assert losses.tokens[5] == 3 * cfg.batch_size  # the short batch: 3 rows
    assert len(losses.values) == len(reference) == 12
    assert max(abs(a - b) for a, b in zip(losses.values, reference)) < 1e-4


def test_the_cuda_graph_variant_through_the_ladders_trial_on_a_fake_graph(tiny, monkeypatch) -> None:
    """run_trial with cuda-graph's trainer (the graph faked): losses recorded per batch, the budget kept,
    quality checked; with dropout 0 the losses are the reference's to float rounding."""
    import torch

    import lmprof.experiments.speedlab.graph_step as graph_step
    from lmprof.experiments.speedlab.ladder import Plan, run_trial
    from lmprof.experiments.speedlab.variants import BY_NAME

    monkeypatch.setattr(graph_step, "GraphApi", lambda device: graph_step.EagerGraphApi())
    cfg, corpus = tiny
    per_batch = cfg.bptt * cfg.batch_size
    plan = Plan(6 * per_batch, 6, 3 * per_batch, 1.0, 1)
    eager = run_trial(cfg, torch.device("cpu"), corpus, [], plan, None)
    graph = run_trial(cfg, torch.device("cpu"), corpus, [BY_NAME["cuda-graph"]], plan, None)
    assert graph.status == "ok" and len(graph.losses) == 6 == len(graph.batch_ends)
    assert [c["tokens"] for c in graph.checkpoints] == [c["tokens"] for c in eager.checkpoints]
    assert max(abs(a - b) for a, b in zip(eager.losses, graph.losses)) < 1e-4
    assert graph.budget_ppl == pytest.approx(eager.budget_ppl, rel=1e-3)
    assert any("graph-safe" in note for note in graph.notes)


# --- explain gpu on a machine without CUDA ------------------------------------------------------------
def test_explain_gpu_without_cuda_names_the_h200_and_measures_the_cpu(capsys) -> None:
    from lmprof.cli import main

    assert main(["explain", "gpu", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "No CUDA GPU is here" in text and "NVIDIA H200" in text and "launch-bound" in text
    assert "445" in text and "2.17 ms" in text  # the H200's kernels per step and their time
    assert "µs" in text  # the CPU's per-operator cost, measured now


def test_explain_gpu_numbers_are_sane(capsys) -> None:
    from lmprof.lessons import gpu

    numbers = gpu.measure_cpu(500)
    assert 0 < numbers["dispatch_seconds"] < 1e-3  # a 1-element add: microseconds, not milliseconds
    assert numbers["tiny"]["ops"] > 50 and numbers["default"]["seconds"] > numbers["tiny"]["seconds"]


def test_explain_gpus_cuda_page_on_a_fake_gpu(monkeypatch) -> None:
    """The CUDA branch's code (floor, eager and graph steps, the batch curve, the page) run on the CPU at tiny
    sizes, with the graph faked and the device's name given: every number present, the words right."""
    import torch

    import lmprof.experiments.speedlab.graph_step as graph_step
    from lmprof.lessons import gpu

    monkeypatch.setattr(graph_step, "GraphApi", lambda device: graph_step.EagerGraphApi())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(gpu, "BASE", RunConfig(emsize=16, nhid=16, nlayers=2, bptt=4, batch_size=2))
    monkeypatch.setattr(gpu, "CURVE", (2, 8))
    monkeypatch.setattr(gpu, "WARM", 4)
    monkeypatch.setattr(gpu, "TIMED", 3)
    numbers = gpu.measure_gpu(torch.device("cpu"), 50)
    assert [c["batch"] for c in numbers["curve"]] == [2, 8] and numbers["curve_stopped"] == ""
    assert numbers["eager_seconds"] > 0 and numbers["graph_seconds"] > 0 and numbers["kernel_seconds"] > 0
    text = io.StringIO()
    from rich.console import Console

    Console(file=text, width=120, color_system=None).print(gpu.render({"cuda": True, **numbers, "h200": gpu.H200}))
    page = text.getvalue()
    assert "Measured now on Fake GPU" in page and "GPU busy" in page and "whole step as one CUDA graph" in page
    assert "question (a)" in page and ("launch-bound" in page or "compute-bound" in page or "mixed" in page)


# --- with CUDA ----------------------------------------------------------------------------------------
@pytest.mark.cuda
def test_cuda_graph_20_steps_finite_and_close_to_eager_with_dropout_0(tiny_corpus: Path) -> None:
    import torch

    from lmprof.reference.data import Corpus
    from lmprof.experiments.speedlab.ladder import Plan, run_trial
    from lmprof.experiments.speedlab.variants import BY_NAME

    # bptt 4: 37 batches an epoch, so the 20 stay inside one epoch
    cfg = RunConfig(data=str(tiny_corpus), emsize=32, nhid=32, bptt=4, dropout=0.0, device="cuda")
    corpus, per_batch = Corpus(str(tiny_corpus)), cfg.bptt * cfg.batch_size
    plan = Plan(20 * per_batch, 20, 10 * per_batch, 1.0, 1)
    eager = run_trial(cfg, torch.device("cuda"), corpus, [], plan, None)
    graph = run_trial(cfg, torch.device("cuda"), corpus, [BY_NAME["cuda-graph"]], plan, None)
    assert len(graph.losses) == 20 and all(math.isfinite(x) for x in graph.losses)
    assert max(abs(a - b) for a, b in zip(eager.losses, graph.losses)) < 1e-3


@pytest.mark.cuda
def test_cuda_ladder_has_the_floor_and_a_measured_cuda_graph_row(tiny_corpus: Path) -> None:
    from lmprof.experiments.speedlab.ladder import run_ladder

    cfg = RunConfig(data=str(tiny_corpus), emsize=32, nhid=32, bptt=8, device="cuda")
    ladder = run_ladder(cfg, variants=["cuda-graph"], budget_batches=20, repeats=1, eval_every=5, combine=False)
    assert ladder.floor["kind"] == "kernel" and ladder.floor["kernels_per_step"] > 10
    row = ladder.row("cuda-graph")
    assert row.status == "measured" and row.floor_ratio and "launches removed" in row.verdict_line


@pytest.mark.cuda
def test_a_cuda_profile_run_has_gpu_busy_per_phase(tiny_args: list[str], tmp_path: Path) -> None:
    from lmprof.cli import main
    from lmprof.record.result import RunResult

    args = [a if a != "4" else "10" for a in tiny_args]  # 10 batches: the watched ones come after warm-up
    assert main(["profile", "--fn", "train", "--device", "cuda", *args]) == 0
    result = RunResult.load(tmp_path / "run")
    busy = {r["name"]: r for r in result.phases if "gpu_busy" in r}
    assert {"forward", "backward"} <= set(busy)
    assert all(0.0 <= r["gpu_busy"] <= 1.01 and r["regime"] in (LAUNCH_BOUND, MIXED, COMPUTE_BOUND)
               for r in busy.values())
