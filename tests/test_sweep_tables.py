"""Sweep tables and summary.csv from a hand-made sweep: the numbers a reader checks, diverged runs left out."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from rich.console import Console

from lmprof.record.sweep_summary import SweepView, summary_csv, summary_rows, sweep_view
from lmprof.views.plots import run_artists, sweep_figures
from lmprof.views.sweep_tables import sweep_tables

# (model, nhid) -> (status, train seconds per epoch, val ppl per epoch, test ppl)
MEASURED: dict[tuple[str, int], tuple[str, list[float], list[float | None], float | None]] = {
    ("LSTM", 16): ("ok", [1.0, 3.0], [400.0, 300.0], 290.0),
    ("GRU", 16): ("ok", [2.0, 2.0], [600.0, 500.0], 480.0),
    ("LSTM", 24): ("ok", [4.0, 2.0], [350.0, 250.0], 240.0),
    ("GRU", 24): ("diverged", [5.0, 7.0], [800.0, 5.0e7], None),  # ppl above the vocabulary: stopped
}
VOCAB = 1000


def sweep_data(jobs: int = 1, pending: tuple[str, int] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A sweep.json document and results.jsonl rows, as the driver writes them."""
    key = {mn: f"{mn[0]}-{mn[1]}" for mn in MEASURED}
    plan = {
        "name": "demo", "models": ["LSTM", "GRU"], "epochs": 2,
        "runs": [{"key": key[mn], "label": f"{mn[0]} nhid={mn[1]}", "model": mn[0]} for mn in MEASURED],
        "groups": [{"factor": "nhid", "rows": [{"value": str(n), "keys": {m: key[(m, n)] for m in ("LSTM", "GRU")}}
                                               for n in (16, 24)]}],
    }
    rows: list[dict[str, Any]] = []
    for mn, (status, seconds, ppl, test) in MEASURED.items():
        if mn == pending:
            continue
        for epoch, (s, p) in enumerate(zip(seconds, ppl), start=1):
            rows.append({"kind": "epoch", "key": key[mn], "model": mn[0], "nhid": mn[1], "epoch": epoch,
                         "train_seconds": s, "val_ppl": p, "jobs": jobs, "threads": 1 if jobs > 1 else None})
        rows.append({"kind": "run", "key": key[mn], "status": status, "test_ppl": test, "nparams": 1234,
                     "vocab_size": VOCAB, "host": "h1", "message": "diverged at epoch 2" if status != "ok" else ""})
    return plan, rows


def render(view: SweepView, mixed: bool = False, width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(sweep_tables(view, mixed_hardware=mixed))
    return console.file.getvalue()  # type: ignore[attr-defined]


def split_row(line: str) -> list[str]:
    line = line.strip()
    return [p.strip() for p in line[1:-1].split("│")] if line.startswith("│") else []


def cells(text: str, first: str) -> list[str]:
    """The cells of the table line whose second column reads ``first``."""
    for line in text.splitlines():
        parts = split_row(line)
        if len(parts) > 2 and parts[1] == first:
            return parts
    raise AssertionError(f"no row {first!r} in\n{text}")


def test_table_has_each_epoch_then_total_average_min_max_test() -> None:
    text = render(sweep_view(*sweep_data()))
    assert "nhid" in text and "LSTM s" in text and "LSTM val ppl" in text and "GRU val ppl" in text
    first_block = text.split("├")[0]
    assert cells(first_block, "1") == ["16", "1", "1.00", "400.00", "2.00", "600.00"]
    assert cells(first_block, "total") == ["", "total", "4.00", "", "4.00", ""]
    assert cells(first_block, "average") == ["", "average", "2.00", "350.00", "2.00", "550.00"]
    assert cells(first_block, "min / max") == ["", "min / max", "", "300.00 / 400.00", "", "500.00 / 600.00"]
    assert cells(first_block, "test") == ["", "test", "", "290.00", "", "480.00"]


def test_diverged_run_is_marked_and_left_out_of_every_average() -> None:
    view = sweep_view(*sweep_data())
    text = render(view)
    second_block = text.split("├")[1]
    assert cells(second_block, "2")[-1] == "5e+07 diverged"
    assert cells(second_block, "average")[-1] == "diverged" and cells(second_block, "test")[-1] == "diverged"
    assert cells(second_block, "total")[-2] == "12.00"  # its time is still shown: it was spent
    # 'all ok': GRU has one ok run (nhid=16, final ppl 500); LSTM two (300, 250)
    all_ok = next(line for line in text.splitlines() if "all ok" in line)
    assert split_row(all_ok)[2:] == ["2.50", "275.00", "2.00", "500.00"]
    flat = " ".join(text.split())
    assert "diverged" in flat and "vocabulary size 1000" in flat and "GRU nhid=24" in flat
    by_run = {r["run"]: r for r in summary_rows(view)}
    assert by_run["GRU nhid=24"]["avg_val_ppl"] is None and by_run["GRU nhid=24"]["status"] == "diverged"
    assert by_run["GRU nhid=24"]["total_seconds"] == 12.0


def test_summary_csv_holds_the_same_figures() -> None:
    rows = list(csv.DictReader(io.StringIO(summary_csv(sweep_view(*sweep_data())))))
    assert len(rows) == 4
    lstm16 = next(r for r in rows if r["run"] == "LSTM nhid=16")
    assert lstm16["factor"] == "nhid" and lstm16["value"] == "16" and lstm16["status"] == "ok"
    assert float(lstm16["total_seconds"]) == 4.0 and float(lstm16["avg_epoch_seconds"]) == 2.0
    assert float(lstm16["min_val_ppl"]) == 300 and float(lstm16["max_val_ppl"]) == 400
    assert float(lstm16["avg_val_ppl"]) == 350 and float(lstm16["final_val_ppl"]) == 300
    assert float(lstm16["test_ppl"]) == 290
    gru24 = next(r for r in rows if r["run"] == "GRU nhid=24")
    assert gru24["avg_val_ppl"] == "" and gru24["test_ppl"] == ""


@pytest.mark.parametrize("jobs, said", [(1, False), (2, True)])
def test_parallel_timings_are_flagged(jobs: int, said: bool) -> None:
    flat = " ".join(render(sweep_view(*sweep_data(jobs=jobs))).split())
    assert ("runs at once on one machine" in flat) is said


def test_a_run_not_yet_started_and_an_empty_sweep() -> None:
    text = render(sweep_view(*sweep_data(pending=("LSTM", 24))))
    assert "not run" in text and "not finished: LSTM nhid=24" in " ".join(text.split())
    plan, _ = sweep_data()
    empty = render(sweep_view(plan, []))
    assert empty.count("not run") == 8  # 4 runs x 2 epochs
    assert summary_rows(sweep_view(plan, []))[0]["status"] == "pending"


def hardware_rows(gpus: dict[tuple[str, int], str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The table tests' hand-made sweep, each run on the GPU named in ``gpus``."""
    plan, rows_ = sweep_data()
    for row in rows_:
        if row["kind"] == "run":
            model, nhid = next(k for k in gpus if f"{k[0]}-{k[1]}" == row["key"])
            row.update(gpu=gpus[(model, nhid)], executor="slurm", host=f"node-{model}-{nhid}")
    return plan, rows_


def table_row(text: str, value: str, epoch: str) -> list[str]:
    for line in text.splitlines():
        line = line.strip()
        parts = [p.strip() for p in line[1:-1].split("│")] if line.startswith("│") else []
        if parts[:2] == [value, epoch]:
            return parts
    raise AssertionError(f"no row {value} / {epoch} in\n{text}")


def test_runs_of_one_table_on_different_hardware_are_not_put_side_by_side() -> None:
    gpus = {("LSTM", 16): "A100", ("GRU", 16): "A100", ("LSTM", 24): "A100", ("GRU", 24): "V100"}
    view = sweep_view(*hardware_rows(gpus))
    text = render(view, mixed=False, width=140)
    flat = " ".join(text.split())
    assert "mixed hardware: times hidden" in flat and "--mixed-hardware" in flat
    assert "A100: LSTM nhid=16, GRU nhid=16, LSTM nhid=24; V100: GRU nhid=24" in flat
    assert table_row(text, "16", "1") == ["16", "1", "—", "400.00", "—", "600.00"]  # times hidden, ppl shown
    figures = sweep_figures(view)
    assert not run_artists(figures["epoch_time"]) and not run_artists(figures["ppl_vs_time"])
    assert "different hardware" in figures["epoch_time"].axes[0].texts[0].get_text()
    assert len(run_artists(figures["val_ppl"])) == 4

    shown = render(view, mixed=True, width=140)
    assert table_row(shown, "16", "1") == ["16", "1", "1.00", "400.00", "2.00", "600.00"]
    assert "compare with care" in " ".join(shown.split())
    allowed = sweep_figures(view, mixed_hardware=True)
    assert len(run_artists(allowed["epoch_time"])) == 4
    assert "mixed hardware" in allowed["epoch_time"].axes[0].get_title(loc="left")
    assert {r["run"]: r["hardware"] for r in summary_rows(view)}["GRU nhid=24"] == "V100"


def test_same_hardware_on_several_hosts_is_said_and_shown() -> None:
    view = sweep_view(*hardware_rows({k: "A100" for k in [("LSTM", 16), ("GRU", 16), ("LSTM", 24), ("GRU", 24)]}))
    text = render(view, mixed=False, width=140)
    flat = " ".join(text.split())
    assert "4 hosts of the same hardware (A100)" in flat and "hidden" not in flat
    assert table_row(text, "16", "1")[2] == "1.00"
    assert len(run_artists(sweep_figures(view)["epoch_time"])) == 4
