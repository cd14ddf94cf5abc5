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
from lmprof.record.sections import VAL_PPL

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


@dataclass
class Budget:
    """How far one trial trains, in batches of its own configuration."""

    batches: int  # the budget: the validation ppl read at this batch's end is the trial's budget_ppl
    limit: int  # the most batches it trains (the budget times the overtime while a target is unmet)
    seconds: float | None = None  # a time budget: the first batch that ends past it becomes the budget

    @classmethod
    def of(cls, plan: Plan, cfg: RunConfig, target_ppl: float | None) -> "Budget":
        batches = math.ceil(plan.budget_tokens / (cfg.bptt * cfg.batch_size))
        if plan.budget_seconds is not None:  # a time budget: train until then; that batch is the budget
            batches = 10 ** 9
        limit = batches if target_ppl is None else math.ceil(batches * plan.overtime)
        return cls(batches, limit, plan.budget_seconds)


class TrialClock:
    """A trial's training seconds: the wall clock since ``start``, less the evaluations between batches.

    Each reading waits for the device first (``sync``), so a GPU's queued work is counted where it ran.
    """

    def __init__(self, sync: Callable[[], None], clock: Callable[[], float] = time.perf_counter) -> None:
        self.sync, self.clock = sync, clock
        self.started = 0.0
        self.left_out = 0.0  # seconds spent evaluating: not training
        self.last_lap = 0.0

    def start(self) -> None:
        self.sync()
        self.started = self.clock()

    def lap(self) -> float:
        """Training seconds until now."""
        self.sync()
        self.last_lap = self.clock()
        return self.last_lap - self.started - self.left_out

    def leave_out_since_lap(self) -> None:
        """The time since the last lap (an evaluation) is not training."""
        self.left_out += self.clock() - self.last_lap


def device_sync(device: "torch.device") -> Callable[[], None]:
    """Waits for the device's queued work (CUDA); a no-op on a device that runs in step with the host."""
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


class TrialTraining:
    """One trial's training: epochs of the reference train() (or the variant's trainer) until it is done.

    At each batch's end (the ``logging`` marker, through ``step_clock``) it stamps the training seconds,
    evaluates when the plan says, and decides whether the trial has what it needs. It stops train() the
    way ``--max-batches`` does: train() reads ``cfg.max_batches`` after every batch, and the config it
    is given (``epoch_cfg``) is this trial's own, so lowering it to the batch just finished ends the epoch there.
    """

    def __init__(self, setup: Setup, plan: Plan, target_ppl: float | None) -> None:
        from lmprof.reference.loop import batchify

        self.setup, self.target_ppl, self.eval_every = setup, target_ppl, plan.eval_every_tokens
        self.cfg = setup.cfg.replace(dry_run=False)
        self.train_data = batchify(setup.train_ids, self.cfg.batch_size, setup.device)
        self.val_data = batchify(setup.valid_ids, self.cfg.eval_batch_size, setup.device)
        self.criterion = RecordingLoss(setup.criterion)
        self.eval_model = setup.eval_model or setup.model
        self.budget = Budget.of(plan, self.cfg, target_ppl)
        self.trial = Trial(setup_seconds=setup.setup_seconds, budget_batches=self.budget.batches, cfg=self.cfg,
                           notes=list(setup.notes))
        sync = device_sync(setup.device)
        self.clock = TrialClock(sync)
        self.step_clock = StepClock(self.batch_ended, sync)
        self.tokens, self.next_check = 0, plan.eval_every_tokens
        self.done = False
        self.epoch_cfg, self.epoch_first = self.cfg, 0  # the running epoch's config, and its first batch

    def run(self) -> None:
        """Train epoch after epoch (an epoch shorter than the budget: the next one) until the trial is done."""
        from lmprof.reference.loop import train

        step = self.setup.trainer or train  # the reference's train(), or cuda-graph's replaying one
        epoch = 0
        self.clock.start()
        while not self.done:
            epoch += 1
            self.epoch_first = len(self.trial.batch_ends)
            self.epoch_cfg = self.cfg.replace(max_batches=self.budget.limit - self.epoch_first)
            step(self.setup.model, self.train_data, self.epoch_cfg, self.criterion, self.setup.ntokens,
                 lr=self.cfg.lr, epoch=epoch, optimizer=self.setup.optimizer, log=lambda line: None)

    def batch_ended(self) -> None:
        """One batch's end: its seconds and tokens; a validation check when one is due; stop when done."""
        trial, budget = self.trial, self.budget
        trial.batch_ends.append(self.clock.lap())
        trial.batch_tokens.append(self.criterion.tokens[-1])
        self.tokens += self.criterion.tokens[-1]
        n = len(trial.batch_ends)
        if budget.seconds is not None and trial.batch_ends[-1] >= budget.seconds and n < budget.batches:
            budget.batches = budget.limit = trial.budget_batches = n  # the time budget is spent: this batch ends it
        if n != budget.batches and self.tokens < self.next_check and n != budget.limit:
            return
        self.check(n)
        self.clock.leave_out_since_lap()
        reached = self.target_ppl is None or trial.time_to_quality is not None
        if n >= budget.limit or (n >= budget.batches and reached):
            self.done = True
            self.epoch_cfg.max_batches = n - self.epoch_first  # train() ends after this batch

    def check(self, n: int) -> None:
        """Validation perplexity after ``n`` batches: a checkpoint, the budget's ppl, the time to quality."""
        from lmprof.reference.loop import evaluate, perplexity

        trial = self.trial
        while self.next_check <= self.tokens:
            self.next_check += self.eval_every
        self.criterion.recording = False
        loss = evaluate(self.eval_model, self.val_data, self.cfg, self.criterion, self.setup.ntokens)
        self.criterion.recording = True
        self.eval_model.train()  # evaluate() left the model in eval mode; train() set it only at its start
        ppl = perplexity(loss)
        seconds = trial.setup_seconds + trial.batch_ends[-1]
        trial.checkpoints.append({"tokens": self.tokens, "seconds": seconds, VAL_PPL: ppl})
        if n == self.budget.batches:
            trial.budget_ppl = ppl
        if self.target_ppl is not None and trial.time_to_quality is None and ppl <= self.target_ppl:
            trial.time_to_quality = seconds

    def finish(self) -> Trial:
        self.trial.forward = self.step_clock.seconds["forward"]
        self.trial.backward = self.step_clock.seconds["backward"]
        self.trial.losses = [float(x) for x in self.criterion.losses[:self.budget.batches]]
        return self.trial


def run_trial(cfg: RunConfig, device: "torch.device", corpus: Any, variants: list[Variant], plan: Plan,
              target_ppl: float | None, *, with_flops: bool = False, valid_tokens: int = VALID_TOKENS) -> Trial:
    """Train ``variants`` (none: the reference) for the plan's budget through the reference train()."""
    import torch

    from lmprof.errors import LossNotFinite
    from lmprof.phases import listening

    if any(v.name in ("compile", "compile-reduce-overhead") for v in variants):
        torch._dynamo.reset()  # each trial compiles as a fresh process would (the disk cache stays)
    setup = build_setup(cfg, device, len(corpus.dictionary), corpus.train, corpus.valid[:valid_tokens + 1],
                        variants)
    training = TrialTraining(setup, plan, target_ppl)
    with ExitStack() as stack:
        for context in setup.contexts:
            stack.enter_context(context())
        if with_flops:
            training.trial.flops = count_flops(setup, training.train_data)
        try:
            with listening(training.step_clock):
                training.run()
        except LossNotFinite as e:
            training.trial.status = "diverged"
            training.trial.notes.append(str(e))
    return training.finish()
