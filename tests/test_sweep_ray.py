"""`lmprof sweep --executor ray` on a local Ray cluster that declares two GPUs (one session for every test).

The cluster is started here, as a notebook would, so the executor uses it
as it is. Its workers carry a sitecustomize.py that kills the worker of a
run with seed 4242 after its first epoch: a crash, to check that Ray does
not silently run it again.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from datetime import datetime
from typing import Any, Iterator

import pytest

from lmprof.cli import main
from lmprof.sweeps.worker import read_record
from tests.sweep_cli import args_for, rows

CRASH_ON_SEED_4242 = '''
import os
try:
    from lmprof.sweeps import worker
except Exception:  # a Ray process that is not a worker of this project
    worker = None
if worker is not None:
    real_save = worker.save_record
    def save_then_crash(folder, result):
        real_save(folder, result)
        if result.epochs and result.config["seed"] == 4242:
            os._exit(1)
    worker.save_record = save_then_crash
'''


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed: pip install 'lmprof[ray]'")
    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths must stay under 107 characters
    planted = tmp_path_factory.mktemp("ray-site")
    (planted / "sitecustomize.py").write_text(CRASH_ON_SEED_4242)
    env = {"RAY_TMPDIR": str(temp), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # listen on 127.0.0.1 only (read when ray is imported)
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),  # nothing written to ~/.ray
           "PYTHONPATH": os.pathsep.join(filter(None, [str(planted), os.environ.get("PYTHONPATH")]))}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    import ray

    try:
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False,
                 configure_logging=False)
    finally:  # the workers have their PYTHONPATH; this process's other children must not
        _restore({"PYTHONPATH": saved["PYTHONPATH"]})
    yield ray
    ray.shutdown()
    _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


RAY = ("--executor", "ray", "--gpus-per-run", "1")


def most_at_once(runs: list[dict[str, Any]]) -> int:
    marks = sorted([(datetime.fromisoformat(r["started"]), 1) for r in runs] +
                   [(datetime.fromisoformat(r["finished"]), -1) for r in runs])
    now = most = 0
    for _, step in marks:
        now += step
        most = max(most, now)
    return most


def test_one_gpu_runs_own_their_gpu_at_most_two_at_once_with_the_inline_numbers(
        ray_cluster, tiny_corpus, tmp_path) -> None:
    out = tmp_path / "ray"
    # the test cluster's two GPUs are made up: the runs train on the CPU, also on a real GPU machine
    assert main(args_for(tiny_corpus, out, *RAY, "--device", "cpu")) == 0
    runs = rows(out, "run")
    assert len(runs) == 4 and all(r["status"] == "ok" and r["executor"] == "ray" for r in runs)
    assert all(r["scheduler"] == "ray" and r["attempt"] == 1 and r["threads"] == 1 for r in runs)
    assert len({r["job_id"] for r in runs}) == 4  # each run's own Ray task id
    assert all(r["cuda_visible_devices"] in ("0", "1") for r in runs)  # Ray gave each its GPU
    assert most_at_once(runs) <= 2
    spans = [(datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["finished"]), r) for r in runs]
    for i, (s1, e1, a) in enumerate(spans):
        for s2, e2, b in spans[i + 1:]:
            if s1 < e2 and s2 < e1:  # at the same time: never the same GPU
                assert a["cuda_visible_devices"] != b["cuda_visible_devices"]

    inline = tmp_path / "inline"
    assert main(args_for(tiny_corpus, inline, "--device", "cpu")) == 0
    same = ("run", "epoch", "val_loss", "val_ppl", "lr", "batches", "tokens", "threads")
    assert sorted(tuple(r[k] for k in same) for r in rows(out, "epoch")) == \
        sorted(tuple(r[k] for k in same) for r in rows(inline, "epoch"))
    assert {r["run"]: r["test_ppl"] for r in runs} == {r["run"]: r["test_ppl"] for r in rows(inline, "run")}


def test_a_crashed_run_is_reported_once_not_retried(ray_cluster, tiny_corpus, tmp_path, capsys) -> None:
    out = tmp_path / "crash"
    flags = ["--nhid", "16", "--epochs", "2"]
    assert main(args_for(tiny_corpus, out, *RAY, models=("LSTM",), vary="seed=4242,1") + flags) == 1
    assert "1 run(s) failed" in capsys.readouterr().out
    runs = {r["run"]: r for r in rows(out, "run")}
    crashed = runs["LSTM seed=4242"]
    assert crashed["status"] == "failed" and crashed["error"]["type"] == "WorkerDied"
    assert "the Ray worker ended before the run wrote its record" in crashed["message"]
    assert crashed["epochs_done"] == 1 and runs["LSTM seed=1"]["status"] == "ok"
    log = next((out / "runs").glob("LSTM_seed=4242-*")).joinpath("train.log").read_text()
    assert log.count("started") == 1  # max_retries=0: Ray did not run it again


def test_time_min_stops_a_run_that_runs_past_it(ray_cluster, tiny_corpus, tmp_path) -> None:
    out = tmp_path / "slow"
    long_run = ["--epochs", "300", "--max-batches", "20", "--lr", "1", "--time-min", "0.04"]  # 2.4 s
    assert main(args_for(tiny_corpus, out, *RAY, models=("LSTM",), vary="nhid=16") + long_run) == 1
    [run] = rows(out, "run")
    assert run["status"] == "failed" and run["error"]["type"] == "TimeLimit"
    assert "--time-min 0.04" in run["message"] and run["epochs_done"] < 300


def test_ctrl_c_interrupts_the_ray_runs_which_write_their_record(
        ray_cluster, tiny_corpus, tmp_path, ctrl_c_after_first_row) -> None:
    out = tmp_path / "sw"
    long_run = ["--epochs", "300", "--max-batches", "20", "--lr", "1"]
    assert main(args_for(tiny_corpus, out, *RAY, models=("LSTM",)) + long_run) == 130
    runs = rows(out, "run")
    assert runs and all(r["status"] == "interrupted" for r in runs)
    records = [read_record(p) or {} for p in (out / "runs").iterdir()]
    # the stop request reached a started run: it stopped training, tested, and wrote its own record
    assert any(r["status"] == "interrupted" and r["epochs"] and r["test_ppl"] for r in records)
    assert not list((out / "runs").glob("*/stop-requested"))
    assert all(r["epochs_done"] < 300 for r in runs)
