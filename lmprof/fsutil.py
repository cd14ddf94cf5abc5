"""Atomic writes: a temp file in the same folder, then a rename.

A reader (a view, a second terminal, a crashed run's successor) never sees
half a file: it sees the old one or the new one. Every file lmprof writes
goes through ``atomic_file``, which removes its temp file on any error (a
full disk, Ctrl-C), so a failed write leaves nothing behind.

    >>> with atomic_file("runs/x/model.pt") as f:  # doctest: +SKIP
    ...     torch.save(state, f)
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


@functools.cache
def _umask() -> int:
    """The process's umask, read at the first write (not at import) and once: os.umask is process-wide,
    so reading it per write would race with other threads."""
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` whole when the block ends, or not at all."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, target)
    except BaseException as e:
        full = not isinstance(e, (OSError, KeyboardInterrupt)) and _no_space_left(target.parent)
        Path(tmp).unlink(missing_ok=True)
        if full:  # torch.save says "enforce fail ... unexpected pos" (a RuntimeError) when the disk fills
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target)) from e
        raise


FULL_BELOW = 1 << 20  # free bytes under which a failed write is taken for a full disk


def _no_space_left(folder: Path) -> bool:
    """Whether the filesystem of ``folder`` is full (checked while the failed write's temp file still fills it)."""
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return False
    return stats.f_bavail * stats.f_frsize < FULL_BELOW


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_file(path) as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))
