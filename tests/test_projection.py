"""Shares projected to full epochs for a run cut short, and how the summary, phase table and flow chart show them."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from lmprof.record.result import RunResult
from lmprof.views.projection import projected_seconds, projected_shares, projection_note, scale


@pytest.fixture
def cut_result(profile_result: RunResult) -> RunResult:
    """The hand-made profile run (4 batches: forward 2 s, backward 5 s, logging 1 s; evaluation 1 s), cut from 40."""
    profile_result.phase_summary.update(cut=True, full_batches_per_epoch=40)
    return profile_result


def text(renderable: object) -> str:
    console = Console(width=140, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_step_phases_scale_to_whole_epochs_and_the_rest_stays_as_measured(cut_result: RunResult) -> None:
    assert scale(cut_result) == 10.0  # 40 batches an epoch, 4 ran
    seconds = projected_seconds(cut_result)
    assert seconds is not None
    assert seconds["forward"] == pytest.approx(20.0) and seconds["backward"] == pytest.approx(50.0)
    assert seconds["evaluate_valid"] == 0.25 and seconds["evaluate_test"] == 0.75 and seconds["corpus"] == 0.5
    shares = projected_shares(cut_result)
    assert shares is not None
    # 20 + 50 + 10 of training, 0.25 + 0.75 of evaluation, 0.5 of corpus, 0.5 outside: 82 s in all
    assert shares["backward"] == pytest.approx(50 / 82)
    assert shares["evaluate_test"] == pytest.approx(0.75 / 82)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert "4 of 40 batches in 1 epoch" in projection_note(cut_result)


def test_a_whole_epoch_is_not_projected(profile_result: RunResult, empty_result: RunResult) -> None:
    profile_result.phase_summary.update(cut=False, full_batches_per_epoch=4)
    for result in (profile_result, empty_result):
        assert scale(result) is None and projected_shares(result) is None and projection_note(result) == ""


def test_several_cut_epochs_scale_by_the_epochs_run(cut_result: RunResult) -> None:
    cut_result.metrics["epochs"] = [{"epoch": 1, "batches": 4}, {"epoch": 2, "batches": 4}]
    assert scale(cut_result) == 10.0  # 2 x 40 over 8


def test_summary_and_phase_table_add_a_full_epoch_column(cut_result: RunResult) -> None:
    from lmprof.views.tables import phase_table, summary_table

    summary = text(summary_table(cut_result))
    assert "share (full epoch)" in summary and "4 of 40 batches" in summary
    training = next(line for line in summary.splitlines() if line.strip().startswith("training"))
    assert "80.0%" in training and f"{80 / 82:.1%}" in training  # measured 8 of 10 s; projected 80 of 82 s
    phases = text(phase_table(cut_result))
    row = next(line for line in phases.splitlines() if "evaluate on test" in line)
    assert "7.5%" in row and f"{0.75 / 82:.1%}" in row


def test_uncut_tables_have_no_projected_column(profile_result: RunResult) -> None:
    from lmprof.views.tables import phase_table, summary_table

    assert "full epoch" not in text(summary_table(profile_result)) + text(phase_table(profile_result))


def test_flow_chart_of_a_cut_run_is_coloured_by_the_full_epoch_share(cut_result: RunResult) -> None:
    from lmprof.views.flowchart import flow_chart, heat

    source = flow_chart(cut_result).source
    assert "training cut short (4 of 40 batches)" in source and "Share of a full epoch" in source
    # evaluate on test: 7.5% of this run (orange) but 0.9% of a full epoch (palest)
    match = re.search(r"^\s*evaluate_test \[(.*?)\]$", source, re.S | re.M)
    assert match, source
    test_node = match.group(1)
    assert f'fillcolor="{heat(0.75 / 82)}"' in test_node and heat(0.75 / 82) != heat(0.075)
    assert "0.9% of a full epoch (7.5% here)" in test_node
