"""gpu: launch-bound or compute-bound? Predict where a GPU step's time goes, then measure it.

On a CUDA machine the numbers are measured now (kernels per step, how busy the
GPU is, the batch-size curve, the whole step as one CUDA graph). Without one,
the page shows the figures measured on one NVIDIA H200 (the README's GPU
section) and measures the CPU's analogue live: what one operator's dispatch
costs at a tiny size, against a step's work.
"""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace
from typing import Any, Callable

import torch
from rich.console import RenderableType

from lmprof.config import RunConfig
from lmprof.lessons import TOPICS
from lmprof.lessons.page import code, page, prose, section, table

BASE = RunConfig(emsize=200, nhid=200, nlayers=2, bptt=35, batch_size=20)
CURVE = (20, 80, 320, 1280)  # batch sizes of the curve
WARM, TIMED = 5, 20  # steps before timing, steps timed

# Measured on one NVIDIA H200 (torch 2.11.0+cu130, CUDA 13.0), default LSTM 2x200, bptt 35, wikitext-2-lite,
# upstream's statements timed with synchronisation (../shared/gpu/h200-2026-12-04/anchor.jsonl of the project).
H200 = {
    "machine": "one NVIDIA H200, torch 2.11.0+cu130",
    "eager_ms": (4.87, 5.40), "kernels_per_step": 445, "kernel_ms": 2.17, "graph_ms": (1.91, 1.93),
    "curve": [(20, 93_009, 325_049), (80, 385_147, 774_923), (320, 937_960, 1_165_356),
              (1280, 1_221_538, 1_311_178)],  # batch, eager tokens/s, whole-step graph tokens/s
}


# --- a GPU here: measure ------------------------------------------------------------------------
class _BatchEnds:
    """Listens to the markers: the time at each batch's end (loss.item() has waited for the device)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def enter(self, name: str) -> None:
        return None

    def exit(self, name: str) -> None:
        if name == "logging":
            self.ends.append(time.perf_counter())


def _ids(ntokens: int, cfg: RunConfig, batches: int) -> torch.Tensor:
    """A random token stream long enough for ``batches`` steps (speed does not depend on the words)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    return torch.randint(ntokens, (cfg.batch_size * (cfg.bptt * batches + 1),), generator=generator)


def step_seconds(cfg: RunConfig, device: torch.device, ntokens: int, graph: bool) -> float:
    """Median seconds per training step over TIMED steps after WARM: the reference train(), or the whole-step graph."""
    from lmprof.experiments.speedlab.graph_step import GraphStep
    from lmprof.phases import listening
    from lmprof.prepare import seeded_model
    from lmprof.reference.loop import batchify, train

    model = seeded_model(cfg, ntokens, device)
    data = batchify(_ids(ntokens, cfg, WARM + TIMED + 1), cfg.batch_size, device)
    step: Callable[..., int] = GraphStep(model, torch.nn.NLLLoss(), cfg, device).train if graph else train
    clock = _BatchEnds()
    with listening(clock):
        step(model, data, cfg.replace(max_batches=WARM + TIMED), torch.nn.NLLLoss(), ntokens, lr=cfg.lr, epoch=1,
             log=lambda line: None)
    gaps = [b - a for a, b in zip(clock.ends[WARM - 1:], clock.ends[WARM:])]
    return statistics.median(gaps)


def measure_gpu(device: torch.device, ntokens: int) -> dict[str, Any]:
    from lmprof.experiments.speedlab.floor import kernel_floor

    corpus = SimpleNamespace(train=_ids(ntokens, BASE, 12), dictionary=range(ntokens))
    floor = kernel_floor(BASE, device, corpus)
    eager, graph = step_seconds(BASE, device, ntokens, False), step_seconds(BASE, device, ntokens, True)
    curve, stopped = [], ""
    for bsz in CURVE:
        cfg = BASE.replace(batch_size=bsz)
        try:
            e, g = step_seconds(cfg, device, ntokens, False), step_seconds(cfg, device, ntokens, True)
        except torch.cuda.OutOfMemoryError:
            stopped = f"batch {bsz}: out of GPU memory"
            break
        finally:
            torch.cuda.empty_cache()
        tokens = bsz * BASE.bptt
        curve.append({"batch": bsz, "eager_tokens_per_s": tokens / e, "graph_tokens_per_s": tokens / g,
                      "kernel_share": g / e})
    return {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__, "ntokens": ntokens,
            "kernels_per_step": floor["kernels_per_step"], "kernel_seconds": floor["seconds"],
            "eager_seconds": eager, "graph_seconds": graph, "busy": floor["seconds"] / eager,
            "curve": curve, "curve_stopped": stopped}


# --- no GPU: the CPU's analogue -------------------------------------------------------------------
def dispatch_seconds(calls: int = 4000) -> float:
    """What one operator costs at a tiny size (a 1-element add): Python, the dispatcher, allocation."""
    a, b = torch.ones(1), torch.ones(1)
    for _ in range(200):
        a + b
    best = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            a + b
        best.append((time.perf_counter() - t0) / calls)
    return min(best)


def cpu_step(cfg: RunConfig, ntokens: int, repeats: int = 3) -> dict[str, float]:
    """Operators dispatched per training step (profiler count) and the step's median seconds, on the CPU."""
    from torch.profiler import ProfilerActivity, profile

    from lmprof.prepare import seeded_model
    from lmprof.reference.loop import batchify, get_batch

    model = seeded_model(cfg, ntokens, torch.device("cpu"))
    data, targets = get_batch(batchify(_ids(ntokens, cfg, 2), cfg.batch_size), 0, cfg.bptt)
    criterion = torch.nn.NLLLoss()

    def step() -> None:
        model.zero_grad()
        output, _ = model(data, model.init_hidden(cfg.batch_size))
        criterion(output, targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-cfg.lr)

    step()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    ops = sum(1 for e in prof.events() if e.name.startswith("aten::"))
    return {"ops": ops, "seconds": statistics.median(times)}


def measure_cpu(ntokens: int) -> dict[str, Any]:
    tiny = BASE.replace(emsize=16, nhid=16, batch_size=2, bptt=8)
    per_op = dispatch_seconds()
    small, default = cpu_step(tiny, min(ntokens, 200)), cpu_step(BASE, ntokens)
    return {"dispatch_seconds": per_op, "tiny": small, "default": default, "ntokens": ntokens,
            "capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def demo(device: torch.device | None = None, data: str | None = None) -> dict[str, Any]:
    """Measured here: on CUDA, the GPU's own figures; otherwise the CPU analogue beside the H200's figures."""
    from lmprof.prepare import read_corpus

    ntokens = len(read_corpus(data).dictionary)
    if device is not None and device.type == "cuda":
        return {"cuda": True, **measure_gpu(device, ntokens), "h200": H200}
    return {"cuda": False, "cpu": measure_cpu(ntokens), "h200": H200}


# --- the page ---------------------------------------------------------------------------------------
def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.2f} ms"


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _predict() -> RenderableType:
    return prose("""
        A GPU does not run Python. For every operation the host (Python, torch's dispatcher, the CUDA
        driver) *launches* a kernel: it queues it and moves on, a few microseconds each. The GPU then
        runs the kernels in order. If a kernel finishes before the host has launched the next one, the GPU
        **waits**. A step of many small kernels is **launch-bound**: its time is the host's launching,
        and a faster GPU would not make it faster. A step of few large kernels is **compute-bound**: the
        host runs ahead, and the kernels set the pace.

        **Predict** before reading on: the default model (LSTM 2x200, batch 20, bptt 35) on a modern GPU.
        How many kernels does one training step launch? Is the GPU busy most of the step, or waiting?
        What happens to tokens/s when the batch grows 4x, 16x, 64x?
    """)


def _curve_rows(curve: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    from lmprof.instrument.gpu_busy import regime

    return [(str(c["batch"]), f"{c['eager_tokens_per_s']:,.0f}", f"{c['graph_tokens_per_s']:,.0f}",
             f"{c['graph_tokens_per_s'] / c['eager_tokens_per_s']:.2f}×", f"{c['kernel_share']:.0%}",
             regime(c["kernel_share"])) for c in curve]


def _stops(curve: list[dict[str, Any]]) -> str:
    from lmprof.instrument.gpu_busy import LAUNCH_BOUND, regime

    first = next((c["batch"] for c in curve if regime(c["kernel_share"]) != LAUNCH_BOUND), None)
    if first is None:
        return "is launch-bound at every batch measured"
    return f"stops being launch-bound at batch {first}"


def _h200_curve() -> list[dict[str, Any]]:
    return [{"batch": b, "eager_tokens_per_s": e, "graph_tokens_per_s": g, "kernel_share": e / g}
            for b, e, g in H200["curve"]]


CURVE_HEADERS = ["batch", "eager tok/s", "graph tok/s", "graph ×", "kernels", "regime"]
CURVE_NOTE = ("graph: the whole step as one CUDA graph. kernels: the graph's step time over eager's, the part of "
              "an eager step the kernels fill (a graph removes launches and keeps the kernels); regime: "
              "launch-bound under 40%, compute-bound from 75%, mixed between.")


def _curve_table(curve: list[dict[str, Any]]) -> RenderableType:
    t = table(None, CURVE_HEADERS, _curve_rows(curve), right=CURVE_HEADERS[1:-1])
    t.columns[-1].min_width = len("compute-bound")  # the regime word whole; the numbers wrap first
    return t


def _question_a(busy: float) -> RenderableType:
    return prose(f"""
        **What it means for the homework's question (a)** (where does a training step's time go?): on a
        CPU the answer is arithmetic, forward and backward, as the phase table shows. On a GPU at the
        homework's batch of 20 the kernels fill only about {busy:.0%} of the step: most of the time is
        the host launching hundreds of small kernels, so "backward is the most expensive part" there
        measures launches, not FLOPs. Removing launches (`lmprof speedlab --variants cuda-graph`) or
        making each launch do more work (a larger batch) helps; a faster GPU would not.
    """)


def render(numbers: dict[str, Any]) -> RenderableType:
    if numbers.get("cuda"):
        return _render_gpu(numbers)
    return _render_cpu(numbers)


def _render_gpu(n: dict[str, Any]) -> RenderableType:
    return page(
        "gpu", TOPICS["gpu"],
        section("1. Predict"), _predict(),
        section(f"2. Measured now on {n['gpu']} (torch {n['torch']})"),
        table(None, ["what", "figure"], [
            ("eager step (the reference train(), synchronised)", _ms(n["eager_seconds"])),
            ("kernels per step; their summed GPU time", f"{_count(n['kernels_per_step'])}; {_ms(n['kernel_seconds'])}"),
            ("GPU busy (kernel time / step time)", f"{n['busy']:.0%}"),
            ("the whole step as one CUDA graph, replayed", f"{_ms(n['graph_seconds'])} "
             f"({n['eager_seconds'] / n['graph_seconds']:.1f}x eager; the floor is {_ms(n['kernel_seconds'])})"),
        ]),
        prose(f"""
            The step is **{'launch-bound' if n['busy'] < 0.4 else 'mixed' if n['busy'] < 0.75 else 'compute-bound'}**:
            the GPU is busy {n['busy']:.0%} of it. Captured as one CUDA graph, the same kernels are submitted
            in one call; the step drops to near their summed time, the *kernel floor*. Same kernels,
            no launches.
        """),
        section("3. The batch-size curve"),
        _curve_table(n["curve"]),
        prose(f"{CURVE_NOTE} Here the step {_stops(n['curve'])}."
              + (f" The curve stopped at {n['curve_stopped']}." if n["curve_stopped"] else "")),
        section("4. What it means"), _question_a(n["busy"]),
        code("lmprof speedlab --device cuda --variants cuda-graph,foreach,batch   # time to quality, with the floor"),
    )


def _render_cpu(n: dict[str, Any]) -> RenderableType:
    h, cpu = n["h200"], n["cpu"]
    busy = h["kernel_ms"] / statistics.mean(h["eager_ms"])
    tiny, default = cpu["tiny"], cpu["default"]
    tiny_share = tiny["ops"] * cpu["dispatch_seconds"] / tiny["seconds"]
    default_share = default["ops"] * cpu["dispatch_seconds"] / default["seconds"]
    return page(
        "gpu", TOPICS["gpu"],
        prose("**No CUDA GPU is here**: the GPU figures below were measured on "
              f"{h['machine']}; the CPU's analogue is measured now."),
        section("1. Predict"), _predict(),
        section(f"2. Measured on {h['machine']} (the README's GPU section)"),
        table(None, ["what", "figure"], [
            ("eager step (upstream's statements, synchronised)", f"{h['eager_ms'][0]}–{h['eager_ms'][1]} ms"),
            ("kernels per step; their summed GPU time", f"{h['kernels_per_step']}; {h['kernel_ms']} ms"),
            ("GPU busy (kernel time / step time)", f"~{busy:.0%}: launch-bound"),
            ("the whole step as one CUDA graph, replayed",
             f"{h['graph_ms'][0]}–{h['graph_ms'][1]} ms: ~2.6x faster, at the kernel floor"),
        ]),
        section("3. The batch-size curve (H200)"),
        _curve_table(_h200_curve()),
        prose(f"{CURVE_NOTE} On the H200 the step {_stops(_h200_curve())}. From batch 20 to 80 the eager "
              "step does not get longer (7.5 to 7.3 ms): four times the tokens for free, the signature of a "
              "launch-bound step. From 320 on the step grows with the batch: the kernels set the pace."),
        section("4. The CPU's analogue, measured now"),
        prose(f"""
            A CPU launches nothing: it runs each operator itself. But every operator still pays a fixed
            cost before any arithmetic: Python, torch's dispatcher, allocating the output. On this machine
            (capability {cpu['capability']}, {cpu['threads']} threads, torch {cpu['torch']}) a 1-element add
            costs **{1e6 * cpu['dispatch_seconds']:.1f} µs**. That fixed cost is the CPU's "launch".
        """),
        table(None, ["model", "operators per step", "step", "dispatch share (ops × cost / step)"], [
            ("tiny (emsize 16, batch 2, bptt 8)", f"{tiny['ops']:,}", _ms(tiny["seconds"]), f"{tiny_share:.0%}"),
            (f"default (emsize 200, batch 20, bptt 35, {n['cpu']['ntokens']:,} words)", f"{default['ops']:,}",
             _ms(default["seconds"]), f"{default_share:.0%}"),
        ], right=["operators per step", "step", "dispatch share (ops × cost / step)"]),
        prose(f"""
            At a tiny size a good part of the CPU step is fixed per-operator cost ({tiny_share:.0%}, and
            more as the sizes shrink): the CPU's version of launch-bound. At the default size it is
            arithmetic ({default_share:.0%} dispatch): a CPU's cores are slow enough that the default model keeps them busy, while an H200 finishes
            the same kernels in ~2 ms and then waits for the host.
        """),
        section("5. What it means"), _question_a(busy),
        code("lmprof explain gpu          # on a CUDA machine: the same page, measured on its GPU"),
    )
