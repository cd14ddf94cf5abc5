"""`lmprof trace`: the trace folder (served by the real torch-tb-profiler plugin), the ops section, its views."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lmprof.cli import main
from lmprof.record.result import RunResult
from lmprof.views.ops import memory_table, ops_table, trace_hint

ROOT = Path(__file__).resolve().parents[1]


def trace_events(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return list(json.load(f)["traceEvents"])


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """One `lmprof trace` run shared by the tests that only read it: 6 steps, the default schedule."""
    run_dir = tmp_path_factory.mktemp("trace") / "run"
    # the CPU's operator table (self CPU time, aten::addmm's bytes), also on a GPU machine; test_cuda.py
    # has a CUDA trace's kernel rows
    code = main(["trace", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--bptt", "8",
                 "--max-batches", "6", "--device", "cpu", "--out", str(run_dir)])
    assert code == 0
    return run_dir


def test_trace_writes_one_trace_file_with_phase_spans_around_operators(traced: Path) -> None:
    files = sorted((traced / "trace").glob("*.pt.trace.json"))
    assert len(files) == 1
    assert files[0].name.startswith("LSTM.")
    assert not (traced / ".trace-staging").exists()
    events = trace_events(files[0])
    spans = [e for e in events if e.get("cat") == "user_annotation"]
    names = [e["name"] for e in spans]
    # default schedule: 1 step waited, 1 warm-up, 3 recorded; each recorded step has its phases
    for phase in ("data", "zero_grad", "repackage", "forward", "loss", "backward", "clip", "update", "logging"):
        assert names.count(phase) == 3, phase
    assert sorted(n for n in names if n.startswith("ProfilerStep#")) == ["ProfilerStep#2", "ProfilerStep#3",
                                                                          "ProfilerStep#4"]
    # an operator (the decoder's matmul) lies inside a forward span
    forward = [(e["ts"], e["ts"] + e["dur"]) for e in spans if e["name"] == "forward"]
    addmm = [e for e in events if e.get("name") == "aten::addmm" and e.get("cat") == "cpu_op"]
    assert addmm and all(any(a <= e["ts"] <= b for a, b in forward) for e in addmm)


def test_trace_ops_section_counts_what_the_steps_ran(traced: Path) -> None:
    result = RunResult.load(traced)
    ops = result.ops
    assert ops["steps"] == 3 and ops["device"] == "cpu" and ops["sort_by"] == "self_cpu"
    rows = {r["name"]: r for r in ops["rows"]}
    assert rows["aten::addmm"]["calls"] == 3  # the decoder: one matmul with bias per step
    seconds = [r["self_cpu_seconds"] for r in ops["rows"]]
    assert seconds == sorted(seconds, reverse=True)
    assert 0.3 < sum(r["share"] for r in ops["rows"]) <= 1.0
    assert not any(r["name"].startswith("ProfilerStep") or r["name"] == "forward" for r in ops["rows"])
    spans = {s["name"]: s for s in ops["phase_spans"]}
    assert spans["backward"]["calls"] == 3 and spans["backward"]["seconds"] > 0
    assert result.files["trace"] == f"trace/{ops['trace_files'][0]}"
    assert (traced / result.files["trace"]).is_file()
    # the phase timer ran beside the trace; the run trained as many batches as asked
    assert {r["name"]: r["calls"] for r in result.phases}["forward"] == 6
    assert result.epochs[0]["batches"] == 6


def test_trace_prints_the_op_table_and_how_to_open_the_trace(tiny_corpus: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trace", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--bptt", "8",
                 "--wait", "0", "--warmup", "1", "--active", "2", "--repeat", "2", "--gzip",
                 "--group-by-shape", "--memory", "--row-limit", "5", "--device", "cpu", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Top operators by self CPU time · 4 traced steps" in out
    assert "Memory allocated by each operator" in out
    assert f"tensorboard --logdir {tmp_path / 'run' / 'trace'}" in out
    assert "https://ui.perfetto.dev" in out
    result = RunResult.load(tmp_path / "run")
    # two cycles: two gzipped files, and the run stopped when the schedule ended (2 x (0 + 1 + 2) steps)
    files = sorted((tmp_path / "run" / "trace").iterdir())
    assert len(files) == 2 and all(f.name.endswith(".pt.trace.json.gz") for f in files)
    assert set(result.files) >= {"trace", "trace_2"}
    assert result.epochs[0]["batches"] == 6
    assert any(e.get("name") == "backward" for e in trace_events(files[1]))
    addmm = [r for r in result.ops["rows"] if r["name"] == "aten::addmm"]
    assert len(addmm) == 1 and addmm[0]["input_shapes"].startswith("[[1031], [")  # bias: the vocabulary
    # each step's decoder output: (bptt * batch, ntokens) float32, 4 steps
    assert addmm[0]["self_cpu_memory_bytes"] == 4 * (8 * 20 * 1031) * 4


@pytest.mark.parametrize("flags, message", [
    (["--active", "0"], "--active must be 1 or more"),
    (["--wait", "-1"], "--wait must be 0 or more"),
    (["--row-limit", "0"], "--row-limit must be 1 or more"),
    (["--wait", "3", "--warmup", "2", "--max-batches", "4"], "raise --max-batches"),
])
def test_trace_usage_errors_are_one_line_and_exit_2(tiny_corpus: Path, tmp_path: Path, flags: list[str],
                                                    message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trace", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--bptt", "8",
                 "--out", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


OPS_FIXTURE = {
    "steps": 3, "device": "cpu", "sort_by": "self_cpu", "group_by_shape": False, "memory": True,
    "total_self_cpu_seconds": 0.010, "trace_dir": "trace", "trace_files": ["LSTM.1.pt.trace.json"],
    "rows": [
        {"name": "aten::addmm", "calls": 3, "self_cpu_seconds": 0.004, "share": 0.4,
         "self_cpu_memory_bytes": 3 * 1024 * 1024, "cpu_memory_bytes": 3 * 1024 * 1024},
        {"name": "aten::mkldnn_rnn_layer", "calls": 6, "self_cpu_seconds": 0.002, "share": 0.2,
         "self_cpu_memory_bytes": 0, "cpu_memory_bytes": 4096},
        {"name": "aten::fill_", "calls": 9, "self_cpu_seconds": 0.00005, "share": 0.005,
         "self_cpu_memory_bytes": 0, "cpu_memory_bytes": 0},
    ],
}


def render(renderable: Any, width: int = 80) -> str:
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def test_ops_table_renders_rows_shares_and_what_is_left() -> None:
    assert render(ops_table(RunResult(ops=OPS_FIXTURE), row_limit=2)) == """\
Top operators by self CPU time · 3 traced steps, 10.0 ms in all
┏━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━┳━━━━━━━━━━┳━━━━━━━┳━━━━━━━┓
┃ operator                ┃  calls ┃ self CPU ┃ share ┃       ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━╇━━━━━━━━━━╇━━━━━━━╇━━━━━━━┩
│ aten::addmm             │      3 │  4.00 ms │ 40.0% │ █████ │
│ aten::mkldnn_rnn_layer  │      6 │  2.00 ms │ 20.0% │ ██    │
└─────────────────────────┴────────┴──────────┴───────┴───────┘
1 more operator (0.5%). Operators take 60.5% of the traced CPU 
time; the rest is Python between them.                         
"""


def test_memory_table_lists_only_operators_that_allocated() -> None:
    assert render(memory_table(RunResult(ops=OPS_FIXTURE))) == """\
Memory allocated by each operator over the traced steps (CPU)
┏━━━━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━┓
┃ operator        ┃   calls ┃       self ┃    with children ┃
┡━━━━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━┩
│ aten::addmm     │       3 │    3.0 MiB │          3.0 MiB │
└─────────────────┴─────────┴────────────┴──────────────────┘
"""


def test_views_say_what_is_missing() -> None:
    empty = RunResult()
    assert "no operators recorded" in render(ops_table(empty))
    assert "lmprof trace --memory" in render(memory_table(RunResult(ops={**OPS_FIXTURE, "memory": False})))
    assert trace_hint(empty).startswith("no trace was written")
    hint = trace_hint(RunResult(ops=OPS_FIXTURE, run_dir="runs/x"))
    assert "tensorboard --logdir runs/x/trace" in hint and "runs/x/trace/LSTM.1.pt.trace.json" in hint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_trace_loads_in_the_real_torch_tb_profiler_plugin(traced: Path) -> None:
    tensorboard = Path(sys.executable).with_name("tensorboard")
    if not tensorboard.exists():
        pytest.skip("tensorboard is not installed beside this python")
    port = _free_port()
    server = subprocess.Popen([str(tensorboard), "--logdir", str(traced), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin/pytorch_profiler"

    def ask(route: str, **query: str) -> Any:
        url = f"{base}/{route}" + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 60
        runs: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                runs = ask("runs")
                if runs.get("runs"):
                    break
            except OSError:
                pass  # not listening yet
            time.sleep(0.3)
        assert runs.get("runs") == ["trace"], f"the plugin lists no run: {runs}"
        views = ask("views", run="trace")
        assert {"Overview", "Operator", "Trace"} <= set(views)
        workers = ask("workers", run="trace", view="Overview")
        assert workers == ["LSTM"]
        spans = ask("spans", run="trace", worker="LSTM")
        query = {"run": "trace", "worker": "LSTM", **({"span": spans[0]} if spans else {})}
        overview = ask("overview", **query)
        assert [row[0] for row in overview["steps"]["rows"]] == ["2", "3", "4"]  # the recorded ProfilerSteps
        assert any(env["value"] == "CPU" for env in overview["environments"])
        table = {row["name"]: row for row in ask("operation/table", group_by="Operation", **query)["data"]}
        ours = {r["name"]: r["calls"] for r in RunResult.load(traced).ops["rows"]}
        assert table["aten::addmm"]["calls"] == ours["aten::addmm"] == 3
    finally:
        server.terminate()
        server.wait(timeout=30)


def _bench_trace() -> Any:
    spec = importlib.util.spec_from_file_location("bench_trace", ROOT / "benchmarks" / "bench_trace.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_trace_measure_smoke(tiny_corpus: Path) -> None:
    from lmprof.config import RunConfig

    report = _bench_trace().measure(pairs=1, max_batches=4, data=tiny_corpus,
                                    cfg=RunConfig(emsize=16, nhid=16, bptt=8))
    for key, target in (("phase_recording", 1.02), ("profiler_active_steps", 1.30)):
        part = report[key]
        assert part["target"] == target and len(part["ratios"]) == 1
        assert part["off_seconds"][0] > 0 and part["on_seconds"][0] > 0
        assert part["ratios"][0] == pytest.approx(part["on_seconds"][0] / part["off_seconds"][0])
    assert report["config"]["max_batches"] == 4


def test_bench_trace_summary_of_known_seconds() -> None:
    part = _bench_trace()._summary(off=[1.0, 2.0, 4.0], on=[1.1, 2.6, 4.4], target=1.02)
    assert part["ratios"] == [pytest.approx(1.1), pytest.approx(1.3), pytest.approx(1.1)]
    # the median, not the mean (1.17)
    assert (part["median"], part["min"], part["max"]) == (pytest.approx(1.1), pytest.approx(1.1), pytest.approx(1.3))
    assert (part["off_seconds"], part["on_seconds"], part["target"]) == ([1.0, 2.0, 4.0], [1.1, 2.6, 4.4], 1.02)
