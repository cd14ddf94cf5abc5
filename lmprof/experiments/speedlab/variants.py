"""The speedlab's variants: each a small, named change to the training step, with why it should help.

A variant never edits the reference. The reference ``train()`` takes a model,
a criterion and an optimizer as arguments, so a variant changes one of those
(``apply``), or the configuration before the model is built (``configure``:
a larger batch), or sets a context around the whole training (``contexts``:
threads, TF32). ``build_setup`` builds the reference's objects exactly as
``reference.loop.main`` does (same seed, same order) and then applies the
variants in ``apply_order`` (each variant's ``stage``), so a combination composes: the head is replaced
before autocast wraps the model, and ``torch.compile`` wraps last.

    >>> [v.name for v in VARIANTS][:3]
    ['foreach', 'set-to-none', 'fused-loss']
"""

from __future__ import annotations

import math
import os
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lmprof.config import RunConfig

if TYPE_CHECKING:
    import torch
    import torch.nn as nn


@dataclass
class Setup:
    """What one training of the ladder uses: the reference's objects, as the variants left them."""

    cfg: RunConfig  # the configuration trained (a variant may change batch_size and lr)
    device: "torch.device"
    ntokens: int
    train_ids: "torch.Tensor"  # the training split, one id per token (before batchify)
    valid_ids: "torch.Tensor"  # the validation slice every variant is judged on
    model: "nn.Module"
    criterion: "nn.Module"
    optimizer: "torch.optim.Optimizer | None" = None
    eval_model: "nn.Module | None" = None  # the model evaluated and FLOP-counted (compile leaves it uncompiled)
    contexts: list[Callable[[], AbstractContextManager[Any]]] = field(default_factory=list)
    trainer: Callable[..., int] | None = None  # replaces reference.loop.train (cuda-graph's replayed step)
    setup_seconds: float = 0.0  # one-off work before training (the thread probe), counted in time to quality
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Need:
    """What a variant needs of the run; ``reason`` is its skipped row's line when the run lacks it."""

    reason: str  # "{device}" stands for this run's device type
    config: Callable[[RunConfig], bool] = lambda cfg: True  # what it needs of the configuration
    cuda: bool = False  # it needs a CUDA device

    def met(self, cfg: RunConfig, device: "torch.device") -> bool:
        return (not self.cuda or device.type == "cuda") and self.config(cfg)


CUDA = Need("CUDA only: this run's device is {device}", cuda=True)
RNN = Need("works on the RNN model's modules (encoder, rnn, decoder); the Transformer is built differently",
           lambda cfg: cfg.model != "Transformer")
UNTIED = Need("--tied shares the decoder with the embedding; an adaptive softmax has no single decoder",
              lambda cfg: not cfg.tied)
ADAMW = Need("needs --use-optimizer (the baseline's AdamW): plain SGD has no optimizer to fuse",
             lambda cfg: cfg.use_optimizer)
GRAPH_CUDA = Need("CUDA only: a CUDA graph replays recorded GPU kernel launches; this run's device is {device}",
                  cuda=True)
PLAIN_SGD = Need("the captured step updates with plain SGD (lr a device tensor); --use-optimizer's AdamW is not "
                 "captured", lambda cfg: not cfg.use_optimizer)

# The order a combination applies its members' changes: the head first, then the wrappers, the optimizer,
# the contexts, compile last, and a replacement of train() after everything it replays.
STAGES = ("model", "wrapper", "optimizer", "context", "compile", "trainer")


@dataclass(frozen=True)
class Variant:
    name: str
    summary: str  # the change, in one line
    why: str  # why it should help, in one paragraph
    numbers: str  # what the losses should be: "bitwise" (same arithmetic), "close" (reordered), "changed"
    apply: Callable[[Setup], None] | None = None
    configure: Callable[[RunConfig], RunConfig] | None = None
    stage: str = "model"  # one of STAGES: when apply runs in a combination
    needs: tuple[Need, ...] = ()  # checked in order: the first unmet one is the skipped row's reason
    conflicts: tuple[str, ...] = ()
    probe: bool = True  # one tiny step before the ladder (not for those whose setup compiles or times steps)

    @property
    def cuda_only(self) -> bool:
        return any(need.cuda for need in self.needs)

    def skip_reason(self, cfg: RunConfig, device: "torch.device") -> str:
        """Why this variant cannot run here; "" when it can."""
        unmet = next((need for need in self.needs if not need.met(cfg, device)), None)
        return unmet.reason.format(device=device.type) if unmet else ""


# --- what the variants build -------------------------------------------------------------
def adaptive_cutoffs(ntokens: int) -> list[int]:
    """Head of the most frequent ~6% of words, then clusters up to ~30% and the rest (WikiText-2's 2k/10k of 33k)."""
    cutoffs = sorted({max(1, round(ntokens * 0.06)), max(2, round(ntokens * 0.3))})
    return [c for c in cutoffs if c < ntokens] or [max(1, ntokens // 2)]


def forward_step(model: "nn.Module", data: "torch.Tensor", cfg: RunConfig) -> "torch.Tensor":
    """The output train() computes for one batch from a fresh hidden state (what probes and FLOP counts run)."""
    if cfg.model == "Transformer":
        return model(data).view(-1, model.decoder.out_features)  # type: ignore[no-any-return]
    output, _ = model(data, model.init_hidden(data.size(1)))
    return output  # type: ignore[no-any-return]


# --- the changes --------------------------------------------------------------------------
def _optimizer(setup: Setup, **kwargs: Any) -> "torch.optim.Optimizer":
    """The reference's update rule as a torch optimizer: SGD at lr (no momentum), or AdamW with --use-optimizer."""
    import torch

    params = list(setup.model.parameters())
    if setup.cfg.use_optimizer:
        return torch.optim.AdamW(params, lr=setup.cfg.lr, **kwargs)
    return torch.optim.SGD(params, lr=setup.cfg.lr, **kwargs)


def _foreach(setup: Setup) -> None:
    setup.optimizer = _optimizer(setup, foreach=True)


def _set_to_none(setup: Setup) -> None:
    setup.optimizer = _optimizer(setup, foreach=False)  # train() calls optimizer.zero_grad(): set_to_none=True


def _fused_loss(setup: Setup) -> None:
    import torch.nn as nn

    from lmprof.experiments.speedlab.models import LogitsRNN

    setup.model = LogitsRNN(setup.model)
    setup.eval_model = setup.model
    setup.criterion = nn.CrossEntropyLoss()


def _adaptive(setup: Setup) -> None:
    """Sort the vocabulary by training frequency (id 0 the most frequent) and train the adaptive model."""
    import torch

    from lmprof.experiments.speedlab.models import AdaptiveLoss, adaptive_model

    counts = torch.bincount(setup.train_ids, minlength=setup.ntokens)
    order = torch.argsort(-counts, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(setup.ntokens)
    setup.train_ids, setup.valid_ids = rank[setup.train_ids], rank[setup.valid_ids]
    torch.manual_seed(setup.cfg.seed)  # a fresh model from the run's seed, as the reference's is
    model = adaptive_model(setup.cfg, setup.ntokens, adaptive_cutoffs(setup.ntokens)).to(setup.device)
    setup.model = setup.eval_model = model
    setup.criterion = AdaptiveLoss(model)
    if setup.optimizer is not None:  # --use-optimizer: AdamW over the new model's parameters
        setup.optimizer = _optimizer(setup)
    setup.notes.append(f"adaptive softmax cutoffs {adaptive_cutoffs(setup.ntokens)} of {setup.ntokens} words")


def _bf16(setup: Setup) -> None:
    from lmprof.experiments.speedlab.models import AutocastModel

    setup.model = AutocastModel(setup.model, setup.device.type)
    setup.eval_model = setup.model


def _compile(setup: Setup, **kwargs: Any) -> None:
    import torch

    setup.eval_model = setup.eval_model or setup.model
    setup.model = torch.compile(setup.model, **kwargs)  # type: ignore[assignment]


def _cuda_graph(setup: Setup) -> None:
    from lmprof.experiments.speedlab.graph_step import GraphStep

    setup.trainer = GraphStep(setup.model, setup.criterion, setup.cfg, setup.device).train
    setup.notes.append("dropout masks come from the graph-safe CUDA generator (offset advanced per replay): "
                       "with dropout > 0 the losses differ from eager's; an epoch's short last batch runs eagerly")


def thread_candidates(cores: int | None = None) -> list[int]:
    """1, half the cores, all the cores (distinct): a thread count is worth trying only at these landmarks."""
    n = cores or os.cpu_count() or 1
    return sorted({1, max(1, n // 2), n})


def _threads(setup: Setup) -> None:
    """Time three training steps at each candidate thread count (on a copy, RNG forked); keep the fastest."""
    import copy

    import torch

    from lmprof.reference.loop import batchify, get_batch

    start = time.perf_counter()
    data, targets = get_batch(batchify(setup.train_ids, setup.cfg.batch_size, setup.device), 0, setup.cfg.bptt)
    before = torch.get_num_threads()
    timings = {}
    with torch.random.fork_rng(devices=[]):
        probe = copy.deepcopy(setup.model)
        for n in thread_candidates():
            torch.set_num_threads(n)
            times = []
            for _ in range(4):  # the first is a warm-up (thread pool start)
                t0 = time.perf_counter()
                setup.criterion(forward_step(probe, data, setup.cfg), targets).backward()
                times.append(time.perf_counter() - t0)
            timings[n] = min(times[1:])
    torch.set_num_threads(before)
    best = min(timings, key=timings.__getitem__)
    setup.setup_seconds += time.perf_counter() - start
    setup.notes.append("threads probe (best of 3 steps): " +
                       ", ".join(f"{n}: {1e3 * s:.1f} ms" for n, s in sorted(timings.items())) + f"; chose {best}")
    setup.contexts.append(lambda: torch_threads(best))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _bigger_batch(cfg: RunConfig) -> RunConfig:
    return cfg.replace(batch_size=cfg.batch_size * BATCH_FACTOR, lr=cfg.lr * math.sqrt(BATCH_FACTOR))


BATCH_FACTOR = 2


@contextmanager
def _tf32_on() -> Iterator[None]:
    import torch

    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _tf32(setup: Setup) -> None:
    setup.contexts.append(_tf32_on)


def _cudnn_off(setup: Setup) -> None:
    import torch

    setup.contexts.append(lambda: torch.backends.cudnn.flags(enabled=False))


def _fused_adamw(setup: Setup) -> None:
    import torch

    setup.optimizer = torch.optim.AdamW(list(setup.model.parameters()), lr=setup.cfg.lr, fused=True)


VARIANTS: tuple[Variant, ...] = (
    Variant("foreach", "the update as torch.optim.SGD(foreach=True): one multi-tensor kernel for all parameters",
            "The reference updates parameters in a Python loop, one small kernel launch per tensor. A foreach "
            "update hands every parameter to one multi-tensor kernel, so the per-tensor overhead (Python, "
            "dispatch, on a GPU a launch each) is paid once. The arithmetic (p - lr * grad) is the same, so "
            "the losses should be bitwise equal; the gain is bounded by the update's share of the step.",
            "bitwise", apply=_foreach, stage="optimizer"),
    Variant("set-to-none", "optimizer.zero_grad(set_to_none=True): gradients freed, not zero-filled",
            "Zero-filling every gradient each step writes the parameters' size in memory for nothing: backward "
            "overwrites them anyway. Setting them to None skips that write, and backward allocates fresh "
            "tensors. Since torch 2.0 this is already the default of model.zero_grad(), which the reference "
            "calls, so here it should measure as the reference does: a tip whose work torch already did.",
            "bitwise", apply=_set_to_none, stage="optimizer"),
    Variant("fused-loss", "the decoder returns logits; the loss is F.cross_entropy (log-softmax + NLL together)",
            "The reference's forward ends in log_softmax and the loss is NLLLoss on its output, two passes over "
            "the seq x batch x vocabulary matrix, the largest tensor of the step. cross_entropy can fuse them "
            "and, in backward, form softmax - one_hot directly. The function is the same, so the losses "
            "should agree to float32 rounding; on a CPU torch runs the same two kernels, so the gain may be nil.",
            "close", apply=_fused_loss, needs=(RNN,), conflicts=("adaptive-softmax",)),
    Variant("threads", "the intra-op thread count that ran a training step fastest here (probed first)",
            "Matrix products split across threads; small ones do not pay for the split, and threads that "
            "outnumber the cores fight. A short probe (1, half, all cores) picks the count that ran a step "
            "fastest. The probe's seconds are counted in time to quality. Another count sums in another "
            "order, so the losses may drift in the last bits.",
            "close", apply=_threads, stage="context", probe=False, conflicts=("cuda-graph",)),
    Variant("batch", f"batch_size x{BATCH_FACTOR}, lr x sqrt({BATCH_FACTOR}) (the square-root scaling rule)",
            "Fewer, larger matrix products use the cores better: the decoder's (seq*batch) x nhid x vocabulary "
            "product grows in its long side, and the per-step overheads (Python, clip, update) are paid half "
            "as often per token. Fewer steps per token can learn less per token, so the learning rate grows "
            "by the square root of the batch factor (the noise of a gradient falls by that factor); linear "
            "scaling (x2) fights the clip at 0.25. Different batches: the losses change.",
            "changed", configure=_bigger_batch),
    Variant("adaptive-softmax", "nn.AdaptiveLogSoftmaxWithLoss over a frequency-sorted vocabulary (a different model)",
            "The decoder (nhid x vocabulary) is most of the step's arithmetic. An adaptive softmax computes the "
            "full scores only for the frequent words and one score per cluster of rare words, with the rare "
            "clusters projected to a smaller size: most tokens are frequent, so most of the decoder's work "
            "goes. It changes the model (other parameters, other numbers), so only time to quality can say "
            "whether it is faster at the same perplexity.",
            "changed", apply=_adaptive, needs=(RNN, UNTIED), conflicts=("fused-loss",)),
    Variant("bf16", "forward under torch.autocast(bfloat16); loss and update in float32",
            "bfloat16 halves the bytes each matrix product reads and, on hardware with bf16 units (AMX, "
            "AVX512-BF16, tensor cores), doubles or more its arithmetic rate. Where the CPU lacks them torch "
            "emulates, and it can be slower: measured here, whatever it shows. Fewer mantissa bits: the losses "
            "change.",
            "changed", apply=_bf16, stage="wrapper", needs=(RNN,)),
    Variant("compile", "torch.compile(model): one optimised graph (compile time counted in time to quality)",
            "torch.compile traces forward and backward into graphs and fuses the elementwise work between the "
            "matrix products (dropout, the softmax), cutting memory traffic and Python overhead. The fused LSTM "
            "is already one kernel, so there is little left to fuse; the first step pays the compile, reported "
            "apart from the per-step rate.",
            "close", apply=_compile, stage="compile", probe=False,
            conflicts=("compile-reduce-overhead", "cuda-graph")),
    Variant("tf32", "torch.backends.cuda.matmul.allow_tf32 = True", "On Ampere and later GPUs, float32 matrix "
            "products run on tensor cores with a 10-bit mantissa: several times the float32 rate for a "
            "rounding error below what training notices.", "changed", apply=_tf32, stage="context", needs=(CUDA,)),
    Variant("compile-reduce-overhead", "torch.compile(mode='reduce-overhead'): compiled graphs replayed as CUDA graphs",
            "reduce-overhead records the compiled graphs as CUDA graphs, meant to cut launch cost. On this model "
            "it does not reach the step: the LSTM graph-breaks (cuDNN's RNN stays outside the compiled graphs), "
            "so the step is still many launches plus compile's guards. Kept to show why the whole-step capture "
            "(cuda-graph) is the one that works here.", "close",
            apply=lambda s: _compile(s, mode="reduce-overhead"), stage="compile", needs=(CUDA,), probe=False,
            conflicts=("compile", "cuda-graph")),
    Variant("cuda-graph", "the whole step (forward, loss, backward, clip, update, hidden) captured once, replayed",
            "A small model's GPU step is launch-bound: ~450 small kernels, each launched from Python, and the GPU "
            "idles between them. Captured once as one CUDA graph (static input, target and hidden buffers; lr a "
            "device tensor), a replay submits all of them in one call: the launches go, the kernels stay the same, "
            "so the step approaches the kernel floor. Dropout masks come from the graph-safe generator, so with "
            "dropout > 0 the losses differ from eager's (measured in the losses column); with dropout 0 they "
            "agree to float rounding.", "changed", apply=_cuda_graph, stage="trainer",
            needs=(GRAPH_CUDA, PLAIN_SGD, RNN), probe=False,
            conflicts=("compile", "compile-reduce-overhead", "adaptive-softmax", "foreach", "set-to-none",
                       "fused-adamw", "threads", "bf16")),  # bf16: autocast's cast cache and capture do not mix
    Variant("fused-adamw", "torch.optim.AdamW(fused=True) in place of the baseline's AdamW",
            "AdamW reads and writes four tensors per parameter; the fused kernel does it in one pass over "
            "all parameters.", "close", apply=_fused_adamw, stage="optimizer", needs=(CUDA, ADAMW)),
    Variant("cudnn-off", "torch.backends.cudnn.enabled = False: torch's own LSTM kernels",
            "A control, not a tip: it shows what cuDNN's fused recurrent kernels are worth by turning them off.",
            "close", apply=_cudnn_off, stage="context", needs=(CUDA,)),
)
# Not in the default ladder: a control (what cuDNN is worth), run when named (it alone took 4x the budget on a GPU).
CONTROLS = ("cudnn-off",)
BY_NAME: dict[str, Variant] = {v.name: v for v in VARIANTS}


def apply_order(variants: list[Variant]) -> list[Variant]:
    """A combination's members in the order their changes apply: by stage, then in the ladder's order."""
    def key(v: Variant) -> tuple[int, int]:
        return STAGES.index(v.stage), VARIANTS.index(v) if v in VARIANTS else len(VARIANTS)

    return sorted(variants, key=key)


def build_setup(cfg: RunConfig, device: "torch.device", ntokens: int, train_ids: "torch.Tensor",
                valid_ids: "torch.Tensor", variants: list[Variant]) -> Setup:
    """The reference's model, criterion and optimizer (as reference.loop.main builds them), then each variant."""
    import torch
    import torch.nn as nn

    from lmprof.prepare import seeded_model

    ordered = apply_order(variants)
    for v in ordered:
        if v.configure is not None:
            cfg = v.configure(cfg)
    model = seeded_model(cfg, ntokens, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr) if cfg.use_optimizer else None
    setup = Setup(cfg, device, ntokens, train_ids, valid_ids, model, nn.NLLLoss(), optimizer)
    for v in ordered:
        if v.apply is not None:
            v.apply(setup)
    if setup.eval_model is None:
        setup.eval_model = setup.model
    return setup


def compatible(names: list[str]) -> bool:
    return not any(c in names for n in names for c in BY_NAME[n].conflicts)
