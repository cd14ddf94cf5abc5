"""benchmarks/run.py: the table marks a missed target; the cheap measures run (no timing asserted)."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]


def load_bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_marks_missed_and_met_targets() -> None:
    bench = load_bench()
    doc = {"machine": {"cpu": "test cpu", "threads": 2, "torch": "2.x", "device": "cpu"}, "date": "today",
           "rows": [{"name": "phase recording / bare", "value": 1.5, "unit": "x", "target": 1.02, "met": False,
                     "min": 1.4, "max": 1.6},
                    {"name": "lmprof --help", "value": 0.1, "unit": "s", "target": 0.5, "met": True},
                    {"name": "peak RSS", "value": 600.0, "unit": "MB", "target": None, "met": None}]}
    out = io.StringIO()
    Console(file=out, width=140).print(bench.render_table(doc))
    text = out.getvalue()
    assert "MISSED" in text and text.count("met") == 1
    assert "1.500x" in text and "1.400 .. 1.600" in text and "600.00 MB" in text


def test_startup_and_first_step_measures_run(tmp_path) -> None:
    bench = load_bench()
    assert 0 < bench.startup_seconds(repeats=1) < 30
    assert 0 < bench.first_step_seconds(tmp_path) < 120
    assert bench.machine()["torch"] and str(ROOT / "benchmarks") in sys.path
