"""lmprof report: one self-contained HTML page from a real tiny run (and a tiny sweep)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from lmprof.cli import main
from lmprof.config import RunConfig
from lmprof.record.result import RunResult
from lmprof.views.files import folder_report
from lmprof.views.html import highlighted_lines
from lmprof.views.report import REPORT_FILE, run_report
from tests.conftest import ON_CPU

NETWORK = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//""", re.I)
TINY_SVG = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<svg width="80pt" height="40pt" viewBox="0 0 80 40" xmlns="http://www.w3.org/2000/svg"
 xmlns:xlink="http://www.w3.org/1999/xlink"><metadata><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></metadata>
<defs><clipPath id="clip1"><rect width="80" height="40"/></clipPath></defs>
<g id="node1" clip-path="url(#clip1)"><text x="4" y="20">{label}</text><use xlink:href="#node1"/></g></svg>
"""


@pytest.fixture(scope="module")
def run_dir(instrumented_run: Path) -> Path:
    """The shared tiny run (phase timer, line_profiler on train, torch.profiler)."""
    return instrumented_run


@pytest.fixture(scope="module")
def page(run_dir: Path) -> str:
    return folder_report(run_dir)


def section(html: str, section_id: str) -> str:
    """The HTML of one <section id=...>."""
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def test_run_report_has_every_section_the_folder_fills(page: str, run_dir: Path) -> None:
    result = RunResult.load(run_dir)
    for section_id in ("config", "metrics", "phases", "lines", "ops"):
        assert f'<section id="{section_id}">' in page
    # configuration and environment, as result.json has them
    config = section(page, "config")
    assert "<td>emsize</td><td>16</td>" in config and f"<td>{result.environment['torch']}</td>" in config
    # per-epoch metrics: the validation perplexity the loop printed
    assert f"{result.epochs[0]['val_ppl']:,.2f}" in section(page, "metrics")
    # phase table: forward ran once per batch, and its share is the one in result.json
    forward = next(r for r in result.phases if r["name"] == "forward")
    row = re.search(r"<tr><td>forward <span[^>]*>forward</span></td>\s*<td class=\"num\">(\d+)</td>.*?"
                    r"<td class=\"num\">([\d.]+%)</td>", section(page, "phases"), re.S)
    assert row and int(row.group(1)) == 5 == forward["calls"]
    assert row.group(2) == f"{forward['share']:.1%}"
    # the run was cut at 5 batches: the bar's width is forward's share of a full-epoch run, larger than here
    from lmprof.views.projection import projected_shares

    full = projected_shares(result)["forward"]
    assert full > forward["share"]
    assert f'style="width: {round(100 * full, 2)}%"' in section(page, "phases")
    assert f"<b>{full:.1%}</b>" in section(page, "phases") and "full epoch" in section(page, "phases")


def test_line_table_marks_the_hottest_lines(page: str, run_dir: Path) -> None:
    from lmprof.views.rows import HOT_LINES, line_table_data

    result = RunResult.load(run_dir)
    data = line_table_data(result.lines["functions"][0])
    lines = section(page, "lines")
    hot = re.findall(r'<tr class="hot[^"]*" data-hot="(\d)">\s*<td class="num"><span class="mark"[^>]*>▶</span>(\d+)</td>',
                     lines)
    expected = sorted((r.hot_rank, r.line) for r in data.rows if r.hot_rank)
    assert len(hot) == HOT_LINES and sorted((int(rank), int(line)) for rank, line in hot) == expected
    # every source line of train is in the table, blank and comment lines too
    assert lines.count('<td class="src">') == len(data.rows)
    assert "get_batch" in lines and '<span class="k">for</span>' in lines  # highlighted source


def test_operators_and_how_to_open_the_trace(page: str, run_dir: Path) -> None:
    result = RunResult.load(run_dir)
    ops = section(page, "ops")
    top = result.ops["rows"][0]
    assert f'<td class="mono">{top["name"]}</td>' in ops and f"{top['share']:.1%}" in ops
    assert "tensorboard --logdir" in ops and "ui.perfetto.dev" in ops  # as text: nothing is fetched


def test_hand_made_result_shows_its_numbers(profile_result: RunResult, tmp_path: Path) -> None:
    html = run_report(profile_result, tmp_path)
    phases = section(html, "phases")
    assert re.search(r"backward \(BPTT\).*?<td class=\"num\">4</td><td class=\"num\">5.00 s</td>\s*"
                     r"<td class=\"num\">1.25 s</td><td class=\"num\">50.0%</td>\s*"
                     r'<td class="bar track"><span style="width: 50.0%">', phases, re.S)
    assert "(outside phases)" in phases and "Phases cover 94.1% of train()" in phases
    assert re.search(r"<td>training</td><td class=\"num\">8.00 s</td>\s*<td class=\"num\">80.0%</td>", phases)
    hot = re.findall(r'data-hot="(\d)">\s*<td class="num"><span class="mark"[^>]*>▶</span>(\d+)<', section(html, "lines"))
    assert sorted(hot) == [("1", "15"), ("2", "13"), ("3", "16")]  # 5 s, 2 s, 0.99 s; not line 12 (0.01 s)


def test_diverged_run_says_so(profile_result: RunResult, tmp_path: Path) -> None:
    profile_result.metrics.update(status="diverged", message="loss became NaN or infinite at epoch 1, batch 3")
    profile_result.metrics["epochs"][0].update(val_loss=None, val_ppl=None)  # result.json stores NaN as null
    html = run_report(profile_result, tmp_path)
    assert '<span class="status-diverged">diverged</span>' in html
    assert "loss became NaN or infinite at epoch 1, batch 3" in html
    assert section(html, "metrics").count("not finite") == 2


def test_gpu_run_shows_host_clock_and_cuda_columns(profile_result: RunResult, tmp_path: Path) -> None:
    """The CUDA branches of the page, from a hand-made result (no GPU needed)."""
    result = profile_result
    result.phase_summary["clock"] = "cuda events"
    result.environment["device"] = "cuda"
    result.phases[2]["host_seconds"] = 0.5  # backward: 5 s on the GPU, 0.5 s on the host clock
    result.ops = {"device": "cuda", "sort_by": "self_cuda", "steps": 3, "trace_dir": "trace", "trace_files": [],
                  "rows": [{"name": "aten::mm", "calls": 6, "self_cpu_seconds": 0.001, "self_cuda_seconds": 0.004,
                            "share": 0.1, "cuda_share": 0.8}]}
    html = run_report(result, tmp_path)
    phases, ops = section(html, "phases"), section(html, "ops")
    assert "<th class=\"num\">GPU total</th>" in phases and "host - GPU" in phases
    assert re.search(r"backward \(BPTT\).*?<td class=\"num\">500.0 ms</td><td class=\"num\">-4.50 s</td>", phases, re.S)
    assert "self CUDA" in ops and "<td class=\"num\">80.0%</td>" in ops and "By self CUDA time" in ops
    assert "asynchronous launches" in section(html, "lines")  # the sync note under CUDA line tables


def test_empty_result_renders_with_every_command_named(empty_result: RunResult, tmp_path: Path) -> None:
    html = run_report(empty_result, tmp_path)
    assert '<section id="config">' in html
    missing = dict(re.findall(r'data-missing="(\w+)">.*?<code>([^<]+)</code>', html))
    assert missing == {"metrics": "lmprof train", "phases": "lmprof profile --fn train",
                       "lines": "lmprof profile --fn train", "ops": f"lmprof trace --into {tmp_path}",
                       "flow": f"lmprof diagram flow --from {tmp_path}",
                       "bptt": f"lmprof diagram bptt --model LSTM --nlayers 2 --out {tmp_path}"}


def test_flow_chart_is_drawn_from_the_phases_when_the_folder_has_none(page: str, run_dir: Path) -> None:
    flow = section(page, "flow")
    assert '<svg role="img" class="figure" data-source="flow"' in flow
    assert "Drawn from result.json for this page" in flow and f"lmprof diagram flow --from {run_dir}" in flow
    assert "backward (BPTT)" in flow  # a phase box of the chart
    assert not (run_dir / "flow.svg").exists()  # a view writes nothing into the run folder


def test_without_a_graphviz_renderer_the_flow_chart_is_named(monkeypatch: pytest.MonkeyPatch,
                                                             profile_result: RunResult, tmp_path: Path) -> None:
    import lmprof.views.render

    monkeypatch.setattr(lmprof.views.render, "find_renderer", lambda fmt: None)
    html = run_report(profile_result, tmp_path)
    assert f'data-missing="flow"><strong>Flow chart, shaded by measured time</strong>: not in this folder; ' \
           f"<code>lmprof diagram flow --from {tmp_path}</code> fills it." in html


def test_transformer_run_has_no_bptt_section(profile_result: RunResult, tmp_path: Path) -> None:
    profile_result.config["model"] = "Transformer"
    html = run_report(profile_result, tmp_path)
    assert 'id="bptt"' not in html and 'data-source="flow"' in html


def test_missing_sections_name_the_command_that_fills_them(tmp_path: Path, run_dir: Path) -> None:
    result = RunResult.load(run_dir)
    result.lines, result.ops = {}, {}
    result.save(tmp_path)
    html = folder_report(tmp_path)
    assert '<section id="lines">' not in html and '<section id="ops">' not in html
    assert re.search(r'data-missing="lines">.*<code>lmprof profile --fn train</code> fills it', html)
    assert re.search(rf'data-missing="ops">.*<code>lmprof trace --into {tmp_path}</code> fills it', html)
    assert re.search(r'data-missing="bptt">.*<code>lmprof diagram bptt', html)


def test_diagrams_are_inlined_with_their_own_ids(tmp_path: Path, run_dir: Path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    (folder / "flow.svg").write_text(TINY_SVG.format(label="FLOWCHART"))
    (folder / "bptt.svg").write_text(TINY_SVG.format(label="UNROLLED"))
    html = folder_report(folder)
    flow, bptt = section(html, "flow"), section(html, "bptt")
    assert "FLOWCHART" in flow and "UNROLLED" in bptt
    assert 'id="flow-node1"' in flow and 'url(#flow-clip1)' in flow and 'href="#flow-node1"' in flow
    assert 'id="bptt-node1"' in bptt  # two figures, no shared ids
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html and "<metadata" not in html


def test_page_is_self_contained(page: str) -> None:
    assert not NETWORK.search(page), NETWORK.search(page)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@media print" in page and "@media (max-width" in page
    assert NETWORK.search('<img src="https://example.org/x.png">')  # the pattern does catch a fetch


def test_highlighting_keeps_one_html_line_per_source_line() -> None:
    source = ['def f():', '    """Doc', '    string."""', '', '    return 1 < 2  # why']
    out = highlighted_lines(source)
    assert len(out) == len(source) and out[3] == ""
    assert '<span class="sd">' in out[1] and '<span class="sd">' in out[2]  # the docstring on both lines
    assert "&lt;" in out[4] and '<span class="c1"># why</span>' in out[4]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """A tiny LSTM vs GRU sweep, run through the library (so without the command's plot files)."""
    from lmprof.sweeps import InlineExecutor, build_plan, parse_vary, run_sweep

    folder = tmp_path_factory.mktemp("sweep") / "sweep"
    base = RunConfig(data=str(tiny_corpus), emsize=16, epochs=1, max_batches=2, bptt=8, lr=5.0)  # no run diverges
    plan = build_plan(base, ["LSTM", "GRU"], [parse_vary("nhid=16")])
    run_sweep(plan, folder, InlineExecutor(), log=lambda line: None)
    return folder


def test_sweep_folder_report(sweep_dir: Path) -> None:
    from lmprof.sweeps import load_rows
    from lmprof.record.sweep_summary import summary_rows, sweep_view

    html = folder_report(sweep_dir)
    assert '<body data-report="sweep">' in html
    tables = section(html, "tables")
    for row in summary_rows(sweep_view(*load_rows(sweep_dir))):  # the summary.csv figures, in a real <table>
        assert re.search(rf'<td>{row["run"]}</td><td class="status-ok">ok</td>\s*<td class="num">1</td>'
                         rf'<td class="num">{row["total_seconds"]:.2f}</td>.*?{row["test_ppl"]:,.2f}', tables, re.S)
    assert 'class="rich"' in tables  # and the terminal's per-epoch tables
    assert "<td>nhid</td><td>varied (see factors)</td>" in section(html, "plan")
    plots = section(html, "plots")
    for name in ("val_ppl", "epoch_time", "ppl_vs_time"):  # drawn now: run_sweep writes no plot files
        assert f'data-source="{name}"' in plots
    assert not NETWORK.search(html)


def test_sweep_on_mixed_hardware_hides_times_unless_asked(sweep_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    shutil.copytree(sweep_dir, folder)
    results = folder / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    for row in rows:  # the GRU run claims to have run on a GPU
        if row.get("kind") == "run" and row.get("model") == "GRU":
            row["gpu"] = "NVIDIA H100"
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))
    hidden = section(folder_report(folder), "tables")
    assert re.search(r'<td>LSTM nhid=16</td><td class="status-ok">ok</td>\s*<td class="num">1</td>'
                     r'<td class="num">—</td><td class="num">—</td>', hidden)
    assert "mixed hardware: times hidden" in hidden
    shown = section(folder_report(folder, mixed_hardware=True), "tables")
    assert re.search(r'<td>LSTM nhid=16</td><td class="status-ok">ok</td>\s*<td class="num">1</td>'
                     r'<td class="num">\d+\.\d\d</td>', shown)


def test_cli_writes_report_html(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    assert main(["report", str(folder)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(folder / REPORT_FILE)
    assert (folder / REPORT_FILE).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not list(folder.glob(".report.html.*"))  # the temp file was renamed


def test_cli_report_of_a_sweep_to_another_file(sweep_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "handin.html"
    assert main(["report", str(sweep_dir), "--output", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert 'data-report="sweep"' in target.read_text(encoding="utf-8")
    assert not (sweep_dir / REPORT_FILE).exists()


@pytest.mark.parametrize("case", ["missing", "not_a_run", "newer_schema", "broken_json"])
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "folder"
    if case != "missing":
        target.mkdir()
    if case == "not_a_run":
        (target / "notes.txt").write_text("hello")
    elif case == "newer_schema":
        (target / "result.json").write_text(json.dumps({"schema_version": 99, "config": {}}))
    elif case == "broken_json":
        (target / "result.json").write_text("{not json")
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmprof report: error:") and "\n" not in err and "Traceback" not in err
    if case == "newer_schema":
        assert "newer" in err and "upgrade lmprof" in err
    assert not (target / REPORT_FILE).exists()


def test_report_flag_on_profile_and_sweep_writes_the_page(tiny_args, tmp_path, capsys) -> None:
    from lmprof.cli import main

    assert main(["profile", *tiny_args, *ON_CPU, "--report"]) == 0
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "<table" in page and "Phases" in page
    assert "report.html" in capsys.readouterr().out
    sweep_args = [a for a in tiny_args if a not in ("--out", str(tmp_path / "run"))]
    assert main(["sweep", "--models", "LSTM", "--vary", "nhid=16", *sweep_args, "--lr", "5",
                 *ON_CPU, "--out", str(tmp_path / "sw"), "--report"]) == 0
    assert (tmp_path / "sw" / "report.html").is_file()
