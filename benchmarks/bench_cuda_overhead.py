"""What each instrument costs on CUDA: bare vs watched training, interleaved pairs, and profile's start-up.

    python benchmarks/bench_cuda_overhead.py [--data DIR] --out FILE.md [--pairs 8]

The default model is launch-bound on a modern GPU (the host is the critical
path), so an instrument's host work is added to the step one for one. Each
row times 32 reference training batches watched by one instrument, installed
as a run installs it (the Sampler, hooks switched per batch), against 32 bare
ones, in interleaved pairs (A B, B A, ...), synchronised before and after
each side; the median ratio, with the issue's targets at the default
sampling (1 in 16 on CUDA) and the figures with every batch watched
(--sample-every 0). Then whole processes: `lmprof profile --fn train` against
`lmprof train` on the same short run (their fixed start-up should be within
2 s), and the phase coverage of train() in that profile run.

Without CUDA it says so in one line and exits 0 (gpu_check.sh runs it on a lent GPU). About a minute on an H200.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
STARTUP_TARGET = 2.0  # seconds: profile's whole process within this of train's
STARTUP_BATCHES = 20


def process_seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lmprof", *args], capture_output=True, check=True, cwd=HERE.parent)
    return time.perf_counter() - start


def startup(data: str | None, folder: Path, device: str, sizes: list[str]) -> dict[str, Any]:
    """`lmprof train` then `lmprof profile --fn train`, same short run: wall seconds each, and profile's coverage."""
    common = ["--device", device, "--epochs", "1", "--max-batches", str(STARTUP_BATCHES), *sizes,
              *(["--data", data] if data else [])]
    train = process_seconds(["train", *common, "--out", str(folder / "train")])
    profile = process_seconds(["profile", "--fn", "train", *common, "--out", str(folder / "profile")])
    doc = json.loads((folder / "profile" / "result.json").read_text())
    return {"train_seconds": train, "profile_seconds": profile, "difference": profile - train,
            "coverage": (doc.get("phase_summary") or {}).get("train_coverage"), "overhead": doc.get("overhead") or {}}


def cuda_per_call_us(repeats: int = 2000) -> dict[str, float]:
    """Host microseconds per call of the CUDA-specific work: a time stamp, and a memory read, old way and new."""
    import torch

    from lmprof.instrument.cuda_events import cuda_pool
    from lmprof.instrument.memory import torch_cuda_memory

    def per_call(fn: Any) -> float:
        fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        seconds = time.perf_counter() - start
        torch.cuda.synchronize()
        return 1e6 * seconds / repeats

    pool = cuda_pool(torch.device("cuda"))

    def pooled() -> None:
        pool.give(pool.stamp())

    def new_event() -> None:
        torch.cuda.Event(enable_timing=True).record()

    memory = torch_cuda_memory(torch.device("cuda"))
    return {"time stamp: a new torch.cuda.Event, record()": per_call(new_event),
            "time stamp: pooled event, cached stream (lmprof)": per_call(pooled),
            "memory read: memory_allocated() + max_memory_allocated()": per_call(
                lambda: (torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated())),
            "memory read: one C-binding call (lmprof)": per_call(memory.read)}


def markdown(rows: list[dict[str, Any]], step_ms: float, start: dict[str, Any], machine: str) -> str:
    import bench_standin

    doc = {"rows": rows, "ms_per_batch": step_ms}
    text = bench_standin.markdown(doc, f"CUDA, default config · {machine}")
    verdict = "met" if start["difference"] <= STARTUP_TARGET else "**MISSED**"
    text += (f"\nWhole process, {STARTUP_BATCHES} batches: `lmprof train` {start['train_seconds']:.1f} s, "
             f"`lmprof profile --fn train` {start['profile_seconds']:.1f} s: {start['difference']:+.1f} s "
             f"(target within {STARTUP_TARGET:g} s: {verdict}).\n")
    if isinstance(start.get("coverage"), (int, float)):
        text += f"Phases cover {start['coverage']:.1%} of train() in that profile run (target >= 99%).\n"
    from lmprof.record.derived import cost_line

    if start.get("overhead"):
        text += f"That run's own overhead line: {cost_line(start['overhead'])}.\n"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="corpus folder (default: the embedded corpus)")
    parser.add_argument("--out", required=True, help="the markdown table's file")
    parser.add_argument("--pairs", type=int, default=8, help="interleaved pairs per row (median of their ratios)")
    parser.add_argument("--smoke-on-cpu", action="store_true",
                        help="run this script's every step on the CPU at the stand-in's tiny size (no figure to keep)")
    args = parser.parse_args()
    import torch

    device = "cpu" if args.smoke_on_cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA here: the CUDA overhead bench needs a GPU (benchmarks/bench_standin.py is the CPU stand-in)")
        return 0
    import bench_standin

    from lmprof.instrument.sampling import DEFAULT_EVERY_CUDA

    began = time.perf_counter()
    sizes = bench_standin.STANDIN if args.smoke_on_cpu else {}
    setup = bench_standin.prepare(args.data, device, **sizes)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    bench_standin.timed_train(setup, 8, synchronize=sync)  # cuDNN's algorithm search, the allocator's growth
    step = min(bench_standin.timed_train(setup, 32, synchronize=sync) for _ in range(3)) / 32
    rows = bench_standin.overhead_rows(setup, args.pairs, DEFAULT_EVERY_CUDA, synchronize=sync)
    per_call = cuda_per_call_us() if device == "cuda" else {}
    with tempfile.TemporaryDirectory(prefix="lmprof-cuda-bench-") as tmp:
        start = startup(args.data, Path(tmp), device, [x for k, v in sizes.items() for x in (f"--{k}", str(v))])
    machine = (f"{torch.cuda.get_device_name(0)}" if device == "cuda" else "CPU smoke run") + \
        f", torch {torch.__version__}"
    text = markdown(rows, 1000 * step, start, machine)
    if per_call:
        text += "\n| host cost per call on CUDA | µs |\n| --- | --- |\n"
        text += "".join(f"| {name} | {us:.2f} |\n" for name, us in per_call.items())
    text += f"\n({time.perf_counter() - began:.0f} s, {args.pairs} pairs of 32 batches a row)\n"
    from lmprof.fsutil import write_text_atomic

    write_text_atomic(Path(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
