"""results.jsonl: the sweep's durable log, one JSON object a line, appended by the driver only.

Two kinds of rows:
    {"kind": "epoch", "run", "key", "model", "nhid", ..., "epoch", "val_ppl", "time", ...}
        one per run and epoch, appended as soon as the epoch is finished;
    {"kind": "run", "run", "key", "status", "test_ppl", "nparams", "host", ...}
        one each time a run ends (ok, diverged, failed or interrupted).

Each append is flushed and fsynced, so a crash loses at most the row being
written; a half-written last line (the machine died mid-write) is cut off
when the file is next opened, and its epoch is taken again from the run's
record. Reading keeps the first row of each (key, epoch) and the last run
row of each key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from lmprof.errors import UsageError

RESULTS_FILE = "results.jsonl"
LOCK_FILE = ".lock"
DONE = ("ok", "diverged")  # a run that ended so is not run again


class ResultStore:
    def __init__(self, folder: str | Path, *, repair: bool = False) -> None:
        """Load the rows; ``repair`` (the driver, holding the lock) cuts a half-written last line."""
        self.path = Path(folder) / RESULTS_FILE
        self.rows: list[dict[str, Any]] = []
        self._epochs: dict[str, dict[int, dict[str, Any]]] = {}
        self._runs: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        if self.path.exists() or self.path.is_symlink():
            from lmprof.safe_files import LOG_BYTES, read_member

            if repair:
                self._cut_partial_last_line()
            text = read_member(self.path.parent, self.path.name, limit=LOG_BYTES).decode("utf-8", errors="replace")
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    self.skipped_lines += 1
                    continue
                if isinstance(row, dict):
                    self._index(row)

    def _cut_partial_last_line(self) -> None:
        from lmprof.safe_files import LOG_BYTES, open_for_append, read_member

        data = read_member(self.path.parent, self.path.name, limit=LOG_BYTES)  # never through a link
        if data and not data.endswith(b"\n"):
            with open_for_append(self.path) as f:
                f.truncate(data.rfind(b"\n") + 1)

    def _index(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        key = str(row.get("key"))
        if row.get("kind") == "epoch" and isinstance(row.get("epoch"), int):
            self._epochs.setdefault(key, {}).setdefault(row["epoch"], row)
        elif row.get("kind") == "run":
            self._runs[key] = row

    def append(self, row: dict[str, Any]) -> None:
        from lmprof.record.result import json_safe  # NaN/inf -> null, as result.json stores them

        line = json.dumps(json_safe(row), allow_nan=False, default=str)
        from lmprof.safe_files import open_for_append

        with open_for_append(self.path) as f:  # a results.jsonl that is a link is refused, not written through
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._index(row)

    def epochs(self, key: str) -> dict[int, dict[str, Any]]:
        """epoch number -> its row (the first one written)."""
        return dict(self._epochs.get(key, {}))

    def last_run(self, key: str) -> dict[str, Any] | None:
        return self._runs.get(key)

    def is_done(self, key: str) -> bool:
        run = self._runs.get(key)
        return run is not None and run.get("status") in DONE


class SweepLock:
    """One driver per sweep folder: a second `lmprof sweep` on it would append the same rows twice."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self._file: IO[str] | None = None

    def __enter__(self) -> "SweepLock":
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before
            return self
        from lmprof.safe_files import open_for_append

        self._file = open_for_append(self.path, "w")  # never through a link planted as .lock
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            self._file = None
            raise UsageError(f"another lmprof sweep is writing {self.path.parent}: wait for it, or use another --out") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None
