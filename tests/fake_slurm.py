"""A fake SLURM for the executor tests: sbatch, srun, sacct and scancel as small Python scripts.

The fake runs each job array's elements as real processes (the job script
submitit writes, its `srun` line, the worker), at most --max-parallel at a
time, hands out GPU numbers through CUDA_VISIBLE_DEVICES as SLURM does, and
keeps job states in files that `sacct` reads and `scancel` changes. A HOLD
file keeps jobs queued (PENDING).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
from lmprof.sweeps import worker
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


def install(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    """The four commands on PATH for this test, their state in ``tmp_path``, the executor polling fast."""
    from lmprof.sweeps.slurm import SlurmExecutor

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
    return FakeSlurm(root)


def drain(fake: FakeSlurm) -> None:
    """After a test: let every queued job start and end, then cancel what is left."""
    fake.hold(False)
    ids = [name for name, value in fake.states().items() if value in ("PENDING", "RUNNING")]
    if ids:
        subprocess.run([str(fake.root / "bin" / "scancel"), *ids], check=False)
