"""The flow chart: built from PHASES, shaded by measured share; the `diagram flow` command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lmprof.cli import main
from lmprof.phases import PHASES, UNCOVERED
from lmprof.record.result import RunResult
from lmprof.views.flowchart import EPOCH_PHASES, HEAT, flow_chart, forward_layers, heat
from tests.conftest import ON_CPU


def node_label(source: str, name: str) -> str:
    match = re.search(rf'^\s*{re.escape(name)} \[label=(?:"((?:[^"\\]|\\.)*)"|(\S+))', source, flags=re.M)
    assert match, f"no node {name}"
    return match.group(1) or match.group(2)


def cluster_label(source: str, cluster: str) -> str:
    block = source[source.index(f"subgraph {cluster}"):]
    return re.search(r'label="((?:[^"\\]|\\.)*)"', block).group(1)  # type: ignore[union-attr]


@pytest.fixture
def result() -> RunResult:
    """Made-up phase rows: shares from 1% to 15%, the forward the largest but one."""
    names = [p.name for p in PHASES if p.name != "checkpoint_load"] + [UNCOVERED]  # best model never saved
    rows = [{"name": n, "label": n, "calls": 8 if i in range(3, 11) else 1, "seconds": 0.01 * (i + 1),
             "host_seconds": 0.01 * (i + 1), "mean_seconds": 0.001, "share": 0.01 * (i + 1)}
            for i, n in enumerate(names)]
    return RunResult(config={"model": "GRU", "nlayers": 3}, phases=rows, run_dir="runs/x",
                     phase_summary={"wall_seconds": 1.2, "clock": "host"})


def test_plain_chart_has_every_phase_in_program_order_and_both_loops() -> None:
    source = flow_chart().source
    positions = [source.index(f"\t{p.name} [label=") if p.name != "forward" else source.index("cluster_forward")
                 for p in PHASES]
    assert positions == sorted(positions), "nodes appear in PHASES order"
    for p in PHASES:
        assert p.name == "forward" or p.label in node_label(source, p.name)
    for layer in forward_layers("LSTM", 2):
        assert layer in source
    assert "next batch" in source and "next epoch" in source
    assert source.index("cluster_batch") > source.index("cluster_epoch")  # the batch loop sits in the epoch loop
    assert "%" not in source  # nothing measured, nothing shaded


def test_result_shades_each_phase_with_its_share(result: RunResult) -> None:
    source = flow_chart(result).source
    rows = {r["name"]: r for r in result.phases}
    for p in PHASES:
        if p.name == "checkpoint_load":
            assert "(not run)" in node_label(source, p.name)
            continue
        share = f"{rows[p.name]['share']:.1%}"
        label = cluster_label(source, "cluster_forward") if p.name == "forward" else node_label(source, p.name)
        assert share in label, p.name
    assert "8 calls" in node_label(source, "data")
    assert "rnn: GRU (3 layers)" in source
    assert f'fillcolor="{heat(rows["evaluate_test"]["share"])}"' in source
    assert "Outside every phase" in source and f"{rows[UNCOVERED]['share']:.1%}" in source


def test_heat_scale_bins() -> None:
    assert heat(0.0) == HEAT[0][1] and heat(0.015) == HEAT[1][1] and heat(0.5) == HEAT[-1][1]
    assert heat(1.0) == HEAT[-1][1]
    assert set(EPOCH_PHASES) <= {p.name for p in PHASES}


def test_chart_from_a_real_run_shows_result_json_shares(tiny_args: list[str], tmp_path: Path) -> None:
    from lmprof.commands.common import add_run_flags, config_from_args
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run

    import argparse

    parser = argparse.ArgumentParser()
    add_run_flags(parser)
    cfg = config_from_args(parser.parse_args([*tiny_args, *ON_CPU]))
    run(cfg, command="profile", instruments=[PhaseInstrument()], log=lambda line: None)
    run_dir = Path(cfg.out or "")
    assert main(["diagram", "flow", "--from", str(run_dir), "--format", "dot"]) == 0
    source = (run_dir / "flow.dot").read_text()
    saved = json.loads((run_dir / "result.json").read_text())["phases"]
    assert saved
    for row in saved:
        if row["name"] == UNCOVERED:
            continue
        label = cluster_label(source, "cluster_forward") if row["name"] == "forward" else node_label(source, row["name"])
        assert f"{row['share']:.1%}" in label, row["name"]


def test_profile_then_draw(tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["diagram", "flow", "--profile", "--data", str(tiny_corpus), "--max-batches", "2",
                 "--format", "dot"]) == 0
    [run_dir] = list((tmp_path / "runs").iterdir())
    assert RunResult.load(run_dir).phases
    assert "%" in (run_dir / "flow.dot").read_text()
    assert f"flow chart: runs/{run_dir.name}/flow.dot" in capsys.readouterr().out
    assert main(["diagram", "flow", "--profile", "--data", str(tiny_corpus), "--max-batches", "2",
                 "--profile-out", "named", "--out", "chart.dot"]) == 0
    assert RunResult.load(tmp_path / "named").phases and "%" in (tmp_path / "chart.dot").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--from", "nowhere"], "not a run folder"),
    (["--data", "x"], "add --profile"),
    (["--profile-out", "x"], "add --profile"),
    (["--from", "x", "--profile"], "not allowed with"),
])
def test_bad_input_exits_2(argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["diagram", "flow", *argv]) == 2
    assert message in capsys.readouterr().err


def test_run_without_phase_times_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    RunResult(config={"model": "LSTM"}).save(tmp_path)
    assert main(["diagram", "flow", "--from", str(tmp_path)]) == 2
    assert "no phase times" in capsys.readouterr().err
