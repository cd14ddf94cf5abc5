"""Reading (and appending to) the files of a run or sweep folder that may have come from someone else.

A received folder is data. Its files are opened only from inside it: a member
that is a symbolic link (``bptt.svg -> /proc/self/environ``), or lies under
one, is refused, not followed; so is anything that is not a regular file (a
FIFO would block the reader, a device would never end); and nothing larger
than its cap is read. The folder the user names is followed as given (a
``runs/latest`` link of their own is theirs); what lies inside it is not.

    >>> read_member("runs/demo", "result.json", limit=RESULT_BYTES)  # doctest: +SKIP
    b'{...'
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from lmprof.errors import UsageError

MiB = 1 << 20
RESULT_BYTES = 64 * MiB  # result.json: a 40-epoch WikiText-2 run with every section is a few MiB
FIGURE_BYTES = 32 * MiB  # an SVG or PNG inlined into a page
LOG_BYTES = 64 * MiB  # a sweep's results.jsonl (1,000 runs x 40 epochs: ~25 MiB), sweep.json, jobs.json
CHECKPOINT_BYTES = 8 << 30  # model.pt read by gradflow --from (weights only; the config is checked first)

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO for reading would wait for a writer
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


# --- strings ------------------------------------------------------------------------------
# A folder's strings must not drive the terminal (ESC [2J clears the screen, OSC 8 plants a link,
# OSC 0 retitles the window) nor reorder what is read (bidi overrides). C0 controls but tab and
# newline, DEL, C1, and the invisible format characters become visible escapes, as repr writes them.
_INVISIBLE = [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), 0x061C, 0x180E,
              *range(0x200B, 0x2010), *range(0x2028, 0x202F), *range(0x2060, 0x2070), 0xFEFF]
_VISIBLE = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _INVISIBLE}


def visible(text: str) -> str:
    """``text`` with each control or invisible format character written as its escape: readable, inert.

    >>> visible("\\x1b[2Jhi")
    '\\\\x1b[2Jhi'
    """
    return text.translate(_VISIBLE)


def visible_strings(value: Any) -> Any:
    """Parsed JSON with ``visible`` applied to every string in it, keys included."""
    if isinstance(value, str):
        return value.translate(_VISIBLE)
    if isinstance(value, dict):
        return {visible_strings(k): visible_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [visible_strings(v) for v in value]
    return value


# --- files ----------------------------------------------------------------------------------
class UnsafeMember(UsageError):
    """A member of a folder that lmprof will not read: a link, not a regular file, or over its cap."""


def _parts(name: str) -> tuple[str, ...]:
    path = PurePosixPath(str(name).replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise UnsafeMember(f"{name!r} is not a file inside the folder: refused")
    return path.parts


def _refusal(folder: Path, name: str, err: OSError) -> UsageError:
    shown = folder / name
    if err.errno in (errno.ELOOP, errno.EMLINK) or (err.errno == errno.ENOTDIR and is_link_inside(folder, name)):
        return UnsafeMember(f"{shown} is a symbolic link: not followed (a folder's files are read only "
                            "from inside it)")
    if err.errno == errno.ENOENT:
        return UsageError(f"{shown} does not exist")
    return UsageError(f"cannot read {shown}: {err.strerror}")


def is_link_inside(folder: str | os.PathLike[str], name: str) -> bool:
    """Whether ``name`` (or a folder on its way) inside ``folder`` is a symbolic link."""
    here = Path(folder)
    for part in _parts(name):
        here = here / part
        if here.is_symlink():
            return True
    return False


def open_member(folder: str | os.PathLike[str], name: str, *, limit: int) -> BinaryIO:
    """``folder/name`` open for reading, with no link followed on the way; a regular file of at most ``limit`` bytes.

    Raises UnsafeMember (a link, not a regular file, too large) or UsageError (missing, unreadable): one line.
    """
    base = Path(folder)
    parts = _parts(name)
    try:
        dir_fd = os.open(base, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except OSError as e:
        raise UsageError(f"cannot read the folder {base}: {e.strerror}") from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = inner
        fd = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        raise _refusal(base, name, e) from None
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    problem = ("is not a regular file" if not stat.S_ISREG(info.st_mode)
               else f"is {info.st_size / MiB:,.1f} MiB, over the {limit / MiB:,.0f} MiB lmprof reads"
               if info.st_size > limit else "")
    if problem:
        os.close(fd)
        raise UnsafeMember(f"{base / name} {problem}: not read")
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_member(folder: str | os.PathLike[str], name: str, *, limit: int) -> bytes:
    """The bytes of ``folder/name``, read as ``open_member`` opens it (never more than ``limit``)."""
    with open_member(folder, name, limit=limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew after the check
        raise UnsafeMember(f"{Path(folder) / name} is over the {limit / MiB:,.0f} MiB lmprof reads: not read")
    return data


def member_state(folder: str | os.PathLike[str], name: str) -> str:
    """'file', 'dir', 'missing', 'link' (it or a folder on its way) or 'other', without following a link."""
    if is_link_inside(folder, name):
        return "link"
    try:
        mode = (Path(folder) / name).lstat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "other"
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"


def open_for_append(path: str | os.PathLike[str], mode: str = "a") -> "BinaryIO":
    """A log file of a folder opened to add to it (or, mode 'w', to rewrite it), never through a link.

    A received sweep folder whose results.jsonl or .lock is a link to ~/.bashrc must not have lmprof
    write there. Text mode, UTF-8.
    """
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeMember(f"{path} is a symbolic link: lmprof does not write through it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeMember(f"{path} is not a regular file: lmprof does not write to it")
    return os.fdopen(fd, mode, encoding="utf-8")  # type: ignore[return-value]
