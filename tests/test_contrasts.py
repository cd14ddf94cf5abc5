"""Contrasts a class can trust (issue 29): divergence named everywhere, components paired by role,
no verdict under the noise floor, tokens/s in sweeps, RunResult.show(), one gradient-decay measurement,
whole numbers at 80 columns."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pytest

from lmprof.comparison import TOO_SMALL, compare
from lmprof.divergence import DIVERGED, NOT_CONVERGED, is_diverged, judge
from lmprof.record.result import RunResult

# --device cpu: these runs are compared every batch (a GPU's default of 1 watched batch in 16 would
# leave 6-batch runs with one watched batch); test_cuda.py covers CUDA runs
TINY = ["--device", "cpu", "--emsize", "32", "--nhid", "32", "--epochs", "1", "--max-batches", "6", "--bptt", "8", "--threads", "2"]


def render(renderable: object, width: int = 80) -> str:
    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), color_system=None, highlight=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def cut_numbers(text: str) -> list[str]:
    """Cells rich cut with an ellipsis: a digit (or a decimal point, an exponent) right before '…'."""
    return re.findall(r"[0-9.e+-]+…", text)


# --- the rule ---------------------------------------------------------------------------------
def test_the_rule_is_the_sweeps_and_says_why_and_what_to_try() -> None:
    metrics = {"ntokens": 1000, "status": "ok"}
    assert judge({}, {**metrics, "epochs": [{"val_ppl": 300.0}]}) is None  # learned: nothing said
    one = judge({"model": "LSTM", "lr": 20.0}, {**metrics, "epochs": [{"val_ppl": 5400.0}]})
    assert one is not None and one.status == NOT_CONVERGED and "5,400" in one.why and "--lr 5" in one.advice
    two = judge({"model": "LSTM", "lr": 8.0}, {**metrics, "epochs": [{"val_ppl": 300.0}, {"val_ppl": 2000.0}]})
    assert two is not None and two.status == DIVERGED and "epoch 2" in two.why  # the last of two: the sweep's rule
    nan = judge({}, {**metrics, "status": "diverged", "message": "loss is nan at batch 3", "epochs": []})
    assert nan is not None and nan.status == DIVERGED and "nan at batch 3" in nan.why
    gru = judge({"model": "GRU", "lr": 20.0}, {**metrics, "epochs": [{"val_ppl": 1e5}]})
    assert gru is not None and "too high for the GRU here" in gru.advice and "measured" in gru.advice
    from lmprof.sweeps import is_diverged as sweeps_rule

    assert sweeps_rule is is_diverged  # one rule, not two copies


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> dict[str, Path]:
    """Three tiny profiled runs on one corpus: LSTM and GRU with components, and a GRU at lr 400."""
    from lmprof.cli import main

    root, corpus = tmp_path_factory.mktemp("contrasts"), tiny_corpus
    out = {}
    for name, extra in (("lstm", ["--components"]), ("gru", ["--components", "--model", "GRU"]),
                        ("div", ["--model", "GRU", "--lr", "400"])):
        out[name] = root / name
        main(["profile", "--fn", "train", "--data", str(corpus), *TINY, *extra, "--out", str(out[name])])
    return out


def test_a_run_worse_than_uniform_is_flagged_in_summary_show_compare_and_notebook(
        runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.cli import main
    from lmprof.views.notebook import run_html
    from lmprof.views.tables import profile_view

    div = RunResult.load(runs["div"])
    vocab = div.metrics["ntokens"]
    assert div.epochs[-1]["val_ppl"] > vocab, "lr 400 no longer ends above the vocabulary: pick a larger lr"
    flagged = re.compile(r"diverged|not converged")
    assert flagged.search(render(profile_view(div), 120))  # profile's summary
    capsys.readouterr()
    assert main(["show", str(runs["div"])]) == 0 and flagged.search(capsys.readouterr().out)  # show
    comparison = compare([RunResult.load(runs["lstm"]), div])
    assert comparison.judgements[0] is None and comparison.judgements[1]["status"] in (DIVERGED, NOT_CONVERGED)
    assert any(flagged.search(n) and "Try:" in n for n in comparison.notes)  # compare
    assert flagged.search(run_html(div))  # the notebook display (and the report's headline)
    assert not flagged.search(render(profile_view(RunResult.load(runs["lstm"])), 120))


def test_lstm_and_gru_components_pair_by_role_with_a_ratio(runs: dict[str, Path]) -> None:
    from lmprof.views.compare import compare_view

    c = compare([RunResult.load(runs["lstm"]), RunResult.load(runs["gru"])])
    rnn = next(row for row in c.components if row.role == "rnn")
    assert rnn.label == "rnn (LSTM vs GRU)" and rnn.modules == ["LSTM", "GRU"]
    assert rnn.ratios[0] == 1.0 and rnn.ratios[1] is not None and rnn.ratios[1] > 0
    total = [f + b for f, b in zip(rnn.forward, rnn.backward)]  # type: ignore[operator]
    assert rnn.ratios[1] == pytest.approx(total[1] / total[0])
    assert not [row for row in c.components if None in row.ratios]  # no half-empty rows
    doc = json.loads(c.to_json())
    assert any(r["role"] == "rnn" and len(r["ratios"]) == 2 for r in doc["components"])
    assert "rnn (LSTM vs GRU)" in render(compare_view(c), 160)


def test_run_result_show_prints_the_tables(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import lmprof

    lmprof.load(str(runs["lstm"])).show(width=100)
    out = capsys.readouterr().out
    assert "forward" in out and "backward (BPTT)" in out and "Where the run's time went" in out


# --- the noise floor ---------------------------------------------------------------------------
def _with_samples(result: RunResult, scale: dict[str, float]) -> RunResult:
    """A copy whose step phases have 40 per-batch samples, each phase's multiplied by ``scale``."""
    import numpy as np

    rng = np.random.default_rng(1)
    base = {"forward": 0.040, "backward": 0.055, "zero_grad": 0.0001, "clip": 0.0006}
    out = copy.deepcopy(result)
    out.phases = [{"name": name, "label": name, "calls": 40, "seconds": 40 * secs * scale.get(name, 1.0),
                   "samples": list(secs * scale.get(name, 1.0) * (1 + 0.001 * rng.standard_normal(40)))}
                  for name, secs in base.items()]
    return out


def test_a_phase_under_the_floor_gets_no_verdict(profile_result: RunResult) -> None:
    base = _with_samples(profile_result, {})
    other = _with_samples(profile_result, {"zero_grad": 1.02, "clip": 1.3, "backward": 1.3})
    c = compare([base, other], drift_margin=0.15)
    verdicts = {p.name: p.verdicts[1] for p in c.phases}
    assert verdicts["zero_grad"] == TOO_SMALL  # 2% of 100 µs: under 1% of the step and 200 µs
    assert verdicts["clip"] == TOO_SMALL  # 780 µs at 1.3x: still under 1% of a 96 ms step
    assert verdicts["backward"] == "slower" and verdicts["forward"] == "within noise"
    assert c.drift_source == "15%, as given (--drift)"


def test_lines_with_few_hits_are_listed_last_and_not_judged(profile_result: RunResult) -> None:
    base = copy.deepcopy(profile_result)
    for line in base.lines["functions"][0]["lines"]:
        if line["hits"] == 4:  # the loop's lines: enough hits to judge
            line["hits"], line["seconds"] = 40, line["seconds"] * 10
    other = copy.deepcopy(base)
    for line in other.lines["functions"][0]["lines"]:
        line["seconds"] *= 3 if line["hits"] == 1 else 1.1
    c = compare([base, other], drift_margin=0.15)
    rows = c.lines[0].rows
    assert [r.judged for r in rows] == [True, True, False, False]
    one_hit = next(r for r in rows if r.hits == [1, 1])
    assert not one_hit.judged and one_hit.ratios[1] == pytest.approx(3.0)  # the largest change, yet ranked after


def test_the_drift_margin_is_this_machines_when_measured_else_labelled_default(tmp_path: Path) -> None:
    from lmprof.drift import DEFAULT_MARGIN, machine_drift, save_drift

    env = {"cpu": "Some CPU", "threads": 2, "device": "cpu"}
    cache = tmp_path / "drift.json"
    margin, said = machine_drift(env, cache_file=cache)
    assert margin == DEFAULT_MARGIN and "default" in said
    assert save_drift(env, 0.071, 5, cache_file=cache)[1] == 0.08
    margin, said = machine_drift(env, cache_file=cache)
    assert margin == 0.08 and "measured on this machine" in said
    assert machine_drift({**env, "threads": 4}, cache_file=cache)[0] == DEFAULT_MARGIN  # another machine


# --- sweeps: speed per token -----------------------------------------------------------------
def test_sweep_tables_carry_tokens_per_second_and_say_epochs_are_cut() -> None:
    from lmprof.record.sweep_summary import summary_rows, sweep_view
    from lmprof.views.sweep_tables import sweep_tables

    plan = {"name": "s", "epochs": 1, "models": ["LSTM", "GRU"], "base": {"max_batches": 10},
            "runs": [{"key": "a", "label": "LSTM", "model": "LSTM", "settings": {}},
                     {"key": "b", "label": "GRU", "model": "GRU", "settings": {}}],
            "groups": [{"factor": "base", "rows": [{"value": "base", "keys": {"LSTM": "a", "GRU": "b"}}]}]}
    rows = [{"kind": "epoch", "key": "a", "epoch": 1, "train_seconds": 2.0, "tokens": 7000, "val_ppl": 300.0},
            {"kind": "epoch", "key": "b", "epoch": 1, "train_seconds": 1.0, "tokens": 7000, "val_ppl": 320.0},
            {"kind": "run", "key": "a", "status": "ok"}, {"kind": "run", "key": "b", "status": "ok"}]
    view = sweep_view(plan, rows)
    text = render(sweep_tables(view), 120)
    assert "tokens/s" in text and "3,500" in text and "7,000" in text  # 7000 tokens in 2 s and in 1 s
    assert "285.7" in text and "142.9" in text  # ms per 1k tokens
    assert "--max-batches 10" in text and "same first 10 batches" in text
    assert summary_rows(view)[0]["tokens_per_s"] == 3500.0


# --- one gradient measurement, whole numbers at 80 columns -----------------------------------
def test_explain_bptt_and_gradflow_print_the_same_decay_figures(capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.cli import main
    from lmprof.lessons import topic_module

    numbers = topic_module("bptt").demo(bptts=(4,), batch_size=2, size=8, ntokens=30, reach_bptt=3,
                                        flow_bptt=6, flow_batches=2, flow_draws=2)
    flow = numbers["flow"]
    command = flow["command"].split()[1:]
    assert "--draws" in command and "--seed" in command
    capsys.readouterr()
    assert main([*command, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    figures = {(f["kind"], f["state"]): f for f in doc["draws"]["figures"] if f["layer"] == 1}
    assert doc["draws"]["seeds"] == flow["seeds"] == [0, 1]
    for key, steps in flow["steps_to_1pct"].items():
        kind, state = key.split()
        assert figures[(kind, state)]["steps_to_1pct"] == steps
        assert figures[(kind, state)]["decay"] == pytest.approx(flow["decay"][key])
    page = render(topic_module("bptt").render(numbers), 80)
    assert "draws" in page and "keeps it longer" not in page


def test_gradflow_and_explain_profiling_keep_numbers_whole_at_80_columns(tiny_corpus: Path) -> None:
    from lmprof.config import RunConfig
    from lmprof.experiments.gradient_draws import gradient_flow_draws
    from lmprof.views.gradflow import flow_view

    cfg = RunConfig(data=str(tiny_corpus), emsize=8, nhid=8, nlayers=2, bptt=6, batch_size=4, seed=3)
    text = render(flow_view(gradient_flow_draws(cfg, kinds=["LSTM"], batches=1, draws=2)), 80)
    assert "e-" in text and not cut_numbers(text), cut_numbers(text)
    assert max(len(line) for line in text.splitlines()) <= 80


def test_explain_test_set_measures_the_selection_effect_with_its_spread() -> None:
    from lmprof.lessons import test_set

    numbers = test_set.demo(epochs=1, max_batches=3, snapshots=3, every=2, draws=50)
    sel = numbers["selection"]
    assert [c["batches"] for c in sel["configs"]] == [3, 5, 7]  # snapshots of one run
    assert sel["draws"] == 50 and 0 <= sel["picked_best"] <= 50 and 0 <= sel["chosen_above_every"] <= 50
    # the count of draws whose pick beat the average snapshot and the differences' median agree in sign
    above, half = sel["chosen_above_every"], sel["draws"] / 2
    assert above == half or (sel["difference"]["median"] > 0) == (above > half), (above, sel["difference"])
    page = render(test_set.render(numbers), 80)
    assert "snapshots of one run" in page and "10th to 90th percentile" in page and not cut_numbers(page)
