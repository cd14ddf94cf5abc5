"""WikiText-2 as the PyTorch example ships it: fetch, verify by git blob id, write atomically.

Each file is checked against the git blob id of the upstream file (what
``git hash-object FILE`` prints), so a truncated or altered download is never
kept. Files already present and verified are skipped.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.parse
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
# About the size of each file (bytes); a response several times larger is not WikiText-2.
EXPECTED_BYTES = {"train.txt": 10_800_000, "valid.txt": 1_130_000, "test.txt": 1_260_000}
SIZE_CAP = 4
URL_SCHEMES = ("http", "https", "file")
Progress = Callable[[str, int, int | None], None]  # file name, bytes so far, total (if known)


def git_blob_id(data: bytes) -> str:
    """The id git gives a file's content: sha1 of 'blob <size>\\0' + content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verified(path: Path, blob_id: str) -> bool:
    return path.is_file() and git_blob_id(path.read_bytes()) == blob_id


def _fetch(url: str, name: str, progress: Progress | None, timeout: float, deadline: float,
           max_bytes: int) -> bytes:
    """The body at ``url``; a UsageError when it fails, grows past ``max_bytes`` or runs past ``deadline``."""
    stalled = (f"download of {url} stopped: it took longer than the time limit (a slow or stalled server); "
               "try again later, or copy the three files into the folder by hand")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            total_n = int(total) if total and total.isdigit() else None
            if total_n is not None and total_n > max_bytes:
                raise UsageError(f"{url} is {total_n:,} bytes, far more than {name} should be "
                                 f"(at most {max_bytes:,}): not downloaded; check --url")
            chunks: list[bytes] = []
            done = 0
            while True:
                if time.monotonic() > deadline:  # a server that trickles a byte at a time never times out a read
                    raise UsageError(stalled)
                chunk = response.read1(1 << 16)  # returns what has arrived, so the deadline is checked often
                if not chunk:
                    break
                chunks.append(chunk)
                done += len(chunk)
                if done > max_bytes:
                    raise UsageError(f"{url} sent more than {max_bytes:,} bytes, far more than {name} should be: "
                                     "stopped; check --url")
                if progress:
                    progress(name, done, total_n)
            if total_n is not None and done < total_n:
                raise UsageError(f"download of {url} was cut off after {done:,} of {total_n:,} bytes: try again")
            return b"".join(chunks)
    except urllib.error.HTTPError as e:
        raise UsageError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except http.client.HTTPException as e:  # the server hung up mid-file
        raise UsageError(f"download of {url} was cut off ({e.__class__.__name__}): try again") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UsageError(f"cannot download {url} ({reason}): are you offline? "
                         f"Copy the three files into the folder by hand instead") from None


def check_url(base: str) -> str:
    """``base`` without a trailing slash, or a UsageError when it is not a URL urllib can fetch."""
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in URL_SCHEMES or (parts.scheme != "file" and not parts.netloc):
        raise UsageError(f"--url {base!r} is not a URL: give one like {BASE_URL}")
    return base.rstrip("/")


def download(
    dest: str | os.PathLike[str],
    base_url: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
    time_limit: float = 900.0,
) -> dict[str, str]:
    """Fetch train/valid/test.txt into ``dest``; returns {file: 'verified'|'downloaded'}.

    ``timeout`` bounds each network wait, ``time_limit`` the whole download; a file
    larger than ``SIZE_CAP`` times its expected size is refused. A download that fails
    leaves no folder it created empty, and no file it could not verify.
    """
    base = check_url(base_url or os.environ.get("LMPROF_WIKITEXT_URL") or BASE_URL)
    folder = Path(dest)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {dest}: {e.strerror}") from None
    deadline = time.monotonic() + time_limit
    outcome: dict[str, str] = {}
    try:
        for name, blob_id in BLOB_IDS.items():
            target = folder / name
            if verified(target, blob_id):
                outcome[name] = "already verified"
                continue
            data = _fetch(f"{base}/{name}", name, progress, timeout, deadline, SIZE_CAP * EXPECTED_BYTES[name])
            got = git_blob_id(data)
            if got != blob_id:
                raise UsageError(f"{name} from {base} has git blob id {got}, expected {blob_id}: not kept")
            write_bytes_atomic(target, data)
            outcome[name] = "downloaded"
    except BaseException:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a failed first download leaves no empty folder behind
        raise
    return outcome
