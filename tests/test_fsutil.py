"""fsutil: a file appears whole or not at all, with the usual mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lmprof.fsutil import atomic_file, write_bytes_atomic, write_text_atomic


def test_writes_replace_whole_files_and_make_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "result.json"
    assert write_text_atomic(target, "first\n") == target
    write_text_atomic(target, "second\n")
    assert target.read_text() == "second\n"
    write_bytes_atomic(tmp_path / "x.bin", b"\x00\x01")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]  # no temp file left


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as f:
            f.write(b"half of a new")
            raise RuntimeError("the disk filled up")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_the_mode_follows_the_umask(tmp_path: Path) -> None:
    mask = os.umask(0)
    os.umask(mask)
    path = write_text_atomic(tmp_path / "f.txt", "x")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
