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

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from lmprof.comparison import DRIFT_MARGIN
from lmprof.config import RunConfig
from lmprof.errors import UsageError
from lmprof.experiments.speedlab.rows import (CLOSE, DIVERGED, FAILED, HELPS, HURTS, JSON_FORMAT, NO_GAIN, REFERENCE, SKIPPED,
                                  Ladder, Row, Trial, best_set, failed_row, judge, loss_agreement, make_row,
                                  run_results, time_to_quality, with_floor)
from lmprof.experiments.speedlab.trial import VALID_TOKENS, Plan, RecordingLoss, StepClock, count_flops, run_trial
from lmprof.experiments.speedlab.variants import BY_NAME, CONTROLS, VARIANTS, Variant

if TYPE_CHECKING:
    import torch

REPEATS = 3
GPU_REPEATS = 2  # on CUDA, with the time budget: the whole ladder in a few minutes
GPU_BUDGET_SECONDS = 3.0  # on CUDA the default budget is time: the reference trains this long (hundreds of steps)
EVAL_EVERY = 10  # reference batches between two quality checks
OVERTIME = 2.0  # a variant short of the target at the budget trains on up to this times the budget
TIMED_CHECKS = 25  # with a time budget, at most this many quality checks per budget after the first training
Progress = Callable[[str], None]
__all__ = ["CLOSE", "DIVERGED", "FAILED", "HELPS", "HURTS", "JSON_FORMAT", "NO_GAIN", "REFERENCE", "SKIPPED",
           "Ladder", "Row",
           "Trial", "best_set", "judge", "loss_agreement", "run_results", "time_to_quality", "run_ladder",
           "run_trial", "choose", "Plan", "RecordingLoss", "StepClock", "count_flops", "VALID_TOKENS"]


# --- choosing the variants ---------------------------------------------------------------
def choose(names: Sequence[str] | None) -> list[Variant]:
    """The variants named (in the ladder's order), or all of them; UsageError for an unknown name."""
    from lmprof.errors import did_you_mean

    if not names:  # the controls (cudnn-off) only when named
        return [v for v in VARIANTS if v.name not in CONTROLS]
    for name in names:
        if name not in BY_NAME:
            raise UsageError(f"unknown variant {name!r}{did_you_mean(name, BY_NAME)}: choose from "
                             + ", ".join(BY_NAME))
    return [v for v in VARIANTS if v.name in names]



def check_options(cfg: RunConfig, repeats: int, eval_every: int, valid_tokens: int, overtime: float) -> None:
    """UsageError (one line, exit 2) for a ladder option out of range, before anything is made or trained."""
    if repeats < 1 or eval_every < 1 or valid_tokens < 2 * cfg.eval_batch_size or overtime < 1:
        raise UsageError("--repeats and --eval-every must be 1 or more, --valid-tokens at least "
                         f"{2 * cfg.eval_batch_size}, --overtime at least 1")


# --- the ladder --------------------------------------------------------------------------------
def _interleaved(bench: Bench, members: dict[str, list[Variant]], target: float | None,
                 round_name: str = "") -> tuple[dict[str, list[Trial]], dict[str, str]]:
    """``plan.repeats`` rounds, each training every entry of ``members`` (name -> its variants) once, in order.

    Interleaved so that a slow spell of the machine falls on every entry alike. Without a ``target`` the
    first trial of the first entry sets it (and, with a time budget, the token budget of every later one).
    Ctrl-C ends the rounds early: the finished trials are returned. An entry whose training raises is
    dropped from later rounds and returned in the second dict (name -> the error, one line); the
    reference's failure is raised, as there is nothing to compare with.
    """
    from lmprof.experiments.speedlab.probe import one_line

    plan, progress = bench.plan, bench.progress
    trials: dict[str, list[Trial]] = {name: [] for name in members}
    failed: dict[str, str] = {}
    try:
        for k in range(plan.repeats):
            for name, variants in members.items():
                if name in failed:
                    continue
                progress(f"repeat {k + 1}/{plan.repeats} · {name}{round_name}")
                try:
                    trial = run_trial(bench.cfg, bench.device, bench.corpus, variants, plan, target,
                                      with_flops=k == 0, valid_tokens=bench.valid_tokens)
                except (KeyboardInterrupt, UsageError):
                    raise
                except Exception as e:  # noqa: BLE001  (one variant's failure must not lose the ladder)
                    if name == REFERENCE:
                        raise
                    failed[name] = one_line(e)
                    progress(f"{name} failed: {failed[name]}")
                    continue
                trials[name].append(trial)
                if target is None:
                    target = trial.budget_ppl
                if plan.budget_seconds is not None:  # the reference's time budget fixed the tokens for all
                    plan.budget_batches = trial.budget_batches
                    plan.budget_tokens = sum(trial.batch_tokens[:trial.budget_batches])
                    plan.budget_seconds = None
                    # hundreds of GPU steps: a check every few is wall time that tells nothing more
                    plan.eval_every_tokens = max(plan.eval_every_tokens, math.ceil(plan.budget_tokens / TIMED_CHECKS))
    except KeyboardInterrupt:
        pass
    return trials, failed


@dataclass
class Bench:
    """What every round of a ladder shares: the run, its corpus, the plan, and where progress lines go."""

    cfg: RunConfig
    device: "torch.device"
    corpus: Any
    plan: Plan
    valid_tokens: int
    progress: Progress


def make_plan(cfg: RunConfig, device: "torch.device", budget_batches: int | None, budget_tokens: int | None,
              budget_seconds: float | None, repeats: int | None, eval_every: int, valid_tokens: int,
              overtime: float) -> Plan:
    """The ladder's budget and repeats (CUDA's defaults: a time budget, fewer repeats); UsageError when out of range."""
    if budget_seconds is None and budget_tokens is None and budget_batches is None and device.type == "cuda":
        budget_seconds = GPU_BUDGET_SECONDS
    if repeats is None:
        repeats = GPU_REPEATS if budget_seconds is not None and device.type == "cuda" else REPEATS
    check_options(cfg, repeats, eval_every, valid_tokens, overtime)
    if budget_seconds is not None and not (0 < budget_seconds < 10 ** 6):
        raise UsageError(f"--budget-seconds must be a positive number of seconds, got {budget_seconds:g}")
    per_batch = cfg.bptt * cfg.batch_size
    if budget_tokens is None:
        budget_tokens = per_batch * (budget_batches or 100)
    if budget_tokens < per_batch:
        raise UsageError(f"the budget ({budget_tokens} tokens) is less than one batch ({per_batch} tokens)")
    return Plan(budget_tokens, math.ceil(budget_tokens / per_batch), eval_every * per_batch, overtime, repeats,
                budget_seconds)


def run_ladder(cfg: RunConfig, *, variants: Sequence[str] | None = None, budget_batches: int | None = None,
               budget_tokens: int | None = None, budget_seconds: float | None = None, repeats: int | None = None,
               eval_every: int = EVAL_EVERY, valid_tokens: int = VALID_TOKENS, overtime: float = OVERTIME,
               combine: bool = True, drift_margin: float = DRIFT_MARGIN, floor: bool = True,
               progress: Progress = lambda line: None) -> Ladder:
    """Train the reference and each variant (then the best compatible set) ``repeats`` times; return the Ladder.

    The budget: ``budget_seconds`` of the reference's training (the default on CUDA, GPU_BUDGET_SECONDS),
    which fixes the tokens every variant trains; or ``budget_tokens``; or ``budget_batches`` (default 100).
    ``floor``: measure the kernel floor first (speedlab.floor) and show each row against it.
    """
    from lmprof.instrument.flops import matmul_peak
    from lmprof.prepare import prepare
    from lmprof.runner import environment

    prepared = prepare(cfg)
    device = prepared.device
    plan = make_plan(cfg, device, budget_batches, budget_tokens, budget_seconds, repeats, eval_every, valid_tokens,
                     overtime)
    budget_seconds, repeats = plan.budget_seconds, plan.repeats
    started = time.perf_counter()
    bench = Bench(cfg, device, prepared.corpus(), plan, valid_tokens, progress)
    wanted = choose(variants)
    runnable, unable = _runnable(bench, wanted)
    kernel_floor = _kernel_floor(bench) if floor else {}
    # The reference's first trial sets the target perplexity the variants' time to quality is read at.
    trials, failed = _interleaved(bench, {REFERENCE: [], **{v.name: [v] for v in runnable}}, None)
    if not trials[REFERENCE]:
        raise KeyboardInterrupt  # stopped before the reference finished once: nothing to compare with
    target = trials[REFERENCE][0].budget_ppl
    notes: list[str] = []
    interrupted = any(len(runs) < repeats for name, runs in trials.items() if name not in failed)
    if interrupted:  # what was measured is kept: the finished trials become the rows
        notes.append("interrupted (Ctrl-C or SIGTERM): the rows hold the trainings that finished; "
                     "a row with fewer repeats has a wider spread, and there is no combination round")
    peak = matmul_peak(device)
    rows = _rows(cfg, device, wanted, runnable, unable, trials, failed, peak, drift_margin, overtime, target)
    best = best_set(rows, drift_margin)
    if combine and not interrupted:
        interrupted = _combination(bench, best, rows, trials, notes, peak, drift_margin, target)
    _with_notes(rows, kernel_floor)
    per_batch = cfg.bptt * cfg.batch_size
    return Ladder(config=cfg.to_dict(), environment=environment(device), budget_tokens=plan.budget_tokens,
                  budget_batches=plan.budget_batches, eval_every_batches=math.ceil(plan.eval_every_tokens / per_batch),
                  valid_tokens=valid_tokens,
                  repeats=repeats, overtime=overtime, target_ppl=target, peak=peak, rows=rows,
                  combination=best if len(best) >= 2 else [], notes=notes, drift_margin=drift_margin,
                  wall_seconds=time.perf_counter() - started, interrupted=interrupted, trials=trials,
                  floor=kernel_floor, budget_seconds=budget_seconds)


def _runnable(bench: Bench, wanted: list[Variant]) -> tuple[list[Variant], dict[str, str]]:
    """The variants this run can train (by their needs, then by one tiny step each), and name -> why not."""
    from lmprof.experiments.speedlab.probe import probe_all

    runnable = [v for v in wanted if not v.skip_reason(bench.cfg, bench.device)]
    bench.progress("probing each variant with one tiny step")
    unable = probe_all(bench.cfg, bench.device, len(bench.corpus.dictionary), bench.corpus.train, runnable)
    return [v for v in runnable if v.name not in unable], unable


def _kernel_floor(bench: Bench) -> dict[str, Any]:
    from lmprof.experiments.speedlab.floor import kernel_floor

    bench.progress("the kernel floor: a few reference steps under torch.profiler")
    return kernel_floor(bench.cfg.replace(dry_run=False), bench.device, bench.corpus)


def _combination(bench: Bench, best: list[str], rows: list[Row], trials: dict[str, list[Trial]], notes: list[str],
                 peak: dict[str, Any], drift_margin: float, target: float | None) -> bool:
    """The combination round: the best compatible set against the reference (its row added to ``rows``).

    Returns whether it was interrupted. With fewer than two helpful variants, a note says why there is none.
    """
    if len(best) < 2:
        notes.append("combination: " + (f"only {best[0]} helped, so it is the best set" if best else
                                         "no variant helped on time to quality, so there is nothing to combine"))
        return False
    name, repeats = "+".join(best), bench.plan.repeats
    pair, pair_failed = _interleaved(bench, {REFERENCE: [], name: [BY_NAME[n] for n in best]}, target,
                                     " (combination round)")
    interrupted = len(pair[REFERENCE]) < repeats or (len(pair[name]) < repeats and name not in pair_failed)
    if interrupted:
        notes.append("interrupted in the combination round: the single variants' rows are complete")
    if name in pair_failed:
        rows.append(failed_row(name, best, pair_failed[name]))
    elif pair[name]:
        rows.append(make_row(name, best, pair[name], pair[REFERENCE], peak, drift_margin, bench.plan.overtime, target,
                             loss_reference=trials[REFERENCE][0]))
        trials[name] = pair[name]
    return interrupted


def _with_notes(rows: list[Row], kernel_floor: dict[str, Any]) -> None:
    """Each row against the kernel floor (when measured), and cuda-graph's row says why it helps."""
    if kernel_floor:
        with_floor(rows, kernel_floor)
    for r in rows:
        if "cuda-graph" in r.members and r.status == "measured":
            r.verdict_line += "; " + graph_note(r, kernel_floor)


def _rows(cfg: RunConfig, device: "torch.device", wanted: list[Variant], runnable: list[Variant],
          unable: dict[str, str], trials: dict[str, list[Trial]], failed: dict[str, str], peak: dict[str, Any],
          drift_margin: float, overtime: float, target: float | None) -> list[Row]:
    """The reference's row, each variant's (measured, failed, or skipped with its reason), in the ladder's order."""
    from lmprof.experiments.speedlab.probe import skip_line

    rows = [make_row(REFERENCE, [], trials[REFERENCE], trials[REFERENCE], peak, drift_margin, overtime, target)]
    for v in wanted:
        if v.name in failed:
            rows.append(failed_row(v.name, [v.name], failed[v.name]))
        elif v in runnable and trials[v.name]:
            rows.append(make_row(v.name, [v.name], trials[v.name], trials[REFERENCE], peak, drift_margin, overtime,
                                 target))
        elif v.name in unable:
            rows.append(Row(v.name, v.summary, v.why, [v.name], "skipped", unable[v.name], verdict=SKIPPED,
                            verdict_line=skip_line(unable[v.name], device)))
        elif v not in runnable:
            reason = v.skip_reason(cfg, device)
            rows.append(Row(v.name, v.summary, v.why, [v.name], "skipped", reason, verdict=SKIPPED,
                            verdict_line=f"skipped: {reason}"))
    measured_first = [r for r in rows if r.status != SKIPPED] + [r for r in rows if r.status == SKIPPED]
    return measured_first


def graph_note(row: Row, floor: dict[str, Any]) -> str:
    """Why cuda-graph helps, and how its losses compare with eager's."""
    at = f"{row.floor_ratio:.0%} of the kernel floor" if row.floor_ratio else "no floor measured"
    diff = f"max |Δ loss| {row.max_loss_diff:.2g} vs eager" if row.max_loss_diff is not None else "losses not compared"
    return (f"launches removed, kernels unchanged ({at}); {diff} (dropout masks from the graph-safe generator; "
            "with --dropout 0 they agree to float rounding)")
