"""WikiText-2 as the PyTorch example ships it: fetch, verify by git blob id, write atomically.

Each file is checked against the git blob id of the upstream file (what
``git hash-object FILE`` prints), so a truncated or altered download is never
kept. Files already present and verified are skipped.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from lmprof.errors import UsageError
from lmprof.fsutil import write_bytes_atomic

BASE_URL = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2"
BLOB_IDS = {
    "train.txt": "2d84b35af79e411d73ea7cae83c73964c6ac83b4",
    "valid.txt": "eec944eb2d9e46061cd34a6913528797db6842fc",
    "test.txt": "6f3fc88e4cd88456ea892971f9f12243e8428624",
}
Progress = Callable[[str, int, int | None], None]  # file name, bytes so far, total (if known)


def git_blob_id(data: bytes) -> str:
    """The id git gives a file's content: sha1 of 'blob <size>\\0' + content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verified(path: Path, blob_id: str) -> bool:
    return path.is_file() and git_blob_id(path.read_bytes()) == blob_id


def _fetch(url: str, name: str, progress: Progress | None, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total_n = int(total) if total else None
            chunks: list[bytes] = []
            done = 0
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                done += len(chunk)
                if progress:
                    progress(name, done, total_n)
            return b"".join(chunks)
    except urllib.error.HTTPError as e:
        raise UsageError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UsageError(f"cannot download {url} ({reason}): are you offline? "
                         f"Copy the three files into the folder by hand instead") from None


def download(
    dest: str | os.PathLike[str],
    base_url: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Fetch train/valid/test.txt into ``dest``; returns {file: 'verified'|'downloaded'}."""
    base = (base_url or os.environ.get("LMPROF_WIKITEXT_URL") or BASE_URL).rstrip("/")
    folder = Path(dest)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {dest}: {e.strerror}") from None
    outcome: dict[str, str] = {}
    for name, blob_id in BLOB_IDS.items():
        target = folder / name
        if verified(target, blob_id):
            outcome[name] = "already verified"
            continue
        data = _fetch(f"{base}/{name}", name, progress, timeout)
        got = git_blob_id(data)
        if got != blob_id:
            raise UsageError(f"{name} from {base} has git blob id {got}, expected {blob_id}: not kept")
        write_bytes_atomic(target, data)
        outcome[name] = "downloaded"
    return outcome
