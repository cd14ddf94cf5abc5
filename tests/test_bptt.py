"""The BPTT drawing: one cluster per time step in order, parameters once, the cut, the legend; the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lmprof.cli import main
from lmprof.config import RunConfig
from lmprof.instrument.graph import capture
from lmprof.views.bptt import bptt_graph, raw_graph

DEFAULTS = RunConfig(model="LSTM", nlayers=1, bptt=4, batch_size=2, emsize=8, nhid=8)
STEP_CLUSTER = re.compile(r"subgraph \"?cluster_b(\d)_l(\d)_t(\d+)")


def node_labels(source: str) -> list[str]:
    """Every node's label in the dot source (quoted ones may span lines)."""
    found = re.findall(r'^\s*\w+ \[label=(?:"((?:[^"\\]|\\.)*)"|(\S+))', source, flags=re.M)
    return [quoted or bare for quoted, bare in found]


def test_time_steps_are_clusters_in_order_with_the_cut_and_a_legend() -> None:
    source = bptt_graph(capture(DEFAULTS)).source
    assert [int(t) for _, _, t in STEP_CLUSTER.findall(source)] == [1, 2, 3, 4]
    assert [int(t) for t in re.findall(r'label="t = (\d+)"', source)] == [1, 2, 3, 4]
    labels = node_labels(source)
    for name in ("encoder.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
                 "decoder.weight", "decoder.bias"):
        assert sum(label.startswith(name + "\n") for label in labels) == 1, name
    assert "TBackward0" not in source and "label=t " not in source, "a weight's transpose is drawn as its edge"
    assert "repackage_hidden" in source and "label=detached" in source
    assert "h₁ = mul" in source and "c₄ = add" in source
    assert "MkldnnRnnLayerBackward0" in source and "same outputs" in source  # the fused-vs-unrolled note
    assert "walks them in reverse" in source  # gradient flow direction


def test_layers_split_the_steps_and_no_repackage_draws_two_batches() -> None:
    source = bptt_graph(capture(DEFAULTS.replace(nlayers=2, bptt=3), repackage=False)).source
    found = STEP_CLUSTER.findall(source)
    assert len(found) == 2 * 2 * 3
    assert found[:3] == [("1", "1", "1"), ("1", "1", "2"), ("1", "1", "3")]
    assert "previous batch" in source and "label=detached" not in source
    assert "init_hidden" in source


def test_big_graph_switches_to_the_fast_layout() -> None:
    source = bptt_graph(capture(DEFAULTS.replace(bptt=35, nlayers=2))).source
    assert len(STEP_CLUSTER.findall(source)) == 70
    assert "splines=line" in source
    assert "nslimit=0.2" in source and "searchsize=5" in source  # bounded x placement


def _block(source: str, name: str) -> str:
    """The text of one subgraph, braces matched."""
    start = source.index(f"subgraph {name} {{")
    depth = 0
    for end in range(start, len(source)):
        depth += {"{": 1, "}": -1}.get(source[end], 0)
        if depth == 0 and source[end] == "}":
            return source[start:end + 1]
    raise AssertionError(f"{name} is not closed")


def test_each_layer_box_holds_its_input_projection_then_its_steps() -> None:
    source = bptt_graph(capture(DEFAULTS.replace(nlayers=2, bptt=3))).source
    for layer in (1, 2):
        box = _block(source, f"cluster_b2_layer{layer}")
        assert box.index(f"cluster_b2_l{layer}_in") < box.index(f"cluster_b2_l{layer}_t1")
        assert f"cluster_b2_l{3 - layer}_" not in box  # the other layer's clusters stay out
    assert "label=unbind" in _block(source, "cluster_b2_l1_in")


def test_raw_graph_is_every_autograd_node_with_parameter_names() -> None:
    data = capture(DEFAULTS)
    source = raw_graph(data).source
    assert "cluster" not in source
    assert source.count("TBackward0") == 6  # weight_ih once, weight_hh per step (4), decoder once
    assert "rnn.weight_hh_l0\n(32, 8)" in node_labels(source) and "NllLossBackward0" in source
    ops = [n for n in data.nodes if n.kind in ("op", "loss")]
    assert len(node_labels(source)) == len(ops) + len(data.params())


def test_cli_writes_picture_and_dot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "bptt", "--out", str(tmp_path / "b.svg")]) == 0
    assert "<svg" in (tmp_path / "b.svg").read_text()
    dot = (tmp_path / "b.dot").read_text()
    assert len(STEP_CLUSTER.findall(dot)) == 4
    out = capsys.readouterr().out
    assert "4 time-step clusters" in out and "equal the fused path's: True" in out


def test_cli_folder_out_and_formats(tmp_path: Path) -> None:
    assert main(["diagram", "bptt", "--model", "GRU", "--raw", "--format", "dot", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "bptt-raw.dot").is_file() and not (tmp_path / "bptt-raw.svg").exists()


@pytest.mark.parametrize("argv, message", [
    (["--model", "Transformer"], "invalid choice"),
    (["--bptt", "0"], "--bptt must be a positive integer"),
    (["--bptt", "100", "--nlayers", "2"], "at most 150"),
    (["--out", "x.png", "--format", "svg"], "make them agree"),
])
def test_cli_bad_input_exits_2(argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["diagram", "bptt", *argv]) == 2
    assert message in capsys.readouterr().err
