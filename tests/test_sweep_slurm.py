"""`lmprof sweep --executor slurm` through submitit, against a fake SLURM (sbatch, srun, sacct, scancel).

The fake runs each job array's elements as real processes (the job script
submitit writes, its `srun` line, the worker), at most --max-parallel at a
time, hands out GPU numbers through CUDA_VISIBLE_DEVICES as SLURM does, and
keeps job states in files that `sacct` reads and `scancel` changes. A HOLD
file keeps jobs queued (PENDING).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lmprof.cli import main
from lmprof.sweep.driver import Driver
from lmprof.sweep.store import RESULTS_FILE
from tests.sweep_cli import args_for, rows
from lmprof.views.plots import run_artists, sweep_figures
from lmprof.views.sweep_tables import sweep_tables, sweep_view, summary_rows
from tests.test_sweep_tables import sweep_data

HAS_SUBMITIT = importlib.util.find_spec("submitit") is not None
needs_submitit = pytest.mark.skipif(not HAS_SUBMITIT, reason="submitit is not installed: pip install 'lmprof[slurm]'")

FAKE_SLURM = r'''
"""A fake SLURM over a state folder: enough of sbatch, srun, sacct and scancel for submitit."""
import json, os, re, shlex, signal, subprocess, sys, time
from pathlib import Path

STATE = Path(os.environ["FAKE_SLURM_DIR"])
JOBS = STATE / "jobs"
GPUS = 2  # on the fake node


def state(name):
    try:
        return (JOBS / name).read_text()
    except OSError:
        return None


def set_state(name, value):
    tmp = JOBS / f".{name}.tmp"
    tmp.write_text(value)
    tmp.replace(JOBS / name)


def next_id():
    import fcntl
    with open(os.environ["FAKE_SLURM_COUNTER"], "a+") as f:  # unique across a test session
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        number = int(f.read() or 4000) + 1
        f.seek(0)
        f.truncate()
        f.write(str(number))
    return number


def sbatch():
    text = Path(sys.argv[-1]).read_text()
    options = {m[0]: (shlex.split(m[1])[0] if m[1] else True)
               for m in re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", text, re.M)}
    job = next_id()
    JOBS.mkdir(parents=True, exist_ok=True)
    (STATE / f"{job}.sh").write_text(text)
    (STATE / f"{job}.json").write_text(json.dumps(options))
    with open(STATE / "submissions.jsonl", "a") as f:
        f.write(json.dumps({"job": job, "options": options, "script": text}) + "\n")
    for name in names(job, options):
        set_state(name, "PENDING")
    subprocess.Popen([sys.executable, __file__, "schedule", str(job)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"Submitted batch job {job}")


def names(job, options):
    if "array" not in options:
        return [str(job)]
    first, last = options["array"].split("%")[0].split("-")
    return [f"{job}_{i}" for i in range(int(first), int(last) + 1)]


def schedule(job):
    """One array: start its elements as slots and GPUs free up; record how each ended."""
    options = json.loads((STATE / f"{job}.json").read_text())
    parallel = int(options.get("array", "0-0%1").split("%")[-1]) if "array" in options else 1
    gpus_each = int(options.get("gpus-per-node", 0))
    pending, running, free = names(job, options), {}, list(range(GPUS))
    while pending or running:
        while pending and len(running) < parallel and len(free) >= gpus_each and not (STATE / "HOLD").exists():
            name = pending.pop(0)
            if state(name) == "CANCELLED":
                continue
            gpus = [free.pop(0) for _ in range(gpus_each)]
            env = dict(os.environ, SLURM_JOB_ID=str(next_id()), SLURM_JOB_NODELIST="fakenode", SLURM_NTASKS="1",
                       SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0", SLURM_JOB_NUM_NODES="1",
                       SLURM_CPUS_PER_TASK=str(options.get("cpus-per-task", 1)))
            if "_" in name:
                env.update(SLURM_ARRAY_JOB_ID=str(job), SLURM_ARRAY_TASK_ID=name.split("_")[1])
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
            with open(STATE / f"{name}.batch.log", "w") as log:
                process = subprocess.Popen(["bash", str(STATE / f"{job}.sh")], env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
            (STATE / f"{name}.pid").write_text(str(process.pid))
            set_state(name, "RUNNING")
            running[name] = (process, gpus)
        for name, (process, gpus) in list(running.items()):
            code = process.poll()
            if code is not None:
                del running[name]
                free.extend(gpus)
                if state(name) != "CANCELLED":
                    set_state(name, "COMPLETED" if code == 0 else "FAILED")
        time.sleep(0.05)


def srun():
    args, paths = sys.argv[1:], {}
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in ("--output", "--error"):
            paths[flag] = args.pop(0)
    env = os.environ
    array, index = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")

    def expand(path):
        return (path.replace("%A", array or "").replace("%a", index or "")
                .replace("%j", env["SLURM_JOB_ID"]).replace("%t", "0"))

    with open(expand(paths["--output"]), "a") as out, open(expand(paths.get("--error", paths["--output"])), "a") as err:
        sys.exit(subprocess.call(args, stdout=out, stderr=err))


def sacct():
    wanted = {sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "-j"}
    print("JobID|State|NodeList")
    for path in sorted(JOBS.iterdir()) if JOBS.exists() else []:
        if not path.name.startswith(".") and path.name.split("_")[0] in wanted:
            print(f"{path.name}|{path.read_text()}|fakenode")


def scancel():
    with open(STATE / "scancel.log", "a") as log:
        log.write(" ".join(sys.argv[1:]) + "\n")
    for arg in (a for a in sys.argv[1:] if not a.startswith("-")):
        for path in list(JOBS.iterdir()) if JOBS.exists() else []:
            if path.name == arg or (path.name.split("_")[0] == arg and "_" not in arg):
                if state(path.name) in ("PENDING", "RUNNING"):
                    set_state(path.name, "CANCELLED")
                    pid = STATE / f"{path.name}.pid"
                    if pid.exists():
                        try:
                            os.killpg(int(pid.read_text()), signal.SIGKILL)
                        except OSError:
                            pass


if __name__ == "__main__":
    schedule(int(sys.argv[2]))
'''

# A run that raises (as a CUDA out-of-memory would): the worker records the failure itself.
FAILING_RUN = '''
import lmprof.runner
def broken_run(*args, **kwargs):
    raise RuntimeError("CUDA error: out of memory (planted by the test)")
lmprof.runner.run = broken_run
'''
# A job killed after its first epoch (as by the OOM killer): no end to its record, no result file.
DYING_RUN = '''
import os
from lmprof.sweep import worker
real_save = worker.save_record
def save_then_die(folder, result):
    real_save(folder, result)
    if result.epochs:
        os._exit(137)
worker.save_record = save_then_die
'''


class FakeSlurm:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"

    def submissions(self) -> list[dict[str, Any]]:
        path = self.state / "submissions.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def states(self) -> dict[str, str]:
        jobs = self.state / "jobs"
        return {p.name: p.read_text() for p in jobs.iterdir() if not p.name.startswith(".")} if jobs.exists() else {}

    def hold(self, on: bool) -> None:
        (self.state / "HOLD").touch() if on else (self.state / "HOLD").unlink(missing_ok=True)

    def planted(self, name: str, code: str) -> Path:
        """A folder whose sitecustomize.py plants a failure in the job that puts it on PYTHONPATH."""
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(code)
        return folder


@pytest.fixture
def fake_slurm(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    if not HAS_SUBMITIT:
        pytest.skip("submitit is not installed: pip install 'lmprof[slurm]'")
    from lmprof.sweep.slurm import SlurmExecutor

    root = tmp_path / "fake-slurm"
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    (root / "state").mkdir()
    (bin_dir / "fakeslurm.py").write_text(FAKE_SLURM)
    for command in ("sbatch", "srun", "sacct", "scancel"):
        script = bin_dir / command
        script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(bin_dir)!r})\n"
                          f"import fakeslurm\nfakeslurm.{command}()\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(root / "state"))
    monkeypatch.setenv("FAKE_SLURM_COUNTER", str(tmp_path_factory.getbasetemp() / "fake-slurm-ids"))
    monkeypatch.setattr(SlurmExecutor, "poll_seconds", 0.2)
    monkeypatch.setattr(SlurmExecutor, "sacct_seconds", 1.0)
    fake = FakeSlurm(root)
    yield fake
    fake.hold(False)  # let every queued job start and end, then cancel what is left
    ids = [name for name, value in fake.states().items() if value in ("PENDING", "RUNNING")]
    if ids:
        import subprocess

        subprocess.run([str(bin_dir / "scancel"), *ids], check=False)


SLURM = ("--executor", "slurm", "--time-min", "5")


def overlapping(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    spans = [(datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["finished"]), r) for r in runs]
    return [(a, b) for i, (s1, e1, a) in enumerate(spans) for s2, e2, b in spans[i + 1:] if s1 < e2 and s2 < e1]


@needs_submitit
def test_one_job_array_with_the_flags_gives_the_inline_numbers(fake_slurm, tiny_corpus, tmp_path) -> None:
    out = tmp_path / "slurm"
    flags = [*SLURM, "--partition", "debug", "--gpus-per-run", "1", "--max-parallel", "2", "--constraint", "fake",
             "--setup", "export FROM_SETUP=yes", "--setup", "echo set up on $SLURM_JOB_NODELIST", "--exclusive"]
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
    assert main(args_for(tiny_corpus, inline)) == 0
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
    from lmprof.sweep import build_plan, parse_vary, run_sweep
    from lmprof.sweep.executors import Resources
    from lmprof.sweep.slurm import SlurmExecutor

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
    from lmprof.sweep import build_plan, run_sweep
    from lmprof.sweep.executors import Resources
    from lmprof.sweep.slurm import SlurmExecutor

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


def render(view: Any, mixed: bool) -> str:
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(sweep_tables(view, mixed_hardware=mixed))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_runs_of_one_table_on_different_hardware_are_not_put_side_by_side() -> None:
    gpus = {("LSTM", 16): "A100", ("GRU", 16): "A100", ("LSTM", 24): "A100", ("GRU", 24): "V100"}
    view = sweep_view(*hardware_rows(gpus))
    text = render(view, mixed=False)
    flat = " ".join(text.split())
    assert "mixed hardware: times hidden" in flat and "--mixed-hardware" in flat
    assert "A100: LSTM nhid=16, GRU nhid=16, LSTM nhid=24; V100: GRU nhid=24" in flat
    assert table_row(text, "16", "1") == ["16", "1", "—", "400.00", "—", "600.00"]  # times hidden, ppl shown
    figures = sweep_figures(view)
    assert not run_artists(figures["epoch_time"]) and not run_artists(figures["ppl_vs_time"])
    assert "different hardware" in figures["epoch_time"].axes[0].texts[0].get_text()
    assert len(run_artists(figures["val_ppl"])) == 4

    shown = render(view, mixed=True)
    assert table_row(shown, "16", "1") == ["16", "1", "1.00", "400.00", "2.00", "600.00"]
    assert "compare with care" in " ".join(shown.split())
    allowed = sweep_figures(view, mixed_hardware=True)
    assert len(run_artists(allowed["epoch_time"])) == 4
    assert "mixed hardware" in allowed["epoch_time"].axes[0].get_title(loc="left")
    assert {r["run"]: r["hardware"] for r in summary_rows(view)}["GRU nhid=24"] == "V100"


def test_same_hardware_on_several_hosts_is_said_and_shown() -> None:
    view = sweep_view(*hardware_rows({k: "A100" for k in [("LSTM", 16), ("GRU", 16), ("LSTM", 24), ("GRU", 24)]}))
    text = render(view, mixed=False)
    flat = " ".join(text.split())
    assert "4 hosts of the same hardware (A100)" in flat and "hidden" not in flat
    assert table_row(text, "16", "1")[2] == "1.00"
    assert len(run_artists(sweep_figures(view)["epoch_time"])) == 4

