"""The captured autograd graph: clusters per time step and layer, shared parameters, the repackage cut."""

from __future__ import annotations

from collections import Counter

import pytest

from lmprof.config import RNN_KINDS, RunConfig
from lmprof.errors import UsageError
from lmprof.instrument.graph import StepGraph, capture


def small(model: str = "LSTM", **changes: object) -> RunConfig:
    return RunConfig(model=model, nlayers=1, bptt=3, batch_size=2, emsize=8, nhid=8).replace(**changes)


def parents_of(graph: StepGraph) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in graph.edges:
        out.setdefault(e.src, set()).add(e.dst)
    return out


@pytest.mark.parametrize("model", RNN_KINDS)
@pytest.mark.parametrize("nlayers", [1, 2])
def test_one_cluster_per_time_step_and_layer(model: str, nlayers: int) -> None:
    g = capture(small(model, nlayers=nlayers))
    steps = g.step_clusters()
    assert [(c.layer, c.step) for c in steps] == [(layer, t) for layer in range(1, nlayers + 1) for t in (1, 2, 3)]
    ops = {c.key: Counter(n.name for n in g.nodes if n.group == c.key) for c in steps}
    first = ops[steps[0].key]
    assert sum(first.values()) > 0
    assert all(o == first for o in ops.values()), "every step applies the same cell: the same operations"
    for c in steps:  # each step hands one h (and an LSTM one c) to the next
        roles = Counter(n.role for n in g.nodes if n.group == c.key and n.role)
        assert roles == (Counter(h=1, c=1) if model == "LSTM" else Counter(h=1))
    grouped = {n.group for n in g.nodes if n.kind in ("op", "loss")}
    assert "" not in grouped, "every operation sits in a cluster"


def test_each_parameter_appears_once_and_feeds_every_step() -> None:
    g = capture(small(nlayers=2, bptt=4))
    names = [n.name for n in g.params()]
    expected = ["encoder.weight", "decoder.weight", "decoder.bias"] + [
        f"rnn.{w}_l{layer}" for layer in (0, 1) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert sorted(names) == sorted(expected)
    weight_hh = next(n for n in g.params() if n.name == "rnn.weight_hh_l0")
    assert weight_hh.shape == [32, 8]
    # weight_hh -> its transpose -> a matmul in every step of layer 1: backward sums those gradients.
    by_id = {n.id: n for n in g.nodes}
    parents = parents_of(g)
    fed = {by_id[p].group for t in parents[weight_hh.id] for p in parents.get(t, ())}
    assert fed == {f"b2/l1/t{t}" for t in range(1, 5)}


def test_tied_weights_are_one_parameter() -> None:
    g = capture(small(tied=True))
    assert [n.name for n in g.params()].count("encoder.weight = decoder.weight") == 1
    assert not any(n.name in ("encoder.weight", "decoder.weight") for n in g.params())


def test_repackage_leaves_a_detached_leaf_into_step_one_of_each_layer() -> None:
    g = capture(small(nlayers=2))
    leaf = next(n for n in g.nodes if n.kind == "state_in")
    assert "repackage_hidden" in leaf.name and "detached" in leaf.name
    by_id = {n.id: n for n in g.nodes}
    cut = [e for e in g.edges if e.kind == "detached"]
    assert {e.src for e in cut} == {leaf.id}
    # LSTM: h0 into the hidden matmul, c0 into the forget-gate product, in each layer's first step
    assert Counter(by_id[e.dst].group for e in cut) == {"b2/l1/t1": 2, "b2/l2/t1": 2}
    assert {c.batch for c in g.clusters} == {2}, "nothing of the previous batch is in the graph"


def test_no_repackage_reaches_into_the_previous_batch() -> None:
    g = capture(small(nlayers=2), repackage=False)
    assert not any(e.kind == "detached" for e in g.edges)
    assert len(g.step_clusters(batch=1)) == len(g.step_clusters(batch=2)) == 6
    by_id = {n.id: n for n in g.nodes}
    crossing = [e for e in g.edges if by_id[e.src].group.startswith("b1/") and by_id[e.dst].group.startswith("b2/")]
    assert crossing and all(e.kind == "state" for e in crossing)
    assert {by_id[e.src].group for e in crossing} == {"b1/l1/t3", "b1/l2/t3"}, "the last step's h and c go on"
    leaf = next(n for n in g.nodes if n.kind == "state_in")
    assert "init_hidden" in leaf.name
    assert {by_id[e.dst].group for e in g.edges if e.src == leaf.id} == {"b1/l1/t1", "b1/l2/t1"}


@pytest.mark.parametrize("model", RNN_KINDS)
def test_unrolled_outputs_equal_the_fused_path(model: str) -> None:
    g = capture(small(model, nlayers=2, dropout=0.3))
    assert g.check["allclose"] and g.check["max_abs_diff"] < 1e-5
    import torch

    if model == "LSTM" and torch.backends.mkldnn.is_available():
        assert g.check["fused_nodes"] == {"MkldnnRnnLayerBackward0": 2}, "one fused node per layer hid the steps"


@pytest.mark.filterwarnings("ignore:dropout option adds dropout")
def test_unrolled_loss_equals_a_plain_fused_training_step() -> None:
    """The drawn graph's loss is the one the reference loop computes, with fused kernels on."""
    import torch
    import torch.nn as nn

    from lmprof.reference.loop import build_model, get_batch, repackage_hidden

    cfg = small(bptt=4)
    g = capture(cfg, ntokens=10)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, 10, torch.device("cpu"))
    stream = torch.randint(10, (2 * cfg.bptt + 1, cfg.batch_size))
    torch.manual_seed(cfg.seed + 1)
    data, _ = get_batch(stream, 0, cfg.bptt)
    _, hidden = model(data, model.init_hidden(cfg.batch_size))
    data, targets = get_batch(stream, cfg.bptt, cfg.bptt)
    output, _ = model(data, repackage_hidden(hidden))
    assert g.loss == pytest.approx(nn.NLLLoss()(output, targets).item(), abs=1e-5)


def test_transformer_is_refused() -> None:
    with pytest.raises(UsageError, match="recurrent"):
        capture(small("Transformer", emsize=8, nhead=2))


def test_plain_data_round_trips_through_json() -> None:
    import json

    doc = json.loads(json.dumps(capture(small()).to_dict()))
    assert doc["config"]["bptt"] == 3 and len([c for c in doc["clusters"] if c["kind"] == "step"]) == 3
