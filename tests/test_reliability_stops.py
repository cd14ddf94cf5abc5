"""Runs that stop early: signals, SIGKILL, a full disk, a download that stalls, grows or is cut off."""

from __future__ import annotations

import errno
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from lmprof.cli import main
from lmprof.errors import UsageError
from lmprof.record.result import RunResult

# --- SIGINT, SIGTERM, SIGKILL ----------------------------------------------------------------

def start_profile(tiny_corpus: Path, folder: Path) -> subprocess.Popen[str]:
    """`lmprof profile` in its own process, for many epochs: long enough to be stopped by a signal."""
    argv = [sys.executable, "-m", "lmprof", "profile", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16",
            "--bptt", "8", "--epochs", "500", "--out", str(folder), "--threads", "1"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_an_epoch(process: subprocess.Popen[str], folder: Path, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if json.loads((folder / "result.json").read_text())["metrics"]["epochs"]:
                return
        except (OSError, ValueError, KeyError):
            pass  # not written yet
        time.sleep(0.05)
    process.kill()
    pytest.fail("no epoch finished in time")


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_keep_every_table_and_exit_as_interrupted(tiny_corpus: Path, tmp_path: Path,
                                                                     signum: int, status: int) -> None:
    folder = tmp_path / "run"
    process = start_profile(tiny_corpus, folder)
    wait_for_an_epoch(process, folder)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == status, err[-2000:]
    assert "Traceback" not in err
    result = RunResult.load(folder)
    assert result.status == "interrupted" and result.epochs
    assert result.phases and result.lines["functions"][0]["lines"]  # the tables SIGTERM used to lose
    assert "Exiting from training early" in out  # upstream's own words, for both signals


def test_after_sigkill_show_says_the_run_never_finished(tiny_corpus: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "run"
    process = start_profile(tiny_corpus, folder)
    wait_for_an_epoch(process, folder)
    process.kill()
    process.communicate(timeout=60)
    assert main(["show", str(folder)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"this run never finished: its process ({process.pid}) is gone" in out
    assert RunResult.load(folder).status == "running"  # the file still says so; show tells the truth


def test_a_trace_interrupted_in_the_profilers_start_up_writes_what_it_has(
        tiny_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import torch.profiler

    def ctrl_c(self: Any) -> None:  # Ctrl-C while torch.profiler sets itself up for the warm-up step
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.profiler.profile, "prepare_trace", ctrl_c)
    assert main(["trace", *tiny_args]) == 130
    out = capsys.readouterr().out
    assert "no trace was written" in out
    result = RunResult.load(tmp_path / "run")
    assert result.status == "interrupted" and result.phases and result.ops["rows"] == []


# --- a full disk -------------------------------------------------------------------------------

def full_disk_for(name: str, after: int = 0) -> Any:
    """An atomic_file that fails like a full disk for files called ``name`` (after ``after`` good writes)."""
    from lmprof.fsutil import atomic_file

    calls = {"n": 0}

    @contextmanager
    def failing(path: Any) -> Iterator[Any]:
        with atomic_file(path) as f:
            yield f
            if Path(path).name == name:
                calls["n"] += 1
                if calls["n"] > after:
                    f.write(b"half a file")
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return failing


def test_a_full_disk_at_the_checkpoint_keeps_the_tables_and_leaves_no_temp_file(
        tiny_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import lmprof.reference.loop

    monkeypatch.setattr(lmprof.reference.loop, "atomic_file", full_disk_for("model.pt"))
    assert main(["profile", *tiny_args]) == 2
    err = capsys.readouterr().err.strip()
    folder = tmp_path / "run"
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "cannot write model.pt" in err and "No space left on device" in err
    assert f"{folder / 'result.json'} holds 1 finished epoch, phases and lines tables" in err
    assert sorted(p.name for p in folder.iterdir()) == ["lines.lprof", "result.json"]  # no temp file, no model.pt
    result = RunResult.load(folder)
    assert result.status == "failed" and len(result.epochs) == 1 and result.phases and result.lines


def test_a_full_disk_for_result_json_says_what_the_file_still_holds(
        tiny_args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import lmprof.fsutil

    monkeypatch.setattr(lmprof.fsutil, "atomic_file", full_disk_for("result.json", after=2))
    assert main(["train", *tiny_args]) == 2  # the start and the first epoch are saved; the end is not
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write result.json" in err
    assert "result.json there keeps what was saved before" in err
    kept = RunResult.load(tmp_path / "run")  # still valid JSON: the failed write never replaced it
    assert kept.status == "running" and len(kept.epochs) == 1
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def test_atomic_file_removes_its_temp_file_on_any_error(tmp_path: Path) -> None:
    from lmprof.fsutil import atomic_file, write_text_atomic

    write_text_atomic(tmp_path / "x.json", "old")
    for error in (OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with atomic_file(tmp_path / "x.json") as f:
                f.write(b"new, half")
                raise error
        assert [p.name for p in tmp_path.iterdir()] == ["x.json"] and (tmp_path / "x.json").read_text() == "old"


# --- the WikiText-2 download against a server of our own ------------------------------------------

class Misbehaving(http.server.BaseHTTPRequestHandler):
    """/slow trickles a byte at a time; /big sends far too much (with or without saying so); /cut hangs up early."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        kind = self.path.strip("/").split("/")[0]
        self.send_response(200)
        if kind == "big-declared":
            self.send_header("Content-Length", str(10**9))
        elif kind in ("slow", "cut"):
            self.send_header("Content-Length", "20000")
        self.end_headers()
        try:
            if kind == "slow":
                for _ in range(10_000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.02)
            elif kind == "big":
                for _ in range(100):
                    self.wfile.write(b"y" * 10_000)
            elif kind == "cut":
                self.wfile.write(b"z" * 10)
        except OSError:
            pass  # the client gave up, as it should
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("kind, message", [
    ("slow", "time limit"), ("big", "sent more than 40,000 bytes"), ("big-declared", "far more than train.txt"),
    ("cut", "cut off"),
])
def test_a_misbehaving_server_is_one_clear_error_and_leaves_no_folder(
        server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, message: str) -> None:
    from lmprof.corpora import wikitext

    monkeypatch.setattr(wikitext, "EXPECTED_BYTES", {name: 10_000 for name in wikitext.BLOB_IDS})
    started = time.monotonic()
    with pytest.raises(UsageError, match=message):
        wikitext.download(tmp_path / "dest", base_url=f"{server}/{kind}", timeout=5, time_limit=1.0)
    assert time.monotonic() - started < 10  # the time limit holds even though every read gets a byte
    assert not (tmp_path / "dest").exists()


def test_a_bad_url_is_one_line_and_leaves_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for url in ("notaurl", "ftp://example.org/x", "http://"):
        assert main(["data", "wikitext-2", "--dest", str(tmp_path / "dl"), "--url", url]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("lmprof data: error: --url") and len(err.splitlines()) == 1
        assert not (tmp_path / "dl").exists()


def test_a_failed_download_keeps_an_existing_folder(server: str, tmp_path: Path) -> None:
    from lmprof.corpora import wikitext

    (tmp_path / "mine").mkdir()
    with pytest.raises(UsageError):
        wikitext.download(tmp_path / "mine", base_url=f"{server}/cut", timeout=5)
    assert (tmp_path / "mine").is_dir()  # the user's folder, not ours to remove


def test_a_full_disk_in_a_sweep_is_one_line(tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.sweeps.store import ResultStore

    def no_space(self: ResultStore, row: dict[str, Any]) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    monkeypatch.setattr(ResultStore, "append", no_space)
    argv = ["sweep", "--models", "LSTM", "--vary", "nhid=16", "--emsize", "16", "--epochs", "1", "--max-batches", "2",
            "--bptt", "8", "--data", str(tiny_corpus), "--out", str(tmp_path / "sw")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == (f"lmprof sweep: error: cannot write {tmp_path / 'sw' / 'results.jsonl'}: "
                                    "No space left on device")
    assert "Traceback" not in err
