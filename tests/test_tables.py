"""The profile's tables, rendered at a fixed width from a hand-made RunResult and compared as text."""

from __future__ import annotations

import io
from typing import Any

import pytest

from lmprof.phases import UNCOVERED
from lmprof.record.result import RunResult
from lmprof.views.format import bar, duration, in_unit, pick_unit
from lmprof.views.rows import line_table_data, summary_parts, sync_note
from lmprof.views.tables import line_tables, phase_table, profile_view, summary_table


def render(renderable: Any, width: int = 100) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines())  # type: ignore[attr-defined]


def as_cuda(result: RunResult, sync: str = "launch") -> RunResult:
    """The fixture as a GPU run: CUDA events for the phases, a host clock that ran ahead or waited."""
    result.environment["device"] = "cuda:0"
    result.phase_summary["clock"] = "cuda events"
    result.lines["sync"] = sync
    for row in result.phases:
        row["host_seconds"] = {"forward": 0.5, "logging": 6.0}.get(row["name"], row["seconds"])
    return result


LINE_TABLE = """\
train · lmprof/reference/loop.py:10 · 8.00 s total, 80.0% of the run · 1 call
    line  hits  time s s/hit % time            source
      10                                       def train(model, data):
      11                                           # one epoch
      12     5    0.01  0.00   0.1%                for batch in data:
▶     13     4    2.00  0.50  25.0% ██▌                output = model(batch)
      14
▶     15     4    5.00  1.25  62.5% ██████▎            output.backward()
▶     16     1    0.99  0.99  12.4% █▎             return batch"""

PHASE_TABLE = """\
Phases · clock: host
 phase                                        calls     total      mean  share
 read corpus (Dictionary, tokenize)               1  500.0 ms  500.0 ms   5.0%  ▌
 forward                                          4    2.00 s  500.0 ms  20.0%  ██
 backward (BPTT)                                  4    5.00 s    1.25 s  50.0%  █████
 loss.item() (waits for the device), logging      4    1.00 s  250.0 ms  10.0%  █
 evaluate on validation                           1  250.0 ms  250.0 ms   2.5%  ▎
 evaluate on test                                 1  750.0 ms  750.0 ms   7.5%  ▊
 (outside phases)                                    500.0 ms             5.0%  ▌
Phases cover 94.1% of train()'s wall time; shares are of the whole run's wall time."""

SUMMARY = """\
Where the run's time went · 10.00 s wall
 part                       time  share
 training                 8.00 s  80.0%  ████████
 validation evaluation  250.0 ms   2.5%  ▎
 test evaluation        750.0 ms   7.5%  ▊
 corpus reading         500.0 ms   5.0%  ▌
 (outside phases)       500.0 ms   5.0%  ▌"""


def test_line_table_as_text(profile_result: RunResult) -> None:
    (table,) = line_tables(profile_result)
    assert render(table) == LINE_TABLE


def test_phase_table_and_summary_as_text(profile_result: RunResult) -> None:
    assert render(phase_table(profile_result)) == PHASE_TABLE
    assert render(summary_table(profile_result)) == SUMMARY


def test_units_pick_the_largest_that_reads_above_one() -> None:
    assert [pick_unit(s) for s in (2.5, 0.0042, 0.0000042, 0.0)] == ["s", "ms", "us", "us"]
    assert pick_unit(2.5, "us") == "us"
    assert [in_unit(s, "ms") for s in (1.23456, 0.123456, 0.0123456, 0.00123456)] == ["1235", "123.5", "12.35", "1.23"]
    assert [duration(s) for s in (12.5, 0.0456, 0.00031)] == ["12.50 s", "45.60 ms", "310.0 µs"]
    assert [bar(s) for s in (0.0, 0.5, 0.0625, 1.0, 1.7)] == ["", "█████", "▋", "█" * 10, "█" * 10]


def test_line_rows_per_hit_shares_kinds_and_hot_lines(profile_result: RunResult) -> None:
    data = line_table_data(profile_result.lines["functions"][0])
    rows = {r.line: r for r in data.rows}
    assert [rows[n].kind for n in (10, 11, 14)] == ["code", "comment", "blank"]
    assert rows[13].per_hit == pytest.approx(0.5) and rows[16].per_hit == pytest.approx(0.99)
    assert [r.line for r in sorted((r for r in data.rows if r.hot_rank), key=lambda r: r.hot_rank)] == [15, 13, 16]
    assert sum(r.share for r in data.rows) == pytest.approx(1.0)
    assert (data.time_unit, data.per_hit_unit) == ("s", "s")
    assert rows[13].source == "        output = model(batch)"  # the function's own indentation is kept
    method = {"lines": [{**r, "source": "    " + r["source"] if r["source"] else ""} for r in
                        profile_result.lines["functions"][0]["lines"]]}
    assert [r.source for r in line_table_data(method).rows] == [r.source for r in data.rows]  # a method's 4 go


def test_unit_flag_overrides_the_automatic_unit(profile_result: RunResult) -> None:
    (table,) = line_tables(profile_result, unit="ms")
    text = render(table)
    assert "time ms" in text and "ms/hit" in text
    assert "2000" in next(line for line in text.splitlines() if "output = model(batch)" in line)
    profile_result.lines["unit"] = "us"  # what the run chose is kept for `lmprof show`
    assert "time µs" in render(line_tables(profile_result)[0])


def test_summary_parts_add_up_and_group_the_step_phases(profile_result: RunResult) -> None:
    parts = {p["part"]: p for p in summary_parts(profile_result)}
    assert parts["training"]["seconds"] == pytest.approx(8.0)  # forward + backward + logging
    assert parts["training"]["share"] == pytest.approx(0.8)
    assert list(parts) == ["training", "validation evaluation", "test evaluation", "corpus reading", UNCOVERED]
    assert sum(p["share"] for p in parts.values()) == pytest.approx(1.0)


def test_cpu_tables_carry_no_gpu_note(profile_result: RunResult) -> None:
    assert sync_note(profile_result) == ""
    text = render(profile_view(profile_result))
    assert "CUDA" not in text and "host - GPU" not in text


def test_cuda_phase_table_shows_host_time_and_the_gap(profile_result: RunResult) -> None:
    text = render(phase_table(as_cuda(profile_result)), width=120)
    assert "GPU total" in text and "host total" in text and "host - GPU" in text
    forward = next(line for line in text.splitlines() if line.startswith(" forward"))
    assert "2.00 s" in forward and "500.0 ms" in forward and "-1.50 s" in forward  # launches returned early
    logging = next(line for line in text.splitlines() if "loss.item()" in line)
    assert "+5.00 s" in logging  # loss.item() waited for the GPU: a host clock charges it here


@pytest.mark.parametrize("sync, words", [("launch", "--sync blocking"), ("blocking", "CUDA_LAUNCH_BLOCKING=1")])
def test_cuda_line_tables_say_which_sync_mode(profile_result: RunResult, sync: str, words: str) -> None:
    text = render(line_tables(as_cuda(profile_result, sync))[0], width=120)
    assert words in text.replace("\n", " ")


def test_interrupted_runs_are_marked(profile_result: RunResult) -> None:
    profile_result.metrics["status"] = "interrupted"
    text = render(profile_view(profile_result), width=120)
    assert text.startswith("interrupted: Ctrl-C")
    assert "Where the run's time went · 10.00 s wall · interrupted" in text
    assert "Phases · clock: host · interrupted" in text
    assert "80.0% of the run · 1 call · interrupted" in text


def test_narrow_console_cuts_only_the_source(profile_result: RunResult) -> None:
    text = render(line_tables(profile_result)[0], width=60)
    row = next(line for line in text.splitlines() if line.startswith("▶") and "62.5%" in line)
    assert "5.00  1.25  62.5% ██████▎" in row and row.endswith("…") and len(row) <= 60
    assert len(text.splitlines()) == len(LINE_TABLE.splitlines()) + 1  # the title wraps; no row does


def test_a_function_that_did_not_run(profile_result: RunResult) -> None:
    record = profile_result.lines["functions"][0]
    for line in record["lines"]:
        line.update(hits=0, seconds=0.0, share=0.0)
    record.update(calls=0, total_seconds=0.0, qualname="repackage_hidden")
    assert render(line_tables(profile_result)[0]) == "repackage_hidden (lmprof/reference/loop.py:10) did not run"


def test_the_empty_result_renders(empty_result: RunResult) -> None:
    text = render(profile_view(empty_result))
    assert text.splitlines()[0] == "LSTM"
    assert text.count("no phases recorded") == 1 and "no line profile in this run" in text


def test_saved_and_loaded_results_render_the_same(profile_result: RunResult, tmp_path) -> None:
    profile_result.save(tmp_path)
    assert render(profile_view(RunResult.load(tmp_path))) == render(profile_view(profile_result))
