"""speed: from where the time goes to making it go faster: read, hypothesise, predict from FLOPs, measure."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from rich.console import RenderableType

from lmprof.config import RunConfig
from lmprof.lessons import TOPICS
from lmprof.lessons.page import code, page, prose, section, table
from lmprof.instrument.flops import count_step_flops
from lmprof.experiments.speedlab.variants import BY_NAME, Setup, adaptive_cutoffs, forward_step
from lmprof.record.sections import STEP_FLOPS

BASE = RunConfig(emsize=200, nhid=200, nlayers=2, bptt=35, batch_size=20)
REPEATS = 5  # timed steps per model, after one warm-up; the median is shown


def decoder_share(cfg: RunConfig, ntokens: int) -> float:
    """The decoder's part of a forward pass's matmul FLOPs, by the textbook LSTM count."""
    rnn = sum(((cfg.emsize if layer == 0 else cfg.nhid) + cfg.nhid) * 4 * cfg.nhid for layer in range(cfg.nlayers))
    return cfg.nhid * ntokens / (rnn + cfg.nhid * ntokens)


def _setup(names: list[str], ntokens: int, ids: torch.Tensor) -> Setup:
    from lmprof.experiments.speedlab.variants import build_setup

    return build_setup(BASE, torch.device("cpu"), ntokens, ids, ids[:1000], [BY_NAME[n] for n in names])


def time_step(setup: Setup, data: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Median forward and backward seconds of REPEATS training steps (after a warm-up), random stream forked."""
    forward, backward = [], []
    with torch.random.fork_rng(devices=[]):
        setup.model.train()
        for i in range(REPEATS + 1):
            t0 = time.perf_counter()
            loss = setup.criterion(forward_step(setup.model, data, setup.cfg), targets)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            if i:
                forward.append(t1 - t0)
                backward.append(t2 - t1)
    return {"forward": statistics.median(forward), "backward": statistics.median(backward)}


def step_flops(setup: Setup, data: torch.Tensor, targets: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(devices=[]), FlopCounterMode(display=False) as counter:
        setup.criterion(forward_step(setup.model, data, setup.cfg), targets).backward()
    return int(counter.get_total_flops())


def demo(data: str | None = None) -> dict[str, Any]:
    """The default LSTM's step on ``data`` (default: the embedded corpus): reference, adaptive softmax, bf16."""
    from lmprof.prepare import read_corpus

    corpus = read_corpus(data)
    ntokens = len(corpus.dictionary)
    ids = corpus.train
    rows = []
    for label, names in (("reference", []), ("adaptive-softmax", ["adaptive-softmax"]), ("bf16", ["bf16"])):
        setup = _setup(names, ntokens, ids)
        data = setup.train_ids[:BASE.bptt * BASE.batch_size].view(BASE.batch_size, -1).t().contiguous()
        targets = setup.train_ids[1:BASE.bptt * BASE.batch_size + 1].view(BASE.batch_size, -1).t().reshape(-1)
        try:
            rows.append({"label": label, "flops": step_flops(setup, data, targets),
                         **time_step(setup, data, targets)})
        except Exception as e:  # noqa: BLE001  (bf16 where oneDNN has no bf16 LSTM: an AVX2 CPU)
            if label == "reference":
                raise
            from lmprof.experiments.speedlab.probe import one_line

            rows.append({"label": label, "skipped": f"skipped on this CPU: {one_line(e)}"})
    step = count_step_flops(BASE, ntokens)
    return {"ntokens": ntokens, "rows": rows, "decoder_share": decoder_share(BASE, ntokens),
            "cutoffs": adaptive_cutoffs(ntokens), STEP_FLOPS: step,
            "capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.1f} ms"


def _step_seconds(row: dict[str, Any]) -> float:
    return float(row["forward"] + row["backward"])


def _measured_row(row: dict[str, Any], ref_step: float) -> tuple[str, ...]:
    if "skipped" in row:
        return (row["label"], "—", "—", "—", "skipped (below)")
    return (row["label"], f"{row['flops'] / 1e9:.2f}", _ms(row["forward"]), _ms(row["backward"]),
            f"{ref_step / _step_seconds(row):.2f}×")


def _bf16_said(bf16: dict[str, Any], ref_step: float, capability: str) -> str:
    """What bf16 did here: skipped (no bfloat16 LSTM in oneDNN on this CPU), helped, or no gain."""
    if "skipped" in bf16:
        return (f"it could not run here ({bf16['skipped']}): oneDNN has no bfloat16 LSTM on a CPU "
                "without AVX512-BF16 or AMX, so speedlab probes it first and skips it.")
    ratio = ref_step / _step_seconds(bf16)
    return (f"it ran this step {ratio:.2f}x the reference's speed on this CPU (capability {capability}): " + (
        "it helped here: oneDNN has bfloat16 matmul and LSTM kernels for this CPU, and half the "
        "bytes to read." if ratio > 1.15 else
        "no gain here: where the CPU has no bfloat16 arithmetic, torch converts and computes in "
        "float32; with AMX, AVX512-BF16 or a GPU's tensor cores it is faster."))


def render(numbers: dict[str, Any]) -> RenderableType:
    ref, adaptive, bf16 = numbers["rows"]
    ref_step = _step_seconds(ref)
    predicted = ref["flops"] / adaptive["flops"] if "skipped" not in adaptive else float("nan")
    measured = ref_step / _step_seconds(adaptive) if "skipped" not in adaptive else float("nan")
    bf16_said = _bf16_said(bf16, ref_step, numbers["capability"])
    return page(
        "speed", TOPICS["speed"],
        section("1. Read the phase table"),
        prose("""
            `lmprof profile --fn train` answers *where does the time go*. For the default LSTM the
            answer is plain: **forward and backward** are nearly all of a step; get_batch, zero_grad,
            clip and the update together are a few percent. So a change to the update (`foreach`) or to
            zero_grad (`set-to-none`) can win at most those few percent, whatever a tuning guide says.
        """),
        section("2. A hypothesis from the arithmetic"),
        prose(f"""
            Count the matrix products of one forward pass. The two LSTM layers cost
            (input + nhid) x 4 nhid multiply-adds per token each; the decoder costs nhid x vocabulary.
            With nhid 200 and this corpus's {numbers['ntokens']:,} words, the decoder is
            **{numbers['decoder_share']:.0%}** of the forward FLOPs. Hypothesis: *the decoder dominates,
            so shrink the decoder's work.* An adaptive softmax does: full scores only for the most frequent
            words (the head: the first {numbers['cutoffs'][0]:,}), one score per cluster of rarer words,
            and those clusters projected to a smaller size. It is a **different model**, so its quality
            must be measured, not assumed.
        """),
        section("3. Predict from FLOPs, then measure"),
        table(None, ["model", "step GFLOPs", "forward", "backward", "step × ref"],
              [_measured_row(r, ref_step) for r in numbers["rows"]],
              right=["step GFLOPs", "forward", "backward", "step × ref"]),
        prose(f"""
            FLOPs predict the adaptive softmax at **{predicted:.1f}x** fewer; the clock measured
            **{measured:.1f}x** faster. The gap is the work FLOPs do not count: the LSTM's elementwise
            gates, the embedding, gathering each cluster's rows, and the per-step overheads that do not
            shrink with the decoder. That is the general rule: a change is worth at most its share of the
            time, and arithmetic is an upper bound on a speed-up, not a promise.
        """),
        *_what_did_not_help(numbers, bf16_said),
    )


def _what_did_not_help(numbers: dict[str, Any], bf16_said: str) -> list[RenderableType]:
    """Sections 4 and 5: the variants that did not help and why, then the ladder that measures them all."""
    return [
        section("4. What did not help, and why"),
        prose(f"""
            - **bf16**: {bf16_said}
              Fewer mantissa bits also change what is learned: speedlab measures the perplexity it
              reaches, not only its speed.
            - **compile** on this model: `torch.compile` fuses the elementwise work between matrix
              products, but the LSTM is already one fused kernel and the decoder one matmul, so there is
              little to fuse, and the first step pays seconds of compilation. Its dropout masks come from
              another random generator, so its losses change too.
            - **fused-loss**: `cross_entropy` on a CPU runs the same log_softmax and NLL kernels as the
              reference, so it measures as the reference does; **set-to-none** is already torch's default.
            - **batch**: twice the batch is fewer, larger matrix products, but fewer updates per token;
              time to quality, not tokens/s, says whether it pays.
        """),
        section("5. Measure it all, honestly"),
        code("lmprof speedlab --budget-batches 100      # every variant, 3 interleaved repeats, time to quality"),
        prose(f"""
            `lmprof speedlab` trains the reference and each variant for the same tokens from the same
            seed, interleaved and repeated, and calls a variant faster only if it reaches the
            reference's validation perplexity sooner in wall time. Measured now with torch
            {numbers['torch']} on {numbers['threads']} thread(s), median of {REPEATS} steps.
        """),
    ]
