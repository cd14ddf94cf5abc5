"""Sweep plots: one line per configuration, log-scale perplexity, diverged runs marked, PNG and SVG written."""

from __future__ import annotations

from pathlib import Path

from lmprof.views.plots import FIGURES, run_artists, save, sweep_figures
from lmprof.record.sweep_summary import sweep_view
from tests.test_sweep_tables import VOCAB, sweep_data  # the same hand-made sweep as the table tests


def test_every_figure_has_one_line_or_point_per_configuration() -> None:
    view = sweep_view(*sweep_data())
    figures = sweep_figures(view)
    assert set(figures) == set(FIGURES)
    for name in ("val_ppl", "epoch_time"):
        lines = run_artists(figures[name])
        assert len(lines) == len(view.runs) == 4, name
        assert {line.get_gid() for line in lines} == {"run:" + key for key in view.runs}
    assert len(run_artists(figures["ppl_vs_time"])) == 4  # one point each


def test_val_ppl_is_log_scale_with_the_measured_points_and_the_divergence_marked() -> None:
    view = sweep_view(*sweep_data())
    fig = sweep_figures(view)["val_ppl"]
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    by_label = {line.get_label(): line for line in run_artists(fig)}
    assert list(by_label["LSTM nhid=16"].get_ydata()) == [400.0, 300.0]
    diverged = by_label["GRU nhid=24 (diverged)"]
    assert diverged.get_marker() == "x" and list(diverged.get_ydata()) == [800.0, 5.0e7]
    threshold = [line for line in ax.get_lines() if "vocabulary size" in str(line.get_label())]
    assert len(threshold) == 1 and list(threshold[0].get_ydata()) == [VOCAB, VOCAB]
    # same setting, same colour; models told apart by the line style
    assert by_label["LSTM nhid=16"].get_color() == by_label["GRU nhid=16"].get_color()
    assert by_label["LSTM nhid=16"].get_linestyle() != by_label["GRU nhid=16"].get_linestyle()
    epoch_time = {line.get_label(): line for line in run_artists(sweep_figures(view)["epoch_time"])}
    assert list(epoch_time["LSTM nhid=24"].get_ydata()) == [4.0, 2.0]


def test_a_run_with_no_finite_perplexity_still_has_its_line() -> None:
    plan, rows = sweep_data(pending=("GRU", 16))  # started, never finished an epoch
    view = sweep_view(plan, rows)
    lines = run_artists(sweep_figures(view)["val_ppl"])
    assert len(lines) == 4 and any(len(line.get_xdata()) == 0 for line in lines)


def test_parallel_runs_say_so_in_the_timing_plots() -> None:
    figures = sweep_figures(sweep_view(*sweep_data(jobs=2)))
    assert "runs at once" in figures["epoch_time"].axes[0].get_title(loc="left")
    assert "runs at once" not in figures["val_ppl"].axes[0].get_title(loc="left")


def test_save_writes_png_and_svg(tmp_path: Path) -> None:
    fig = sweep_figures(sweep_view(*sweep_data()))["val_ppl"]
    png, svg = save(fig, tmp_path / "val_ppl")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "GRU nhid=24 (diverged)" in text
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temp file left behind
