"""The component instrument: forward and backward per model component, checked against phases and a trace."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from lmprof.config import RunConfig
from lmprof.instrument.components import ComponentInstrument
from lmprof.record.result import RunResult
from lmprof.record.derived import BETWEEN_COMPONENTS as BETWEEN
from lmprof.record.derived import component_label, component_rows

from .conftest import ORACLE_DEVICE


def tiny_config(corpus: Path, **overrides: Any) -> RunConfig:
    # On the CPU wherever run: these tests check the host clock's sums against the phases and a CPU
    # trace, and drive fake CUDA events; test_cuda.py times components with real ones.
    values: dict[str, Any] = dict(data=str(corpus), emsize=32, nhid=32, epochs=1, max_batches=6, bptt=8,
                                  device=ORACLE_DEVICE)
    return RunConfig(**{**values, **overrides})


def run_with(cfg: RunConfig, folder: Path, *instruments: Any) -> RunResult:
    from lmprof.runner import run

    return run(cfg, command="profile", instruments=instruments, log=lambda line: None, run_dir=folder)


@pytest.fixture(scope="module")
def lstm_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    from lmprof.instrument.recorders import PhaseInstrument

    # Big enough that arithmetic, not Python glue between the modules, fills the step: the sums below
    # compare component time with phase time, and on a 32-wide model the glue alone is ~15% of forward.
    return run_with(tiny_config(tiny_corpus, emsize=128, nhid=128, bptt=16), tmp_path_factory.mktemp("components") / "run",
                    PhaseInstrument(), ComponentInstrument())


def test_losses_are_bitwise_those_of_an_unwatched_run(lstm_run: RunResult, tiny_corpus: Path,
                                                      tmp_path: Path) -> None:
    bare = run_with(tiny_config(tiny_corpus, emsize=128, nhid=128, bptt=16), tmp_path / "bare")
    assert bare.metrics["test_loss"] == lstm_run.metrics["test_loss"]
    assert [e["val_loss"] for e in bare.epochs] == [e["val_loss"] for e in lstm_run.epochs]


def test_every_lstm_component_in_forward_order_with_both_directions(lstm_run: RunResult) -> None:
    c = lstm_run.components
    assert c["steps"] == 6 and c["clock"] == "host"
    assert [r["name"] for r in c["rows"]] == ["encoder", "drop", "rnn", "drop#2", "decoder", "log_softmax", "loss"]
    for r in c["rows"]:
        assert r["calls"] == 6, r["name"]  # training steps only: evaluation is counted apart
        assert r["forward_seconds"] > 0 and r["backward_seconds"] > 0, r["name"]
    evaluation = {r["name"]: r["calls"] for r in c["evaluation"]}
    assert set(evaluation) == {r["name"] for r in c["rows"]}
    assert len(set(evaluation.values())) == 1 and evaluation["rnn"] > 6  # validation + test batches


def test_components_add_up_to_the_phases_within_ten_percent(lstm_run: RunResult) -> None:
    c = lstm_run.components
    phases = {r["name"]: r["seconds"] for r in lstm_run.phases}
    forward = sum(r["forward_seconds"] for r in c["rows"])
    backward = sum(r["backward_seconds"] for r in c["rows"])
    assert forward == pytest.approx(phases["forward"] + phases["loss"], rel=0.10)
    assert backward == pytest.approx(phases["backward"], rel=0.10)


def test_rows_are_per_step_and_the_remainder_closes_the_phases(lstm_run: RunResult) -> None:
    rows = component_rows(lstm_run)
    assert rows[-1]["name"] == BETWEEN
    c = lstm_run.components
    decoder = next(r for r in rows if r["name"] == "decoder")
    raw = next(r for r in c["rows"] if r["name"] == "decoder")
    assert decoder["forward"] == pytest.approx(raw["forward_seconds"] / 6)
    timed = sum(c["phases"].values()) / 6
    assert sum(r["total"] for r in rows) == pytest.approx(timed)


def test_labels_name_the_module_and_the_second_call() -> None:
    assert component_label("rnn", "LSTM") == "rnn (LSTM)"
    assert component_label("drop#2", "Dropout") == "drop (Dropout), 2nd call"
    assert component_label("log_softmax", "") == "log_softmax"


def test_transformer_gets_its_components(tiny_corpus: Path, tmp_path: Path) -> None:
    # what holds on any device: on the one `--device auto` picks (CUDA events on a GPU machine)
    result = run_with(tiny_config(tiny_corpus, model="Transformer", nhead=2, max_batches=3, device="auto"),
                      tmp_path / "t", ComponentInstrument())
    rows = {r["name"]: r for r in result.components["rows"]}
    assert list(rows) == ["input_emb", "pos_encoder", "encoder", "decoder", "log_softmax", "loss"]
    assert rows["encoder"]["module"] == "TransformerEncoder"
    assert all(r["backward_seconds"] > 0 for r in rows.values())


def test_no_section_and_no_hooks_left_when_no_step_ran(tmp_path: Path) -> None:
    import torch
    from torch.nn.modules import module

    from lmprof.instrument.base import RunContext

    before = len(module._global_forward_pre_hooks)
    timer = ComponentInstrument()
    timer.start(RunContext(cfg=RunConfig(), device=torch.device("cpu"), run_dir=tmp_path, batches_per_epoch=1))
    assert len(module._global_forward_pre_hooks) == before + 1
    timer.stop()
    assert len(module._global_forward_pre_hooks) == before
    result = RunResult()
    timer.contribute(result, tmp_path)
    assert result.components == {}


# --- against torch.profiler: the trace's operators grouped by the module that ran them ----------

TRACE_MODULES = {"Embedding": "encoder", "Dropout": "drop", "LSTM": "rnn", "Linear": "decoder", "NLLLoss": "loss"}
BACKWARD = "autograd::engine::evaluate_function: "


def trace_by_module(events: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Forward and backward microseconds per component, from a chrome trace recorded with_stack.

    Forward: each "nn.Module: X_0" span of the model's children; log_softmax is the
    aten::log_softmax op (RNNModel only: the model whose forward spans are looked for). Backward: each autograd function is charged to the module whose
    forward operator carries its sequence number; AccumulateGrad (no sequence number) to
    the function just before it, as the engine runs them back to back.
    """
    spans = [(e["ts"], e["ts"] + e["dur"], TRACE_MODULES[kind]) for e in events
             if e.get("cat") == "python_function" and e["name"].startswith("nn.Module: ")
             and (kind := e["name"].split(": ")[1].rsplit("_", 1)[0]) in TRACE_MODULES]
    models = [(e["ts"], e["ts"] + e["dur"]) for e in events
              if e.get("cat") == "python_function" and e["name"].startswith("nn.Module: RNNModel_")]
    ops = sorted((e for e in events if e.get("cat") == "cpu_op"), key=lambda e: e["ts"])
    owner: dict[int, str] = {}
    times: dict[str, dict[str, float]] = {}
    for start, end, name in spans:
        times.setdefault(name, {"forward": 0.0, "backward": 0.0})["forward"] += end - start
    for op in ops:
        seq = op.get("args", {}).get("Sequence number")
        if op["name"].startswith(BACKWARD) or seq is None:
            continue
        name = next((n for s, e, n in spans if s <= op["ts"] < e), None)
        if name is None and any(s <= op["ts"] < e for s, e in models):
            name = "log_softmax"  # in the model's forward, outside its children: log_softmax and a view
        if name is not None:  # else the loop's own ops (get_batch's slices, repackage's detach)
            owner.setdefault(seq, name)
        if op["name"] == "aten::log_softmax":
            times.setdefault("log_softmax", {"forward": 0.0, "backward": 0.0})["forward"] += op["dur"]
    last = None
    for op in ops:
        if not op["name"].startswith(BACKWARD):
            continue
        last = owner.get(op.get("args", {}).get("Sequence number"), last)
        if last is not None:
            times[last]["backward"] += op["dur"]
    return times


def test_components_agree_with_a_trace_grouped_by_module(tiny_corpus: Path, tmp_path: Path) -> None:
    """Each component's share of forward + backward within 5 points of the trace's (same steps, one run).

    On the default config (embedded corpus, 8 steps, 2-core AMD EPYC) the two agree within 0.5 points
    for every component; tiny models leave more room to the profiler's per-operator cost.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    from lmprof.instrument.base import RunContext
    from lmprof.phases import listening
    from lmprof.reference.data import Corpus
    from lmprof.reference.loop import batchify, build_model, train

    cfg = tiny_config(tiny_corpus, emsize=64, nhid=64, bptt=16, max_batches=5, log_interval=10**9)
    torch.manual_seed(cfg.seed)
    corpus = Corpus(str(tiny_corpus))
    data = batchify(corpus.train, cfg.batch_size)
    ntokens = len(corpus.dictionary)
    model, criterion = build_model(cfg, ntokens, torch.device("cpu")), torch.nn.NLLLoss()
    timer = ComponentInstrument()
    timer.start(RunContext(cfg=cfg, device=torch.device("cpu"), run_dir=tmp_path, batches_per_epoch=5))
    try:
        with profile(activities=[ProfilerActivity.CPU], with_stack=True) as prof, listening(timer):
            train(model, data, cfg, criterion, ntokens, lr=cfg.lr, epoch=1, log=lambda line: None)
    finally:
        timer.stop()
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    traced = trace_by_module(json.loads((tmp_path / "trace.json").read_text())["traceEvents"])

    hooked: dict[str, float] = {}
    for r in timer.section()["rows"]:
        name = r["name"].partition("#")[0]
        hooked[name] = hooked.get(name, 0.0) + r["forward_seconds"] + r["backward_seconds"]
    trace_total = {name: t["forward"] + t["backward"] for name, t in traced.items()}
    assert set(trace_total) == set(hooked)
    for name in hooked:
        hooked_share = hooked[name] / sum(hooked.values())
        trace_share = trace_total[name] / sum(trace_total.values())
        assert hooked_share == pytest.approx(trace_share, abs=0.05), name


def test_explain_profiling_reads_the_component_table_after_its_warm_up() -> None:
    from lmprof.lessons import profiling

    numbers = profiling.demo(max_batches=4, size=16, bptt=8, batch_size=4, train_tokens=1500, warmup=2)
    assert numbers["warmup"] == 2
    names = [r["name"] for r in numbers["components"]]
    assert names[:3] == ["encoder", "drop", "rnn"] and "decoder" in names
    medians = {r["name"]: r["median_seconds"] for r in numbers["phases"]}
    assert medians["forward"] > 0 and medians["corpus"] is None  # a median per step phase only
    from rich.console import Console

    console = Console(width=100, record=True, file=io.StringIO())
    console.print(profiling.render(numbers))
    text = console.export_text()
    assert "decoder (Linear)" in text and "multiply-adds" in text and "backward/forward: decoder" in text


class ClockEvent:
    """A stand-in for torch.cuda.Event: records a fake clock's time; elapsed_time in ms, as CUDA's."""

    made = 0
    syncs = 0

    def __init__(self, clock: Any) -> None:
        self.clock, self.at = clock, None
        ClockEvent.made += 1

    def record(self) -> None:
        self.at = self.clock()

    def query(self) -> bool:
        return False  # never finished before the end: every pair waits for the one synchronisation

    def elapsed_time(self, end: "ClockEvent") -> float:
        return (end.at - self.at) * 1000.0


def test_cuda_event_path_gives_the_host_path_totals(tiny_corpus: Path, tmp_path: Path) -> None:
    """With events that read the same clock, the CUDA path folds its pairs into the same per-component totals."""
    import time

    ticks: list[float] = []

    def clock() -> float:  # one shared clock, every reading remembered
        ticks.append(time.perf_counter())
        return ticks[-1]

    def synchronize() -> None:
        ClockEvent.syncs += 1

    timer = ComponentInstrument(event_factory=lambda: ClockEvent(clock), synchronize=synchronize)
    result = run_with(tiny_config(tiny_corpus, max_batches=3), tmp_path / "run", timer)
    c = result.components
    assert c["clock"] == "cuda events" and ClockEvent.syncs == 1  # read once, at the end
    assert ClockEvent.made > 3 * 2 * len(c["rows"])  # pairs for every component, both directions
    for r in c["rows"]:
        assert r["forward_seconds"] > 0 and r["backward_seconds"] > 0, r["name"]
    backward = sum(r["backward_seconds"] for r in c["rows"])
    assert backward == pytest.approx(c["phases"]["backward"], rel=0.10)


def test_flow_chart_draws_forward_and_reversed_backward_components_with_their_times(lstm_run: RunResult) -> None:
    import re

    from lmprof.views.flowchart import flow_chart
    from lmprof.views.format import duration

    source = flow_chart(lstm_run).source
    rows = {r["name"]: r for r in component_rows(lstm_run)}
    labels = dict(re.findall(r'^\s*((?:forward|backward)_\d+) \[label="([^"]*)"', source, flags=re.M))
    forward = [labels[f"forward_{i}"] for i in range(6)]
    backward = [labels[f"backward_{i}"] for i in range(7)]
    assert [label.split("\\n")[0] for label in backward] == [
        "loss (NLLLoss)", "log_softmax", "decoder (Linear)", "dropout", "rnn: LSTM (2 layers)", "dropout",
        "encoder (Embedding)"]
    assert f"forward {duration(rows['decoder']['forward'])}/step" in forward[4]
    assert f"backward {duration(rows['decoder']['backward'])}/step" in backward[2]
    assert f"backward {duration(rows['drop#2']['backward'])}/step" in backward[3]  # the dropout after the rnn
    assert "backward_6 -> clip" in source.replace("\t", "") and "loss -> backward_0" in source.replace("\t", "")


def test_report_has_the_component_table(lstm_run: RunResult, tmp_path: Path) -> None:
    from lmprof.views.report import run_report

    page = run_report(lstm_run, tmp_path)
    section = page[page.index('<section id="components">'):]
    section = section[:section.index("</section>")]
    for label in ("encoder (Embedding)", "drop (Dropout), 2nd call", "decoder (Linear)", BETWEEN):
        assert label in section
    assert "Backward runs the components in reverse" in section


def test_compare_shows_components_side_by_side(lstm_run: RunResult) -> None:
    from lmprof.comparison import compare
    from lmprof.views.compare import grids

    faster = RunResult.from_dict(json.loads(lstm_run.to_json()))
    for row in faster.components["rows"]:
        row["forward_seconds"] /= 2
        row["backward_seconds"] /= 2
    faster.components["phases"] = {k: v / 2 for k, v in faster.components["phases"].items()}
    c = compare([lstm_run, faster])
    decoder = next(r for r in c.components if r.label == "decoder (Linear)")
    assert decoder.ratios[0] == pytest.approx(1.0) and decoder.ratios[1] == pytest.approx(0.5)
    assert decoder.forward[1] == pytest.approx(decoder.forward[0] / 2)
    grid = next(g for g in grids(c) if g.id == "components")
    assert grid.columns[:3] == ["component", "A forward", "A backward"] and grid.rows[4][-1] == "0.50×"
