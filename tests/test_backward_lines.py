"""--backward-lines: forward operators by line, backward operators by the sequence number of their node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from lmprof.cli import main
from lmprof.instrument.backward_attribution import (ENGINE_PREFIX, GRAD_PREFIX, LINE_PREFIX, PHASE_PREFIX, Op,
                                                    attribute, line_components)
from lmprof.record.result import RunResult


class Toy(nn.Module):
    """A forward with one deliberately expensive line: a 768 x 768 x 768 matmul, ~100x the other two."""

    def __init__(self) -> None:
        super().__init__()
        self.small = nn.Linear(8, 768)
        self.big = nn.Parameter(torch.randn(768, 768) * 0.03)
        self.out = nn.Linear(768, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.small(x))
        h = h @ self.big
        return self.out(h)


def watch_toy() -> dict[str, Any]:
    """A few training steps of Toy, watched as --backward-lines watches a run: the section."""
    from lmprof.instrument.backward_lines import watch_steps

    torch.manual_seed(0)
    model, x, y = Toy(), torch.randn(768, 8), torch.randint(4, (768,))

    def update() -> None:
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-0.1)
        model.zero_grad()

    return watch_steps(Toy.forward, lambda: model(x), lambda out: nn.functional.cross_entropy(out, y),
                       update=update, steps=4, watched=3)


@pytest.fixture(scope="module")
def toy_section() -> dict[str, Any]:
    return watch_toy()


def by_line(section: dict[str, Any], key: str) -> dict[str, float]:
    return {r["source"].strip(): r[key] for r in section["lines"]}


def test_the_expensive_line_ranks_first_forward_and_backward(toy_section: dict[str, Any]) -> None:
    section = toy_section
    assert section["batches"] == 3 and section["first_batch"] == 1
    fwd, bwd = by_line(section, "fwd_device_seconds"), by_line(section, "bwd_seconds")
    assert set(fwd) == {"h = torch.tanh(self.small(x))", "h = h @ self.big", "return self.out(h)"}
    assert max(fwd, key=fwd.__getitem__) == "h = h @ self.big"
    assert max(bwd, key=bwd.__getitem__) == "h = h @ self.big"
    # its backward is two matmuls of the same size (the input's and the weight's gradients)
    assert 1.2 < bwd["h = h @ self.big"] / fwd["h = h @ self.big"] < 4.0
    assert any("MmBackward" in n for n in next(r for r in section["lines"] if "@" in r["source"])["nodes"])


def test_attributed_backward_is_the_backward_phase_within_two_percent(toy_section: dict[str, Any]) -> None:
    section = toy_section
    assert abs(section["consistency"] - 1) <= 0.02
    lines = sum(r["bwd_seconds"] for r in section["lines"])
    outside = {r["name"]: r["seconds"] for r in section["outside"]}
    assert outside["loss_backward"] > 0  # CrossEntropy's own backward: the root, no forward line's
    assert section["attributed_backward_seconds"] == pytest.approx(lines + outside["loss_backward"])
    # every row together is the step: forward's lines, their backward, and the rest listed by name
    shares = sum(r["step_share"] for r in section["lines"]) + sum(r["step_share"] for r in section["outside"])
    assert shares == pytest.approx(1.0)
    assert {"update", "loss"} <= set(outside)


def op(name: str, start: float, end: float, *, seq: int = -1, thread: int = 1, fwd_thread: int = 0,
       seconds: float = 0.0, total: float | None = None, parent: int | None = None, annotation: bool = False) -> Op:
    """An operator (self ``seconds``, ``total`` with its children; launch time half the self time)."""
    return Op(name, annotation, thread, start, end, seq, fwd_thread, seconds,
              seconds if total is None else total, seconds / 2, parent)


def test_backward_nodes_find_their_line_by_sequence_number_not_by_timing() -> None:
    """Two lines create nodes 7 and 8; backward runs them in reverse, on another thread (as CUDA's does)."""
    ops = [
        op(PHASE_PREFIX + "forward", 0, 100, annotation=True),                       # 0
        op(LINE_PREFIX + "10", 1, 40, parent=0, annotation=True),                     # 1
        op("aten::linear", 2, 30, seq=7, seconds=3.0, parent=1),                      # 2
        op("aten::t", 3, 4, seq=7, seconds=0.0, parent=2),                            # 3: same number, earlier
        op(LINE_PREFIX + "11", 41, 90, parent=0, annotation=True),                    # 4
        op("aten::mm", 42, 80, seq=8, seconds=5.0, parent=4),                         # 5
        op(PHASE_PREFIX + "backward", 200, 300, annotation=True),                     # 6
        op(ENGINE_PREFIX + "MmBackward0", 210, 250, seq=8, thread=2, fwd_thread=1, seconds=1.0, total=10.0),  # 7
        op("aten::mm", 211, 240, thread=2, seconds=9.0, parent=7),                    # 8
        op(ENGINE_PREFIX + "AddmmBackward0", 251, 290, seq=7, thread=2, fwd_thread=1, seconds=0.5, total=4.5),  # 9
        op("aten::mm", 252, 280, thread=2, seconds=4.0, parent=9),                    # 10
        op(ENGINE_PREFIX + "torch::autograd::AccumulateGrad", 291, 299, thread=2, seconds=0.25, total=1.125),  # 11
        op(GRAD_PREFIX + "big", 292, 298, thread=2, seconds=0.125, parent=11, annotation=True),  # 12
        op("aten::add_", 293, 297, thread=2, seconds=0.75, parent=12),                # 13
    ]
    found = attribute(ops, {"big": [11, 10]})
    assert dict(found.fwd) == {10: 3.0, 11: 5.0}
    assert found.bwd[11] == 1.0 + 9.0 + 0.25 + 0.75  # its node, and the accumulation of the parameter it used first
    assert found.bwd[10] == 0.5 + 4.0
    assert found.accumulate[11] == 1.0 and found.bwd_launch[10] == 2.25
    # outermost operators' totals, less the hook's own time: every operator's self time, counted another way
    assert found.backward_op_seconds == 10.0 + 4.5 + 1.125 - 0.125 == 1 + 9 + 0.5 + 4 + 0.25 + 0.75
    assert found.shared == [{"name": "big", "lines": [11, 10], "counted_on": 11}]


def test_a_node_whose_forward_operator_was_not_seen_is_listed_not_guessed() -> None:
    ops = [op(PHASE_PREFIX + "backward", 0, 10, annotation=True),
           op(ENGINE_PREFIX + "MulBackward0", 1, 5, seq=3, fwd_thread=1, seconds=2.0),
           op("aten::ones_like", 6, 7, seconds=0.5)]
    found = attribute(ops, {})
    assert not found.bwd and found.outside == {"unmatched": 2.0, "engine": 0.5}


def test_lines_map_to_the_components_that_time_them() -> None:
    rows = [{"line": 79, "source": "emb = self.drop(self.encoder(input))"},
            {"line": 80, "source": "output, hidden = self.rnn(emb, hidden)"},
            {"line": 81, "source": "output = self.drop(output)"},
            {"line": 82, "source": "decoded = self.decoder(output)"},
            {"line": 83, "source": "decoded = decoded.view(-1, self.ntoken)"},
            {"line": 84, "source": "return F.log_softmax(decoded, dim=1), hidden"}]
    known = {"encoder", "drop", "rnn", "drop#2", "decoder", "log_softmax"}
    assert line_components(rows, known) == {79: "drop + encoder", 80: "rnn", 81: "drop#2", 82: "decoder",
                                            83: "log_softmax", 84: "log_softmax"}


# --device cpu: bitwise losses and operator self times are the CPU's (the cuda-marked test covers CUDA)
FLAGS = ["--device", "cpu", "--emsize", "16", "--nhid", "16", "--bptt", "8", "--epochs", "1", "--max-batches", "6", "--lr", "30"]


def test_losses_stay_bitwise_those_of_train_and_the_table_shows_backward(
        tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--data", str(tiny_corpus), *FLAGS]
    assert main(["train", *flags, "--out", str(tmp_path / "train")]) == 0
    capsys.readouterr()
    assert main(["profile", "--fn", "forward", "--fn", "train", "--backward-lines", *flags,
                 "--out", str(tmp_path / "p")]) == 0
    printed = capsys.readouterr().out
    plain, watched = RunResult.load(tmp_path / "train"), RunResult.load(tmp_path / "p")
    assert [e["val_loss"] for e in watched.epochs] == [e["val_loss"] for e in plain.epochs]  # bitwise
    assert watched.metrics["test_loss"] == plain.metrics["test_loss"]
    section = watched.backward_lines
    sources = {r["source"].strip() for r in section["lines"]}
    assert "output, hidden = self.rnn(emb, hidden)" in sources and "decoded = self.decoder(output)" in sources
    assert "bwd/fwd" in printed and "with its backward" in printed
    assert "↳ bwd line" in printed  # train()'s loss.backward() line, broken down underneath it


def test_tied_weight_accumulation_is_counted_on_a_line_and_said(
        tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--fn", "forward", "--backward-lines", "--tied", "--data", str(tiny_corpus), *FLAGS,
                 "--out", str(tmp_path / "tied")]) == 0
    section = RunResult.load(tmp_path / "tied").backward_lines
    shared = section["shared_parameters"]
    assert [p["name"] for p in shared] == ["encoder.weight"]
    encoder = next(r for r in section["lines"] if "self.encoder(" in r["source"])
    decoder = next(r for r in section["lines"] if "self.decoder(" in r["source"])
    assert shared[0]["lines"] == [encoder["line"], decoder["line"]] and shared[0]["counted_on"] == encoder["line"]
    assert encoder["accumulate_seconds"] > 0
    assert f"encoder.weight is shared by lines {encoder['line']} and {decoder['line']}" in capsys.readouterr().out


def test_backward_lines_need_forward_or_train(tiny_corpus: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--fn", "evaluate", "--backward-lines", "--data", str(tiny_corpus), *FLAGS,
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--backward-lines" in err and "--fn forward" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_a_damaged_section_is_one_line() -> None:
    from lmprof.record.check import check_document

    bad = {"config": {}, "backward_lines": {"lines": [{"line": 3, "bwd_seconds": "fast"}]}}
    assert check_document(bad) == "backward_lines.lines[0].bwd_seconds must be a number, got 'fast'"


@pytest.mark.cuda
def test_on_cuda_device_times_are_kernel_times_not_launch_times(tiny_corpus: Path, tmp_path: Path) -> None:
    assert main(["profile", "--fn", "forward", "--backward-lines", "--device", "cuda", "--data", str(tiny_corpus),
                 *FLAGS, "--out", str(tmp_path / "cuda")]) == 0
    section = RunResult.load(tmp_path / "cuda").backward_lines
    assert section["device"] == "cuda" and abs(section["consistency"] - 1) <= 0.02
    timed = [r for r in section["lines"] if r["fwd_device_seconds"] > 0]
    assert any("self.rnn(" in r["source"] for r in timed)
    for r in timed:
        assert r["fwd_device_seconds"] != r["fwd_launch_seconds"], r["source"]


def test_compare_matches_backward_by_statement_text() -> None:
    from lmprof.comparison import line_diffs

    def run(first: int, rnn_bwd: float) -> RunResult:
        texts = ["emb = self.encoder(input)", "output, hidden = self.rnn(emb, hidden)"]
        lines = [{"line": first + i, "hits": 20, "seconds": 0.02 * (i + 1), "source": "        " + t}
                 for i, t in enumerate(texts)]
        return RunResult(lines={"functions": [{"name": "forward", "qualname": "RNNModel.forward", "lines": lines}]},
                         backward_lines={"qualname": "RNNModel.forward", "lines": [
                             {"line": first, "source": texts[0], "bwd_seconds": 0.001},
                             {"line": first + 1, "source": texts[1], "bwd_seconds": rnn_bwd}]})

    a, b = run(60, 0.004), run(70, 0.006)  # an edit moved every line down by ten
    (forward,) = line_diffs([a, b])
    assert forward.bwd["output, hidden = self.rnn(emb, hidden)"] == [0.004, 0.006]
    from lmprof.views.compare import line_grid

    class Two:  # the two fields line_grid reads of a Comparison
        names = ["a", "b"]

    grid = line_grid(Two(), forward)  # type: ignore[arg-type]
    assert grid.columns[-3:] == ["A bwd", "B bwd", "B/A bwd"]
    row = next(r for r in grid.rows if r[0].startswith("output"))
    assert row[-3:] == ["4.00 ms", "6.00 ms", "1.50×"]


def hand_made() -> RunResult:
    """A --backward-lines run written by hand: two lines, the loss, clipping; the attribution 10% short."""
    texts = ["emb = self.encoder(input)", "output, hidden = self.rnn(emb, hidden)"]
    return RunResult(
        lines={"functions": [{"name": "forward", "qualname": "RNNModel.forward", "lines": [
            {"line": 60, "hits": 10, "seconds": 0.01, "source": "        " + texts[0]},
            {"line": 61, "hits": 10, "seconds": 0.05, "source": "        " + texts[1]}]}]},
        backward_lines={
            "qualname": "RNNModel.forward", "file": "lmprof/reference/model.py", "device": "cpu", "batches": 3,
            "first_batch": 2, "step_seconds": 0.02, "backward_op_seconds": 0.01,
            "attributed_backward_seconds": 0.009, "consistency": 0.9, "consistent_within": 0.02,
            "lines": [{"line": 60, "source": texts[0], "fwd_device_seconds": 0.001, "bwd_seconds": 0.002,
                       "bwd_fwd_ratio": 2.0, "step_share": 0.15, "nodes": ["EmbeddingBackward0"]},
                      {"line": 61, "source": texts[1], "fwd_device_seconds": 0.006, "bwd_seconds": 0.007,
                       "bwd_fwd_ratio": 7 / 6, "step_share": 0.65, "nodes": ["MkldnnRnnLayerBackward0"]}],
            "outside": [{"name": "loss_backward", "label": "the loss's backward (the root of the graph)",
                         "part": "bwd", "seconds": 0.001, "step_share": 0.05},
                        {"name": "clip", "label": "clip_grad_norm_", "part": "step", "seconds": 0.003,
                         "step_share": 0.15}],
            "shared_parameters": [{"name": "encoder.weight", "lines": [60, 62], "counted_on": 60}]})


def test_the_table_says_what_each_column_is_and_when_the_attribution_falls_short() -> None:
    from rich.console import Console

    from lmprof.views.backward_lines import backward_table

    console = Console(width=140, record=True, color_system=None)
    console.print(backward_table(hand_made()))
    text = console.export_text()
    assert "host/call fwd device" in text and "bwd/fwd" in text and "% step" in text
    rnn = next(line for line in text.splitlines() if "self.rnn(" in line)
    assert rnn.split()[:6] == ["61", "5.00", "ms", "6.00", "ms", "7.00"]  # host per call, device forward, backward
    assert "clip_grad_norm_ (3.00 ms)" in text
    assert "only 90.0% of the backward phase's operator time" in text and "NOT within 2%" in text
    assert "encoder.weight is shared by lines 60 and 62 (--tied): its gradient accumulation is counted on line 60" \
        in text


def test_the_report_draws_a_stacked_bar_per_line(tmp_path: Path) -> None:
    from lmprof.views.report import run_report

    page = run_report(hand_made(), tmp_path)
    section = page[page.index('<section id="backward_lines">'):]
    rnn_row = section[section.index(">61<"):section.index("self.rnn(")]
    # three segments on the rnn line: host per call 5 ms, device forward 6 ms, backward 7 ms (of the widest, 18 ms)
    assert 'title="host 5.00 ms" style="display:inline-block;height:.8em;width:27.78%' in rnn_row
    assert 'title="fwd 6.00 ms"' in rnn_row and 'title="bwd 7.00 ms"' in rnn_row
