"""Gradient flow: per-step dLoss/dh_t through the unrolled model, and the pre-clip statistics of a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lmprof.config import RunConfig
from lmprof.experiments.gradient_flow import GradientFlow, decay_factor, gradient_flow, step_gradients, steps_until
from lmprof.instrument.gradients import GradStatsInstrument, clip_statistics, clip_summary


def tiny(corpus: Path, **changes: object) -> RunConfig:
    # on the CPU: these tests count clipped batches in every batch (grad-stats watch 1 in 16 on CUDA)
    # and compare losses bitwise; test_cuda.py has the CUDA runs
    base = RunConfig(data=str(corpus), emsize=16, nhid=16, epochs=1, max_batches=4, bptt=8, device="cpu")
    return base.replace(**changes)


def test_per_step_gradients_sum_to_the_fused_parameter_gradients(tiny_corpus: Path) -> None:
    """For a tanh RNN, dW_hh = Σ_t (dL/dh_t ⊙ (1 − h_t²))ᵀ h_{t−1}: built from the measured dL/dh_t
    of the unrolled path, it must equal the gradient the fused kernel computes for the same loss."""
    import torch
    import torch.nn.functional as F

    from lmprof.reference.data import Corpus
    from lmprof.reference.loop import batchify, build_model, get_batch

    cfg = tiny(tiny_corpus, model="RNN_TANH", nlayers=1, dropout=0.0, bptt=6, batch_size=4)
    corpus = Corpus(cfg.data)
    data, targets = get_batch(batchify(corpus.train, cfg.batch_size), 0, cfg.bptt)
    ntokens = len(corpus.dictionary)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, ntokens, torch.device("cpu"))
    hidden = torch.randn(1, cfg.batch_size, cfg.nhid) * 0.5  # a state carried in from a previous batch

    step, _ = step_gradients(model, data, targets, hidden, cfg)
    g, h = step.grads["h"][0], step.states["h"][0]  # [T, batch, nhid] each
    before = torch.cat([hidden, h[:-1]])  # h_{t-1}
    delta = g * (1 - h ** 2)  # through tanh
    x = model.encoder(data).detach()
    per_step_hh = torch.einsum("tbi,tbj->tij", delta, before)
    per_step_ih = torch.einsum("tbi,tbj->tij", delta, x)

    output, _ = model(data, hidden)  # the fused path (oneDNN where the build has it)
    loss = F.nll_loss(output.view(cfg.bptt, cfg.batch_size, -1)[-1], targets.view(cfg.bptt, cfg.batch_size)[-1])
    loss.backward()
    assert loss.item() == pytest.approx(step.loss.item(), rel=1e-6)
    torch.testing.assert_close(per_step_hh.sum(0), model.rnn.weight_hh_l0.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(per_step_ih.sum(0), model.rnn.weight_ih_l0.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(delta.sum((0, 1)), model.rnn.bias_hh_l0.grad, rtol=1e-4, atol=1e-7)
    # The last step feeds the loss directly; t = 1 only through T - 1 recurrent steps.
    assert per_step_hh[-1].norm() > per_step_hh[0].norm() > 0


def test_small_init_tanh_rnn_vanishes_and_lstm_keeps_a_larger_share(tiny_corpus: Path) -> None:
    import torch

    from lmprof.reference.data import Corpus
    from lmprof.reference.loop import build_model

    cfg = tiny(tiny_corpus, model="RNN_TANH", nlayers=1, dropout=0.0, bptt=10, nhid=32, emsize=32)
    torch.manual_seed(0)
    small = build_model(cfg, len(Corpus(cfg.data).dictionary), torch.device("cpu")).state_dict()
    small["rnn.weight_hh_l0"] = small["rnn.weight_hh_l0"] * 0.3  # small recurrent weights: |W_hh| well below 1
    tanh = gradient_flow(cfg, batches=3, state_dict=small).curves["RNN_TANH"]["h"][0]
    lstm = gradient_flow(cfg.replace(model="LSTM"), batches=3).curves["LSTM"]["h"][0]

    assert all(a < b for a, b in zip(tanh, tanh[1:])), tanh  # smaller at every step further back
    assert decay_factor(tanh) < 0.5
    assert steps_until(tanh) is not None and steps_until(tanh) < cfg.bptt - 1
    assert lstm[0] / lstm[-1] > tanh[0] / tanh[-1]


def test_gradflow_json_has_one_list_per_layer_of_bptt_positive_norms(tiny_corpus: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.cli import main

    code = main(["gradflow", "--models", "LSTM", "RNN_TANH", "--data", str(tiny_corpus), "--bptt", "6",
                 "--emsize", "16", "--nhid", "16", "--nlayers", "2", "--batches", "2", "--json",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out)  # standard output is the JSON object alone
    assert set(doc["models"]) == {"LSTM", "RNN_TANH"}
    assert set(doc["models"]["LSTM"]) >= {"h", "c"} and "c" not in doc["models"]["RNN_TANH"]
    for kind in ("LSTM", "RNN_TANH"):
        layers = doc["models"][kind]["h"]
        assert len(layers) == 2 and all(len(norms) == 6 and min(norms) > 0 for norms in layers)
    assert (tmp_path / "gradflow.png").stat().st_size > 0 and (tmp_path / "gradflow.svg").is_file()


def test_gradflow_table_and_plot(tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.cli import main

    code = main(["gradflow", "--model", "GRU", "--data", str(tiny_corpus), "--bptt", "5", "--emsize", "16",
                 "--nhid", "16", "--nlayers", "1", "--batches", "2", "--out", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())  # titles wrap to the table's width
    assert code == 0
    assert "GRU: |dL/dh| per step t (mean over 2 batches)" in out and "decay per step" in out
    assert f"plot: {tmp_path / 'gradflow.png'}" in out


def test_gradflow_refuses_a_transformer_and_mixed_from(tiny_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.cli import main

    assert main(["gradflow", "--model", "Transformer", "--data", str(tiny_corpus)]) == 2
    assert "gradient flow is measured for recurrent models" in capsys.readouterr().err


def test_flow_views_rows_and_figure() -> None:
    from lmprof.views.gradflow import flow_figure, step_rows, summary_rows

    flow = GradientFlow(config={"bptt": 4, "nhid": 8, "nlayers": 2}, batches=3, curves={
        "LSTM": {"h": [[0.001, 0.01, 0.1, 1.0], [0.5, 0.5, 0.5, 0.5]], "c": [[0.1, 0.2, 0.4, 0.8], [1, 1, 1, 1]]},
        "RNN_TANH": {"h": [[0.008, 0.04, 0.2, 1.0], [1, 1, 1, 1]]}})
    rows = step_rows(flow, "LSTM")
    assert [r["back"] for r in rows] == [3, 2, 1, 0]
    assert rows[0]["h1"] == (0.001, 0.001) and rows[-1]["c1"] == (0.8, 1.0)
    summary = {(r["kind"], r["state"], r["layer"]): r for r in summary_rows(flow)}
    assert summary[("LSTM", "h", 1)]["decay"] == pytest.approx(0.1)
    assert summary[("LSTM", "h", 1)]["steps_to_1pct"] == 3  # 0.001 < 1% of 1.0 first at t = 1
    assert summary[("RNN_TANH", "h", 1)]["steps_to_1pct"] == 3 and summary[("LSTM", "h", 2)]["steps_to_1pct"] is None
    assert summary[("RNN_TANH", "h", 1)]["decay"] == pytest.approx(0.2)
    fig = flow_figure(flow)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if (line.get_gid() or "").startswith("flow:")]
    assert len(lines) == 6 and ax.get_yscale() == "log"
    assert list(lines[0].get_xdata()) == [3, 2, 1, 0]


def test_clip_statistics_of_known_norms() -> None:
    stats = clip_statistics(2, [0.1, 0.3, 0.2, 5.0], clip=0.25)
    assert stats == {"epoch": 2, "batches": 4, "preclip_norm_median": pytest.approx(0.25),
                     "preclip_norm_max": 5.0, "clipped_fraction": 0.5, "nonfinite_batches": 0}
    diverged = clip_statistics(1, [3.1e4, math.nan, 0.1], clip=0.25)  # the NaN batch counts as clipped
    assert diverged["clipped_fraction"] == pytest.approx(2 / 3) and diverged["nonfinite_batches"] == 1
    assert diverged["preclip_norm_median"] == 3.1e4 and diverged["preclip_norm_max"] == math.inf
    assert clip_summary({"clip": 0.25, "epochs": [stats]}) == \
        "pre-clip norm 5 at epoch 2, 50% of batches clipped (--clip 0.25)"
    assert clip_summary({"clip": 0.25, "epochs": [diverged]}).startswith("pre-clip norm non-finite at epoch 1, 67%")


@pytest.mark.parametrize("clip, fraction", [(1e-4, 1.0), (1e6, 0.0)])
def test_tiny_clip_clips_every_batch_and_a_huge_one_none(tiny_corpus: Path, tmp_path: Path, clip: float,
                                                         fraction: float) -> None:
    from lmprof.runner import run

    result = run(tiny(tiny_corpus, clip=clip), instruments=[GradStatsInstrument()], log=lambda line: None, run_dir=tmp_path)
    (epoch,) = result.gradients["epochs"]
    assert epoch["batches"] == 4 and epoch["clipped_fraction"] == fraction
    # every norm above the clip (the median too), or none (the max too)
    assert epoch["preclip_norm_median"] > clip if fraction == 1.0 else 0 < epoch["preclip_norm_max"] <= clip
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["gradients"]["epochs"][0]["clipped_fraction"] == fraction


def test_grad_stats_leave_every_loss_bitwise_unchanged(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.runner import run

    cfg = tiny(tiny_corpus, epochs=2, max_batches=3)
    plain = run(cfg, log=lambda line: None, run_dir=tmp_path / "plain")
    lines: list[str] = []
    watched = run(cfg, instruments=[GradStatsInstrument()], log=lines.append, run_dir=tmp_path / "watched")
    assert [e["val_loss"] for e in watched.epochs] == [e["val_loss"] for e in plain.epochs]
    assert watched.metrics["test_loss"] == plain.metrics["test_loss"]
    assert [e["epoch"] for e in watched.gradients["epochs"]] == [1, 2]


def test_bptt_diagram_draws_state_edges_by_measured_gradient() -> None:
    from lmprof.instrument.graph import capture
    from lmprof.views.bptt import bptt_graph

    cfg = RunConfig(model="LSTM", nlayers=1, bptt=3, batch_size=2, emsize=8, nhid=8)
    grads = {"h": [[0.001, 0.01, 0.1]], "c": [[0.01, 0.01, 0.01]]}
    source = bptt_graph(capture(cfg), grads).source
    edges = {line.split("label=")[1].split('"')[1]: line for line in source.splitlines() if 'label="h ' in line}
    # h_1 and h_2 feed the next step; on a log scale 1e-3 .. 1e-1, h_1 is the thinnest and h_2 halfway
    assert set(edges) == {"h 1.0e-03", "h 1.0e-02"}
    assert "penwidth=1.00" in edges["h 1.0e-03"] and "penwidth=4.00" in edges["h 1.0e-02"]
    assert "measured by lmprof gradflow" in source


def test_report_has_a_gradient_section(tmp_path: Path) -> None:
    from lmprof.record.result import RunResult
    from lmprof.views.report import run_report

    stats = clip_statistics(1, [0.1, 0.3, 0.2, 5.0], clip=0.25)
    result = RunResult(command="train", config={"model": "LSTM"}, metrics={"status": "ok"},
                       gradients={"clip": 0.25, "epochs": [stats]})
    page = run_report(result, tmp_path)
    assert "Gradient norms before clipping" in page and "<td class=\"num\">50%</td>" in page
    assert "pre-clip norm 5 at epoch 1, 50% of batches clipped" in page
    assert "Gradient norms before clipping" not in run_report(RunResult(command="train", config={}), tmp_path)


def test_explain_bptt_measures_the_tanh_rnn_and_lstm_curves() -> None:
    from rich.console import Console

    from lmprof.lessons import topic_module

    bptt = topic_module("bptt")
    numbers = bptt.demo(bptts=(4, 8), batch_size=2, size=8, ntokens=30, reach_bptt=4, flow_bptt=6, flow_batches=2)
    flow = numbers["flow"]
    assert set(flow["curves"]) == {"RNN_TANH h", "LSTM h", "LSTM c"}
    assert all(len(norms) == 6 and min(norms) > 0 for norms in flow["curves"].values())
    for kind in flow["curves"]:  # one figure per draw (seeds 0, 1, 2), as lmprof gradflow --draws 3 gives
        assert len(flow["steps_to_1pct"][kind]) == 3 == len(flow["seeds"])
        assert all(s is None or 0 < s < 6 for s in flow["steps_to_1pct"][kind])
    console = Console(width=100, record=True)
    console.print(bptt.render(numbers))
    text = " ".join(console.export_text().split())
    assert "how much gradient reaches back (bptt 6)" in text and "the tanh RNN's gradient fell below 1%" in text


def test_train_grad_stats_prints_clip_lines_and_a_diverged_run_cites_them(
        tiny_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.cli import main

    code = main(["train", *tiny_args, "--grad-stats", "--lr", "1e38"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1  # diverged
    assert "epoch 1: pre-clip gradient norm median" in out and "(--clip 0.25)" in out
    assert "diverged: " in out and "of batches clipped (--clip 0.25)" in out


def test_gradflow_from_a_run_measures_its_trained_weights(tiny_args: list[str], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.cli import main

    assert main(["train", *tiny_args]) == 0
    run = tiny_args[tiny_args.index("--out") + 1]
    capsys.readouterr()
    assert main(["gradflow", "--from", run, "--batches", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["trained"] is True and list(doc["models"]) == ["LSTM"]
    assert len(doc["models"]["LSTM"]["h"]) == 2 and len(doc["models"]["LSTM"]["h"][0]) == 8  # nlayers 2, bptt 8
    assert (Path(run) / "gradflow.png").is_file()
    assert main(["gradflow", "--from", run, "--models", "GRU"]) == 2
    assert "holds a LSTM" in capsys.readouterr().err


def test_sweep_worker_records_clip_statistics_per_epoch(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.sweeps.worker import run_one
    from lmprof.record.sweep_summary import sweep_view
    from lmprof.views.sweep_tables import clip_table

    record = run_one(tiny(tiny_corpus, epochs=2, max_batches=3, clip=1e-4), tmp_path / "run")
    assert record["status"] == "ok"
    assert [e["clipped_fraction"] for e in record["epochs"]] == [1.0, 1.0]
    assert record["gradients"]["epochs"][1]["batches"] == 3
    # the table shows them beside perplexity, one column per model
    plan = {"name": "s", "epochs": 2, "models": ["LSTM"], "runs": [{"key": "k", "label": "LSTM", "model": "LSTM"}],
            "groups": [{"factor": "base", "rows": [{"value": "base", "keys": {"LSTM": "k"}}]}]}
    rows = [{"kind": "epoch", "key": "k", "epoch": e["epoch"], "train_seconds": 1.0, "val_ppl": e["val_ppl"],
             "clipped_fraction": e["clipped_fraction"], "preclip_norm_max": e["preclip_norm_max"]}
            for e in record["epochs"]]
    view = sweep_view(plan, rows)
    table = clip_table(view, view.tables[0])
    assert [c.header for c in table.columns] == ["base", "epoch", "LSTM clipped"]
    assert [cell.split(" (")[0] for cell in table.columns[-1].cells] == ["100%", "100%"]


def test_sweep_records_clip_statistics_unless_no_grad_stats(tiny_corpus: Path, tmp_path: Path) -> None:
    from lmprof.cli import main

    flags = ["--models", "LSTM", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--bptt", "8",
             "--epochs", "1", "--max-batches", "2"]
    for switch, want in (([], True), (["--no-grad-stats"], False)):
        out = tmp_path / ("on" if want else "off")
        assert main(["sweep", *flags, *switch, "--out", str(out)]) == 0
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        epoch = next(r for r in rows if r["kind"] == "epoch")
        assert (epoch["clipped_fraction"] is not None) is want
