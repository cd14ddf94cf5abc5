"""views/rows.py: the plain rows every phase and line table is drawn from, checked on the hand-made run."""

from __future__ import annotations

import pytest

from lmprof.record.result import RunResult
from lmprof.record.derived import run_description
from lmprof.views.rows import coverage, line_table_data, phase_table_rows, summary_parts


def test_phase_rows_have_means_gaps_and_no_projection_for_a_whole_epoch(profile_result: RunResult) -> None:
    rows = {r["name"]: r for r in phase_table_rows(profile_result)}
    assert rows["backward"]["mean_seconds"] == pytest.approx(1.25) and rows["backward"]["share"] == 0.5
    assert rows["forward"]["gap_seconds"] == 0.0 and rows["forward"]["full_share"] is None
    assert [r["name"] for r in phase_table_rows(profile_result)][0] == "corpus"  # result.json's order


def test_summary_parts_add_up_to_the_wall_time(profile_result: RunResult) -> None:
    parts = {p["part"]: p for p in summary_parts(profile_result)}
    assert parts["training"]["seconds"] == pytest.approx(8.0)  # forward, backward, logging
    assert sum(p["seconds"] for p in parts.values()) == pytest.approx(10.0)
    assert sum(p["share"] for p in parts.values()) == pytest.approx(1.0)
    assert coverage(profile_result) == pytest.approx(8.0 / 8.5)


def test_line_table_marks_the_hot_lines(profile_result: RunResult) -> None:
    data = line_table_data(profile_result.lines["functions"][0])
    assert {row.line: row.hot_rank for row in data.rows if row.hot_rank} == {15: 1, 13: 2, 16: 3}  # 5 s, 2 s, 0.99 s
    assert [row.kind for row in data.rows][:3] == ["code", "comment", "code"] and data.rows[4].kind == "blank"
    assert data.rows[3].per_hit == 0.5 and data.time_unit == "s" and data.per_hit_unit == "s"
    assert data.rows[0].source == "def train(model, data):"


def test_run_description_says_what_is_known(profile_result: RunResult, empty_result: RunResult) -> None:
    assert run_description(profile_result) == "LSTM, emsize 16, nhid 16, 2 layers, bptt 8, batch 20 · 1 epoch, 4 batches · cpu"
    assert run_description(empty_result) == "LSTM"  # only what is known: its config names the model, no more


def test_the_views_read_what_compare_reads_from_the_record_floor() -> None:
    """run_description, component rows, step seconds and the cost line live once, below views and compare."""
    import ast
    from pathlib import Path

    import lmprof
    from lmprof.record import derived

    shared = {"run_description", "component_rows", "component_label", "step_seconds", "cost_line"}
    assert all(callable(getattr(derived, name)) for name in shared)
    package = Path(lmprof.__file__).parent
    defined_again = {f"{path.relative_to(package)}: {node.name}"
                     for path in [*package.glob("views/*.py"), package / "comparison.py"]
                     for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                     if isinstance(node, ast.FunctionDef) and node.name in shared}
    assert not defined_again, defined_again
