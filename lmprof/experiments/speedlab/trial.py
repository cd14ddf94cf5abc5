"""One training of the speedlab ladder: the reference train() (or a variant's trainer), watched per batch.

``run_trial`` trains one variant (or the reference, or a combination) for a
``Plan``'s budget from the run's seed, evaluating every ``eval_every_tokens``
training tokens (evaluation left out of the clock), and returns a ``Trial``:
the seconds at each batch's end, the losses, the validation checkpoints, time
to quality. ``ladder.run_ladder`` interleaves trials and turns them into rows.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from lmprof.config import RunConfig
from lmprof.experiments.speedlab.rows import Trial
from lmprof.experiments.speedlab.variants import Setup, Variant, build_setup, forward_step

if TYPE_CHECKING:
    import torch

VALID_TOKENS = 4000  # the validation slice every variant is judged on (all of it when shorter)


@dataclass
class Plan:
    budget_tokens: int  # training tokens each variant gets (budget_batches reference batches)
    budget_batches: int
    eval_every_tokens: int
    overtime: float
    repeats: int
    budget_seconds: float | None = None  # set: the next reference training runs this long and fixes the tokens


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
        self.record(loss.detach(), targets.numel())
        return loss  # type: ignore[no-any-return]

    def record(self, loss: Any, tokens: int) -> None:
        """One batch's loss (a tensor or a float) and target count; a trainer that skips the criterion calls it."""
        if self.recording:
            self.losses.append(loss)
            self.tokens.append(tokens)


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

    if any(v.name in ("compile", "compile-reduce-overhead") for v in variants):
        torch._dynamo.reset()  # each trial compiles as a fresh process would (the disk cache stays)
    setup = build_setup(cfg, device, len(corpus.dictionary), corpus.train, corpus.valid[:valid_tokens + 1],
                        variants)
    vcfg = setup.cfg.replace(dry_run=False)
    train_data = batchify(setup.train_ids, vcfg.batch_size, device)
    val_data = batchify(setup.valid_ids, vcfg.eval_batch_size, device)
    criterion = RecordingLoss(setup.criterion)
    eval_model = setup.eval_model or setup.model
    budget = math.ceil(plan.budget_tokens / (vcfg.bptt * vcfg.batch_size))
    if plan.budget_seconds is not None:  # a time budget: train until then; that batch is the budget
        budget = 10 ** 9
    limit = budget if target_ppl is None else math.ceil(budget * plan.overtime)
    trial = Trial(setup_seconds=setup.setup_seconds, budget_batches=budget, cfg=vcfg, notes=list(setup.notes))
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    state = {"start": 0.0, "eval": 0.0, "tokens": 0, "mark": plan.eval_every_tokens}

    def on_batch_end() -> None:
        nonlocal budget, limit
        sync()
        now = time.perf_counter()
        trial.batch_ends.append(now - state["start"] - state["eval"])
        trial.batch_tokens.append(criterion.tokens[-1])
        state["tokens"] += criterion.tokens[-1]
        n = len(trial.batch_ends)
        if plan.budget_seconds is not None and trial.batch_ends[-1] >= plan.budget_seconds and n < budget:
            budget = limit = trial.budget_batches = n  # the time budget is spent: this batch ends it
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
                    step = setup.trainer or train  # the reference's train(), or cuda-graph's replaying one
                    step(setup.model, train_data, vcfg.replace(max_batches=limit - len(trial.batch_ends)),
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
