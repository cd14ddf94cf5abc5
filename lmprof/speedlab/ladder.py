"""The ladder: the reference and each variant trained for the same token budget, interleaved, repeated.

For each repeat, the reference and every variant train in turn (so a slow
minute of the machine hits all of them, not one) from the same seed on the
same data, each through the reference ``train()``. Every ``eval_every``
reference batches' worth of tokens, and at the budget, each is evaluated on
the same validation slice; evaluation is left out of the clock (it is the
measurement, not the training). The reference's ppl at the budget is the
target: a variant's *time to quality* is the training seconds (plus its
one-off setup and compile) until its validation ppl first reaches that
target, so a variant that runs faster per step but learns worse per token is
not called faster. A variant that has not reached it at the budget trains on,
up to ``overtime`` times the budget, to find out.

Ratios and intervals are lmprof compare's: ``compare.bootstrap_interval`` over
the per-token time of every warm batch (all repeats pooled), and
``compare.verdict`` with its drift margin.

    >>> ladder = run_ladder(RunConfig(), budget_batches=100)   # doctest: +SKIP
    >>> [(r.name, r.speedup, r.time_to_quality) for r in ladder.rows]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import statistics
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lmprof.compare import BASELINE, DRIFT_MARGIN, FASTER, SLOWER, bootstrap_interval, verdict
from lmprof.config import RunConfig
from lmprof.errors import UsageError
from lmprof.speedlab.variants import BY_NAME, VARIANTS, Setup, Variant, build_setup, compatible, forward_step

if TYPE_CHECKING:
    import torch

JSON_FORMAT = "lmprof.speedlab/1"
REFERENCE = "reference"
REPEATS = 3
EVAL_EVERY = 10  # reference batches between two quality checks
VALID_TOKENS = 4000  # the validation slice every variant is judged on (all of it when shorter)
OVERTIME = 2.0  # a variant short of the target at the budget trains on up to this times the budget
CLOSE = 1e-4  # largest |loss difference| still called close (float32 reordering, not a new computation)
HELPS, NO_GAIN, HURTS, SKIPPED, DIVERGED = "helps", "no gain", "hurts", "skipped", "diverged"
Progress = Callable[[str], None]


@dataclass
class Plan:
    budget_tokens: int  # training tokens each variant gets (budget_batches reference batches)
    budget_batches: int
    eval_every_tokens: int
    overtime: float
    repeats: int


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
    status: str  # measured, skipped, diverged
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
    trials: dict[str, list[Trial]] = field(default_factory=dict, repr=False)  # kept in memory, not in the JSON

    def to_dict(self) -> dict[str, Any]:
        from lmprof.result import json_safe

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


# --- choosing the variants ---------------------------------------------------------------
def choose(names: Sequence[str] | None) -> list[Variant]:
    """The variants named (in the ladder's order), or all of them; UsageError for an unknown name."""
    from lmprof.errors import did_you_mean

    if not names:
        return list(VARIANTS)
    for name in names:
        if name not in BY_NAME:
            raise UsageError(f"unknown variant {name!r}{did_you_mean(name, BY_NAME)}: choose from "
                             + ", ".join(BY_NAME))
    return [v for v in VARIANTS if v.name in names]


# --- one training ---------------------------------------------------------------------------
class _StopTraining(Exception):
    """Raised from the batch-end marker to leave train() once a trial has what it needs."""


class RecordingLoss:
    """The criterion, also keeping each training batch's loss (a tensor: no sync) and target count."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.recording = True
        self.losses: list[Any] = []
        self.tokens: list[int] = []

    def __call__(self, output: "torch.Tensor", targets: "torch.Tensor") -> "torch.Tensor":
        loss = self.inner(output, targets)
        if self.recording:
            self.losses.append(loss.detach())
            self.tokens.append(targets.numel())
        return loss  # type: ignore[no-any-return]


class StepClock:
    """A phase recorder: forward and backward seconds per batch, and a call at each batch's end."""

    def __init__(self, on_batch_end: Callable[[], None], sync: Callable[[], None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.on_batch_end, self.sync, self.clock = on_batch_end, sync, clock
        self.started = 0.0
        self.seconds: dict[str, list[float]] = {"forward": [], "backward": []}

    def enter(self, name: str) -> None:
        if name in self.seconds:
            self.sync()
            self.started = self.clock()

    def exit(self, name: str) -> None:
        if name in self.seconds:
            self.sync()
            self.seconds[name].append(self.clock() - self.started)
        elif name == "logging":
            self.on_batch_end()


def count_flops(setup: Setup, train_data: "torch.Tensor") -> dict[str, int]:
    """Matmul FLOPs of one full training step of this setup's own model (random stream forked, grads cleared)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lmprof.reference.loop import get_batch

    model = setup.eval_model or setup.model
    data, targets = get_batch(train_data, 0, setup.cfg.bptt)
    with torch.random.fork_rng(devices=[setup.device] if setup.device.type == "cuda" else []):
        model.train()
        forward, backward = FlopCounterMode(display=False), FlopCounterMode(display=False)
        with forward:
            loss = setup.criterion(forward_step(model, data, setup.cfg), targets)
        with backward:
            loss.backward()
    for p in model.parameters():
        p.grad = None
    return {"forward": int(forward.get_total_flops()), "backward": int(backward.get_total_flops())}


def run_trial(cfg: RunConfig, device: "torch.device", corpus: Any, variants: list[Variant], plan: Plan,
              target_ppl: float | None, *, with_flops: bool = False, valid_tokens: int = VALID_TOKENS) -> Trial:
    """Train ``variants`` (none: the reference) for the plan's budget through the reference train()."""
    import torch

    from lmprof.errors import LossNotFinite
    from lmprof.reference.loop import batchify, evaluate, perplexity, train

    if any(v.name == "compile" or v.name == "cudagraphs" for v in variants):
        torch._dynamo.reset()  # each trial compiles as a fresh process would (the disk cache stays)
    setup = build_setup(cfg, device, len(corpus.dictionary), corpus.train, corpus.valid[:valid_tokens + 1],
                        variants)
    vcfg = setup.cfg.replace(dry_run=False)
    train_data = batchify(setup.train_ids, vcfg.batch_size, device)
    val_data = batchify(setup.valid_ids, vcfg.eval_batch_size, device)
    criterion = RecordingLoss(setup.criterion)
    eval_model = setup.eval_model or setup.model
    budget = math.ceil(plan.budget_tokens / (vcfg.bptt * vcfg.batch_size))
    limit = budget if target_ppl is None else math.ceil(budget * plan.overtime)
    trial = Trial(setup_seconds=setup.setup_seconds, budget_batches=budget, cfg=vcfg, notes=list(setup.notes))
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    state = {"start": 0.0, "eval": 0.0, "tokens": 0, "mark": plan.eval_every_tokens}

    def on_batch_end() -> None:
        sync()
        now = time.perf_counter()
        trial.batch_ends.append(now - state["start"] - state["eval"])
        trial.batch_tokens.append(criterion.tokens[-1])
        state["tokens"] += criterion.tokens[-1]
        n = len(trial.batch_ends)
        if n != budget and state["tokens"] < state["mark"] and n != limit:
            return
        while state["mark"] <= state["tokens"]:
            state["mark"] += plan.eval_every_tokens
        criterion.recording = False
        loss = evaluate(eval_model, val_data, vcfg, criterion, setup.ntokens)
        criterion.recording = True
        eval_model.train()  # evaluate() left the model in eval mode; train() set it only at its start
        ppl = perplexity(loss)
        seconds = trial.setup_seconds + trial.batch_ends[-1]
        trial.checkpoints.append({"tokens": state["tokens"], "seconds": seconds, "val_ppl": ppl})
        if n == budget:
            trial.budget_ppl = ppl
        if target_ppl is not None and trial.time_to_quality is None and ppl <= target_ppl:
            trial.time_to_quality = seconds
        state["eval"] += time.perf_counter() - now
        if n >= limit or (n >= budget and (target_ppl is None or trial.time_to_quality is not None)):
            raise _StopTraining

    clock = StepClock(on_batch_end, sync)
    with ExitStack() as stack:
        for context in setup.contexts:
            stack.enter_context(context())
        if with_flops:
            trial.flops = count_flops(setup, train_data)
        from lmprof.phases import listening

        epoch = 0
        sync()
        state["start"] = time.perf_counter()
        try:
            with listening(clock):
                while len(trial.batch_ends) < limit:  # an epoch shorter than the budget: the next epoch
                    epoch += 1
                    train(setup.model, train_data, vcfg.replace(max_batches=limit - len(trial.batch_ends)),
                          criterion, setup.ntokens, lr=vcfg.lr, epoch=epoch, optimizer=setup.optimizer,
                          log=lambda line: None)
        except _StopTraining:
            pass
        except LossNotFinite as e:
            trial.status = "diverged"
            trial.notes.append(str(e))
    trial.forward, trial.backward = clock.seconds["forward"], clock.seconds["backward"]
    trial.losses = [float(x) for x in criterion.losses[:budget]]
    return trial


# --- the ladder --------------------------------------------------------------------------------
def run_ladder(cfg: RunConfig, *, variants: Sequence[str] | None = None, budget_batches: int | None = None,
               budget_tokens: int | None = None, repeats: int = REPEATS, eval_every: int = EVAL_EVERY,
               valid_tokens: int = VALID_TOKENS, overtime: float = OVERTIME, combine: bool = True,
               drift_margin: float = DRIFT_MARGIN, progress: Progress = lambda line: None) -> Ladder:
    """Train the reference and each variant (then the best compatible set) ``repeats`` times; return the Ladder."""
    import torch

    from lmprof.corpora import synth
    from lmprof.corpora.check import check_corpus
    from lmprof.instrument.flops import matmul_peak
    from lmprof.reference.data import Corpus
    from lmprof.runner import environment, resolve_device

    cfg.validate()
    if repeats < 1 or eval_every < 1 or valid_tokens < 2 * cfg.eval_batch_size or overtime < 1:
        raise UsageError("--repeats and --eval-every must be 1 or more, --valid-tokens at least "
                         f"{2 * cfg.eval_batch_size}, --overtime at least 1")
    per_batch = cfg.bptt * cfg.batch_size
    if budget_tokens is None:
        budget_tokens = per_batch * (budget_batches or 100)
    if budget_tokens < per_batch:
        raise UsageError(f"the budget ({budget_tokens} tokens) is less than one batch ({per_batch} tokens)")
    data_path = cfg.data or str(synth.default_corpus(cfg.synth_seed))
    check_corpus(data_path, cfg.batch_size, cfg.bptt, cfg.eval_batch_size)
    device = resolve_device(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    corpus = Corpus(data_path)
    plan = Plan(budget_tokens, math.ceil(budget_tokens / per_batch), eval_every * per_batch, overtime, repeats)
    wanted = choose(variants)
    runnable = [v for v in wanted if not v.skip_reason(cfg, device)]
    trials: dict[str, list[Trial]] = {REFERENCE: [], **{v.name: [] for v in runnable}}
    target: float | None = None
    for k in range(repeats):
        for name in trials:
            progress(f"repeat {k + 1}/{repeats} · {name}")
            members = [] if name == REFERENCE else [BY_NAME[name]]
            trials[name].append(run_trial(cfg, device, corpus, members, plan, target, with_flops=k == 0,
                                          valid_tokens=valid_tokens))
            if name == REFERENCE and target is None:
                target = trials[REFERENCE][0].budget_ppl
    peak = matmul_peak(device)
    rows = [_row(REFERENCE, [], trials[REFERENCE], trials[REFERENCE], peak, drift_margin, overtime, target)]
    rows += [_row(v.name, [v.name], trials[v.name], trials[REFERENCE], peak, drift_margin, overtime, target)
             for v in runnable]
    rows += [Row(v.name, v.summary, v.why, [v.name], "skipped", v.skip_reason(cfg, device), verdict=SKIPPED,
                 verdict_line=f"skipped: {v.skip_reason(cfg, device)}") for v in wanted if v not in runnable]
    notes: list[str] = []
    best = best_set(rows, drift_margin)
    if combine and len(best) >= 2:
        name = "+".join(best)
        pair: dict[str, list[Trial]] = {REFERENCE: [], name: []}
        for k in range(repeats):  # the combination against fresh reference runs, interleaved again
            for who in pair:
                progress(f"repeat {k + 1}/{repeats} · {who} (combination round)")
                members = [] if who == REFERENCE else [BY_NAME[n] for n in best]
                pair[who].append(run_trial(cfg, device, corpus, members, plan, target, with_flops=k == 0,
                                           valid_tokens=valid_tokens))
        combo = _row(name, best, pair[name], pair[REFERENCE], peak, drift_margin, overtime, target,
                     loss_reference=trials[REFERENCE][0])
        rows.append(combo)
        trials[name] = pair[name]
    elif combine:
        notes.append("combination: " + (f"only {best[0]} helped, so it is the best set" if best else
                                         "no variant helped on time to quality, so there is nothing to combine"))
    return Ladder(config=cfg.to_dict(), environment=environment(device), budget_tokens=budget_tokens,
                  budget_batches=plan.budget_batches, eval_every_batches=eval_every, valid_tokens=valid_tokens,
                  repeats=repeats, overtime=overtime, target_ppl=target, peak=peak, rows=rows,
                  combination=best if len(best) >= 2 else [], notes=notes, drift_margin=drift_margin,
                  wall_seconds=time.perf_counter() - started, trials=trials)


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


def _row(name: str, members: list[str], trials: list[Trial], reference: list[Trial], peak: dict[str, Any],
         drift_margin: float, overtime: float, target: float | None, *, loss_reference: Trial | None = None) -> Row:
    import numpy as np

    from lmprof.compare import BOOTSTRAP_SEED

    variants = [BY_NAME[m] for m in members]
    if name == REFERENCE:
        summary, why = "the reference loop, unchanged (lmprof/reference/)", "The baseline every rung is measured against."
    elif len(variants) == 1:
        summary, why = variants[0].summary, variants[0].why
    else:
        summary = "the variants that helped, together: " + ", ".join(members)
        why = "Each member helped on its own; together they should compound where they act on different work."
    first = trials[0]
    row = Row(name, summary, why, members, "measured", repeats=len(trials),
              batch_size=first.cfg.batch_size if first.cfg else None, lr=first.cfg.lr if first.cfg else None,
              tokens=sum(first.batch_tokens[:first.budget_batches]), notes=list(first.notes))
    if any(t.status == "diverged" for t in trials):
        row.status, row.verdict = "diverged", DIVERGED
        row.verdict_line = "diverged: " + "; ".join(n for t in trials for n in t.notes[-1:])
        return row
    rates = [t.tokens_per_s() for t in trials]
    ratios = [ratio_of(t.tokens_per_s(), r.tokens_per_s()) for t, r in zip(trials, reference)]
    row.tokens_per_s = _median(rates)
    present = [r for r in rates if r is not None]
    row.tokens_per_s_range = [min(present), max(present)] if present else None
    row.speedup = _median(ratios)
    present = [r for r in ratios if r is not None]
    row.speedup_range = [min(present), max(present)] if present else None
    mine = np.asarray([s for t in trials for s in t.warm_per_token()])
    base = np.asarray([s for t in reference for s in t.warm_per_token()])
    if name == REFERENCE:
        row.speed_verdict = BASELINE
    elif len(mine) and len(base):
        interval = bootstrap_interval(base, mine, np.random.default_rng(BOOTSTRAP_SEED))
        time_ratio = float(np.median(mine) / np.median(base))
        row.speed_verdict = verdict(time_ratio, interval, True, drift_margin)
        if interval is not None:
            row.speedup_interval = [1 / interval[1], 1 / interval[0]]
    row.setup_seconds = _median([t.setup_seconds for t in trials]) or 0.0
    if "compile" in members or "cudagraphs" in members:
        row.compile_seconds = _median([t.first_batch_extra() for t in trials])
    peak_gflops = float(peak.get("gflops") or 0.0)
    for phase in ("forward", "backward"):
        seconds = _median([statistics.median(t.forward if phase == "forward" else t.backward)
                           for t in trials if (t.forward if phase == "forward" else t.backward)])
        flops = first.flops.get(phase)
        if seconds and flops:
            row.gflops[phase] = flops / seconds / 1e9
            if peak_gflops:
                row.share_of_peak[phase] = row.gflops[phase] / peak_gflops
    row.val_ppl = _median([t.budget_ppl for t in trials])
    ref_ppl = _median([t.budget_ppl for t in reference])
    row.ppl_diff = row.val_ppl - ref_ppl if row.val_ppl is not None and ref_ppl is not None else None
    row.losses, row.max_loss_diff = loss_agreement((loss_reference or reference[0]).losses, first.losses)
    reached = [time_to_quality(t, target) for t in trials]
    row.time_to_quality = _median(reached) if all(r is not None for r in reached) else None
    ref_ttq = _median([time_to_quality(t, target) or (t.checkpoints[-1]["seconds"] if t.checkpoints else None)
                       for t in reference])
    row.time_to_quality_speedup = ratio_of(ref_ttq, row.time_to_quality)
    row.verdict, row.verdict_line = judge(row, drift_margin, overtime)
    return row


def time_to_quality(trial: Trial, target: float | None) -> float | None:
    """Seconds (setup and training, evaluation excluded) at the first check whose val ppl reached ``target``."""
    if target is None:
        return None
    return next((c["seconds"] for c in trial.checkpoints if c["val_ppl"] <= target), None)


def ratio_of(value: float | None, base: float | None) -> float | None:
    from lmprof.compare import ratio

    return ratio(value, base)


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
    from lmprof.result import RunResult

    out = {}
    for name, trials in ladder.trials.items():
        t = trials[0]
        if t.cfg is None or not t.batch_ends:
            continue
        n = min(t.budget_batches, len(t.batch_ends))
        seconds, tokens = t.batch_ends[n - 1], sum(t.batch_tokens[:n])
        epoch = {"epoch": 1, "lr": t.cfg.lr, "batches": n, "tokens": tokens, "train_seconds": seconds,
                 "tokens_per_s": tokens / seconds if seconds > 0 else None,
                 "val_loss": math.log(t.budget_ppl) if t.budget_ppl else None, "val_ppl": t.budget_ppl}
        phases = [{"name": p, "label": LABELS[p], "calls": len(s), "seconds": sum(s), "mean_seconds":
                   sum(s) / len(s), "samples": s[:n]} for p, s in (("forward", t.forward), ("backward", t.backward))
                  if s]
        status = "diverged" if t.status == "diverged" else "ok"
        out[name.replace("+", "_")] = RunResult(
            command="speedlab", config={**t.cfg.to_dict(), "extra": {"speedlab_variant": name}},
            environment=ladder.environment, phases=phases,
            metrics={"status": status, "epochs": [epoch], "train_tokens": tokens, "speedlab_variant": name,
                     "notes": t.notes})
    return out
