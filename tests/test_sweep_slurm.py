"""`lmprof sweep --executor slurm` through submitit, against a fake SLURM (sbatch, srun, sacct, scancel).

The fake (``tests/fake_slurm.py``) runs each job array's elements as real
processes, hands out GPU numbers as SLURM does, and keeps job states in files
that `sacct` reads and `scancel` changes; a HOLD file keeps jobs queued.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lmprof.cli import main
from lmprof.sweeps.driver import Driver
from lmprof.sweeps.store import RESULTS_FILE
from tests.fake_slurm import DYING_RUN, FAILING_RUN, drain, install
from tests.sweep_cli import args_for, rows

HAS_SUBMITIT = importlib.util.find_spec("submitit") is not None
needs_submitit = pytest.mark.skipif(not HAS_SUBMITIT, reason="submitit is not installed: pip install 'lmprof[slurm]'")

@pytest.fixture
def fake_slurm(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    if not HAS_SUBMITIT:
        pytest.skip("submitit is not installed: pip install 'lmprof[slurm]'")
    fake = install(tmp_path, tmp_path_factory, monkeypatch)
    yield fake
    drain(fake)


SLURM = ("--executor", "slurm", "--time-min", "5")


def overlapping(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    spans = [(datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["finished"]), r) for r in runs]
    return [(a, b) for i, (s1, e1, a) in enumerate(spans) for s2, e2, b in spans[i + 1:] if s1 < e2 and s2 < e1]


@needs_submitit
def test_one_job_array_with_the_flags_gives_the_inline_numbers(fake_slurm, tiny_corpus, tmp_path) -> None:
    out = tmp_path / "slurm"
    flags = [*SLURM, "--partition", "debug", "--gpus-per-run", "1", "--max-parallel", "2", "--constraint", "fake",
             "--setup", "export FROM_SETUP=yes", "--setup", "echo set up on $SLURM_JOB_NODELIST", "--exclusive",
             "--device", "cpu"]  # the fake SLURM's GPU numbers are made up: on a real GPU machine "1" may not exist
    assert main(args_for(tiny_corpus, out, *flags)) == 0
    [submission] = fake_slurm.submissions()  # one sbatch for the whole sweep
    options = submission["options"]
    assert options["array"] == "0-3%2" and options["partition"] == "debug" and options["cpus-per-task"] == "1"
    assert options["gpus-per-node"] == "1" and options["time"] == "5" and options["constraint"] == "fake"
    assert options["exclusive"] is True
    assert "export FROM_SETUP=yes\necho set up on $SLURM_JOB_NODELIST" in submission["script"]

    runs = rows(out, "run")
    array = str(submission["job"])
    assert sorted(r["job_id"] for r in runs) == [f"{array}_{i}" for i in range(4)]
    assert all(r["status"] == "ok" and r["scheduler"] == "slurm" and r["executor"] == "slurm" for r in runs)
    assert all(r["attempt"] == 1 and r["threads"] == 1 and r["cuda_visible_devices"] in ("0", "1") for r in runs)
    assert all(a["cuda_visible_devices"] != b["cuda_visible_devices"] for a, b in overlapping(runs))
    assert not json.loads((out / "slurm_jobs.json").read_text())["jobs"]  # every job seen to end
    assert list((out / "submitit").glob(f"{array}_*_0_log.out"))

    inline = tmp_path / "inline"
    assert main(args_for(tiny_corpus, inline, "--device", "cpu")) == 0
    same = ("val_loss", "val_ppl", "lr", "batches", "tokens")
    assert {(r["run"], *(r[k] for k in same)) for r in rows(out, "epoch")} == \
        {(r["run"], *(r[k] for k in same)) for r in rows(inline, "epoch")}
    assert {r["run"]: r["test_ppl"] for r in runs} == {r["run"]: r["test_ppl"] for r in rows(inline, "run")}


@needs_submitit
def test_a_failing_run_and_a_dying_job_are_recorded_and_a_rerun_retries_only_them(
        fake_slurm, tiny_corpus, tmp_path, capsys) -> None:
    out = tmp_path / "sw"
    fails, dies = fake_slurm.planted("fails", FAILING_RUN), fake_slurm.planted("dies", DYING_RUN)
    hazards = [f'[ "$SLURM_ARRAY_TASK_ID" = 1 ] && export PYTHONPATH={fails}',
               f'[ "$SLURM_ARRAY_TASK_ID" = 2 ] && export PYTHONPATH={dies}']
    base = args_for(tiny_corpus, out, *SLURM, models=("GRU",), vary="nhid=16,24,32")
    assert main([*base, *(f for line in hazards for f in ("--setup", line))]) == 1
    assert "2 run(s) failed" in capsys.readouterr().out
    runs = {r["run"]: r for r in rows(out, "run")}
    assert runs["GRU nhid=16"]["status"] == "ok"
    failed = runs["GRU nhid=24"]
    assert failed["status"] == "failed" and failed["error"]["type"] == "RuntimeError"
    assert "planted by the test" in failed["error"]["traceback"] and failed["job_id"].endswith("_1")
    died = runs["GRU nhid=32"]
    assert died["status"] == "failed" and died["error"]["type"] == "JobDied" and died["epochs_done"] == 1
    assert "ended (FAILED) before the run wrote its record" in died["message"]
    assert [r["epoch"] for r in rows(out, "epoch") if r["run"] == "GRU nhid=32"] == [1]  # its epoch is kept
    assert fake_slurm.states()[died["job_id"]] == "FAILED"

    assert main(base) == 0  # no hazards this time
    again = fake_slurm.submissions()
    assert len(again) == 2 and again[1]["options"]["array"].startswith("0-1%")  # only the two unfinished runs
    assert {r["run"]: r["status"] for r in rows(out, "run")[3:]} == {"GRU nhid=24": "ok", "GRU nhid=32": "ok"}
    assert len(rows(out, "epoch")) == 3  # the dead job's epoch 1 was not appended twice


@needs_submitit
def test_ctrl_c_leaves_queued_jobs_and_a_rerun_re_attaches_instead_of_resubmitting(
        fake_slurm, tiny_corpus, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "sw"
    args = args_for(tiny_corpus, out, *SLURM, models=("LSTM",))
    fake_slurm.hold(True)  # the cluster is busy: the jobs stay queued

    def ctrl_c(self: Driver, task: Any) -> None:
        raise KeyboardInterrupt

    real_progress = Driver.progress
    monkeypatch.setattr(Driver, "progress", ctrl_c)
    assert main(args) == 130  # pytest's stdin is no terminal: nothing is asked, the jobs keep their place
    printed = " ".join(capsys.readouterr().out.split())
    queued = json.loads((out / "slurm_jobs.json").read_text())["jobs"]
    ids = sorted(entry["job_id"] for entry in queued.values())
    assert len(ids) == 2 and f"2 slurm job(s) keep running ({', '.join(ids)})" in printed
    assert {fake_slurm.states()[i] for i in ids} == {"PENDING"}
    assert not (fake_slurm.state / "scancel.log").exists()

    monkeypatch.setattr(Driver, "progress", real_progress)
    fake_slurm.hold(False)
    assert main(args) == 0
    assert "re-attaching to 2 job(s) submitted before" in capsys.readouterr().out
    assert len(fake_slurm.submissions()) == 1  # nothing submitted again
    assert sorted(r["job_id"] for r in rows(out, "run")) == ids
    assert all(r["status"] == "ok" for r in rows(out, "run"))


@needs_submitit
def test_cancel_on_exit_cancels_the_submitted_jobs(fake_slurm, tiny_corpus, tmp_path, monkeypatch) -> None:
    from lmprof.config import RunConfig
    from lmprof.sweeps import build_plan, parse_vary, run_sweep
    from lmprof.sweeps.executors import Resources
    from lmprof.sweeps.slurm import SlurmExecutor

    fake_slurm.hold(True)

    def ctrl_c(self: Driver, task: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Driver, "progress", ctrl_c)
    plan = build_plan(RunConfig(data=str(tiny_corpus), emsize=16, epochs=1, max_batches=3, bptt=8), ["LSTM"],
                      [parse_vary("nhid=16,24")])
    asked: list[int] = []
    executor = SlurmExecutor(Resources(cpus_per_run=1, time_min=5), confirm_cancel=lambda n: asked.append(n) or True)
    outcome = run_sweep(plan, tmp_path / "sw", executor, log=lambda line: None)
    assert outcome.interrupted and asked == [2] and not executor.left_running
    cancelled = (fake_slurm.state / "scancel.log").read_text().split()
    assert len(cancelled) == 2 and {fake_slurm.states()[i] for i in cancelled} == {"CANCELLED"}
    assert [r["status"] for r in rows(tmp_path / "sw", "run")] == ["interrupted", "interrupted"]
    assert not json.loads((tmp_path / "sw" / "slurm_jobs.json").read_text())["jobs"]


@needs_submitit
def test_fresh_cancels_the_queued_jobs_of_the_sweep_it_forgets(fake_slurm, tiny_corpus, tmp_path, monkeypatch) -> None:
    from lmprof.config import RunConfig
    from lmprof.sweeps import build_plan, run_sweep
    from lmprof.sweeps.executors import Resources
    from lmprof.sweeps.slurm import SlurmExecutor

    fake_slurm.hold(True)

    def ctrl_c(self: Driver, task: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Driver, "progress", ctrl_c)
    plan = build_plan(RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, epochs=1, max_batches=3, bptt=8),
                      ["LSTM"], [])
    first = SlurmExecutor(Resources(cpus_per_run=1, time_min=5), cancel_on_exit=False)
    run_sweep(plan, tmp_path / "sw", first, log=lambda line: None)
    [old] = first.left_running
    second = SlurmExecutor(Resources(cpus_per_run=1, time_min=5), cancel_on_exit=False)
    run_sweep(plan, tmp_path / "sw", second, fresh=True, log=lambda line: None)
    assert (fake_slurm.state / "scancel.log").read_text().split() == [old]
    assert fake_slurm.states()[old] == "CANCELLED" and len(fake_slurm.submissions()) == 2
    jobs = json.loads((tmp_path / "sw" / "slurm_jobs.json").read_text())["jobs"]
    assert [entry["job_id"] for entry in jobs.values()] == list(second.left_running) != [old]


@pytest.mark.parametrize("flags, message", [
    (["--executor", "slurm"], "--executor slurm needs --time-min"),
    (["--executor", "slurm", "--time-min", "5", "--jobs", "2"], "use --max-parallel 2"),
    (["--executor", "slurm", "--time-min", "5", "--ray-address", "auto"], "--ray-address is for --executor ray"),
    (["--partition", "gpu"], "--partition is for --executor slurm"),
    (["--setup", "module load cuda"], "--setup is for --executor slurm"),
    (["--executor", "ray", "--gpus-per-run", "0.5"], "no fractional GPUs"),
    (["--executor", "ray", "--gpus-per-run", "2"], "a run trains on one device"),
    (["--gpus-per-run", "1"], "--executor inline does not hand out GPUs"),
    (["--jobs", "2", "--time-min", "3"], "--executor local has no time limit"),
    (["--jobs", "2", "--max-parallel", "3"], "disagree"),
    (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be a positive integer"),
    (["--executor", "ray", "--cpus-per-run", "1", "--threads", "2"], "oversubscribe"),
    (["--executor", "ray", "--device", "cuda"], "--gpus-per-run 1"),
])
def test_flags_an_executor_cannot_honour_are_one_line_exit_2(flags, message, tiny_corpus, tmp_path, capsys) -> None:
    if "slurm" in flags and not HAS_SUBMITIT:
        pytest.skip("submitit is not installed")
    if "ray" in flags and importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed")
    out = tmp_path / "sw"
    assert main(["sweep", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@needs_submitit
def test_a_submitit_folder_that_cannot_be_written_and_a_missing_srun_are_one_line(
        tiny_corpus, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "sw"
    out.mkdir()
    (out / RESULTS_FILE).write_text("")
    (out / "submitit").write_text("a file where the folder should be")
    assert main(args_for(tiny_corpus, out, *SLURM)) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "filesystem every node shares" in err

    (out / "submitit").unlink()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no srun here
    assert main(args_for(tiny_corpus, out, *SLURM)) == 2
    assert "no `srun` on PATH" in capsys.readouterr().err
