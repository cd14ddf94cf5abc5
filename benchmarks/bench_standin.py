"""A CPU stand-in for the launch-bound regime: each instrument's cost where a step takes a few ms.

On a GPU the default model is launch-bound (the H200 ran a step in ~5.5 ms,
the host being the critical path), so every microsecond an instrument spends
on the host is added to the step one for one. On a CPU at the default size a
step takes 50-400 ms and the same instruments hide behind the arithmetic.
This bench shrinks the model until a CPU step takes a few ms (emsize = nhid =
16, bptt 8, batch 4, one thread: ~3.6 ms on a 2-core AMD EPYC VM), then
measures each instrument as a run installs it (the runner's own
``_start_watching``: the Sampler, hooks switched per batch) against the
bare loop, in interleaved pairs (A B, B A, ...: the median ratio).

It does not reproduce CUDA-specific costs (events, the allocator's
statistics): ``bench_cuda_overhead.py`` is the judge where a GPU is present.

    python benchmarks/bench_standin.py [--pairs 15] [--save]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STANDIN = {"emsize": 16, "nhid": 16, "bptt": 8, "batch_size": 4}
DEFAULT_SAMPLING = 16  # the CUDA default (lmprof.instrument.sampling.DEFAULT_EVERY_CUDA), which this stands in for
BATCHES = 32  # per side of a pair: two watched batches at 1 in 16
# The targets, the same on CUDA and on this stand-in, with the default sampling.
TARGETS = {"phases": 1.05, "profile --fn train": 1.10, "--components": 1.10, "--memory": 1.10,
           "--grad-stats": 1.03}
EVERY_BATCH_AIM = 1.3  # with --sample-every 0: reported, aimed at for components and memory


def instrument_sets() -> dict[str, Callable[[], list[Any]]]:
    """Each row's instruments, as the command installs them (profile: the phase timer and the lines)."""
    from lmprof.instrument.components import ComponentInstrument
    from lmprof.instrument.gradients import GradStatsInstrument
    from lmprof.instrument.lines import LineInstrument
    from lmprof.instrument.memory import MemoryInstrument
    from lmprof.instrument.recorders import PhaseInstrument

    return {"phases": lambda: [PhaseInstrument()],
            "profile --fn train": lambda: [PhaseInstrument(), LineInstrument(["train"])],
            "--components": lambda: [ComponentInstrument()],
            "--memory": lambda: [MemoryInstrument()],
            "--grad-stats": lambda: [GradStatsInstrument()]}


def prepare(data: str | None, device: str = "cpu", **overrides: Any) -> dict[str, Any]:
    """Corpus, model and training data on ``device`` (bench_loop.prepare's, placed on the device)."""
    import torch

    from bench_loop import prepare as prepare_cpu

    setup = prepare_cpu(data, **overrides)
    setup["device"] = torch.device(device)
    setup["model"] = setup["model"].to(device)
    setup["train_data"] = setup["train_data"].to(device)
    return setup


def timed_train(setup: dict[str, Any], batches: int, make: Callable[[], list[Any]] | None = None,
                every: int | None = None, synchronize: Callable[[], None] = lambda: None) -> float:
    """Seconds of ``batches`` reference training batches, watched by ``make()``'s instruments as a run would."""
    from lmprof.instrument.base import RunContext
    from lmprof.reference.loop import train
    from lmprof.runner import _start_watching

    cfg = setup["cfg"].replace(max_batches=batches, log_interval=10**9, sample_every=every)
    with ExitStack() as stack:
        if make is not None:
            context = RunContext(cfg=cfg, device=setup["device"], run_dir=Path(tempfile.gettempdir()),
                                 batches_per_epoch=batches)
            _start_watching(stack, make(), context, [])
        synchronize()
        start = time.perf_counter()
        train(setup["model"], setup["train_data"], cfg, setup["criterion"], setup["ntokens"],
              lr=cfg.lr, epoch=1, log=lambda line: None)
        synchronize()
        return time.perf_counter() - start


def interleaved(setup: dict[str, Any], make: Callable[[], list[Any]], every: int | None, pairs: int,
                batches: int = BATCHES, synchronize: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Watched / bare over interleaved pairs (bench_loop.interleaved_ratio's order): median, min, max."""
    timed_train(setup, 2, synchronize=synchronize)
    timed_train(setup, 2, make, every, synchronize)  # warm-up on both sides
    ratios = []
    for i in range(pairs):
        if i % 2:
            on = timed_train(setup, batches, make, every, synchronize)
            off = timed_train(setup, batches, synchronize=synchronize)
        else:
            off = timed_train(setup, batches, synchronize=synchronize)
            on = timed_train(setup, batches, make, every, synchronize)
        ratios.append(on / off)
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "pairs": pairs,
            "batches": batches}


def overhead_rows(setup: dict[str, Any], pairs: int, default_every: int,
                  synchronize: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
    """One row per instrument and sampling: the default's (with its target), then every batch (0)."""
    rows = []
    for every, label in ((default_every, f"1 in {default_every}"), (0, "every batch")):
        for name, make in instrument_sets().items():
            r = interleaved(setup, make, every, pairs, synchronize=synchronize)
            target = TARGETS[name] if every == default_every else None
            rows.append({"instrument": name, "sampling": label, **r, "target": target,
                         "met": None if target is None else r["median"] <= target})
            print(f"  {name}, {label}: {r['median']:.3f}x", file=sys.stderr, flush=True)
    return rows


def per_call_costs(repeats: int = 20000) -> dict[str, float]:
    """Host microseconds per call of each instrument's unit of work, measured here (CPU)."""
    import torch

    from lmprof.instrument.memory import MemoryRecorder, SavedCounter, unpack
    from lmprof.instrument.recorders import HostRecorder
    from lmprof.instrument.sampling import Sampler
    from lmprof.phases import listening, phase

    def per_call(fn: Callable[[], None], n: int = repeats) -> float:
        fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return 1e6 * (time.perf_counter() - start) / n

    def marker() -> None:
        with phase("forward"):
            pass

    out = {"phase marker, nothing listening": per_call(marker)}
    with listening(HostRecorder()):
        out["phase marker, phase timer (host clock)"] = per_call(marker)
    sampler = Sampler(16, [(HostRecorder(), False), (HostRecorder(), True)], [])
    sampler.on = False
    with listening(sampler):
        out["phase marker, bare batch through the sampler"] = per_call(marker)
    memory = MemoryRecorder()
    with listening(memory):
        out["phase boundary, --memory (RSS peak reset and read)"] = per_call(
            lambda: (memory.enter("update"), memory.exit("update")), repeats // 10)
    memory.proc.close()
    counter, t = SavedCounter(), torch.ones(4)
    out["saved tensor, --memory pack + unpack"] = per_call(lambda: unpack(counter.pack(t)))
    layer, x = torch.nn.Identity(), torch.ones(1)
    bare = per_call(lambda: layer(x))
    handles = [layer.register_forward_pre_hook(lambda m, a: None), layer.register_forward_hook(lambda m, a, o: None)]
    out["module call, a pre- and a post-hook (--components, --memory), extra"] = per_call(lambda: layer(x)) - bare
    for h in handles:
        h.remove()
    grads = [torch.ones(200, 200) for _ in range(8)]
    out["--grad-stats norm of 8 gradients (one batch)"] = per_call(
        lambda: torch.nn.utils.get_total_norm(grads, 2.0), repeats // 10)
    return out


def measure(data: str | None = None, pairs: int = 15) -> dict[str, Any]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the step is host-bound, as a launch-bound GPU step is
    try:
        setup = prepare(data, **STANDIN)
        timed_train(setup, 4)
        step = min(timed_train(setup, BATCHES) for _ in range(3)) / BATCHES
        return {"config": {**STANDIN, "threads": 1, "corpus": data or "embedded"}, "ms_per_batch": 1000 * step,
                "rows": overhead_rows(setup, pairs, DEFAULT_SAMPLING), "per_call_us": per_call_costs()}
    finally:
        torch.set_num_threads(threads)  # make bench's later rows run as before


def markdown(doc: dict[str, Any], title: str) -> str:
    """The rows as a markdown table (README, gpu_check's summary)."""
    lines = [f"{title} · bare step {doc['ms_per_batch']:.2f} ms", "",
             "| instrument | sampling | watched / bare (median) | min .. max | target |",
             "| --- | --- | --- | --- | --- |"]
    for r in doc["rows"]:
        target = "" if r["target"] is None else f"<= {r['target']:g} " + ("met" if r["met"] else "**MISSED**")
        lines.append(f"| {r['instrument']} | {r['sampling']} | {r['median']:.3f}x | {r['min']:.3f} .. "
                     f"{r['max']:.3f} | {target} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="corpus folder (default: the embedded corpus)")
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--save", action="store_true",
                        help="also write benchmarks/results/standin-<date>-<host>.json, with the machine")
    args = parser.parse_args()
    from run import machine

    start = time.perf_counter()
    doc = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), **measure(args.data, args.pairs)}
    doc["wall_seconds"] = time.perf_counter() - start
    print(markdown(doc, "CPU stand-in for the launch-bound regime"))
    for name, us in doc["per_call_us"].items():
        print(f"  {name}: {us:.2f} us")
    if args.save:
        from lmprof.fsutil import write_text_atomic

        out = HERE / "results" / f"standin-{time.strftime('%Y%m%d')}-{doc['machine']['host']}.json"
        write_text_atomic(out, json.dumps(doc, indent=1) + "\n")
        print(f"results: {out.relative_to(HERE.parent)}")
