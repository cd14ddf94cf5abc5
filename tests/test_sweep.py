"""`lmprof sweep`: the rows it writes, resume after Ctrl-C or a kill, divergence, workers, executors."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import lmprof.reference.loop as loop
from lmprof.cli import main
from lmprof.config import RunConfig
from lmprof.errors import UsageError
from lmprof.record.result import RunResult
from lmprof.sweeps import build_plan, parse_vary, run_one
from lmprof.sweeps.driver import run_sweep
from lmprof.sweeps.executors import LocalProcessExecutor, threads_per_run
from lmprof.sweeps.store import RESULTS_FILE, ResultStore, SweepLock

ROOT = Path(__file__).resolve().parents[1]


def sweep_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["sweep", "--models", "LSTM", "GRU", "--vary", "nhid=16,24", "--emsize", "16", "--epochs", "2",
            "--max-batches", "4", "--bptt", "8", "--lr", "5", "--data", str(corpus), "--out", str(out), *extra]


def rows(folder: Path, kind: str | None = None) -> list[dict[str, Any]]:
    lines = (folder / RESULTS_FILE).read_text().splitlines()
    return [r for r in map(json.loads, lines) if kind is None or r["kind"] == kind]


def epoch_ids(folder: Path) -> list[tuple[str, int]]:
    return [(r["key"], r["epoch"]) for r in rows(folder, "epoch")]


def test_tiny_sweep_writes_one_row_per_run_and_epoch_and_a_rerun_adds_none(tiny_corpus, tmp_path, capsys) -> None:
    out = tmp_path / "sw"
    assert main(sweep_args(tiny_corpus, out)) == 0
    epochs = rows(out, "epoch")
    assert len(epochs) == 8 and len(set(epoch_ids(out))) == 8  # 2 models x 2 sizes x 2 epochs
    assert {(r["model"], r["nhid"]) for r in epochs} == {("LSTM", 16), ("LSTM", 24), ("GRU", 16), ("GRU", 24)}
    assert all(r["val_ppl"] > 1 and r["train_seconds"] > 0 and r["lr"] == 5.0 for r in epochs)
    runs = rows(out, "run")
    assert len(runs) == 4 and all(r["status"] == "ok" and r["test_ppl"] > 1 and r["nparams"] > 0 for r in runs)
    printed = capsys.readouterr().out
    assert "nhid" in printed and "LSTM val ppl" in printed and "GRU s" in printed
    assert {p.name for p in out.glob("*.png")} == {"val_ppl.png", "epoch_time.png", "ppl_vs_time.png"}
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 4 and csv_lines[0].startswith("factor,value,model,run,status")

    before = (out / RESULTS_FILE).read_bytes()
    assert main(sweep_args(tiny_corpus, out)) == 0
    assert (out / RESULTS_FILE).read_bytes() == before
    assert "4 already done, 0 to run" in capsys.readouterr().out


def test_a_sweep_run_gives_the_numbers_of_lmprof_train(tiny_corpus, tmp_path) -> None:
    out = tmp_path / "sw"
    assert main(["sweep", "--models", "GRU", "--emsize", "16", "--nhid", "24", "--epochs", "2", "--max-batches", "4",
                 "--bptt", "8", "--lr", "5", "--data", str(tiny_corpus), "--out", str(out)]) == 0
    assert main(["train", "--model", "GRU", "--emsize", "16", "--nhid", "24", "--epochs", "2", "--max-batches", "4",
                 "--bptt", "8", "--lr", "5", "--data", str(tiny_corpus), "--out", str(tmp_path / "train")]) == 0
    trained = RunResult.load(tmp_path / "train")
    assert [r["val_loss"] for r in rows(out, "epoch")] == [e["val_loss"] for e in trained.epochs]
    assert rows(out, "run")[0]["test_ppl"] == trained.metrics["test_ppl"]


def test_ctrl_c_mid_run_then_rerun_repeats_no_finished_epoch(tiny_corpus, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "sw"
    real_evaluate = loop.evaluate
    calls = {"n": 0}

    def evaluate_then_ctrl_c(*args: Any, **kwargs: Any) -> float:
        calls["n"] += 1
        if calls["n"] == 5:  # run 1: valid, valid, test; run 2: valid, then Ctrl-C in epoch 2
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate_then_ctrl_c)
    assert main(sweep_args(tiny_corpus, out)) == 130
    assert "interrupted" in capsys.readouterr().out
    first = rows(out, "epoch")
    assert [(r["run"], r["epoch"]) for r in first] == [("LSTM nhid=16", 1), ("LSTM nhid=16", 2), ("GRU nhid=16", 1)]
    assert rows(out, "run")[-1]["status"] == "interrupted"

    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    time.sleep(0.01)  # rows written after this are visibly later
    assert main(sweep_args(tiny_corpus, out)) == 0
    after = rows(out, "epoch")
    assert len(after) == 8 and len(set(epoch_ids(out))) == 8
    assert after[:3] == first  # the finished epochs' rows are untouched: same numbers, same timestamps
    assert all(r["time"] > first[-1]["time"] for r in after[3:])
    gru16 = [r for r in rows(out, "run") if r["run"] == "GRU nhid=16"]
    assert [r["status"] for r in gru16] == ["interrupted", "ok"]  # re-run whole, its epoch 1 not re-appended
    log = next((out / "runs").glob("GRU_nhid=16-*")).joinpath("train.log").read_text()
    assert log.count("started") == 2


def test_killed_sweep_resumes_where_its_rows_stop(tiny_corpus, tmp_path) -> None:
    out = tmp_path / "sw"
    args = sweep_args(tiny_corpus, out)
    slow = ("import sys, time, lmprof.reference.loop as L; f = L.evaluate\n"
            "L.evaluate = lambda *a, **k: (time.sleep(0.3), f(*a, **k))[1]\n"
            "from lmprof.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", slow, *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / RESULTS_FILE).exists() and len(rows(out, "epoch")) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a crash: no handler runs
    proc.wait()
    kept = (out / RESULTS_FILE).read_text()
    done = epoch_ids(out)
    assert 3 <= len(done) < 8, "the sweep finished before it could be killed"

    assert main(args) == 0
    assert (out / RESULTS_FILE).read_text().startswith(kept)  # rows before the kill stay as written
    assert len(epoch_ids(out)) == 8 and set(done) <= set(epoch_ids(out)) and len(set(epoch_ids(out))) == 8


def test_half_written_last_line_is_cut_and_its_epoch_recorded_again(tiny_corpus, tmp_path) -> None:
    out = tmp_path / "sw"
    assert main(sweep_args(tiny_corpus, out)) == 0
    lines = (out / RESULTS_FILE).read_text().splitlines(keepends=True)
    # the machine died while writing GRU nhid=24's epoch 2 row; its run never ended
    cut = next(i for i, l in enumerate(lines) if '"GRU nhid=24"' in l and '"epoch": 2' in l)
    (out / RESULTS_FILE).write_text("".join(lines[:cut]) + lines[cut][:40])
    assert main(sweep_args(tiny_corpus, out)) == 0
    assert len(epoch_ids(out)) == 8 and len(set(epoch_ids(out))) == 8
    assert all(json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines())


def test_planted_divergence_is_flagged_stopped_and_left_out(tiny_corpus, tmp_path, capsys) -> None:
    out = tmp_path / "dv"
    code = main(["sweep", "--models", "GRU", "LSTM", "--vary", "lr=1e9,5", "--emsize", "16", "--nhid", "16",
                 "--epochs", "3", "--max-batches", "4", "--bptt", "8", "--data", str(tiny_corpus), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "diverged" in printed
    status = {r["run"]: r["status"] for r in rows(out, "run")}
    assert status == {"GRU lr=1e+09": "diverged", "LSTM lr=1e+09": "diverged", "GRU lr=5": "ok", "LSTM lr=5": "ok"}
    per_run = {r["run"]: r["epochs_done"] for r in rows(out, "run")}
    assert per_run["GRU lr=1e+09"] < 3 and per_run["LSTM lr=5"] == 3  # stopped early
    summary = {(r["model"], r["value"]): r for r in _csv(out / "summary.csv")}
    assert summary[("GRU", "1e+09")]["avg_val_ppl"] == "" and float(summary[("GRU", "5")]["avg_val_ppl"]) > 1
    assert "left out of every average" in " ".join(printed.split())


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    return list(csv.DictReader(path.open()))


def test_perplexity_above_the_vocabulary_stops_the_run(tiny_corpus, tmp_path) -> None:
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, epochs=3, max_batches=4, bptt=8)
    record = run_one(cfg, tmp_path / "run", {"vocab_size": 10, "run": "LSTM tiny-vocab", "key": "k"})
    # worse than uniform at epochs 1 and 2: stopped there, epoch 3 never runs
    assert record["status"] == "diverged" and len(record["epochs"]) == 2
    assert "above the vocabulary size 10" in record["message"]
    saved = RunResult.load(tmp_path / "run")  # one file: the record is result.json's sweep section
    assert saved.status == "diverged" and saved.sweep["run"] == "LSTM tiny-vocab" and saved.sweep["key"] == "k"
    assert [e["epoch"] for e in saved.sweep["epochs"]] == [1, 2] and not (tmp_path / "run" / "record.json").exists()


def test_a_stop_request_in_the_run_folder_ends_training_as_ctrl_c_does(tiny_corpus, tmp_path) -> None:
    from lmprof.sweeps.worker import STOP_FILE, StopOnRequest, clear_stop_request, request_stop

    folder = tmp_path / "run"
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, epochs=5, max_batches=3, bptt=8)
    record = run_one(cfg, folder, {"run": "LSTM", "key": "k"}, on_record=lambda epoch: request_stop(folder),
                     watchers=[StopOnRequest(folder)])
    # asked after epoch 1: epoch 2 stops at its first batch, then upstream tests the best model as after Ctrl-C
    assert record["status"] == "interrupted" and [e["epoch"] for e in record["epochs"]] == [1]
    saved = RunResult.load(folder)
    assert saved.metrics["test_ppl"] > 0 and "Exiting from training early" in (folder / "train.log").read_text()
    assert not (folder / STOP_FILE).exists()  # acted on, then gone: a rerun is not stopped by it
    request_stop(folder)
    clear_stop_request(folder)  # what a driver does before it starts the run again
    assert not (folder / STOP_FILE).exists()
    from lmprof.record.files import OWN_FILES

    assert STOP_FILE in OWN_FILES  # --force clears one a killed run left behind


def test_run_one_turns_a_failure_into_a_record_and_is_picklable(tmp_path) -> None:
    cfg = RunConfig(data=str(tmp_path / "no-corpus"), epochs=1)
    assert pickle.loads(pickle.dumps(run_one)) is run_one and pickle.loads(pickle.dumps(cfg)) == cfg
    record = run_one(cfg, tmp_path / "run")
    assert record["status"] == "failed" and record["error"]["type"] == "UsageError"
    assert "does not exist" in record["error"]["message"] and "Traceback" in record["error"]["traceback"]
    assert record["host"] and record["attempt"] == 1
    assert RunResult.load(tmp_path / "run").sweep["error"]["type"] == "UsageError"


def test_jobs_run_in_processes_with_threads_divided(tiny_corpus, tmp_path, capsys) -> None:
    inline, parallel = tmp_path / "inline", tmp_path / "jobs"
    assert main(sweep_args(tiny_corpus, inline)) == 0
    assert main(sweep_args(tiny_corpus, parallel, "--jobs", "2")) == 0
    assert "runs at once on one machine" in capsys.readouterr().out
    runs = rows(parallel, "run")
    assert {r["threads"] for r in runs} == {threads_per_run(2, None)} and all(r["executor"] == "local" for r in runs)
    assert len({r["pid"] for r in runs}) >= 2 and os.getpid() not in {r["pid"] for r in runs}
    a = {(r["run"], r["epoch"]): r["val_ppl"] for r in rows(inline, "epoch")}
    b = {(r["run"], r["epoch"]): r["val_ppl"] for r in rows(parallel, "epoch")}
    assert a.keys() == b.keys()
    # Fewer threads may reorder float sums: the last digits may move, nothing more.
    assert all(math.isclose(a[k], b[k], rel_tol=1e-5) for k in a)


def test_ctrl_c_in_the_parallel_driver_stops_its_workers_then_resumes(tiny_corpus, tmp_path, ctrl_c_after_first_row) -> None:
    out = tmp_path / "sw"
    plan = build_plan(RunConfig(data=str(tiny_corpus), emsize=16, epochs=2, max_batches=4, bptt=8, lr=5.0),
                      ["LSTM", "GRU"], [parse_vary("nhid=16,24")])
    outcome = run_sweep(plan, out, LocalProcessExecutor(2), log=lambda line: None)
    assert outcome.interrupted and 1 <= len(epoch_ids(out)) < 8
    import multiprocessing

    assert not [p for p in multiprocessing.active_children() if p.name.startswith("lmprof-sweep")]
    ctrl_c_after_first_row()  # no more Ctrl-C: the rerun finishes
    again = run_sweep(plan, out, LocalProcessExecutor(2), log=lambda line: None)
    assert not again.interrupted and len(epoch_ids(out)) == 8 and len(set(epoch_ids(out))) == 8


def test_fresh_starts_over(tiny_corpus, tmp_path) -> None:
    out = tmp_path / "sw"
    assert main(sweep_args(tiny_corpus, out)) == 0
    first = rows(out, "epoch")
    assert main(sweep_args(tiny_corpus, out, "--fresh")) == 0
    again = rows(out, "epoch")
    assert len(again) == 8 and again[0]["time"] > first[-1]["time"]
    assert [r["val_loss"] for r in again] == [r["val_loss"] for r in first]


def test_plan_one_factor_at_a_time_shares_the_base_and_grid_takes_the_product() -> None:
    base = RunConfig(nhid=200, bptt=35)
    plan = build_plan(base, ["LSTM", "GRU"], [parse_vary("nhid=200,400"), parse_vary("bptt=35,55")])
    assert len(plan.runs) == 2 * 3  # nhid=200 bptt=35 is one run, shown in both tables
    assert [g.factor for g in plan.groups] == ["nhid", "bptt"]
    assert plan.groups[0].rows[0].keys == plan.groups[1].rows[0].keys
    grid = build_plan(base, ["GRU"], [parse_vary("nhid=200,400"), parse_vary("bptt=35,55")], grid=True)
    assert [r.label for r in grid.runs] == ["GRU nhid=200 bptt=35", "GRU nhid=200 bptt=55",
                                            "GRU nhid=400 bptt=35", "GRU nhid=400 bptt=55"]
    assert grid.name == "GRU_nhid-bptt_grid" and plan.name == "LSTM-GRU_nhid-bptt"
    # what does not change the numbers does not change the key
    assert build_plan(base.replace(threads=1, log_interval=7), ["GRU"], []).runs[0].key == \
        build_plan(base, ["GRU"], []).runs[0].key


@pytest.mark.parametrize("flags, message", [
    (["--vary", "nhid"], "write NAME=V1,V2"),
    (["--vary", "colour=1,2"], "not a factor a sweep can vary"),
    (["--vary", "nhid=2x"], "'2x' is not a whole number"),
    (["--vary", "nhid=16,16"], "listed twice"),
    (["--vary", "model=GRU"], "--models"),
    (["--vary", "nhid=16", "--vary", "nhid=24"], "names a factor twice"),
    (["--models", "CNN"], "unknown model 'CNN'"),
    (["--vary", "nhid=0"], "--nhid must be a positive integer"),
    (["--jobs", "0"], "--jobs must be a positive integer"),
    (["--executor", "inline", "--jobs", "2"], "one configuration at a time"),
    (["--save", "m.pt"], "drop --save"),
])
def test_bad_sweep_flags_are_one_line_exit_2(flags, message, tiny_corpus, tmp_path, capsys) -> None:
    out = tmp_path / "sw"
    assert main(["sweep", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_folder_of_other_files_or_in_use_is_refused(tiny_corpus, tmp_path, capsys) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["sweep", "--data", str(tiny_corpus), "--out", str(other)]) == 2
    assert "not an lmprof sweep" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    with SweepLock(busy), pytest.raises(UsageError, match="another lmprof sweep"), SweepLock(busy):
        pass
    assert ResultStore(busy).rows == []


def test_benchmark_smoke(tiny_corpus) -> None:
    spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "benchmarks" / "bench_sweep.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    numbers = bench.measure(epochs=1, max_batches=2, emsize=16, nhid=16, data=str(tiny_corpus), repeats=1)
    assert numbers["plain_train_seconds_per_epoch"] > 0 and numbers["sweep_train_seconds_per_epoch"] > 0
    assert math.isfinite(numbers["train_overhead_percent"])


def test_divergence_rule_forgives_one_bad_epoch_but_not_two_or_the_last_of_two() -> None:
    from lmprof.sweeps import is_diverged

    vocab = 1000
    assert not is_diverged([5000.0], vocab, final=False)  # a bad start the next epoch may repair
    assert not is_diverged([5000.0, 300.0], vocab, final=False)
    assert is_diverged([5000.0, 4000.0], vocab, final=False)
    assert not is_diverged([5000.0], vocab, final=True)  # one epoch: too little evidence ("not converged")
    assert is_diverged([300.0, 5000.0], vocab, final=True)  # worse at the last of two
    assert is_diverged([300.0, None], vocab, final=False)  # NaN/inf at once
    assert not is_diverged([999.0], vocab, final=True)
