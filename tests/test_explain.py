"""The walkthroughs: every number a page shows, computed live, checked against what it must be."""

from __future__ import annotations

import inspect
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from lmprof.cli import main
from lmprof.config import RunConfig
from lmprof.lessons import TOPICS, topic_module
from lmprof.reference.data import Corpus


def render_text(renderable: Any, width: int = 100) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def single_letter_rows(text: str) -> list[list[str]]:
    """Each line's one-letter tokens, as the acceptance check reads the matrix."""
    return [re.findall(r"(?<![A-Za-z])[a-z](?![A-Za-z])", line) for line in text.splitlines()]


ALPHABET_ROWS = ["a g m s", "b h n t", "c i o u", "d j p v", "e k q w", "f l r x"]


# --- the registry and the command ------------------------------------------------------------

def test_every_topic_has_a_module_with_demo_and_render() -> None:
    assert list(TOPICS) == ["batchify", "get_batch", "repackage_hidden", "bptt", "tied", "memory", "dropout",
                            "batchnorm", "perplexity", "test_set", "profiling", "speed", "gpu"]
    for name in TOPICS:
        module = topic_module(name)
        assert callable(module.demo) and callable(module.render)


def test_listing_prints_one_line_per_topic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, summary in TOPICS.items():
        assert any(line.startswith(name) and summary in line for line in lines), name


def test_unknown_topic_exits_2_naming_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "attention"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert all(name in err for name in TOPICS)


def test_data_flag_is_refused_where_no_corpus_is_read(tiny_corpus: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "dropout", "--data", str(tiny_corpus)]) == 2
    assert main(["explain", "tied", "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "reads no corpus" in err and "train.txt" in err


def test_explain_command_module_imports_neither_torch_nor_rich() -> None:
    code = ("import sys, lmprof.commands.explain; "
            "print(sorted(m for m in ('torch', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_batchify_page_shows_the_matrix_rows(tiny_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "batchify", "--data", str(tiny_corpus)]) == 0
    rows = single_letter_rows(capsys.readouterr().out)
    for row in ALPHABET_ROWS:
        assert row.split() in rows


def test_json_emits_the_demo_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "get_batch", "--json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    assert numbers == topic_module("get_batch").demo()


# --- batchify and get_batch --------------------------------------------------------------------

def test_batchify_alphabet_matrix_and_corpus_shape(tiny_corpus: Path) -> None:
    numbers = topic_module("batchify").demo(data=str(tiny_corpus), batch_size=20)
    a, c = numbers["alphabet"], numbers["corpus"]
    assert a["rows"] == ALPHABET_ROWS and a["shape"] == [6, 4]
    assert a["seams"] == ["f->g", "l->m", "r->s"]
    corpus = Corpus(str(tiny_corpus))
    n = corpus.train.numel()
    assert c["tokens"] == n and c["vocabulary"] == len(corpus.dictionary)
    assert (c["rows"], c["columns"], c["dropped_tokens"], c["seams"]) == (n // 20, 20, n % 20, 19)
    assert c["column_starts"] == [j * (n // 20) for j in range(20)]


def test_get_batch_bptt2_pairs_and_the_shorter_last_chunk() -> None:
    numbers = topic_module("get_batch").demo(bptt=2)
    batches = numbers["batches"]
    assert [b["i"] for b in batches] == [0, 2, 4]
    assert batches[0]["data_rows"] == ["a g m s", "b h n t"]
    assert batches[0]["target"] == "b h n t c i o u"
    assert batches[0]["target_as_rows"] == ["b h n t", "c i o u"]
    assert (batches[-1]["seq_len"], batches[-1]["data_rows"], batches[-1]["target"]) == (1, ["e k q w"], "f l r x")
    assert numbers["last_is_shorter"] is True
    assert [b["target_shape"] for b in batches] == [[8], [8], [4]]


# --- repackage_hidden and bptt -------------------------------------------------------------------

def test_graph_nodes_counts_a_known_graph() -> None:
    from lmprof.lessons.repackage_hidden import graph_nodes

    w = torch.ones(3, requires_grad=True)
    assert graph_nodes((w * 2).sum()) == 3  # SumBackward0 -> MulBackward0 -> AccumulateGrad(w)
    assert graph_nodes(((w * 2) + (w * 3)).sum()) == 5  # w's AccumulateGrad counted once


def test_repackage_keeps_the_graph_constant_and_its_absence_grows_it() -> None:
    numbers = topic_module("repackage_hidden").demo(steps=5, bptt=4, batch_size=2, ntokens=30, size=8)
    with_nodes = [r["graph_nodes"] for r in numbers["with_repackage"]]
    without = [r["graph_nodes"] for r in numbers["without_repackage"]]
    assert len(set(with_nodes)) == 1
    assert without[0] == with_nodes[0]
    growth = [b - a for a, b in zip(without, without[1:])]
    assert all(g > 0 for g in growth) and len(set(growth)) == 1  # one more batch's graph per step
    assert "backward through the graph a second time" in numbers["error_without_retain_graph"]
    assert numbers["hidden_grad_fn_after"] == "None" and numbers["hidden_grad_fn_before"] != "None"


def test_bptt_window_bounds_graph_memory_and_gradient_reach() -> None:
    numbers = topic_module("bptt").demo(bptts=(4, 8, 16), batch_size=2, size=8, ntokens=30, reach_bptt=4)
    w = numbers["windows"]
    nodes = [x["graph_nodes"] for x in w]
    saved = [x["saved_bytes"] for x in w]
    assert nodes[0] < nodes[1] < nodes[2] and saved[0] < saved[1] < saved[2]
    # unrolled: a fixed number of nodes per time step
    assert (nodes[2] - nodes[1]) == 2 * (nodes[1] - nodes[0])
    assert 3 < saved[2] / saved[0] < 5  # 4x the window, about 4x the activations
    assert numbers["fused_equals_unrolled"] is True
    reach = numbers["reach_with_repackage"]
    assert reach["previous_window"] is None  # cut by repackage_hidden
    assert len(reach["this_window"]) == 4 and all(g > 0 for g in reach["this_window"])
    assert numbers["reach_without_repackage"]["previous_window"] is not None


# --- tied --------------------------------------------------------------------------------------

def lstm_parameters(emsize: int, nhid: int, nlayers: int) -> int:
    """4 gates, each with input and hidden weights and two biases, per layer."""
    return sum(4 * nhid * ((emsize if layer == 0 else nhid) + nhid) + 8 * nhid for layer in range(nlayers))


def test_tied_counts_for_wikitext2_vocabulary() -> None:
    from lmprof.lessons.tied import WIKITEXT2_VOCABULARY, counts

    c = counts(WIKITEXT2_VOCABULARY, RunConfig())
    V, e = 33_278, 200
    assert WIKITEXT2_VOCABULARY == V
    assert c["rnn"] == lstm_parameters(e, e, 2) == 643_200
    assert c["untied"] == V * e + 643_200 + V * e + V == 13_987_678
    assert c["tied"] == V * e + 643_200 + V == 7_332_078
    assert c["untied"] - c["tied"] == c["decoder_weight"] == V * e


def test_tied_demo_proves_one_tensor_and_counts_the_corpus(tiny_corpus: Path) -> None:
    numbers = topic_module("tied").demo(data=str(tiny_corpus))
    V = len(Corpus(str(tiny_corpus)).dictionary)
    c = numbers["corpus"]
    assert c["ntokens"] == V
    assert c["untied"] == 2 * V * 200 + V + lstm_parameters(200, 200, 2)
    assert c["tied"] == c["untied"] - V * 200
    proof = numbers["proof"]
    assert proof["same_object"] and proof["same_storage"] and proof["one_grad_tensor"]
    assert proof["write_through_encoder_seen_by_decoder"] == pytest.approx(1.0)
    assert proof["rows_with_gradient"] == 50 > proof["rows_fed_as_input"]
    assert "nhid must be equal to emsize" in numbers["mismatch_error"]


# --- dropout and batchnorm -----------------------------------------------------------------------

def test_dropout_scale_channel_masks_eval_and_expectation() -> None:
    numbers = topic_module("dropout").demo(p=0.5, channels=8, draws=40_000)
    assert numbers["scale"] == 2.0
    assert numbers["dropout"]["values"] == [0.0, 2.0]
    assert numbers["dropout"]["whole_channels"] is False
    d2 = numbers["dropout2d"]
    assert d2["whole_channels"] is True
    for channel, kept in zip(d2["masks"], d2["channels_kept"]):
        assert {v for row in channel for v in row} == ({2.0} if kept else {0.0})
    assert numbers["eval_is_identity"] == {"dropout": True, "dropout2d": True}
    e = numbers["expectation"]
    assert abs(e["mean"] - 1.0) < 4 * e["standard_error"]
    assert numbers["language_model"]["scale"] == pytest.approx(1 / (1 - RunConfig().dropout))


def test_dropout_scale_follows_p() -> None:
    numbers = topic_module("dropout").demo(p=0.3, channels=4, draws=1000)
    assert numbers["scale"] == pytest.approx(1 / 0.7)
    assert numbers["dropout"]["values"] == pytest.approx([0.0, 1 / 0.7])


def test_batchnorm_running_stats_follow_pytorchs_formula() -> None:
    numbers = topic_module("batchnorm").demo(steps=3)
    ini = numbers["initial"]
    assert ini["weight"] == [1.0, 1.0, 1.0] and ini["bias"] == [0.0, 0.0, 0.0]
    assert ini["momentum"] == 0.1 and numbers["values_per_channel"] == 4 * 5 * 5
    mean, var = ini["running_mean"], ini["running_var"]
    for r in numbers["steps"]:
        # recomputed here from the numbers the page shows: (1 - momentum) * running + momentum * batch
        mean = [0.9 * m + 0.1 * b for m, b in zip(mean, r["batch_mean"])]
        var = [0.9 * v + 0.1 * b for v, b in zip(var, r["batch_var_unbiased"])]
        assert r["running_mean"] == pytest.approx(mean, abs=1e-5)
        assert r["running_var"] == pytest.approx(var, abs=1e-5)
        n = numbers["values_per_channel"]
        assert r["batch_var_unbiased"] == pytest.approx([b * n / (n - 1) for b in r["batch_var_biased"]])
        assert r["error_pytorch_formula"] < 1e-5
        assert r["error_swapped_formula"] > 0.1 and r["error_biased_variance"] > 1e-4
        assert r["train_output_error"] < 1e-5
        assert r["train_output_mean"] == pytest.approx([0, 0, 0], abs=1e-5)
        assert r["train_output_var_biased"] == pytest.approx([1, 1, 1], abs=1e-3)
    assert numbers["num_batches_tracked"] == 3
    assert numbers["eval"]["output_error"] < 1e-5 and numbers["eval"]["running_stats_unchanged"]


# --- perplexity and profiling --------------------------------------------------------------------

def test_perplexity_is_exp_mean_nll_and_uniform_gives_vocabulary_size(tiny_corpus: Path) -> None:
    from lmprof.lessons.perplexity import perplexity_of, uniform_perplexity

    log_probs = torch.tensor([[0.5, 0.5], [0.25, 0.75]]).log()
    assert perplexity_of(log_probs, torch.tensor([0, 0])) == pytest.approx(math.sqrt(8))  # 1/sqrt(0.5*0.25)
    for V in (10, 1000, 33_278):
        assert uniform_perplexity(V) == pytest.approx(V, rel=1e-4)
    numbers = topic_module("perplexity").demo(data=str(tiny_corpus), eval_tokens=500)
    c = numbers["corpus"]
    V = len(Corpus(str(tiny_corpus)).dictionary)
    assert c["vocabulary"] == V and c["uniform_perplexity"] == V
    assert c["untrained_lstm_perplexity"] == pytest.approx(V, rel=0.1)
    assert c["unigram_perplexity"] < V / 2
    assert c["unigram_mean_inverse_probability"] >= c["unigram_perplexity"]  # arithmetic >= geometric mean
    assert [r["perplexity"] for r in numbers["loss_to_perplexity"]] == pytest.approx(
        [math.exp(x) for x in (4.0, 5.0, 6.0, 7.0)])


def test_profiling_demo_times_every_step_phase() -> None:
    from lmprof.phases import STEP_PHASES, UNCOVERED

    numbers = topic_module("profiling").demo(max_batches=3, size=16, bptt=8, batch_size=4, train_tokens=1500)
    rows = {r["name"]: r for r in numbers["phases"]}
    for name in STEP_PHASES:
        assert rows[name]["calls"] == 3, name
    assert UNCOVERED in rows
    assert sum(r["share"] for r in numbers["phases"]) == pytest.approx(1.0, abs=0.02)
    assert sum(numbers["step_shares"].values()) == pytest.approx(1.0)
    assert numbers["slowest_step_phase"] in STEP_PHASES and numbers["device"] == "cpu"


# --- every page renders what it explains ---------------------------------------------------------

SMALL_DEMOS: dict[str, dict[str, Any]] = {
    "repackage_hidden": {"steps": 3, "size": 8, "ntokens": 30},
    "bptt": {"bptts": (4, 8), "size": 8, "ntokens": 30},
    "profiling": {"max_batches": 2, "size": 16, "bptt": 8, "batch_size": 4, "train_tokens": 1500},
    "perplexity": {"eval_tokens": 300},
    "test_set": {"epochs": 2, "max_batches": 3},
}
MUST_SAY = {
    "batchify": ["f->g", "20 columns"],
    "get_batch": ["f l r x", "shorter"],
    "repackage_hidden": ["backward through the graph a second time", "retain_graph=True"],
    "bptt": ["loss.backward()", "lmprof diagram bptt"],
    "tied": ["33,278", "13,987,678", "7,332,078", "nhid must be equal to emsize"],
    "memory": ["saved_tensors_hooks", "log_softmax", "doubling bptt multiplies the saved bytes by"],
    "dropout": ["1/(1-p)", "Dropout2d", "whole channels"],
    "batchnorm": ["running = (1 - momentum) * running + momentum * batch_stat", "unbiased", "eval"],
    "perplexity": ["exp(mean NLL)", "33,278.00"],
    "profiling": ["backward (BPTT)", "blocking", "torch.profiler"],
    "test_set": ["test 1 time(s)", "evaluated validation 2 time(s)", "Load the best saved model"],
    "speed": ["of the forward FLOPs", "FLOPs predict the adaptive softmax", "lmprof speedlab"],
    "gpu": ["launch-bound", "NVIDIA H200", "kernels"],
}


@pytest.mark.parametrize("name", list(TOPICS))
def test_every_page_renders_with_its_numbers(name: str, tiny_corpus: Path) -> None:
    module = topic_module(name)
    options = dict(SMALL_DEMOS.get(name, {}))
    if "data" in inspect.signature(module.demo).parameters:
        options["data"] = str(tiny_corpus)
    numbers = module.demo(**options)
    json.dumps(numbers, allow_nan=False)  # --json must be able to print it
    text = render_text(module.render(numbers))
    for phrase in MUST_SAY[name]:
        assert phrase in text, (name, phrase)
    if name == "batchify":
        assert all(row.split() in single_letter_rows(text) for row in ALPHABET_ROWS)
