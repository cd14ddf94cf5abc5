"""lmprof compare on hand-made run folders: every per-batch time is known, so ratios and verdicts are exact."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lmprof.cli import main
from lmprof.comparison import (DRIFT_MARGIN, FASTER, NO_SAMPLES, NOISE, NOT_COMPARABLE, SLOWER, STEP_ROW, compare,
                            load_runs)
from lmprof.errors import UsageError
from lmprof.phases import LABELS
from lmprof.record.result import RunResult

CPU = {"device": "cpu", "cpu": "AMD EPYC", "threads": 2, "torch": "2.13.0+cpu", "host": "vm"}


def jitter(base: float, n: int = 40, spread: float = 0.02) -> list[float]:
    """n per-batch times around ``base``: a fixed zig-zag of ±spread (no randomness)."""
    return [base * (1 + spread * ((i * 7) % 11 - 5) / 5) for i in range(n)]


def statement_lines(first_line: int, per_hit: dict[str, float], hits: int = 10) -> list[dict[str, Any]]:
    return [{"line": first_line + i, "hits": hits, "seconds": t * hits, "share": 0.0, "source": f"    {text}"}
            for i, (text, t) in enumerate(per_hit.items())]


def make_run(folder: Path, samples: dict[str, list[float]] | None, *, config: dict[str, Any] | None = None,
             environment: dict[str, Any] | None = None, lines: dict[str, float] | None = None, first_line: int = 10,
             ops: dict[str, float] | None = None, flops: dict[str, float] | None = None, val_ppl: float = 100.0,
             schema_version: int | None = None) -> Path:
    """A run folder written by hand: phases with per-batch samples, one epoch, optional lines, ops and FLOPs."""
    phases = []
    for name, values in (samples or {}).items():
        row: dict[str, Any] = {"name": name, "label": LABELS[name], "calls": len(values), "seconds": sum(values),
                               "host_seconds": sum(values), "share": 0.1}
        if values and name != "evaluate_valid":
            row["samples"] = values
        phases.append(row)
    step = sum(sum(v) for n, v in (samples or {}).items() if n != "evaluate_valid")
    batches = max((len(v) for v in (samples or {}).values()), default=40)
    result = RunResult(
        command="profile",
        config={"model": "LSTM", "emsize": 32, "nhid": 32, "bptt": 8, "out": str(folder), **(config or {})},
        environment={**CPU, **(environment or {})},
        metrics={"status": "ok", "test_ppl": val_ppl * 0.98, "epochs": [
            {"epoch": 1, "batches": batches, "tokens": batches * 160, "train_seconds": step or 1.0,
             "val_ppl": val_ppl}]},
        phases=phases)
    if lines is not None:
        result.lines = {"unit": "auto", "functions": [{"name": "train", "qualname": "train", "first_line": first_line,
                                                       "calls": 1, "lines": statement_lines(first_line, lines)}]}
    if ops is not None:
        result.ops = {"steps": 2, "sort_by": "self_cpu",
                      "rows": [{"name": n, "calls": 4, "self_cpu_seconds": s} for n, s in ops.items()]}
    if flops is not None:
        result.flops = {"phases": [{"name": n, "flops_per_call": f} for n, f in flops.items()]}
    folder.mkdir(parents=True, exist_ok=True)
    result.save(folder)
    if schema_version is not None:
        doc = json.loads((folder / "result.json").read_text())
        doc["schema_version"] = schema_version
        (folder / "result.json").write_text(json.dumps(doc))
    return folder


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """B's forward takes twice A's, its backward is identical, its update half."""
    a = make_run(tmp_path / "a", {"forward": jitter(0.010), "backward": jitter(0.020), "update": jitter(0.004)},
                 lines={"output = model(data)": 0.010, "loss.backward()": 0.020, "optimizer.step()": 0.001},
                 ops={"aten::mm": 0.030, "aten::add": 0.002}, flops={"forward": 1e9, "backward": 2e9})
    b = make_run(tmp_path / "b", {"forward": jitter(0.020), "backward": jitter(0.020), "update": jitter(0.002)},
                 config={"emsize": 256}, first_line=40, val_ppl=80.0,
                 lines={"loss.backward()": 0.021, "output = model(data)": 0.030, "optimizer.step()": 0.001},
                 ops={"aten::mm": 0.090, "aten::add": 0.002}, flops={"forward": 3e9, "backward": 6e9})
    return a, b


def comparison_of(*folders: Path) -> Any:
    results, notes = load_runs(folders)
    return compare(results, notes)


def phase(c: Any, name: str) -> Any:
    return next(p for p in c.phases if p.name == name)


def test_known_ratios_give_known_verdicts(pair: tuple[Path, Path]) -> None:
    c = comparison_of(*pair)
    forward, backward, update = phase(c, "forward"), phase(c, "backward"), phase(c, "update")
    assert forward.ratios[1] == pytest.approx(2.0)
    assert forward.verdicts == ["baseline", SLOWER]
    assert forward.intervals[1][0] > 1.9 and forward.intervals[1][1] < 2.1
    assert backward.ratios[1] == pytest.approx(1.0) and backward.verdicts[1] == NOISE
    assert backward.intervals[1][0] <= 1 <= backward.intervals[1][1]
    assert update.ratios[1] == pytest.approx(0.5) and update.verdicts[1] == FASTER
    # the whole step: every phase's per-batch sum, (10+20+4) ms against (20+20+2) ms
    assert phase(c, STEP_ROW).ratios[1] == pytest.approx(42 / 34, rel=0.02)
    assert forward.batches == [40, 40]


def test_a_run_against_itself_is_within_noise(pair: tuple[Path, Path]) -> None:
    c = comparison_of(pair[0], pair[0])
    assert {p.verdicts[1] for p in c.phases} == {NOISE}
    assert c.config == [] and c.environment == []


def test_small_but_certain_difference_stays_under_the_drift_margin(tmp_path: Path) -> None:
    """3% slower on every batch: the bootstrap is sure, but a rerun drifts that much, so no verdict."""
    a = make_run(tmp_path / "a", {"forward": jitter(0.010, spread=0.001)})
    b = make_run(tmp_path / "b", {"forward": jitter(0.0103, spread=0.001)})
    forward = phase(comparison_of(a, b), "forward")
    assert forward.intervals[1][0] > 1  # the interval alone would call it slower
    assert 1 < forward.ratios[1] < 1 + DRIFT_MARGIN and forward.verdicts[1] == NOISE


def test_different_threads_are_not_comparable_on_time(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", {"forward": jitter(0.010)})
    b = make_run(tmp_path / "b", {"forward": jitter(0.030)}, environment={"threads": 8})
    c = comparison_of(a, b)
    assert not c.comparable_on_time and phase(c, "forward").verdicts[1] == NOT_COMPARABLE
    assert [(d.key, d.values) for d in c.environment] == [("threads", [2, 8])]
    assert phase(c, "forward").ratios[1] == pytest.approx(3.0)  # shown, not judged


def test_only_differing_settings_are_listed(pair: tuple[Path, Path]) -> None:
    c = comparison_of(*pair)
    assert [(d.key, d.values) for d in c.config] == [("emsize", [32, 256])]  # "out" differs too: a place, not a setting


def test_outcome_rows(pair: tuple[Path, Path]) -> None:
    rows = {o.metric: o for o in comparison_of(*pair).outcomes}
    assert list(rows) == ["val ppl (epoch 1)", "test ppl", "ms per batch", "tokens/s"]
    assert rows["val ppl (epoch 1)"].values == [100.0, 80.0] and rows["val ppl (epoch 1)"].ratios[1] == 0.8
    assert rows["ms per batch"].ratios[1] == pytest.approx(42 / 34, rel=1e-6)


def test_flop_ratio_beside_time_ratio(pair: tuple[Path, Path]) -> None:
    flops = {f.phase: f for f in comparison_of(*pair).flops}
    assert flops["forward"].flop_ratios[1] == pytest.approx(3.0)
    assert flops["forward"].time_ratios[1] == pytest.approx(2.0)
    assert flops["backward"].flop_ratios[1] == pytest.approx(3.0)


def test_lines_are_matched_by_statement_text(pair: tuple[Path, Path]) -> None:
    """B's lines sit 30 lines lower and in another order; statements still pair, biggest change first."""
    (train,) = comparison_of(*pair).lines
    assert train.name == "train"
    first = train.rows[0]
    assert first.source == "output = model(data)"
    assert first.per_hit == pytest.approx([0.010, 0.030]) and first.ratios[1] == pytest.approx(3.0)
    assert [r.source for r in train.rows[1:]] == ["loss.backward()", "optimizer.step()"]


def test_operators_side_by_side_per_step(pair: tuple[Path, Path]) -> None:
    c = comparison_of(*pair)
    assert c.op_unit == "self CPU"
    assert [(o.name, o.per_step) for o in c.ops] == [("aten::mm", [0.015, 0.045]), ("aten::add", [0.001, 0.001])]


def test_runs_without_samples_compare_means_without_verdict(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", {"forward": jitter(0.010)})
    b = make_run(tmp_path / "b", {"forward": jitter(0.020)})
    doc = json.loads((b / "result.json").read_text())
    for row in doc["phases"]:
        row.pop("samples")
    (b / "result.json").write_text(json.dumps(doc))
    c = comparison_of(a, b)
    assert phase(c, "forward").verdicts[1] == NO_SAMPLES
    assert phase(c, "forward").ratios[1] == pytest.approx(2.0, rel=0.01)  # mean per call still compared
    assert any("no per-batch samples" in n for n in c.notes)


def test_json_keys_are_stable(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", *map(str, pair), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["format", "names", "run_dirs", "descriptions", "config", "environment",
                         "comparable_on_time", "outcomes", "phases", "flops", "lines", "ops", "op_unit", "notes",
                         "drift_margin", "confidence", "components", "drift_source", "judgements"]
    assert doc["format"] == "lmprof.compare/1"
    assert list(doc["phases"][0]) == ["name", "label", "medians", "spreads", "batches", "ratios", "intervals",
                                      "verdicts"]
    assert list(doc["flops"][0]) == ["phase", "flops", "flop_ratios", "time_ratios"]


def test_terminal_tables(pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["compare", *map(str, pair)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"emsize\s+32\s+256", out)
    assert re.search(r"forward\s+10\.\d+ ms ±\d+%\s+20\.\d+ ms ±\d+%\s+2\.00×\s+[\d.]+–[\d.]+\s+slower", out)
    assert re.search(r"backward .*1\.00×.*within noise", out)
    assert "B (b) vs A: 1 slower, 1 within noise, 1 faster (of 3 phases)" in out


@pytest.mark.parametrize("make_args, message", [
    (lambda a, t: [str(a)], "give two or more run folders"),
    (lambda a, t: [str(a), str(t)], "is not a run folder"),
    (lambda a, t: [str(a)] * 7, "at most 6"),
])
def test_bad_input_is_one_line_and_exit_2(pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           make_args: Any, message: str) -> None:
    assert main(["compare", *make_args(pair[0], tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_sweep_folder_is_refused_with_its_runs_named(pair: tuple[Path, Path], tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    with pytest.raises(UsageError, match="sweep folder.*runs"):
        load_runs([pair[0], sweep])


def test_runs_without_phases_compare_outcomes_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = make_run(tmp_path / "a", None, val_ppl=120.0), make_run(tmp_path / "b", None, val_ppl=90.0)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "val ppl (epoch 1)" in out and "0.75×" in out and "outcomes only" in out


def test_nothing_to_compare_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = []
    for name in "ab":
        (tmp_path / name).mkdir()
        RunResult(command="train", config={"model": "LSTM"}).save(tmp_path / name)
        empty.append(str(tmp_path / name))
    assert main(["compare", *empty]) == 2
    assert "nothing to compare" in capsys.readouterr().err


def test_different_schema_versions_are_named(pair: tuple[Path, Path], tmp_path: Path) -> None:
    old = make_run(tmp_path / "old", {"forward": jitter(0.010)}, schema_version=0)
    c = comparison_of(pair[0], old)
    assert any("schema versions differ" in n and "old v0" in n for n in c.notes)
    assert phase(c, "forward").verdicts[1] == NOISE  # what can be read still is


def test_three_runs_each_against_the_baseline(pair: tuple[Path, Path], tmp_path: Path) -> None:
    c_run = make_run(tmp_path / "c", {"forward": jitter(0.005), "backward": jitter(0.020), "update": jitter(0.004)})
    c = comparison_of(*pair, c_run)
    assert phase(c, "forward").verdicts == ["baseline", SLOWER, FASTER]
    assert phase(c, "forward").ratios == pytest.approx([1.0, 2.0, 0.5])


def test_flow_chart_coloured_by_verdict(pair: tuple[Path, Path]) -> None:
    from lmprof.views.flowchart_compare import FILLS, vs_chart

    results, _ = load_runs(pair)
    source = vs_chart(compare(results), *results).source
    repainted = source.split("legend", 1)[1]  # the statements after the baseline's chart
    assert re.search(r'subgraph cluster_forward \{\s*fillcolor="%s" fontcolor=white label="forward: model\(data, '
                     r'hidden\)\na: 10\.00 ms · b: 20\.00 ms per batch\n2\.00× · slower"' % FILLS[(SLOWER, True)], repainted)
    assert re.search(r'backward \[label="backward \(BPTT\)\na: 20\.00 ms · b: 20\.00 ms per batch\n1\.00× · within '
                     r'noise" fillcolor="%s"' % FILLS[(NOISE, False)], repainted)
    assert re.search(r'update \[label="update parameters\na: 4\.00 ms · b: 2\.00 ms per batch\n0\.50× · faster" '
                     r'fillcolor="%s" fontcolor=white' % FILLS[(FASTER, True)], repainted)
    assert "clip [" not in repainted  # neither run clipped: the chart's own "(not run)" box stays


def test_diagram_flow_vs_writes_the_chart(pair: tuple[Path, Path], tmp_path: Path) -> None:
    assert main(["diagram", "flow", "--from", str(pair[0]), "--vs", str(pair[1]), "--format", "dot"]) == 0
    dot = (pair[0] / "flow-vs-b.dot").read_text()
    assert "b against a" in dot and "2.00× · slower" in dot
    assert main(["diagram", "flow", "--vs", str(pair[1]), "--format", "dot"]) == 2  # no baseline given


def test_memory_and_clipping_rows_when_measured(pair: tuple[Path, Path]) -> None:
    results, notes = load_runs(pair)
    results[0].memory = {"saved_bytes_peak": 2 * 2**20, "rss_peak_bytes": 300 * 2**20}
    results[1].memory = {"saved_bytes_peak": 16 * 2**20, "rss_peak_bytes": 330 * 2**20}
    results[1].gradients = {"epochs": [{"epoch": 1, "clipped_fraction": 0.25}]}
    rows = {o.metric: o for o in compare(results, notes).outcomes}
    assert rows["saved activations, MiB"].values == [2.0, 16.0] and rows["saved activations, MiB"].ratios[1] == 8.0
    assert rows["peak RSS, MiB"].ratios[1] == pytest.approx(1.1)
    assert rows["batches clipped (epoch 1)"].values == [None, 0.25]
    assert "peak CUDA memory, MiB" not in rows


def test_phase_grid_reads_as_the_terminal_prints_it(pair: tuple[Path, Path]) -> None:
    from lmprof.views.compare import grids

    tables = {g.id: g for g in grids(comparison_of(*pair))}
    assert list(tables) == ["runs", "differs", "outcome", "phases", "flops", "lines-train", "ops"]
    phases = tables["phases"]
    assert phases.columns == ["phase", "A per batch", "B per batch", "B/A", "95% interval", "verdict"]
    forward = phases.rows[0]
    assert forward[0] == "forward" and forward[1].startswith("10.00 ms ±") and forward[2].startswith("20.00 ms ±")
    assert forward[3] == "2.00×" and forward[5] == "slower"
    assert [row[0] for row in phases.rows] == ["forward", "backward", "update", "whole step"]
    assert tables["flops"].rows[0] == ["forward", "1.00 G", "3.00 G", "3.00×", "2.00×", "0.67×"]
    assert tables["ops"].rows[0] == ["aten::mm", "15.00 ms", "45.00 ms", "3.00×"]
    assert tables["differs"].rows == [["emsize", "32", "256"]]
