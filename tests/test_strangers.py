"""A stranger's run folder is data (issue 26): no link followed, no control character printed, sizes capped.

One real tiny run is made once for the module (phases, lines, components, memory,
a checkpoint); each test tampers a copy of it the way a hostile or careless sender
could, and runs the readers on it in-process: report, show, compare, diagram --from,
the API, trace --into, gradflow --from, sweep folders.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from lmprof import cli

ESC = "\x1b]0;pwned\x07\x1b[2J\x1b]8;;http://evil.example/\x1b\\CLICKME\x1b]8;;\x1b\\\x1b[31mRED"
RAW = (b"\x1b]", b"\x1b[", b"\x07", b"\x1b")  # none of these may reach the terminal


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """A real tiny profiled run: phases, line table, components, memory, model.pt (trained once per module)."""
    folder = tmp_path_factory.mktemp("stranger") / "run"
    code = cli.main(["profile", "--fn", "train", "--components", "--memory", "--data", str(tiny_corpus),
                     "--emsize", "16", "--nhid", "16", "--epochs", "1", "--max-batches", "4", "--bptt", "8",
                     "--threads", "1", "--device", "cpu", "--out", str(folder)])
    assert code == 0
    return folder


def copy_of(run_folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    target = tmp_path / name
    shutil.copytree(run_folder, target, symlinks=True)
    return target


def edit_result(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / "result.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def run_cli(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err


# --- 1. symlinks out of the folder are never followed ------------------------------------------
@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    marker = f"MARKER-{os.getpid()}-SECRET"
    path = tmp_path / "secret.txt"
    path.write_text(marker + "\n")
    return path, marker


def test_report_does_not_inline_figures_linked_out_of_the_folder(run_folder: Path, tmp_path: Path,
                                                                 secret: tuple[Path, str],
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    path, marker = secret
    folder = copy_of(run_folder, tmp_path)
    for name in ("bptt.svg", "flow.svg", "report.html", "gradflow.svg"):
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(path)
    code, out, err = run_cli(capfd, "report", str(folder))
    assert code == 0, err
    page = (folder / "report.html").read_text()
    assert not (folder / "report.html").is_symlink()  # replaced, never written through
    assert path.read_text() == marker + "\n"
    encoded = base64.b64encode(marker.encode()).decode()[:16]
    assert marker not in page and encoded not in page
    assert "is a symbolic link: not followed" in page


def test_a_fifo_figure_does_not_hang_the_report(run_folder: Path, tmp_path: Path,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(run_folder, tmp_path)
    (folder / "bptt.svg").unlink(missing_ok=True)
    os.mkfifo(folder / "bptt.svg")
    code, out, err = run_cli(capfd, "report", str(folder))
    assert code == 0, err
    assert "is not a regular file" in (folder / "report.html").read_text()


def test_a_member_that_is_a_folder_is_one_line_when_written(run_folder: Path, tmp_path: Path,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(run_folder, tmp_path)
    (folder / "flow.svg").unlink(missing_ok=True)
    (folder / "flow.svg").mkdir()
    code, out, err = run_cli(capfd, "diagram", "flow", "--from", str(folder), "--format", "svg")
    one_line_error(code, err)
    assert "flow.svg: Is a directory" in err


def test_the_api_and_notebook_do_not_follow_a_linked_figure(run_folder: Path, tmp_path: Path,
                                                            secret: tuple[Path, str]) -> None:
    import lmprof

    path, marker = secret
    folder = copy_of(run_folder, tmp_path)
    (folder / "bptt.svg").unlink(missing_ok=True)
    (folder / "bptt.svg").symlink_to(path)
    html = lmprof.load(folder)._repr_html_()
    assert html and marker not in html and base64.b64encode(marker.encode()).decode()[:16] not in html


@pytest.mark.parametrize("command", ["show", "report", "compare", "diagram", "gradflow", "trace"])
def test_a_linked_result_json_is_refused_by_every_reader(command: str, run_folder: Path, tmp_path: Path,
                                                         secret: tuple[Path, str],
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    path, marker = secret
    folder = copy_of(run_folder, tmp_path)
    real = folder / "real.json"
    (folder / "result.json").rename(real)
    (folder / "result.json").symlink_to(real)  # even a link inside the folder: a member is read as itself
    argv = {"show": ["show", str(folder)], "report": ["report", str(folder)],
            "compare": ["compare", str(run_folder), str(folder)],
            "diagram": ["diagram", "flow", "--from", str(folder), "--format", "dot"],
            "gradflow": ["gradflow", "--from", str(folder)], "trace": ["trace", "--into", str(folder)]}[command]
    code, out, err = run_cli(capfd, *argv)
    one_line_error(code, err)
    assert "symbolic link" in err and marker not in out + err


def test_gradflow_does_not_read_a_linked_checkpoint(run_folder: Path, tmp_path: Path,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(run_folder, tmp_path)
    elsewhere = tmp_path / "model-elsewhere.pt"
    (folder / "model.pt").rename(elsewhere)
    (folder / "model.pt").symlink_to(elsewhere)
    code, out, err = run_cli(capfd, "gradflow", "--from", str(folder))
    one_line_error(code, err)
    assert "model.pt is a symbolic link" in err


def test_sweep_files_are_neither_read_nor_written_through_links(tmp_path: Path, secret: tuple[Path, str],
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    from lmprof.safe_files import UnsafeMember
    from lmprof.sweeps.store import ResultStore, SweepLock

    path, marker = secret
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "sweep.json").symlink_to(path)
    code, out, err = run_cli(capfd, "show", str(folder))
    one_line_error(code, err)
    assert marker not in out + err
    (folder / "sweep.json").unlink()
    (folder / "results.jsonl").symlink_to(path)
    (folder / ".lock").symlink_to(path)
    with pytest.raises(UnsafeMember):
        ResultStore(folder)
    with pytest.raises(UnsafeMember):
        SweepLock(folder).__enter__()
    assert path.read_text() == marker + "\n"  # neither truncated nor appended to


# --- 2. no control character from a file reaches the terminal ---------------------------------
def poison(value: Any, key: str = "") -> Any:
    """Every string of a parsed result.json with the escape payload added (names the views match on kept)."""
    if isinstance(value, dict):
        return {k: poison(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [poison(v, key) for v in value]
    if isinstance(value, str) and key not in ("name", "unit", "model", "clock", "status", "device"):
        return value + ESC
    return value


@pytest.fixture
def poisoned(run_folder: Path, tmp_path: Path) -> Path:
    folder = copy_of(run_folder, tmp_path, "poisoned" + ESC[:12].replace("/", "_"))

    def change(doc: dict[str, Any]) -> None:
        doc.update(poison(doc))
        doc["config"]["model_note"] = ESC
        doc["environment"]["host"] = "h" + ESC
        doc["metrics"]["message"] = ESC
        doc["phases"][0]["label"] += "[link=http://evil.example/]x[/link][/oops]"
        doc["components"]["rows"][0]["name"] = "drop#" + ESC
        doc["memory"]["phases"][ESC] = {"rss_peak_bytes": 1}
    edit_result(folder, change)
    return folder


def assert_inert(text: str) -> None:
    raw = text.encode()
    assert not [s for s in RAW if s in raw], repr(text[:400])
    assert "evil.example" not in text or "\\x1b]8;;http://evil.example/" in text


@pytest.mark.parametrize("command", ["show", "compare", "diagram"])
def test_strings_from_result_json_are_printed_inert(command: str, poisoned: Path, run_folder: Path,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    argv = {"show": ["show", str(poisoned)], "compare": ["compare", str(run_folder), str(poisoned)],
            "diagram": ["diagram", "flow", "--from", str(poisoned), "--format", "dot"]}[command]
    code, out, err = run_cli(capfd, *argv)
    assert code == 0, err
    assert_inert(out)
    assert_inert(err)
    if command == "show":
        assert "\\x1b]0;pwned\\x07\\x1b[2J" in out  # made visible, not dropped: the reader sees what was there


def test_repr_and_notebook_html_of_a_poisoned_run_are_inert(poisoned: Path) -> None:
    import lmprof

    run = lmprof.load(poisoned)
    assert_inert(repr(run))
    html = run._repr_html_()
    assert html and "\x1b" not in html and "\x07" not in html


def test_report_of_a_poisoned_run_is_written(poisoned: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capfd, "report", str(poisoned))
    assert code == 0, err
    page = (poisoned / "report.html").read_text()
    assert "\x1b" not in page and "<a href=\"http://evil" not in page


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """A real tiny sweep: two runs of one batch."""
    folder = tmp_path_factory.mktemp("stranger-sweep") / "sweep"
    code = cli.main(["sweep", "--data", str(tiny_corpus), "--epochs", "1", "--max-batches", "1", "--emsize", "16",
                     "--nhid", "16", "--bptt", "8", "--threads", "1", "--device", "cpu", "--vary", "nhid=16,24",
                     "--out", str(folder)])
    assert code == 0
    return folder


def test_a_poisoned_sweep_folder_prints_and_reports_inert(sweep_folder: Path, tmp_path: Path,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(sweep_folder, tmp_path, "sweep")
    plan = json.loads((folder / "sweep.json").read_text())
    plan["name"] += ESC + "[/x]"
    for run in plan["runs"]:
        run["label"] += ESC
    for group in plan["groups"]:
        group["factor"] += ESC + "[link=http://evil.example/]L[/link]"
        for row in group["rows"]:
            row["value"] += ESC + "[/x]"
    (folder / "sweep.json").write_text(json.dumps(plan))
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    for row in rows:
        row["run"] += ESC
        if row["kind"] == "run":
            row.update(message=ESC, host="h" + ESC)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run_cli(capfd, "show", str(folder))
    assert code == 0, err
    assert_inert(out)
    assert_inert(err)
    assert "\\x1b]0;pwned" in out
    code, out, err = run_cli(capfd, "report", str(folder))
    assert code == 0, err
    page = (folder / "report.html").read_text()
    assert "\x1b" not in page and '<a href="http://evil' not in page


def test_a_damaged_sweep_plan_is_one_line_and_a_damaged_row_is_left_out(sweep_folder: Path, tmp_path: Path,
                                                                         capfd: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(sweep_folder, tmp_path, "sweep")
    rows = (folder / "results.jsonl").read_text()
    damaged = json.loads(rows.splitlines()[0])
    damaged.update(epoch=[1], train_seconds="slow")
    (folder / "results.jsonl").write_text(json.dumps(damaged) + "\n" + rows)
    code, out, err = run_cli(capfd, "show", str(folder))
    assert code == 0 and "Traceback" not in err
    plan = json.loads((folder / "sweep.json").read_text())
    plan["models"].append("GRU")  # a model no run was made for
    (folder / "sweep.json").write_text(json.dumps(plan))
    for argv in (["show", str(folder)], ["report", str(folder)]):
        code, out, err = run_cli(capfd, *argv)
        one_line_error(code, err)
        assert "sweep.json is damaged" in err


def test_the_command_line_console_keeps_printed_strings_inert() -> None:
    import io

    from rich.table import Table

    from lmprof.commands.console import make_console

    console = make_console()
    console.file = io.StringIO()
    table = Table()
    table.add_column("a")
    table.add_row("[link=http://evil.example/]CLICK[/link]" + ESC)
    console.print(table)
    console.print(f"folder {ESC} [/unbalanced]")
    text = console.file.getvalue()
    assert_inert(text)
    assert "[link=http://evil.example/]CLICK[/link]" in text  # shown as text, not made a link


# --- 3. sizes are capped ------------------------------------------------------------------------
def test_a_million_samples_are_thinned_on_reading_and_compare_stays_small(run_folder: Path, tmp_path: Path,
                                                                          capfd: pytest.CaptureFixture[str]) -> None:
    import resource

    from lmprof.record.check import SAMPLES_READ

    folder = copy_of(run_folder, tmp_path)

    def change(doc: dict[str, Any]) -> None:
        row = next(r for r in doc["phases"] if r.get("samples"))
        row["samples"] = [row["samples"][0]] * 1_000_000
    edit_result(folder, change)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    code, out, err = run_cli(capfd, "compare", str(run_folder), str(folder))
    seconds = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) * 1024
    assert code == 0, err
    assert f"thinned to at most {SAMPLES_READ:,} per phase" in err
    assert grown < 1.5e9, f"{grown / 1e9:.1f} GB"  # it took 24 GB before the cap; reading the file is ~0.3 GB
    assert seconds < 120  # a ceiling against a runaway (it took minutes), not a speed target


def test_long_strings_and_row_counts_are_cut_with_one_note(run_folder: Path, tmp_path: Path,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    from lmprof.record.check import ROWS_READ

    folder = copy_of(run_folder, tmp_path)

    def change(doc: dict[str, Any]) -> None:
        doc["config"]["data"] = "d" * 10_000_000
        function = doc["lines"]["functions"][0]
        function["lines"] = [dict(function["lines"][0], line=i + 1) for i in range(ROWS_READ * 4)]
    edit_result(folder, change)
    code, out, err = run_cli(capfd, "show", str(folder))
    assert code == 0, err
    assert len(out) < 2_000_000
    assert "string(s) longer than" in err and f"only the first rows read of lines of train ({ROWS_READ:,})" in err


def test_a_result_json_over_its_cap_is_not_read(run_folder: Path, tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    from lmprof.safe_files import RESULT_BYTES

    folder = copy_of(run_folder, tmp_path)
    with open(folder / "result.json", "ab") as f:
        f.write(b" " * (RESULT_BYTES + 1))  # still valid JSON: only its size is wrong
    code, out, err = run_cli(capfd, "show", str(folder))
    one_line_error(code, err)
    assert "MiB lmprof reads" in err


def test_the_recorder_keeps_a_bounded_aligned_sample_of_a_long_run() -> None:
    from lmprof.instrument.recorders import SAMPLES_KEPT, HostRecorder, phase_rows
    from lmprof.phases import STEP_PHASES

    ticks = iter(range(10**9))
    recorder = HostRecorder(clock=lambda: float(next(ticks)))
    batches = 3 * SAMPLES_KEPT + 5
    for _ in range(batches):
        for name in STEP_PHASES:
            recorder.enter(name)
            recorder.exit(name)
    rows = {r["name"]: r for r in phase_rows(recorder, wall_seconds=1e9)}
    lengths = {len(rows[n]["samples"]) for n in STEP_PHASES}
    assert len(lengths) == 1 and SAMPLES_KEPT // 2 <= lengths.pop() < SAMPLES_KEPT  # bounded, the same calls
    assert {rows[n]["samples_every"] for n in STEP_PHASES} == {4}
    assert all(rows[n]["calls"] == batches for n in STEP_PHASES)  # totals still count every call


# --- 4. values the views cannot show are refused in one line ---------------------------------------
def set_epochs_batches(doc: dict[str, Any]) -> None:
    doc["metrics"]["epochs"][0]["batches"] = 10**4000


def set_huge_seconds(doc: dict[str, Any]) -> None:
    doc["phases"][0]["seconds"] = 1e308


def set_negative_sample(doc: dict[str, Any]) -> None:
    next(r for r in doc["phases"] if r.get("samples"))["samples"][0] = -0.5


def set_coverage_text(doc: dict[str, Any]) -> None:
    doc["phase_summary"]["train_coverage"] = "most of it"


def set_nan_time(doc: dict[str, Any]) -> None:
    doc["phases"][0]["seconds"] = float("nan")


def set_memory_text(doc: dict[str, Any]) -> None:
    doc["memory"]["saved_bytes_per_batch"][0] = "lots"


@pytest.mark.parametrize("change", [set_epochs_batches, set_huge_seconds, set_negative_sample, set_coverage_text,
                                    set_nan_time, set_memory_text])
@pytest.mark.parametrize("command", ["show", "compare"])
def test_values_the_views_cannot_show_are_one_line(change: Callable[[dict[str, Any]], None], command: str,
                                                   run_folder: Path, tmp_path: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(run_folder, tmp_path)
    path = folder / "result.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))  # NaN written as the bare word NaN, as a careless writer would
    argv = ["show", str(folder)] if command == "show" else ["compare", str(run_folder), str(folder)]
    code, out, err = run_cli(capfd, *argv)
    one_line_error(code, err)
    assert "is damaged" in err and len(err) < 400


def test_a_component_name_that_is_not_a_call_count_is_shown_as_written(run_folder: Path, tmp_path: Path,
                                                                       capfd: pytest.CaptureFixture[str]) -> None:
    import lmprof

    folder = copy_of(run_folder, tmp_path)
    edit_result(folder, lambda doc: doc["components"]["rows"][0].update(name="drop#x"))
    for argv in (["show", str(folder)], ["report", str(folder)], ["compare", str(run_folder), str(folder)],
                 ["diagram", "flow", "--from", str(folder), "--format", "dot"]):
        code, out, err = run_cli(capfd, *argv)
        assert code == 0, (argv, err)
    assert "drop#x" in lmprof.load(folder)._repr_html_() + (folder / "report.html").read_text()


# --- 5. gradflow --from: no pickle run, no 32 GB model --------------------------------------------
class _Planted:
    def __reduce__(self) -> Any:
        return (os.system, ("touch planted-by-pickle",))


def test_gradflow_refuses_a_pickle_checkpoint_without_running_it(run_folder: Path, tmp_path: Path,
                                                                 capfd: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = copy_of(run_folder, tmp_path)
    (folder / "model.pt").write_bytes(pickle.dumps({"state_dict": _Planted()}))
    code, out, err = run_cli(capfd, "gradflow", "--from", str(folder))
    one_line_error(code, err)
    assert "is not a checkpoint lmprof can read" in err
    assert not (tmp_path / "planted-by-pickle").exists()


def test_gradflow_refuses_a_config_too_large_for_this_machine_before_allocating(
        run_folder: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(run_folder, tmp_path)
    edit_result(folder, lambda doc: doc["config"].update(emsize=10**6, nhid=10**6))
    started = time.perf_counter()
    code, out, err = run_cli(capfd, "gradflow", "--from", str(folder))
    one_line_error(code, err)
    assert "GiB" in err and time.perf_counter() - started < 60


# --- 6. trace --into a folder whose trace/ is a link: refused before training ----------------------
def test_trace_into_refuses_a_linked_trace_folder_before_training(run_folder: Path, tmp_path: Path,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    folder = copy_of(run_folder, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    shutil.rmtree(folder / "trace", ignore_errors=True)
    (folder / "trace").symlink_to(elsewhere)
    before = (folder / "result.json").read_bytes()
    code, out, err = run_cli(capfd, "trace", "--into", str(folder))
    one_line_error(code, err)
    assert "trace is a symbolic link" in err and "Tracing" not in out  # nothing trained
    assert (folder / "result.json").read_bytes() == before and (elsewhere / "keep.txt").exists()


# --- 7. a real full disk while the checkpoint is written ------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    mount = tmp_path / "full"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                              capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("no mount command here")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode(errors='replace').strip()})")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True, timeout=20)


def test_a_full_disk_during_the_checkpoint_is_one_line_and_keeps_result_json(
        small_tmpfs: Path, tiny_corpus: Path, capfd: pytest.CaptureFixture[str]) -> None:
    folder = small_tmpfs / "run"
    code, out, err = run_cli(capfd, "train", "--data", str(tiny_corpus), "--emsize", "400", "--nhid", "400",
                             "--epochs", "1", "--max-batches", "1", "--bptt", "8", "--threads", "1",
                             "--device", "cpu", "--out", str(folder))
    one_line_error(code, err)
    assert "No space left on device" in err and "model.pt" in err
    doc = json.loads((folder / "result.json").read_text())  # valid, and says what happened
    assert doc["metrics"]["status"] in ("failed", "running")
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # the temp file is gone


# --- 8. standard output closed under a run ------------------------------------------------------
def test_a_closed_pipe_stops_the_printing_not_the_run(tiny_corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bp1"
    command = [sys.executable, "-m", "lmprof", "profile", "--fn", "train", "--data", str(tiny_corpus),
               "--emsize", "16", "--nhid", "16", "--epochs", "2", "--max-batches", "3", "--bptt", "8",
               "--log-interval", "1", "--threads", "1", "--device", "cpu", "--out", str(folder)]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: `| head -0`
    done = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, timeout=300)
    os.close(write_end)
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "standard output closed" in err and "Traceback" not in err and "Broken pipe" not in err
    doc = json.loads((folder / "result.json").read_text())
    assert doc["metrics"]["status"] == "ok" and len(doc["metrics"]["epochs"]) == 2


# --- 10. the seed's range ---------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_an_out_of_range_seed_is_one_line_and_leaves_no_folder(command: str, tiny_corpus: Path, tmp_path: Path,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "seed"
    code, out, err = run_cli(capfd, command, "--data", str(tiny_corpus), "--epochs", "1", "--max-batches", "1",
                             "--seed", "99999999999999999999", "--out", str(out_dir))
    one_line_error(code, err)
    assert "--seed" in err and not out_dir.exists()


# --- 11. a sweep refused up front leaves nothing behind ------------------------------------------
def test_sweep_refusals_leave_no_folder(tiny_corpus: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = ["sweep", "--data", str(tiny_corpus), "--epochs", "1", "--max-batches", "1", "--emsize", "16",
            "--nhid", "16"]
    code, out, err = run_cli(capfd, *base, "--device", "cuda", "--out", str(tmp_path / "gpu"))
    one_line_error(code, err)
    assert "no CUDA device" in err and not (tmp_path / "gpu").exists()
    code, out, err = run_cli(capfd, *base, "--vary", "bptt=100000", "--out", str(tmp_path / "long"))
    one_line_error(code, err)
    assert not (tmp_path / "long").exists()


# --- 12. compare A A says it is one run -----------------------------------------------------------
def test_compare_of_a_run_with_itself_says_so(run_folder: Path, tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capfd, "compare", str(run_folder), str(run_folder))
    assert code == 0, err
    assert "are the same run (the same folder)" in " ".join(out.split())
    copy = copy_of(run_folder, tmp_path)
    code, out, err = run_cli(capfd, "compare", str(run_folder), str(copy))
    assert "are the same run (a copy of the same record)" in " ".join(out.split())
