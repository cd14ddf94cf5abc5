"""Every bundle or run folder given -> one ClassSummary: rows, cohorts, flags, and what was refused.

    summary = class_summary(["handins/"], expect=load_expect("assignment.toml"))
    summary.counts()      # detector key -> runs flagged
    summary.to_csv()      # one row per run, for a gradebook or pandas

A folder given is a run folder (it holds result.json) or a folder of
hand-ins: its ``*.zip`` files and the run folders directly inside it (no
link followed, no deeper). A file or folder that cannot be read costs one
line in ``refused``; the rest of the class is summarised.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from lmprof.classroom.cohorts import RunRow, measure_keys, place_in_cohorts, run_row
from lmprof.classroom.detectors import DETECTORS, Context, diverged
from lmprof.errors import UsageError, did_you_mean
from lmprof.record.sections import FULL_BATCHES_PER_EPOCH

MAX_INPUTS = 5000  # files a class may hold: past it, a folder is not a class's hand-ins


@dataclass
class Flag:
    detector: str
    run: str
    evidence: str


@dataclass
class ClassSummary:
    rows: list[RunRow]
    cohorts: dict[str, list[RunRow]]
    flags: list[Flag]
    refused: list[str]
    expect: dict[str, Any] | None = None
    inputs: int = 0
    flags_by_run: dict[str, list[Flag]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {d.key: sum(f.detector == d.key for f in self.flags) for d in DETECTORS}

    def to_json(self) -> str:
        return json.dumps({
            "runs": [{"name": r.name, "source": r.source, "cohort": r.cohort, "device": r.device, "status": r.status,
                      "config": r.config, "batches": r.batches, FULL_BATCHES_PER_EPOCH: r.full_batches_per_epoch,
                      "values": r.values, "positions": r.positions, "robust_z": r.z,
                      "flags": {f.detector: f.evidence for f in self.flags_by_run.get(r.name, [])}} for r in self.rows],
            "cohorts": {name: len(members) for name, members in self.cohorts.items()},
            "detectors": self.counts(), "expect": self.expect, "refused": self.refused,
        }, indent=1, allow_nan=False, default=str)

    def to_csv(self) -> str:
        keys = measure_keys()
        head = ["name", "source", "cohort", "device", "status", "model", "emsize", "nhid", "nlayers", "epochs", "lr",
                "tied", "seed", "batches", FULL_BATCHES_PER_EPOCH, *keys, "ms_per_batch_percentile",
                "ms_per_batch_robust_z", "flags", "evidence"]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([h.replace(":", "_") for h in head])
        for r in self.rows:
            flags = self.flags_by_run.get(r.name, [])
            cells = [r.name, r.source, r.cohort, r.device, r.status,
                     *(r.config.get(k) for k in ("model", "emsize", "nhid", "nlayers", "epochs", "lr", "tied", "seed")),
                     r.batches, r.full_batches_per_epoch, *(r.values.get(k) for k in keys),
                     r.positions.get("ms_per_batch"), r.z.get("ms_per_batch"),
                     ";".join(f.detector for f in flags), " | ".join(f.evidence for f in flags)]
            writer.writerow([_cell(c) for c in cells])
        return out.getvalue()


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: a stranger's text starting with = + - @ becomes text."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def load_expect(path: str | Path) -> dict[str, Any]:
    """The assignment's flags (a TOML file of RunConfig names: model = "LSTM", nhid = 200, ...)."""
    import tomllib

    from lmprof.config import RunConfig

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise UsageError(f"--expect {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--expect {path} is not valid TOML: {e}") from None
    known = RunConfig().to_dict()
    for key, value in doc.items():
        if key not in known:
            raise UsageError(f"--expect {path}: {key!r} is not a flag lmprof records{did_you_mean(key, known)}")
        if isinstance(value, (dict, list)):
            raise UsageError(f"--expect {path}: {key} must be one value, got a {type(value).__name__}")
    return dict(doc)


@dataclass
class Loaded:
    name: str
    source: str
    result: Any
    packing: dict[str, Any]
    calibration: dict[str, Any]


def _inputs(paths: Sequence[str | Path], refused: list[str]) -> list[Path]:
    """Bundle files and run folders named, or directly inside a folder named (no link followed inside)."""
    from lmprof.record.result import RESULT_FILE

    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir() and not (given / RESULT_FILE).is_file():
            with os.scandir(given) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    if entry.is_symlink():
                        continue  # a folder of strangers' files: a link in it is not theirs to follow
                    mode = entry.stat(follow_symlinks=False).st_mode
                    if stat.S_ISREG(mode) and entry.name.endswith(".zip"):
                        found.append(Path(entry.path))
                    elif stat.S_ISDIR(mode) and os.path.isfile(os.path.join(entry.path, RESULT_FILE)):
                        found.append(Path(entry.path))
        elif given.exists():
            found.append(given)
        else:
            refused.append(f"{given}: no such file or folder")
    if len(found) > MAX_INPUTS:
        raise UsageError(f"{len(found):,} bundles and folders: more than the {MAX_INPUTS:,} lmprof class reads")
    return found


def _load(path: Path) -> Loaded:
    from lmprof.classroom.bundle import bundle_name, read_bundle
    from lmprof.record.result import RunResult
    from lmprof.safe_files import visible

    if path.is_dir():
        return Loaded(visible(path.name), str(path), RunResult.load(path), {}, {})
    b = read_bundle(path)
    return Loaded(visible(bundle_name(path)), b.path, b.result, b.environment, b.calibration)


def load_class(paths: Sequence[str | Path]) -> tuple[list[Loaded], list[str], int]:
    """Every run that reads, and one line for each input that does not (``UsageError`` or worse)."""
    from lmprof.safe_files import visible

    refused: list[str] = []
    inputs = _inputs(paths, refused)
    loaded = []
    for path in inputs:
        try:
            loaded.append(_load(path))
        except UsageError as e:
            refused.append(visible(str(e)))
        except (RecursionError, MemoryError, ValueError, TypeError, KeyError, OSError) as e:
            # a hostile file that got past the checks costs its line, never the class
            refused.append(f"{visible(str(path))}: could not be read ({e.__class__.__name__}): refused")
    seen: dict[str, int] = {}
    for run in loaded:  # two alice.zip from two folders: each keeps a name of its own
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name} ({seen[run.name]})"
    return loaded, refused, len(inputs) + sum(1 for line in refused if "no such file" in line)


def class_summary(paths: Sequence[str | Path], expect: dict[str, Any] | None = None) -> ClassSummary:
    loaded, refused, inputs = load_class(paths)
    rows = [run_row(run.name, run.source, run.result, run.packing, run.calibration) for run in loaded]
    for run, row in zip(loaded, rows):  # before placing: a diverged run's ppl is no part of its cohort's
        row.diverged = diverged(Context(row=row, result=run.result, packing=run.packing,
                                        calibration=run.calibration, expect=expect)) is not None
    cohorts = place_in_cohorts(rows)
    flags: list[Flag] = []
    by_run: dict[str, list[Flag]] = {}
    for run, row in zip(loaded, rows):
        context = Context(row=row, result=run.result, packing=run.packing, calibration=run.calibration, expect=expect)
        for detector in DETECTORS:
            if detector.key == "outlier" and by_run.get(row.name):
                continue  # another detector already explains why this run stands apart
            evidence = detector.check(context)
            if evidence:
                flag = Flag(detector.key, row.name, evidence)
                flags.append(flag)
                by_run.setdefault(row.name, []).append(flag)
    return ClassSummary(rows=rows, cohorts=cohorts, flags=flags, refused=refused, expect=expect, inputs=inputs,
                        flags_by_run=by_run)
