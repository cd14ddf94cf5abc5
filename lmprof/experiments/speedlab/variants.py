"""The speedlab's variants: each a small, named change to the training step, with why it should help.

A variant never edits the reference. The reference ``train()`` takes a model,
a criterion and an optimizer as arguments, so a variant changes one of those
(``apply``), or the configuration before the model is built (``configure``:
a larger batch), or sets a context around the whole training (``contexts``:
threads, TF32). ``build_setup`` builds the reference's objects exactly as
``reference.loop.main`` does (same seed, same order) and then applies the
variants in ``APPLY_ORDER``, so a combination composes: the head is replaced
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
class Variant:
    name: str
    summary: str  # the change, in one line
    why: str  # why it should help, in one paragraph
    numbers: str  # what the losses should be: "bitwise" (same arithmetic), "close" (reordered), "changed"
    apply: Callable[[Setup], None] | None = None
    configure: Callable[[RunConfig], RunConfig] | None = None
    cuda_only: bool = False
    rnn_only: bool = False  # reaches into the RNN model's modules (the Transformer's head differs)
    conflicts: tuple[str, ...] = ()
    probe: bool = True  # one tiny step before the ladder (not for those whose setup compiles or times steps)

    def skip_reason(self, cfg: RunConfig, device: "torch.device") -> str:
        """Why this variant cannot run here; "" when it can."""
        if self.name == "cuda-graph" and device.type != "cuda":
            return f"CUDA only: a CUDA graph replays recorded GPU kernel launches; this run's device is {device.type}"
        if self.cuda_only and device.type != "cuda":
            return f"CUDA only: this run's device is {device.type}"
        if self.name == "cuda-graph" and cfg.use_optimizer:
            return ("the captured step updates with plain SGD (lr a device tensor); --use-optimizer's AdamW "
                    "is not captured")
        if self.rnn_only and cfg.model == "Transformer":
            return "works on the RNN model's modules (encoder, rnn, decoder); the Transformer is built differently"
        if self.name == "adaptive-softmax" and cfg.tied:
            return "--tied shares the decoder with the embedding; an adaptive softmax has no single decoder"
        if self.name == "fused-adamw" and not cfg.use_optimizer:
            return "needs --use-optimizer (the baseline's AdamW): plain SGD has no optimizer to fuse"
        return ""


# --- models the variants build ----------------------------------------------------------
def _rnn_body(model: "nn.Module", input: "torch.Tensor", hidden: Any) -> tuple["torch.Tensor", Any]:
    """The reference RNNModel's forward up to (not including) the decoder."""
    emb = model.drop(model.encoder(input))
    output, hidden = model.rnn(emb, hidden)
    return model.drop(output), hidden


def _module_base() -> type:
    import torch.nn as nn

    return nn.Module


class _Lazy:
    """Classes that subclass nn.Module are made on first use, so importing this module imports no torch."""

    cache: dict[str, type] = {}


def logits_model(inner: "nn.Module") -> "nn.Module":
    """The reference model's own modules, with forward ending at the decoder's logits (no log_softmax).

    What differs from the reference: only the last line of forward; the
    criterion then applies log_softmax and the NLL in one ``F.cross_entropy``.
    """
    if "logits" not in _Lazy.cache:
        class LogitsRNN(_module_base()):  # type: ignore[misc]
            def __init__(self, inner: "nn.Module") -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input: "torch.Tensor", hidden: Any) -> tuple["torch.Tensor", Any]:
                output, hidden = _rnn_body(self.inner, input, hidden)
                return self.inner.decoder(output).view(-1, self.inner.ntoken), hidden

            def init_hidden(self, bsz: int) -> Any:
                return self.inner.init_hidden(bsz)

        _Lazy.cache["logits"] = LogitsRNN
    return _Lazy.cache["logits"](inner)  # type: ignore[no-any-return]


def adaptive_model(cfg: RunConfig, ntokens: int, cutoffs: list[int]) -> "nn.Module":
    """The reference RNN body (encoder, rnn, dropout) with an adaptive softmax in place of the decoder.

    A different model: the decoder's ntokens x nhid matrix becomes a small head
    (the frequent words and one entry per tail cluster) plus smaller tail
    projections, so it has other parameters and other numbers.
    """
    import torch.nn as nn

    from lmprof.reference.model import RNNModel

    if "adaptive" not in _Lazy.cache:
        class AdaptiveRNN(_module_base()):  # type: ignore[misc]
            def __init__(self, body: RNNModel, head: nn.AdaptiveLogSoftmaxWithLoss) -> None:
                super().__init__()
                body.decoder = nn.Identity()  # type: ignore[assignment]  # the head below replaces it
                self.body = body
                self.head = head

            def forward(self, input: "torch.Tensor", hidden: Any) -> tuple["torch.Tensor", Any]:
                output, hidden = _rnn_body(self.body, input, hidden)
                return output.view(-1, output.size(-1)), hidden  # features; the criterion applies the head

            def init_hidden(self, bsz: int) -> Any:
                return self.body.init_hidden(bsz)

        class AdaptiveLoss(_module_base()):  # type: ignore[misc]
            """criterion(features, targets): the adaptive softmax's mean NLL (its parameters live in the model)."""

            def __init__(self, model: nn.Module) -> None:
                super().__init__()
                self.model = [model]  # a list: not a submodule, so the criterion owns no parameters

            def forward(self, features: "torch.Tensor", targets: "torch.Tensor") -> "torch.Tensor":
                return self.model[0].head(features, targets).loss  # type: ignore[no-any-return]

        _Lazy.cache["adaptive"], _Lazy.cache["adaptive_loss"] = AdaptiveRNN, AdaptiveLoss
    body = RNNModel(cfg.model, ntokens, cfg.emsize, cfg.nhid, cfg.nlayers, cfg.dropout, False)
    head = nn.AdaptiveLogSoftmaxWithLoss(cfg.nhid, ntokens, cutoffs, div_value=4.0)
    return _Lazy.cache["adaptive"](body, head)  # type: ignore[no-any-return]


def adaptive_cutoffs(ntokens: int) -> list[int]:
    """Head of the most frequent ~6% of words, then clusters up to ~30% and the rest (WikiText-2's 2k/10k of 33k)."""
    cutoffs = sorted({max(1, round(ntokens * 0.06)), max(2, round(ntokens * 0.3))})
    return [c for c in cutoffs if c < ntokens] or [max(1, ntokens // 2)]


def autocast_model(inner: "nn.Module", device_type: str) -> "nn.Module":
    """Runs the reference model's forward under bfloat16 autocast; returns float32 output and hidden state.

    What differs from the reference: matrix products (and the LSTM) compute in
    bfloat16; the log_softmax and the loss stay float32 (autocast's own rule).
    """
    import torch

    if "autocast" not in _Lazy.cache:
        class AutocastModel(_module_base()):  # type: ignore[misc]
            def __init__(self, inner: "nn.Module", device_type: str) -> None:
                super().__init__()
                self.inner = inner
                self.device_type = device_type

            def forward(self, input: "torch.Tensor", hidden: Any) -> tuple["torch.Tensor", Any]:
                with torch.autocast(self.device_type, dtype=torch.bfloat16):
                    output, hidden = self.inner(input, hidden)
                as_float = (lambda h: h.float()) if isinstance(hidden, torch.Tensor) else \
                    (lambda h: tuple(t.float() for t in h))
                return output.float(), as_float(hidden)

            def init_hidden(self, bsz: int) -> Any:
                return self.inner.init_hidden(bsz)

        _Lazy.cache["autocast"] = AutocastModel
    return _Lazy.cache["autocast"](inner, device_type)  # type: ignore[no-any-return]


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

    setup.model = logits_model(setup.model)
    setup.eval_model = setup.model
    setup.criterion = nn.CrossEntropyLoss()


def _adaptive(setup: Setup) -> None:
    """Sort the vocabulary by training frequency (id 0 the most frequent) and train the adaptive model."""
    import torch

    counts = torch.bincount(setup.train_ids, minlength=setup.ntokens)
    order = torch.argsort(-counts, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(setup.ntokens)
    setup.train_ids, setup.valid_ids = rank[setup.train_ids], rank[setup.valid_ids]
    torch.manual_seed(setup.cfg.seed)  # a fresh model from the run's seed, as the reference's is
    setup.model = adaptive_model(setup.cfg, setup.ntokens, adaptive_cutoffs(setup.ntokens)).to(setup.device)
    setup.eval_model = setup.model
    setup.criterion = _Lazy.cache["adaptive_loss"](setup.model)
    if setup.optimizer is not None:  # --use-optimizer: AdamW over the new model's parameters
        setup.optimizer = _optimizer(setup)
    setup.notes.append(f"adaptive softmax cutoffs {adaptive_cutoffs(setup.ntokens)} of {setup.ntokens} words")


def _bf16(setup: Setup) -> None:
    setup.model = autocast_model(setup.model, setup.device.type)
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
            "bitwise", apply=_foreach),
    Variant("set-to-none", "optimizer.zero_grad(set_to_none=True): gradients freed, not zero-filled",
            "Zero-filling every gradient each step writes the parameters' size in memory for nothing: backward "
            "overwrites them anyway. Setting them to None skips that write, and backward allocates fresh "
            "tensors. Since torch 2.0 this is already the default of model.zero_grad(), which the reference "
            "calls, so here it should measure as the reference does: a tip whose work torch already did.",
            "bitwise", apply=_set_to_none),
    Variant("fused-loss", "the decoder returns logits; the loss is F.cross_entropy (log-softmax + NLL together)",
            "The reference's forward ends in log_softmax and the loss is NLLLoss on its output, two passes over "
            "the seq x batch x vocabulary matrix, the largest tensor of the step. cross_entropy can fuse them "
            "and, in backward, form softmax - one_hot directly. The function is the same, so the losses "
            "should agree to float32 rounding; on a CPU torch runs the same two kernels, so the gain may be nil.",
            "close", apply=_fused_loss, rnn_only=True, conflicts=("adaptive-softmax",)),
    Variant("threads", "the intra-op thread count that ran a training step fastest here (probed first)",
            "Matrix products split across threads; small ones do not pay for the split, and threads that "
            "outnumber the cores fight. A short probe (1, half, all cores) picks the count that ran a step "
            "fastest. The probe's seconds are counted in time to quality. Another count sums in another "
            "order, so the losses may drift in the last bits.",
            "close", apply=_threads, probe=False, conflicts=("cuda-graph",)),
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
            "changed", apply=_adaptive, rnn_only=True, conflicts=("fused-loss",)),
    Variant("bf16", "forward under torch.autocast(bfloat16); loss and update in float32",
            "bfloat16 halves the bytes each matrix product reads and, on hardware with bf16 units (AMX, "
            "AVX512-BF16, tensor cores), doubles or more its arithmetic rate. Where the CPU lacks them torch "
            "emulates, and it can be slower: measured here, whatever it shows. Fewer mantissa bits: the losses "
            "change.",
            "changed", apply=_bf16, rnn_only=True),
    Variant("compile", "torch.compile(model): one optimised graph (compile time counted in time to quality)",
            "torch.compile traces forward and backward into graphs and fuses the elementwise work between the "
            "matrix products (dropout, the softmax), cutting memory traffic and Python overhead. The fused LSTM "
            "is already one kernel, so there is little left to fuse; the first step pays the compile, reported "
            "apart from the per-step rate.",
            "close", apply=_compile, probe=False, conflicts=("compile-reduce-overhead", "cuda-graph")),
    Variant("tf32", "torch.backends.cuda.matmul.allow_tf32 = True", "On Ampere and later GPUs, float32 matrix "
            "products run on tensor cores with a 10-bit mantissa: several times the float32 rate for a "
            "rounding error below what training notices.", "changed", apply=_tf32, cuda_only=True),
    Variant("compile-reduce-overhead", "torch.compile(mode='reduce-overhead'): compiled graphs replayed as CUDA graphs",
            "reduce-overhead records the compiled graphs as CUDA graphs, meant to cut launch cost. On this model "
            "it does not reach the step: the LSTM graph-breaks (cuDNN's RNN stays outside the compiled graphs), "
            "so the step is still many launches plus compile's guards. Kept to show why the whole-step capture "
            "(cuda-graph) is the one that works here.", "close",
            apply=lambda s: _compile(s, mode="reduce-overhead"), cuda_only=True, probe=False,
            conflicts=("compile", "cuda-graph")),
    Variant("cuda-graph", "the whole step (forward, loss, backward, clip, update, hidden) captured once, replayed",
            "A small model's GPU step is launch-bound: ~450 small kernels, each launched from Python, and the GPU "
            "idles between them. Captured once as one CUDA graph (static input, target and hidden buffers; lr a "
            "device tensor), a replay submits all of them in one call: the launches go, the kernels stay the same, "
            "so the step approaches the kernel floor. Dropout masks come from the graph-safe generator, so with "
            "dropout > 0 the losses differ from eager's (measured in the losses column); with dropout 0 they "
            "agree to float rounding.", "changed", apply=_cuda_graph, cuda_only=True, rnn_only=True, probe=False,
            conflicts=("compile", "compile-reduce-overhead", "adaptive-softmax", "foreach", "set-to-none",
                       "fused-adamw", "threads", "bf16")),  # bf16: autocast's cast cache and capture do not mix
    Variant("fused-adamw", "torch.optim.AdamW(fused=True) in place of the baseline's AdamW",
            "AdamW reads and writes four tensors per parameter; the fused kernel does it in one pass over "
            "all parameters.", "close", apply=_fused_adamw, cuda_only=True),
    Variant("cudnn-off", "torch.backends.cudnn.enabled = False: torch's own LSTM kernels",
            "A control, not a tip: it shows what cuDNN's fused recurrent kernels are worth by turning them off.",
            "close", apply=_cudnn_off, cuda_only=True),
)
# Not in the default ladder: a control (what cuDNN is worth), run when named (it alone took 4x the budget on a GPU).
CONTROLS = ("cudnn-off",)
BY_NAME: dict[str, Variant] = {v.name: v for v in VARIANTS}
# The order a combination applies its members: the head first, then the wrappers, compile last.
APPLY_ORDER = ("batch", "adaptive-softmax", "fused-loss", "bf16", "foreach", "set-to-none", "fused-adamw",
               "threads", "tf32", "cudnn-off", "compile", "compile-reduce-overhead", "cuda-graph")


def build_setup(cfg: RunConfig, device: "torch.device", ntokens: int, train_ids: "torch.Tensor",
                valid_ids: "torch.Tensor", variants: list[Variant]) -> Setup:
    """The reference's model, criterion and optimizer (as reference.loop.main builds them), then each variant."""
    import torch
    import torch.nn as nn

    from lmprof.reference.loop import build_model

    ordered = sorted(variants, key=lambda v: APPLY_ORDER.index(v.name) if v.name in APPLY_ORDER else len(APPLY_ORDER))
    for v in ordered:
        if v.configure is not None:
            cfg = v.configure(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, ntokens, device)
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
