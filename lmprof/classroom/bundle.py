"""Hand-in bundles: one zip of JSON per run (``lmprof pack``), and reading a stranger's bundle safely.

A bundle holds four members, all JSON, nothing else:

    bundle.json       format, schema version, lmprof version, when packed, anonymized or not
    result.json       the run's record (its line tables included, as JSON: never the lines.lprof pickle);
                      per-batch samples thinned to at most 256 per series; no checkpoint, no trace
    environment.json  the packing machine: CPU model and capability, GPUs present, torch, threads
    calibration.json  that machine's matmul peak and the time of one fixed tiny reference step

Reading one (``read_bundle``) treats it as hostile until checked, and never
writes it to disk: the file is read through no link and at most 2 MiB; the
zip is opened in memory; every member name must be a plain name (no folder,
no ``..``, no control character) and one of the four above, every member's declared size at most
16 MiB (32 MiB in all), compressed by deflate or not at all, unencrypted;
members are read with their cap as a hard limit whatever their header
claims; JSON nested deeper than 64 levels is refused; result.json goes
through the same checker, caps and inert strings as a run folder's; nothing
is unpickled. Anything wrong is one ``BundleRefused`` line naming the file.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmprof.errors import UsageError
from lmprof.record.result import RESULT_FILE, RunResult

FORMAT = "lmprof-bundle"
BUNDLE_SCHEMA = 1
MiB = 1 << 20
BUNDLE_BYTES = 2 * MiB  # the whole zip: a 40-epoch WikiText-2 run's record is a few hundred KiB deflated
MEMBER_BYTES = 16 * MiB  # one member, uncompressed
TOTAL_BYTES = 32 * MiB  # all members, uncompressed
MAX_MEMBERS = 16
MAX_DEPTH = 64  # a result.json is 6 levels deep; deeper is a bomb for the parser, not a run
SAMPLES_KEPT = 256  # per-batch series kept per phase: the shape of an epoch (and reading 300 bundles fast)
MEMBERS = ("bundle.json", RESULT_FILE, "environment.json", "calibration.json")
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
BUNDLE_SUFFIXES = (".zip",)


class BundleRefused(UsageError):
    """A bundle lmprof will not read: one line, naming the file and why."""


@dataclass
class Bundle:
    name: str  # what the class view calls the run: the bundle's file name without .zip
    path: str
    result: RunResult
    environment: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# --- packing ----------------------------------------------------------------------------------
def thinned(values: list[Any], keep: int = SAMPLES_KEPT) -> list[Any]:
    """At most ``keep`` values of a per-batch series, evenly spaced, first and last kept, order kept."""
    if len(values) <= keep:
        return list(values)
    step = (len(values) - 1) / (keep - 1)
    return [values[round(i * step)] for i in range(keep)]


def record_for_bundle(result: RunResult) -> dict[str, Any]:
    """result.json as the bundle holds it: no file of the folder named, long per-batch series thinned."""
    doc = json.loads(result.to_json())
    doc["files"] = {}  # the checkpoint, the pickle and the trace stay at home
    for row in doc.get("phases", []):
        if isinstance(row.get("samples"), list):
            row["samples"] = thinned(row["samples"])
    memory = doc.get("memory", {})
    for key, value in list(memory.items()):
        if key.endswith("_per_batch") and isinstance(value, list):
            memory[key] = thinned(value)
    return doc


def pack(run_dir: str | Path, out: str | Path | None = None, *, anonymize: bool = False,
         environment: dict[str, Any] | None = None, calibration: dict[str, Any] | None = None) -> Path:
    """Write ``run_dir``'s hand-in bundle (default: beside it, ``<folder>.zip``); return its path.

    ``environment`` and ``calibration`` default to measuring this machine (``calibrate``); tests give them.
    """
    from lmprof.fsutil import write_bytes_atomic
    from lmprof.version import __version__

    folder = Path(run_dir)
    if not folder.is_dir():
        raise UsageError(f"{run_dir} is not a run folder: give the folder lmprof profile, train or trace wrote")
    result = RunResult.load(folder)
    target = Path(out) if out else folder.with_name(folder.resolve().name + ".zip")
    if target.suffix != ".zip":
        raise UsageError(f"{target}: a bundle is a zip file; name it ....zip")
    doc = record_for_bundle(result)
    if environment is None or calibration is None:
        from lmprof.classroom.calibrate import calibrate, machine_environment

        environment = environment if environment is not None else machine_environment()
        run_env = result.environment
        calibration = calibration if calibration is not None else calibrate(
            str(run_env.get("device", "cpu")), run_env.get("threads") or result.config.get("threads"))
    environment, calibration = dict(environment), dict(calibration)
    calibration["same_host"] = environment.get("host") == result.environment.get("host")
    meta = {"format": FORMAT, "schema_version": BUNDLE_SCHEMA, "lmprof": __version__, "anonymized": anonymize,
            "packed_at": time.strftime("%Y-%m-%d %H:%M:%S"), "run": folder.resolve().name,
            "samples_kept": SAMPLES_KEPT}
    if anonymize:
        from lmprof.classroom.anonymize import for_machine, stable_hash

        scrub = for_machine(environment, doc)
        doc, environment, calibration, meta = (scrub.document(x) for x in (doc, environment, calibration, meta))
        meta["run"] = stable_hash("run", str(meta["run"]))  # a folder's name may be the student's
    environment.pop("home", None)  # used to find the user's name; never handed in
    members = {"bundle.json": meta, RESULT_FILE: doc, "environment.json": environment,
               "calibration.json": calibration}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, value in members.items():
            zf.writestr(name, json.dumps(value, indent=1, allow_nan=False) + "\n")
    data = buffer.getvalue()
    if len(data) > BUNDLE_BYTES:
        raise UsageError(f"the bundle of {run_dir} would be {len(data) / MiB:.1f} MiB, over the "
                         f"{BUNDLE_BYTES / MiB:.0f} MiB a bundle may be: hand in a run with fewer epochs")
    try:
        return write_bytes_atomic(target, data)
    except OSError as e:
        raise UsageError(f"cannot write {target}: {e.strerror}: choose another --out") from None


# --- reading ----------------------------------------------------------------------------------
def is_bundle_file(path: str | Path) -> bool:
    return Path(path).suffix in BUNDLE_SUFFIXES


def bundle_name(path: str | Path) -> str:
    name = Path(path).name
    return name[:-len(".zip")] if name.endswith(".zip") else name


def depth_within(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether parsed JSON nests at most ``limit`` containers deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def _json(data: bytes, shown: str, member: str) -> Any:
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise BundleRefused(f"{shown}: {member} is nested too deeply to read: refused") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleRefused(f"{shown}: {member} is not valid JSON ({e.__class__.__name__}): refused") from None
    if not depth_within(value):
        raise BundleRefused(f"{shown}: {member} nests deeper than {MAX_DEPTH} levels: refused")
    return value


def _thin_series(doc: Any) -> None:
    """The per-batch series of an unchecked result.json thinned as pack thins them (other shapes left alone)."""
    phases = doc.get("phases") if isinstance(doc, dict) else None
    for row in phases if isinstance(phases, list) else []:
        if isinstance(row, dict) and isinstance(row.get("samples"), list):
            row["samples"] = thinned(row["samples"])


def _read_file(path: Path) -> bytes:
    """The bundle's bytes: a regular file named by the user (followed as given), at most BUNDLE_BYTES."""
    from lmprof.safe_files import read_member

    real = path.resolve()
    return read_member(real.parent, real.name, limit=BUNDLE_BYTES)


def _checked_members(zf: zipfile.ZipFile, shown: str) -> dict[str, zipfile.ZipInfo]:
    from lmprof.safe_files import visible

    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise BundleRefused(f"{shown}: {len(infos)} members, over the {MAX_MEMBERS} a bundle may hold: refused")
    found: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        if not PLAIN_NAME.fullmatch(name) or ".." in name:
            raise BundleRefused(f"{shown}: member {visible(repr(name[:80]))} is not a plain file name "
                                "(a folder, .. or a strange character): refused")
        if name not in MEMBERS:
            raise BundleRefused(f"{shown}: member {name} is not one a bundle holds ({', '.join(MEMBERS)}): refused")
        if name in found:
            raise BundleRefused(f"{shown}: member {name} appears twice: refused")
        if info.flag_bits & 0x1:
            raise BundleRefused(f"{shown}: member {name} is encrypted: refused")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BundleRefused(f"{shown}: member {name} uses a compression lmprof does not read: refused")
        if info.file_size > MEMBER_BYTES:
            raise BundleRefused(f"{shown}: member {name} claims {info.file_size / MiB:,.0f} MiB, over the "
                                f"{MEMBER_BYTES / MiB:.0f} MiB a member may be: refused")
        total += info.file_size
        found[name] = info
    if total > TOTAL_BYTES:
        raise BundleRefused(f"{shown}: members claim {total / MiB:,.0f} MiB in all, over {TOTAL_BYTES / MiB:.0f} "
                            "MiB: refused")
    return found


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str) -> bytes:
    import zlib

    try:
        with zf.open(info) as f:
            data = f.read(MEMBER_BYTES + 1)  # the cap holds even if the header lied about the size
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
        raise BundleRefused(f"{shown}: member {info.filename} is damaged ({e.__class__.__name__}): refused") from None
    if len(data) > MEMBER_BYTES or len(data) != info.file_size:
        raise BundleRefused(f"{shown}: member {info.filename} is not the size its header says: refused")
    return data


def read_bundle(path: str | Path) -> Bundle:
    """A bundle read in memory and checked (module docstring); ``BundleRefused`` (one line) otherwise."""
    from lmprof.safe_files import visible, visible_strings

    where = Path(path)
    shown = visible(str(where))
    try:
        data = _read_file(where)
    except UsageError as e:
        raise BundleRefused(str(e)) from None
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise BundleRefused(f"{shown} is not an lmprof bundle (not a zip file): refused") from None
    with zf:
        members = _checked_members(zf, shown)
        missing = [m for m in ("bundle.json", RESULT_FILE) if m not in members]
        if missing:
            raise BundleRefused(f"{shown} is not an lmprof bundle (no {' nor '.join(missing)}): refused")
        meta = _json(_member(zf, members["bundle.json"], shown), shown, "bundle.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise BundleRefused(f"{shown}: bundle.json does not say format {FORMAT!r}: refused")
        version = meta.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= BUNDLE_SCHEMA:
            raise BundleRefused(f"{shown}: bundle schema version {visible(repr(version))[:40]} is not one this "
                                f"lmprof reads (1..{BUNDLE_SCHEMA}): refused")
        doc = _json(_member(zf, members[RESULT_FILE], shown), shown, RESULT_FILE)  # depth checked here
        _thin_series(doc)  # before the checker walks them: a stranger's 10,000 samples a phase cost 256's
        try:
            result = RunResult.from_document(doc, Path(str(where)) / RESULT_FILE)
        except UsageError as e:
            raise BundleRefused(f"{e}: refused") from None
        extras = {}
        for name in ("environment.json", "calibration.json"):
            value = _json(_member(zf, members[name], shown), shown, name) if name in members else {}
            extras[name] = visible_strings(value) if isinstance(value, dict) else {}
    result.run_dir = str(where)
    return Bundle(name=visible(bundle_name(where)), path=str(where), result=result,
                  environment=extras["environment.json"], calibration=extras["calibration.json"],
                  meta=visible_strings(meta))


def load_run(path: str | Path) -> RunResult:
    """A run folder's record, or a bundle file's (``lmprof show`` and ``report`` take either)."""
    where = Path(path)
    if where.is_file() and where.name != RESULT_FILE and (is_bundle_file(where) or zipfile.is_zipfile(where)):
        return read_bundle(where).result
    return RunResult.load(where)
