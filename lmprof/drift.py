"""The run-to-run drift a timing verdict must clear, per machine: measured here, or the labelled default.

Two runs of the same command land a few percent apart even when the
bootstrap over one run's batches says they differ (the batches of a run share
its machine state). ``benchmarks/bench_compare_noise.py --save`` reruns one
command and stores the largest drift of the main phases in lmprof's cache
folder (``compare-drift.json``), keyed by what timings depend on (the CPU
model and thread count, or the GPU: ``hardware_label``). ``lmprof compare``
uses this machine's figure when one is stored, else ``DEFAULT_MARGIN`` and
says it is the default, measured elsewhere.

    >>> machine_drift({"cpu": "AMD EPYC", "threads": 2}, cache_file=Path("/nonexistent"))[1]  # doctest: +ELLIPSIS
    'the default 15% ...'
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

DRIFT_FILE = "compare-drift.json"
# benchmarks/bench_compare_noise.py on lmprof's reference machine (a 2-core AMD EPYC VM, AVX2,
# torch 2.13.0+cpu, 2 threads; 5 reruns of 25 batches, 2026-12-02): forward, backward and the whole
# step drifted up to 13%.
DEFAULT_MARGIN = 0.15
DEFAULT_LABEL = (f"the default {DEFAULT_MARGIN:.0%} (reruns drifted up to 13% on lmprof's 2-core AMD EPYC VM; "
                 "measure this machine's with python benchmarks/bench_compare_noise.py --save)")
MIN_MARGIN, MAX_MARGIN = 0.03, 0.9  # a stored figure outside these is not believed


def drift_key(environment: Mapping[str, Any]) -> str | None:
    from lmprof.record.sweep_summary import hardware_label  # the sweep's and compare's rule for "same hardware"

    return hardware_label(dict(environment))


def _cache_file(cache_file: Path | None) -> Path:
    from lmprof.corpora.synth import cache_dir

    return cache_file or cache_dir() / DRIFT_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            return {}
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def machine_drift(environment: Mapping[str, Any], *, cache_file: Path | None = None) -> tuple[float, str]:
    """(margin, where it comes from) for runs made on ``environment``'s hardware."""
    key = drift_key(environment)
    record = _read(_cache_file(cache_file)).get(key or "") if key else None
    if isinstance(record, dict):
        margin, when = record.get("margin"), record.get("measured")
        if isinstance(margin, (int, float)) and math.isfinite(margin) and MIN_MARGIN <= margin <= MAX_MARGIN:
            reruns = record.get("reruns")
            how = f"{int(reruns)} reruns" if isinstance(reruns, int) else "reruns"
            date = f", {str(when)[:10]}" if when else ""
            return float(margin), f"{margin:.0%}, measured on this machine ({how} of one command{date})"
    return DEFAULT_MARGIN, DEFAULT_LABEL


def margin_from_drift(max_drift: float) -> float:
    """The margin a measured drift asks for: the drift rounded up to a whole percent, at least MIN_MARGIN."""
    return min(MAX_MARGIN, max(MIN_MARGIN, math.ceil(max_drift * 100) / 100))


def save_drift(environment: Mapping[str, Any], max_drift: float, reruns: int, *,
               cache_file: Path | None = None) -> tuple[str, float]:
    """Store this machine's margin (from the largest drift of the main phases); returns (key, margin)."""
    from lmprof.fsutil import write_text_atomic

    key = drift_key(environment)
    if not key:
        raise ValueError("the runs recorded no CPU or GPU name: no machine to store the drift for")
    path = _cache_file(cache_file)
    doc = _read(path)
    margin = margin_from_drift(max_drift)
    doc[key] = {"margin": margin, "max_drift": round(max_drift, 4), "reruns": reruns,
                "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
    return key, margin
