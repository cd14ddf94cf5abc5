"""Misconceptions a profile gives away: eight detectors, each a line of evidence per run it flags.

Each detector reads one run (its record, its row of measures, the packing
machine, the assignment's ``--expect``) and returns the evidence as one
sentence, or None. They judge numbers, not students: what each one cannot
tell apart is said beside it (``Detector.blind_spot``), and the class view
prints that too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from lmprof.classroom.cohorts import SHARE_PHASES, RunRow, measure_label
from lmprof.record.sections import SAVED_BYTES_PER_BATCH, TEST_PPL, VAL_PPL

GROWTH_RATIO = 1.5  # last quarter of the first epoch against its first quarter (warm-up left out)
GROWTH_RANK = 0.6  # and the series rises steadily with the batch index (Spearman)
MIN_SERIES = 8
HOT_SYNC_SHARE = 0.25  # lines that make the host wait for the GPU: a quarter of train()'s time
# Iglewicz and Hoaglin's cut for one robust z-score is 3.5; a class asks 300 runs x 8 measures, where 3.5
# would name a run or two by chance alone (a normal's |z| > 3.5: 1 in 2,100), and 4.5 one in 60 classes.
OUTLIER_Z = 4.5
SYNC_SOURCE = re.compile(r"\.item\(\)|synchronize\(|\.cpu\(\)|\.tolist\(\)|\.numpy\(\)|\bprint\(")
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


@dataclass(frozen=True)
class Context:
    """What a detector may read about one run."""
    row: RunRow
    result: Any  # RunResult
    packing: dict[str, Any]  # the packing machine's environment (empty for a run folder)
    calibration: dict[str, Any]
    expect: dict[str, Any] | None


@dataclass(frozen=True)
class Detector:
    key: str
    title: str
    meaning: str
    blind_spot: str
    check: Callable[[Context], "str | None"]


def _n(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, (int, float)) else float(value)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e5 else f"{value:.2g}"


def spearman(values: list[float]) -> float:
    """Rank correlation of a series with its index (ties ranked by order; a series is rarely tied)."""
    n = len(values)
    ranks = [0] * n
    for rank, i in enumerate(sorted(range(n), key=values.__getitem__)):
        ranks[i] = rank
    d2 = sum((r - i) ** 2 for i, r in enumerate(ranks))
    return 1 - 6 * d2 / (n * (n * n - 1))


def growth(series: list[float]) -> tuple[float, float] | None:
    """(last quarter mean / first quarter mean, rank correlation with the index), warm-up left out.

    The first tenth of the series (at least its first value) is warm-up: caches and allocators settle
    over the first batches, which then run slower, a fall that would hide a rise.
    """
    s = [v for v in series[max(1, len(series) // 10):] if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(s) < MIN_SERIES:
        return None
    q = max(len(s) // 4, 2)
    first, last = sum(s[:q]) / q, sum(s[-q:]) / q
    return (last / first if first > 0 else math.inf), spearman(s)


def _first_epoch(result: Any, series: list[Any]) -> list[Any]:
    """The part of a whole-run series that is the first epoch (the hidden state starts afresh each epoch)."""
    epochs = [e for e in result.metrics.get("epochs", []) if isinstance(e, dict)]
    total = sum(int(_n(e.get("batches")) or 0) for e in epochs)
    first = int(_n(epochs[0].get("batches")) or 0) if epochs else 0
    return series[:max(round(len(series) * first / total), 1)] if total and first else series


def no_repackage(c: Context) -> str | None:
    rows = {r.get("name"): r for r in c.result.phases}
    found = []
    for name in ("backward", "forward"):
        g = growth(_first_epoch(c.result, list(rows.get(name, {}).get("samples") or [])))
        if g and g[0] >= GROWTH_RATIO and g[1] >= GROWTH_RANK:
            found.append(f"{name} time per batch grows {g[0]:.1f}x over the first epoch (rank corr. {g[1]:.2f})")
            break
    g = growth(_first_epoch(c.result, list(c.result.memory.get(SAVED_BYTES_PER_BATCH) or [])))
    if g and g[0] >= GROWTH_RATIO and g[1] >= GROWTH_RANK:
        found.append(f"saved activations grow {g[0]:.1f}x")
    if not found:
        return None
    calls = _n(rows.get("repackage", {}).get("calls"))
    tail = "; repackage_hidden never ran" if rows and not calls else ""
    return "; ".join(found) + tail + ": the graph keeps every earlier batch (is repackage_hidden called?)"


def cpu_on_gpu_machine(c: Context) -> str | None:
    gpus = [str(g) for g in c.packing.get("gpus") or []] if isinstance(c.packing.get("gpus"), list) else []
    accelerator = ", ".join(gpus[:2]) or ("an Apple MPS GPU" if c.packing.get("mps") is True else "")
    if c.row.device != "cpu" or not accelerator or c.calibration.get("same_host") is not True:
        return None
    if c.expect and str(c.expect.get("device", "")) == "cpu":
        return None
    return f"trained on the CPU, on a machine with {accelerator} (--device auto or --accel would use it)"


def hot_sync(c: Context) -> str | None:
    if c.row.device not in ("cuda", "mps"):
        return None
    for fn in c.result.lines.get("functions", []):
        if fn.get("name") != "train":
            continue
        hot = [ln for ln in fn.get("lines", []) if SYNC_SOURCE.search(str(ln.get("source", "")))]
        share = sum(_n(ln.get("share")) or 0.0 for ln in hot)
        if share >= HOT_SYNC_SHARE:
            top = max(hot, key=lambda ln: _n(ln.get("share")) or 0.0)
            return (f"line {top.get('line')} `{str(top.get('source', '')).strip()[:60]}` and its kind take "
                    f"{share:.0%} of train() on {c.row.device}: the host waits for the GPU every step")
    share = c.row.values.get("share:logging")
    if share is not None and share >= HOT_SYNC_SHARE:
        return f"loss.item()/logging takes {share:.0%} of each training step on {c.row.device}"
    return None


def diverged(c: Context) -> str | None:
    m, cfg = c.result.metrics, c.result.config
    vocabulary = _n(m.get("ntokens"))
    lr = f" (lr {float(cfg['lr']):g})" if _n(cfg.get("lr")) is not None else ""
    if c.result.status == "diverged":
        return f"diverged: the loss stopped being a number{lr}"
    epochs = [e for e in m.get("epochs", []) if isinstance(e, dict)]
    for label, value, present in (("valid ppl", epochs[-1].get(VAL_PPL) if epochs else None, bool(epochs)),
                                  ("test ppl", m.get(TEST_PPL), TEST_PPL in m)):
        if not present:
            continue
        if value is None or not math.isfinite(float(value)):
            return f"diverged: {label} is not a number (nan or inf){lr}"
        if vocabulary and float(value) > vocabulary:
            return (f"diverged: {label} {_fmt(float(value))} is above the vocabulary's {int(vocabulary):,} words, "
                    f"worse than a uniform guess{lr}")
    return None


def parameter_counts(cfg: dict[str, Any], ntokens: int) -> tuple[int, int] | None:
    """(untied, tied) parameter counts of upstream's RNNModel for ``cfg`` (None: not a recurrent model)."""
    gates = GATES.get(str(cfg.get("model")))
    e, h, layers = (_n(cfg.get(k)) for k in ("emsize", "nhid", "nlayers"))
    if gates is None or not (e and h and layers):
        return None
    e, h, layers = int(e), int(h), int(layers)
    rnn = sum(gates * h * ((e if i == 0 else h) + h) + 2 * gates * h for i in range(layers))
    untied = ntokens * e + rnn + h * ntokens + ntokens
    return untied, untied - ntokens * h


def tied_mismatch(c: Context) -> str | None:
    nparams, ntokens = _n(c.result.metrics.get("nparams")), _n(c.result.metrics.get("ntokens"))
    counts = parameter_counts(c.result.config, int(ntokens)) if ntokens else None
    if not counts or nparams is None:
        return None
    untied, tied = counts
    asked = c.result.config.get("tied") is True
    if asked and nparams == untied != tied:
        return f"--tied asked, but {int(nparams):,} parameters is the untied count (tied: {tied:,})"
    if not asked and nparams == tied != untied:
        return f"not --tied, but {int(nparams):,} parameters is the tied count (untied: {untied:,})"
    return None


def cut_as_full(c: Context) -> str | None:
    full, ran = c.row.full_batches_per_epoch, c.row.batches_per_epoch
    if not full or not ran or ran >= full:
        return None
    allowed = c.expect.get("max_batches") if c.expect else None
    if allowed is not None and c.result.config.get("max_batches") == allowed:
        return None
    how = f"--max-batches {c.result.config['max_batches']}" if c.result.config.get("max_batches") else \
        "--dry-run" if c.result.config.get("dry_run") else "cut short"
    return (f"each epoch ran {ran} of its {full} batches ({how}): its epoch time and ppl are not a full epoch's")


def flags_differ(c: Context) -> str | None:
    if not c.expect:
        return None
    differ = []
    for key, wanted in c.expect.items():
        if key in ("max_batches", "device"):
            continue  # judged by cut_as_full and cpu_on_gpu_machine
        got = c.result.config.get(key)
        same = (math.isclose(float(got), float(wanted), rel_tol=1e-9)
                if _n(got) is not None and _n(wanted) is not None else got == wanted)
        if not same:
            differ.append(f"{key} {got!r} (expected {wanted!r})")
    return ("flags differ from the assignment: " + ", ".join(differ)) if differ else None


def outlier(c: Context) -> str | None:
    """Far outside its cohort on a speed or a share (judged by the summary after the others: see ``summary``)."""
    keys = ["ms_per_batch", *(f"share:{p}" for p in SHARE_PHASES)]
    far = [(abs(c.row.z[k]), k) for k in keys if k in c.row.z and abs(c.row.z[k]) >= OUTLIER_Z]
    if not far:
        return None
    parts = []
    for _, key in sorted(far, reverse=True)[:2]:
        value = c.row.values[key] or 0.0
        shown = f"{value:.0%}" if key.startswith("share:") else f"{value:.3g} ms"
        parts.append(f"{measure_label(key)} {shown} (robust z {c.row.z[key]:+.1f})")
    return "outside its cohort, not an error: " + "; ".join(parts)


DETECTORS: tuple[Detector, ...] = (
    Detector("no-repackage", "no repackage_hidden", "the graph grows with the batch index",
             "a graph kept on purpose (truncated BPTT over longer spans) grows the same way; a machine that "
             "slows down as it heats (thermal throttling) raises the time but not the saved bytes", no_repackage),
    Detector("cpu-on-gpu", "GPU machine, CPU run", "a GPU was there and the run did not use it",
             "an assignment that asked for the CPU looks the same (say device = \"cpu\" in --expect); a run "
             "packed on another machine than it ran on is not judged", cpu_on_gpu_machine),
    Detector("hot-sync", "per-step sync made hot", "the host waits for the GPU at every step",
             "with --sync launch a line that waits absorbs the queued kernels before it: a slow backward shows "
             "up at loss.item() too; a --sync blocking line table tells them apart", hot_sync),
    Detector("diverged", "diverged", "perplexity above the vocabulary size, or nan",
             "a run stopped in its first batches with a huge lr looks diverged even if it would have recovered; "
             "a tiny corpus's vocabulary makes the bar low", diverged),
    Detector("tied", "--tied vs parameter count", "the parameter count says the opposite of the flag",
             "a model edited beyond tying (an extra layer) matches neither count and is not judged", tied_mismatch),
    Detector("cut", "cut run as a full epoch", "--max-batches or --dry-run: not a full epoch's figures",
             "a corpus smaller than the assignment's also runs fewer batches and is not flagged here "
             "(--expect names the corpus size through its flags only)", cut_as_full),
    Detector("flags", "flags differ from --expect", "model, sizes, epochs or seed not the assignment's",
             "only the flags recorded in result.json: a change made in the code, not a flag, is invisible",
             flags_differ),
    Detector("outlier", "outlier in its cohort", "a speed or share far from its cohort (robust z >= 4.5)",
             "an outlier is not a mistake: a busy laptop, another thread count or a faster idea look alike; "
             "runs another detector explains are not counted again", outlier),
)
