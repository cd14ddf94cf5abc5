"""One row of measures per run, cohorts by device kind, and where a run stands in its cohort.

A cohort is a kind of machine: a GPU by its name (``GPU · Tesla T4``), a CPU
by its model family and the instruction set torch uses on it (``CPU · Intel
Core i7 · AVX2``). Within a cohort times can be compared as measured;
across cohorts only calibrated (in reference steps, ``calibrate``).

Distributions, not means: each measure is summarised by its quantiles, and
a run's robust z-score (distance from the cohort's median in units of its
median absolute deviation, scaled to a normal's sigma) says how far outside
it lies without one wild run moving the yardstick.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from lmprof.phases import LABELS, STEP_PHASES
from lmprof.record.sections import (CORPUS_TOKENS, CUDA_PEAK_BYTES, FULL_BATCHES_PER_EPOCH, RSS_PEAK_BYTES, TEST_PPL,
    TOKENS_PER_S, TRAIN_SECONDS, TRAIN_TOKENS, VAL_PPL)

# (key, label, what it is): the measures the class view shows per cohort
MEASURES: tuple[tuple[str, str, str], ...] = (
    ("ms_per_batch", "ms/batch", "training time per batch, as measured"),
    (TOKENS_PER_S, "tokens/s", "training tokens per second, as measured"),
    ("ref_steps_per_batch", "ref steps/batch", "calibrated: a batch's time in this machine's reference steps"),
    ("tokens_per_ref_step", "tokens/ref step", "calibrated: tokens trained in one reference step's time"),
    ("valid_ppl", "valid ppl", "the last epoch's validation perplexity"),
    (TEST_PPL, "test ppl", "the test perplexity"),
    ("memory_peak_mib", "memory peak MiB", "CUDA peak, else the process's resident peak (--memory)"),
)
SHARE_PHASES = ("data", "forward", "loss", "backward", "clip", "update", "logging")
MIN_COHORT_FOR_Z = 5  # a median and a spread of fewer runs say little
MAD_TO_SIGMA = 1.4826  # a normal's sigma is 1.4826 median absolute deviations
# A phase's share moves by a tenth of itself, at least half a point, between reruns of one program on one
# machine (a first run in a fresh process gives forward ten points more than a warm one: 50% against 40%).
SHARE_NOISE = (0.1, 0.005)


@dataclass
class RunRow:
    """A run's measures, as the class view and the detectors read them."""
    name: str
    source: str
    cohort: str
    device: str
    config: dict[str, Any]
    status: str
    batches: int = 0  # training batches run, all epochs
    batches_per_epoch: int = 0  # the most any epoch ran
    full_batches_per_epoch: int | None = None
    values: dict[str, float | None] = field(default_factory=dict)  # MEASURES and share:<phase>
    positions: dict[str, float] = field(default_factory=dict)  # measure -> percentile in its cohort (0..100)
    z: dict[str, float] = field(default_factory=dict)  # measure -> robust z-score in its cohort
    diverged: bool = False  # set by the class summary: its perplexities stay out of the cohort's


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


_NOISE = re.compile(r"\((?:R|TM|tm|r)\)|\b(?:CPU|Processor|processor)\b|@.*$|\b\d+-Core\b|\bwith\b.*$")


def cpu_family(model: str) -> str:
    """'Intel(R) Core(TM) i7-1165G7 @ 2.80GHz' -> 'Intel Core i7'; 'AMD EPYC 7B13' -> 'AMD EPYC'."""
    words = []
    for word in _NOISE.sub(" ", model or "").split():
        word = word.split("-")[0] if "-" in word else word
        if any(c.isdigit() for c in word) and len(word) > 2:
            break  # a model number: the family ends before it
        if word:
            words.append(word)
        if len(words) == 3:
            break
    return " ".join(words) or "unknown CPU"


def gpu_family(name: str) -> str:
    return re.sub(r"^NVIDIA\s+", "", name or "").strip() or "unknown GPU"


def cohort_of(environment: dict[str, Any], packing: dict[str, Any]) -> tuple[str, str]:
    """(cohort name, device type) from the run's environment and the packing machine's (bundle)."""
    device = str(environment.get("device") or "cpu").split(":")[0]
    if device == "cuda":
        return f"GPU · {gpu_family(str(environment.get('gpu') or ''))}", device
    if device == "mps":
        return "GPU · Apple MPS", device
    capability = str(packing.get("cpu_capability") or "?") if packing.get("host") == environment.get("host") \
        or "host" not in packing else "?"
    return f"CPU · {cpu_family(str(environment.get('cpu') or packing.get('cpu') or ''))} · {capability}", "cpu"


def full_batches(result: Any) -> int | None:
    """Batches a whole epoch has: from the phase summary, else from the corpus size, batch size and bptt."""
    n = _number(result.phase_summary.get(FULL_BATCHES_PER_EPOCH))
    if n:
        return int(n)
    tokens = result.metrics.get(CORPUS_TOKENS) or {}
    train, bsz, bptt = (_number(x) for x in (tokens.get("train"), result.config.get("batch_size"),
                                             result.config.get("bptt")))
    if not (train and bsz and bptt):
        return None
    rows = int(train) // int(bsz)
    return math.ceil((rows - 1) / int(bptt)) if rows > 1 else None


def step_shares(phases: list[dict[str, Any]]) -> dict[str, float]:
    """Each training-step phase's share of the step (the step phases' time summed), 0..1."""
    seconds = {row.get("name"): _number(row.get("seconds")) or 0.0 for row in phases if row.get("name") in STEP_PHASES}
    total = sum(seconds.values())
    return {name: seconds.get(name, 0.0) / total for name in SHARE_PHASES} if total > 0 else {}


def run_row(name: str, source: str, result: Any, packing: dict[str, Any], calibration: dict[str, Any]) -> RunRow:
    m = result.metrics
    epochs = [e for e in m.get("epochs", []) if isinstance(e, dict)]
    batches = sum(int(_number(e.get("batches")) or 0) for e in epochs)
    seconds = sum(_number(e.get(TRAIN_SECONDS)) or 0.0 for e in epochs)
    tokens = sum(_number(e.get("tokens")) or 0.0 for e in epochs) or (_number(m.get(TRAIN_TOKENS)) or 0.0)
    ms = 1000 * seconds / batches if batches and seconds else None
    rate = tokens / seconds if seconds and tokens else None
    step = _number((calibration.get("reference_step") or {}).get("seconds"))
    cohort, device = cohort_of(result.environment, packing)
    memory = result.memory
    peak = _number(memory.get(CUDA_PEAK_BYTES)) or _number(memory.get(RSS_PEAK_BYTES))
    values: dict[str, float | None] = {
        "ms_per_batch": ms, TOKENS_PER_S: rate,
        "ref_steps_per_batch": ms / (1000 * step) if ms and step else None,
        "tokens_per_ref_step": rate * step if rate and step else None,
        "valid_ppl": _number(epochs[-1].get(VAL_PPL)) if epochs else None,
        TEST_PPL: _number(m.get(TEST_PPL)),
        "memory_peak_mib": peak / 2**20 if peak else None,
    }
    values.update({f"share:{k}": v for k, v in step_shares(result.phases).items()})
    return RunRow(name=name, source=source, cohort=cohort, device=device, config=result.config,
                  status=result.status, batches=batches,
                  batches_per_epoch=max((int(_number(e.get("batches")) or 0) for e in epochs), default=0),
                  full_batches_per_epoch=full_batches(result), values=values)


def quantiles(values: list[float], qs: tuple[float, ...] = (0.1, 0.5, 0.9)) -> list[float]:
    """Linear-interpolated quantiles of ``values`` (non-empty)."""
    ordered = sorted(values)
    out = []
    for q in qs:
        at = q * (len(ordered) - 1)
        lo, frac = int(at), at - int(at)
        out.append(ordered[lo] + (ordered[min(lo + 1, len(ordered) - 1)] - ordered[lo]) * frac)
    return out


def robust_z(value: float, values: list[float], relative: float = 0.02, floor: float = 0.0) -> float | None:
    """(value - median) / (1.4826 MAD): a normal's z, one wild run cannot move; None for too few runs.

    The spread is at least ``relative`` of the median and ``floor``: identical runs still differ that much.
    """
    if len(values) < MIN_COHORT_FOR_Z:
        return None
    median = quantiles(values, (0.5,))[0]
    mad = quantiles([abs(v - median) for v in values], (0.5,))[0]
    spread = max(MAD_TO_SIGMA * mad, relative * abs(median), floor, 1e-12)
    return (value - median) / spread


def measure_keys() -> list[str]:
    return [k for k, _, _ in MEASURES] + [f"share:{p}" for p in SHARE_PHASES]


def measure_label(key: str) -> str:
    if key.startswith("share:"):
        return f"{LABELS.get(key[6:], key[6:]).split(' (')[0]} share"
    return next(label for k, label, _ in MEASURES if k == key)


def place_in_cohorts(rows: list[RunRow]) -> dict[str, list[RunRow]]:
    """Group rows by cohort (largest first) and fill each row's percentile positions and robust z-scores."""
    cohorts: dict[str, list[RunRow]] = {}
    for row in rows:
        cohorts.setdefault(row.cohort, []).append(row)
    for members in cohorts.values():
        for key in measure_keys():
            present = [(r, r.values[key]) for r in members if r.values.get(key) is not None
                       and math.isfinite(r.values[key] or 0.0) and not (r.diverged and key.endswith("_ppl"))]
            values = [v for _, v in present]
            for row, value in present:
                below = sum(v < value for v in values) + 0.5 * (sum(v == value for v in values) - 1)
                row.positions[key] = 100 * below / (len(values) - 1) if len(values) > 1 else 50.0
                z = robust_z(value, values, *(SHARE_NOISE if key.startswith("share:") else (0.02, 0.0)))
                if z is not None:
                    row.z[key] = z
    return dict(sorted(cohorts.items(), key=lambda kv: (-len(kv[1]), kv[0])))
