"""The run folder's file names (lmprof.record.files): one list, and --force removes every file on it."""

from __future__ import annotations

from pathlib import Path

from lmprof.record import files
from lmprof.runner import prepare_run_dir


def test_force_removes_every_file_lmprof_writes_and_nothing_else(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    written = [files.RESULT_FILE, files.LINES_FILE, files.REPORT_FILE, files.CHECKPOINT_FILE,
               files.MEMORY_SNAPSHOT_FILE, files.STOP_FILE,
               *(f"{stem}.{ext}" for stem in files.PICTURE_STEMS for ext in ("svg", "dot"))]
    for name in written:
        (folder / name).write_text("old")
    for directory in (files.TRACE_DIR, files.TRACE_STAGING_DIR):
        (folder / directory).mkdir()
        (folder / directory / "old.pt.trace.json").write_text("{}")
    (folder / "notes.txt").write_text("the user's")
    prepare_run_dir(folder, force=True)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_an_old_memory_snapshot_is_not_left_for_the_new_run(tmp_path: Path) -> None:
    (tmp_path / files.MEMORY_SNAPSHOT_FILE).write_bytes(b"an earlier run's allocator history")
    prepare_run_dir(tmp_path, force=True)
    assert not (tmp_path / files.MEMORY_SNAPSHOT_FILE).exists()


def test_the_writers_use_the_record_floors_names() -> None:
    from lmprof.instrument import lines, memory, trace
    from lmprof.record import result
    from lmprof.sweeps import worker
    from lmprof.views import report

    assert lines.LINES_FILE == files.LINES_FILE and memory.SNAPSHOT_FILE == files.MEMORY_SNAPSHOT_FILE
    assert trace.TRACE_DIR == files.TRACE_DIR and worker.STOP_FILE == files.STOP_FILE
    assert result.RESULT_FILE == files.RESULT_FILE and report.REPORT_FILE == files.REPORT_FILE
