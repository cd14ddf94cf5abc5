"""RunResult: the one record of a run, saved as result.json in the run folder.

Every view reads a RunResult and nothing else, so ``lmprof show RUN`` and
``lmprof report RUN`` re-render without training. The file carries a schema
version; older files load with defaults for what they lack, newer ones are
refused with a clear message.

Sections (each optional but ``config``; their keys and types: ``lmprof.record.sections``):
    config        RunConfig as a dict
    environment   torch, device, threads, lmprof version, git revision, host
    metrics       status, per-epoch records, test loss/ppl, ntokens, nparams
    phases        list of rows {name, label, calls, seconds, host_seconds, share}
    phase_summary {clock, wall_seconds, train_seconds, train_coverage, full_batches_per_epoch, cut}
    lines         {unit, sync, functions: [{name, file, first_line, total_seconds,
                   share_of_run, lines: [{line, hits, seconds, share, source}]}]}
    ops           top operators of a trace
    flops         achieved FLOP/s per phase and the machine's matmul peak
    components    time per model component (forward and backward) per training step
    memory        saved-activation bytes, parameter/gradient/optimizer bytes, RSS, CUDA memory
    gradients     pre-clip gradient norms and the fraction of batches clipped, per epoch
    backward_lines per line of forward: its operators' time forward and in backward (--backward-lines)
    overhead      bare and watched ms per batch, their ratio, the sampling (--sample-every)
"""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from lmprof.errors import UsageError
from lmprof.fsutil import write_text_atomic
from lmprof.record.files import RESULT_FILE

SCHEMA_VERSION = 1


@dataclass
class RunResult:
    command: str = "train"
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)
    phase_summary: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, Any] = field(default_factory=dict)
    ops: dict[str, Any] = field(default_factory=dict)
    flops: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)  # time per model component, forward and backward
    memory: dict[str, Any] = field(default_factory=dict)  # saved activations, params/grads/optimizer, RSS, CUDA
    gradients: dict[str, Any] = field(default_factory=dict)  # pre-clip norms and clip statistics per epoch
    backward_lines: dict[str, Any] = field(default_factory=dict)  # per forward line: forward and backward operator time
    overhead: dict[str, Any] = field(default_factory=dict)  # bare vs watched ms per batch: what the instruments cost
    sweep: dict[str, Any] = field(default_factory=dict)  # a sweep's run: its place in the sweep, where it ran, its error
    files: dict[str, str] = field(default_factory=dict)  # role -> file name in the run folder
    run_dir: str = ""  # where the folder was when last saved or loaded
    schema_version: int = SCHEMA_VERSION
    reading_notes: ClassVar[list[str]] = []  # what load() cut to its caps (not saved)

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return list(self.metrics.get("epochs", []))

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "unknown"))

    def never_finished(self) -> str:
        """Why a run whose file says 'running' is not: its process is gone (SIGKILL, a crash); '' otherwise."""
        if self.status != "running":
            return ""
        pid, host = self.metrics.get("pid"), self.metrics.get("host")
        if not pid or host != socket.gethostname():
            where = f" on {host}" if host else ""
            return (f"result.json says 'running'{where}: unless that run is still going, it never finished "
                    "(killed or crashed); the tables show what it measured until then")
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            return (f"this run never finished: its process ({pid}) is gone, killed or crashed; "
                    "the tables show what it measured until then")
        except OSError:
            pass  # it exists, under another user
        return ""

    def __repr__(self) -> str:
        """Short, for a terminal: what ran, where, how it ended."""
        c, m = self.config, self.metrics
        ppl = m.get("test_ppl")
        tail = f", test ppl {ppl:.2f}" if isinstance(ppl, (int, float)) else ""
        return (f"RunResult(lmprof {self.command}, {c.get('model', '?')} emsize {c.get('emsize', '?')} "
                f"nhid {c.get('nhid', '?')}, {len(self.epochs)} epoch(s), {self.status}{tail}, "
                f"folder {self.run_dir or '(unsaved)'!r})")

    def _repr_html_(self) -> str | None:
        """In a notebook: the summary, the phase table with bars, FLOP/s and the hot lines (``lmprof.views.notebook``)."""
        from lmprof.display import html

        return html(self)

    def show(self, width: int | None = None) -> None:
        """Print the tables ``lmprof show RUN`` prints: summary, phases, components, memory, lines."""
        from lmprof.display import show

        show(self, width)

    def to_json(self) -> str:
        return json.dumps(json_safe(asdict(self)), indent=1, allow_nan=False, default=_plain)

    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        text = self.to_json()
        if os.environ.get(STRICT_ENV) == "1":
            check_strictly(text)
        return write_text_atomic(Path(run_dir) / RESULT_FILE, text + "\n")

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "RunResult":
        version = int(doc.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"result.json has schema version {version}, newer than this lmprof reads "
                f"({SCHEMA_VERSION}): upgrade lmprof"
            )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["schema_version"] = SCHEMA_VERSION
        return cls(**values)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> "RunResult":
        """A run folder's result.json, read as a stranger's: through no link, capped, checked, its strings inert."""
        from lmprof.safe_files import RESULT_BYTES, member_state, read_member

        path = Path(run_dir)
        if path.is_dir():
            path = path / RESULT_FILE
        if member_state(path.parent, path.name) == "missing" or path.is_dir():
            raise UsageError(f"{run_dir} is not a run folder (no {RESULT_FILE}): run `lmprof profile` or `lmprof train` first")
        result = cls.from_json_bytes(read_member(path.parent, path.name, limit=RESULT_BYTES), path)
        result.run_dir = str(path.parent)
        return result

    @classmethod
    def from_json_bytes(cls, data: bytes, path: Path) -> "RunResult":
        """A result.json's bytes, read as a stranger's: checked, capped, its strings inert (``path`` names it)."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:  # ValueError: bad JSON, or an integer too long to read
            raise UsageError(f"{path} is not a valid result.json ({e.__class__.__name__}: {e})") from None
        except RecursionError:
            raise UsageError(f"{path} is not a valid result.json (nested too deeply to read)") from None
        return cls.from_document(doc, path)

    @classmethod
    def from_document(cls, doc: Any, path: Path) -> "RunResult":
        """A parsed result.json from a stranger: checked, capped, its strings inert (``path`` names it)."""
        from lmprof.safe_files import visible_strings

        if not isinstance(doc, dict) or "config" not in doc:
            raise UsageError(f"{path} is not an lmprof result.json (no config section)")
        from lmprof.record.check import bound_document, check_document

        try:
            complaint = check_document(doc)  # the views read these fields: a wrong type is one line here, not a traceback
            notes = [] if complaint else bound_document(doc)  # caps: samples per phase, rows, string lengths
            doc = visible_strings(doc)  # no string from the file may drive the terminal
        except RecursionError:
            raise UsageError(f"{path} is not a valid result.json (nested too deeply to read)") from None
        if complaint:
            raise UsageError(f"{path} is damaged: {complaint}")
        result = cls.from_dict(doc)
        result.reading_notes = [f"{path}: {note}" for note in notes]
        READING_NOTES.extend(result.reading_notes)
        return result


# The tests set it (tests/conftest.py), for their own process and every lmprof they start: each result.json
# written is checked strictly, every key it holds defined in lmprof.record.sections.
STRICT_ENV = "LMPROF_STRICT_RECORD"


def check_strictly(text: str) -> None:
    """A result.json about to be written: a ValueError when it holds a key no section defines.

    A value of the wrong type is the loader's to say, in its one line (tests write damaged files on purpose).
    """
    from lmprof.record.check import check_document

    doc = json.loads(text)
    complaint = check_document(doc, strict=True)
    if complaint and check_document(doc) is None:
        raise ValueError(f"lmprof wrote a result.json that breaks its definition (lmprof.record.sections): {complaint}")


# What loading cut from files in this process (caps hit), for the command line to say once on stderr.
READING_NOTES: list[str] = []


def json_safe(value: Any) -> Any:
    """NaN and infinity are not JSON: a diverged loss is stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """JSON for values json does not know (paths, numpy/torch scalars)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in result.json")
