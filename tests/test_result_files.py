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


def test_no_module_spells_a_run_folder_file_name_outside_the_record_floor() -> None:
    """Writers and readers import the names from lmprof.record.files: a literal elsewhere is a second copy."""
    import ast

    import lmprof

    names = {value for key, value in vars(files).items() if key.endswith(("_FILE", "_DIR")) and isinstance(value, str)
             and ("." in value or "-" in value)}  # "trace" is also a command's name
    package = Path(lmprof.__file__).parent
    spelled = {f"{path.relative_to(package)}:{node.lineno} {node.value!r}"
               for path in package.rglob("*.py") if "record" not in path.relative_to(package).parts
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.Constant) and node.value in names}
    assert names and not spelled, spelled
