"""The ladder's records: one Trial per training, one Row per rung, the Ladder; verdicts and run folders.

Pure data and arithmetic on it: ``ladder.run_ladder`` fills Trials by
training and turns them into Rows here (``make_row``): medians over repeats,
lmprof compare's bootstrap interval and verdict on the per-token time, the
losses against the reference's, time to quality, and one verdict line.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from lmprof.comparison import BASELINE, DRIFT_MARGIN, FASTER, SLOWER, bootstrap_interval, ratio_of, verdict
from lmprof.config import RunConfig
from lmprof.experiments.speedlab.variants import BY_NAME, compatible
from lmprof.record.sections import GFLOPS, SPEEDLAB_VARIANT, TRAIN_TOKENS, VAL_PPL

JSON_FORMAT = "lmprof.speedlab/1"
REFERENCE = "reference"
CLOSE = 1e-4  # largest |loss difference| still called close (float32 reordering, not a new computation)
HELPS, NO_GAIN, HURTS, SKIPPED, DIVERGED, FAILED = "helps", "no gain", "hurts", "skipped", "diverged", "failed"


@dataclass
class Trial:
    """One training of one variant (or combination) in one repeat."""

    status: str = "ok"  # ok, diverged
    setup_seconds: float = 0.0
    batch_ends: list[float] = field(default_factory=list)  # training seconds at each batch's end, eval excluded
    batch_tokens: list[int] = field(default_factory=list)
    budget_batches: int = 0
    forward: list[float] = field(default_factory=list)  # seconds per batch in the forward phase
    backward: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # training loss per batch within the budget
    checkpoints: list[dict[str, float]] = field(default_factory=list)  # tokens, seconds, val_ppl
    budget_ppl: float | None = None
    time_to_quality: float | None = None
    flops: dict[str, int] = field(default_factory=dict)
    cfg: RunConfig | None = None
    notes: list[str] = field(default_factory=list)

    def warm_per_token(self) -> list[float]:
        """Seconds per token of each batch after the first (the first pays warm-up and compile)."""
        ends = self.batch_ends[:self.budget_batches]
        return [(b - a) / n for a, b, n in zip(ends, ends[1:], self.batch_tokens[1:])]

    def tokens_per_s(self) -> float | None:
        ends = self.batch_ends[:self.budget_batches]
        return sum(self.batch_tokens[1:len(ends)]) / (ends[-1] - ends[0]) if len(ends) > 1 else None

    def first_batch_extra(self) -> float | None:
        """What the first batch cost beyond a warm one (compile, thread pools, caches)."""
        warm = self.warm_per_token()
        if not self.batch_ends or not warm:
            return None
        return self.batch_ends[0] - statistics.median(warm) * self.batch_tokens[0]


@dataclass
class Row:
    """One rung of the ladder: a variant (or the reference, or the combination), over all repeats."""

    name: str
    summary: str
    why: str
    members: list[str]  # the variants applied (one; several for the combination; none for the reference)
    status: str  # measured, skipped, diverged, failed
    reason: str = ""
    batch_size: int | None = None
    lr: float | None = None
    repeats: int = 0
    tokens: int = 0  # training tokens within the budget
    tokens_per_s: float | None = None  # median over repeats, warm batches
    tokens_per_s_range: list[float] | None = None  # fastest and slowest repeat
    speedup: float | None = None  # tokens/s over the reference's (median of the per-repeat ratios)
    speedup_range: list[float] | None = None
    speedup_interval: list[float] | None = None  # 95% bootstrap over warm batches' per-token times
    speed_verdict: str = ""  # compare's verdict on the per-token time: faster, slower, within noise
    setup_seconds: float = 0.0  # one-off work before training (the thread probe)
    compile_seconds: float | None = None  # the first batch beyond a warm one
    gflops: dict[str, float] = field(default_factory=dict)  # achieved GFLOP/s per phase (matmul FLOPs)
    share_of_peak: dict[str, float] = field(default_factory=dict)
    val_ppl: float | None = None  # on the validation slice after the budget
    ppl_diff: float | None = None  # val_ppl minus the reference's
    losses: str = ""  # bitwise equal, close, changed: training losses against the reference's
    max_loss_diff: float | None = None
    time_to_quality: float | None = None  # median seconds until val ppl <= the reference's at the budget
    time_to_quality_speedup: float | None = None  # the reference's time to quality over this one's
    floor_ratio: float | None = None  # time per token over the kernel floor's (1.0: nothing left but the kernels)
    verdict: str = ""  # helps, no gain, hurts, skipped, diverged
    verdict_line: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class Ladder:
    config: dict[str, Any]
    environment: dict[str, Any]
    budget_tokens: int
    budget_batches: int
    eval_every_batches: int
    valid_tokens: int
    repeats: int
    overtime: float
    target_ppl: float | None
    peak: dict[str, Any]
    rows: list[Row]
    combination: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    drift_margin: float = DRIFT_MARGIN
    wall_seconds: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM: the rows hold what finished
    floor: dict[str, Any] = field(default_factory=dict)  # speedlab.floor.kernel_floor: the step's kernel time
    budget_seconds: float | None = None  # --budget-seconds: the reference's first training set the token budget
    trials: dict[str, list[Trial]] = field(default_factory=dict, repr=False)  # kept in memory, not in the JSON

    def to_dict(self) -> dict[str, Any]:
        from lmprof.record.result import json_safe

        data = asdict(self)
        data.pop("trials")
        return {"format": JSON_FORMAT, **json_safe(data)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Ladder":
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "trials"}
        values["rows"] = [Row(**r) for r in data.get("rows", [])]
        return cls(**values)

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


def best_set(rows: list[Row], drift_margin: float = DRIFT_MARGIN) -> list[str]:
    """The variants that helped on time to quality, best first, each kept if compatible with those before."""
    helped = sorted((r for r in rows if r.verdict == HELPS and len(r.members) == 1),
                    key=lambda r: -(r.time_to_quality_speedup or 0.0))
    chosen: list[str] = []
    for r in helped:
        if compatible(chosen + r.members):
            chosen += r.members
    return chosen


# --- a row from its trials -------------------------------------------------------------------
def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def loss_agreement(reference: list[float], other: list[float]) -> tuple[str, float | None]:
    """bitwise equal (every loss the same float), close (within CLOSE), or changed; and the largest difference."""
    if len(reference) != len(other) or not reference:
        return "changed", None
    largest = max(abs(a - b) for a, b in zip(reference, other))
    if largest == 0.0:
        return "bitwise equal", 0.0
    return ("close" if largest <= CLOSE else "changed"), largest


def make_row(name: str, members: list[str], trials: list[Trial], reference: list[Trial], peak: dict[str, Any],
             drift_margin: float, overtime: float, target: float | None, *, loss_reference: Trial | None = None) -> Row:
    """One rung from its trials (and the reference's): speed, achieved FLOP/s, quality, and its verdict."""
    first = trials[0]
    summary, why = _described(name, members)
    row = Row(name, summary, why, members, "measured", repeats=len(trials),
              batch_size=first.cfg.batch_size if first.cfg else None, lr=first.cfg.lr if first.cfg else None,
              tokens=sum(first.batch_tokens[:first.budget_batches]), notes=list(first.notes))
    if any(t.status == "diverged" for t in trials):
        row.status, row.verdict = "diverged", DIVERGED
        row.verdict_line = "diverged: " + "; ".join(n for t in trials for n in t.notes[-1:])
        return row
    _measure_speed(row, trials, reference, drift_margin)
    row.setup_seconds = _median([t.setup_seconds for t in trials]) or 0.0
    if {"compile", "compile-reduce-overhead", "cuda-graph"} & set(members):
        # the first repeat's: later ones in the same process reuse compiled kernels, as a fresh process would not
        # (cuda-graph: its warm-up and capture fall in the first batches; they count in time to quality)
        row.compile_seconds = first.first_batch_extra()
    _measure_flops(row, trials, peak)
    _measure_quality(row, trials, reference, target, loss_reference or reference[0])
    row.verdict, row.verdict_line = judge(row, drift_margin, overtime)
    return row


def _described(name: str, members: list[str]) -> tuple[str, str]:
    """The rung's summary and why it might help: the reference's, its variant's, or the combination's."""
    if name == REFERENCE:
        return "the reference loop, unchanged (lmprof/reference/)", "The baseline every rung is measured against."
    if len(members) == 1:
        return BY_NAME[members[0]].summary, BY_NAME[members[0]].why
    return ("the variants that helped, together: " + ", ".join(members),
            "Each member helped on its own; together they should compound where they act on different work.")


def _measure_speed(row: Row, trials: list[Trial], reference: list[Trial], drift_margin: float) -> None:
    """Tokens/s and the speed-up over the reference (medians and ranges over repeats), and compare's verdict
    on the per-token time (a bootstrap over warm batches)."""
    import numpy as np

    from lmprof.comparison import BOOTSTRAP_SEED

    rates = [t.tokens_per_s() for t in trials]
    speedups = [ratio_of(t.tokens_per_s(), r.tokens_per_s()) for t, r in zip(trials, reference)]
    row.tokens_per_s, row.tokens_per_s_range = _median(rates), _range(rates)
    row.speedup, row.speedup_range = _median(speedups), _range(speedups)
    mine = np.asarray([s for t in trials for s in t.warm_per_token()])
    base = np.asarray([s for t in reference for s in t.warm_per_token()])
    if row.name == REFERENCE:
        row.speed_verdict = BASELINE
    elif len(mine) and len(base):
        interval = bootstrap_interval(base, mine, np.random.default_rng(BOOTSTRAP_SEED))
        time_ratio = float(np.median(mine) / np.median(base))
        row.speed_verdict = verdict(time_ratio, interval, True, drift_margin)
        if interval is not None:
            row.speedup_interval = [1 / interval[1], 1 / interval[0]]


def _range(values: Sequence[float | None]) -> list[float] | None:
    present = [v for v in values if v is not None]
    return [min(present), max(present)] if present else None


def _measure_flops(row: Row, trials: list[Trial], peak: dict[str, Any]) -> None:
    """Achieved GFLOP/s forward and backward (matmul FLOPs over the median phase time), and share of the peak."""
    peak_gflops = float(peak.get(GFLOPS) or 0.0)
    for phase in ("forward", "backward"):
        seconds = _median([statistics.median(t.forward if phase == "forward" else t.backward)
                           for t in trials if (t.forward if phase == "forward" else t.backward)])
        flops = trials[0].flops.get(phase)
        if seconds and flops:
            row.gflops[phase] = flops / seconds / 1e9
            if peak_gflops:
                row.share_of_peak[phase] = row.gflops[phase] / peak_gflops


def _measure_quality(row: Row, trials: list[Trial], reference: list[Trial], target: float | None,
                     loss_reference: Trial) -> None:
    """Val ppl after the budget against the reference's, the losses against the reference's, time to quality."""
    row.val_ppl = _median([t.budget_ppl for t in trials])
    ref_ppl = _median([t.budget_ppl for t in reference])
    row.ppl_diff = row.val_ppl - ref_ppl if row.val_ppl is not None and ref_ppl is not None else None
    row.losses, row.max_loss_diff = loss_agreement(loss_reference.losses, trials[0].losses)
    reached = [time_to_quality(t, target) for t in trials]
    row.time_to_quality = _median(reached) if all(r is not None for r in reached) else None
    ref_ttq = _median([time_to_quality(t, target) or (t.checkpoints[-1]["seconds"] if t.checkpoints else None)
                       for t in reference])
    row.time_to_quality_speedup = ratio_of(ref_ttq, row.time_to_quality)


def failed_row(name: str, members: list[str], error: str) -> Row:
    """A variant whose training raised: a row that says so; the ladder keeps every other row."""
    v = BY_NAME.get(name)
    return Row(name, v.summary if v else "", v.why if v else "", members, FAILED, error, verdict=FAILED,
               verdict_line=f"failed: {error}")


def with_floor(rows: list[Row], floor: dict[str, Any]) -> None:
    """Each measured row's time per token as a multiple of the floor's (the floor is the reference step's)."""
    per_token = floor.get("per_token_seconds")
    for r in rows:
        if per_token and r.tokens_per_s:
            r.floor_ratio = (1.0 / r.tokens_per_s) / per_token


def time_to_quality(trial: Trial, target: float | None) -> float | None:
    """Seconds (setup and training, evaluation excluded) at the first check whose val ppl reached ``target``."""
    if target is None:
        return None
    return next((c["seconds"] for c in trial.checkpoints if c[VAL_PPL] <= target), None)


def judge(row: Row, drift_margin: float, overtime: float) -> tuple[str, str]:
    """The row's verdict and its one line: time to quality decides; speed and quality say why."""
    speed = f"{row.speedup:.2f}x tokens/s ({row.speed_verdict})" if row.speedup is not None else "no speed measured"
    ppl = f"ppl {row.ppl_diff:+.2f}" if row.ppl_diff is not None else "ppl not measured"
    losses = f"losses {row.losses}" + (f" (max |Δ| {row.max_loss_diff:.1e})" if row.losses == "close" else "")
    if row.name == REFERENCE:
        ttq = f"{row.time_to_quality:.1f} s" if row.time_to_quality is not None else "—"
        return BASELINE, f"baseline: val ppl {row.val_ppl:.2f} after the budget, reached in {ttq}" \
            if row.val_ppl is not None else "baseline"
    if row.time_to_quality_speedup is None:
        return HURTS, (f"hurts: {speed}, {ppl}, but never reaches the reference's ppl within {overtime:g}x "
                       f"the budget; {losses}")
    s = row.time_to_quality_speedup
    word = HELPS if s >= 1 + drift_margin else HURTS if s <= 1 / (1 + drift_margin) else NO_GAIN
    when = f"reaches the reference's ppl {s:.2f}x {'sooner' if s >= 1 else 'later'}"
    why = ""
    if word != HELPS and row.speed_verdict == FASTER:
        why = " (faster per token, but learns less per token)"
    elif word == NO_GAIN and row.speed_verdict != SLOWER:
        why = " (within the machine's drift)"
    return word, f"{word}: {when}{why}; {speed}, {ppl}; {losses}"


# --- run folders that lmprof compare opens ---------------------------------------------------
def run_results(ladder: Ladder) -> dict[str, "Any"]:
    """One RunResult per measured row, from its first repeat: epochs (the budget) and forward/backward samples."""
    from lmprof.phases import LABELS
    from lmprof.record.derived import epoch_record, phase_row, with_validation
    from lmprof.record.result import RunResult

    out = {}
    for name, trials in ladder.trials.items():
        t = trials[0]
        if t.cfg is None or not t.batch_ends:
            continue
        n = min(t.budget_batches, len(t.batch_ends))
        seconds, tokens = t.batch_ends[n - 1], sum(t.batch_tokens[:n])
        epoch = with_validation(epoch_record(1, t.cfg.lr, n, tokens, seconds),
                                math.log(t.budget_ppl) if t.budget_ppl else None, t.budget_ppl)
        phases = [phase_row(p, LABELS[p], calls=len(s), seconds=sum(s), host_seconds=sum(s), wall_seconds=seconds,
                            samples=s[:n]) for p, s in (("forward", t.forward), ("backward", t.backward)) if s]
        status = "diverged" if t.status == "diverged" else "ok"
        out[name.replace("+", "_")] = RunResult(
            command="speedlab", config=t.cfg.to_dict(),
            environment=ladder.environment, phases=phases,
            metrics={"status": status, "epochs": [epoch], TRAIN_TOKENS: tokens, SPEEDLAB_VARIANT: name,
                     "notes": t.notes})
    return out
