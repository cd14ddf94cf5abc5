"""`make bench`: every instrument's cost beside the bare reference loop, in one table.

    python benchmarks/run.py [--quick] [--pairs 15] [--batches 4]

Overhead ratios are measured interleaved in this one invocation: many short
pairs (a few batches a side, A B then B A), the median of their ratios, with
min and max. A shared machine drifts by several per cent over seconds; short
alternating pairs put that drift on both sides, so the median sees the
instrument, not the machine. A figure that misses its target is marked in the table.
The whole table is written to benchmarks/results/<date>-<host>.json.
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
SHARED_DATA = ROOT.parent / "shared" / "data" / "wikitext-2-lite"


def machine() -> dict[str, Any]:
    import torch

    from lmprof.runner import cpu_model

    info = {"host": socket.gethostname(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
            "device": "cpu"}
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    return info


def lmprof_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "lmprof", *args]


def startup_seconds(repeats: int = 5) -> float:
    """Best of `repeats` for `lmprof --help` as a fresh process."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(lmprof_cmd("--help"), capture_output=True, check=True)
        best = min(best, time.perf_counter() - start)
    return best


FIRST_STEP = """
import sys, time
t0 = float(sys.argv[1])
from lmprof import RunConfig, run
from lmprof.instrument.base import Instrument
class FirstStep(Instrument):
    def recorder(self): return self
    def enter(self, name):
        if name == "data":
            print(time.time() - t0, flush=True)
            raise KeyboardInterrupt
    def exit(self, name): pass
try:
    run(RunConfig(epochs=1), instruments=[FirstStep()], log=lambda s: None, run_dir=sys.argv[2])
except KeyboardInterrupt:
    pass
"""


def first_step_seconds(tmp: Path) -> float:
    """From starting a Python process to the first training step (imports, corpus, model)."""
    out = subprocess.run([sys.executable, "-c", FIRST_STEP, repr(time.time()), str(tmp / "first")],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def profile_peak_rss_mb(tmp: Path, batches: int) -> float:
    """Peak resident memory of a default `lmprof profile --fn train` as its own process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(lmprof_cmd("profile", "--fn", "train", "--max-batches", str(batches), "--out", str(tmp / "rss")),
                   capture_output=True, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(peak, before) / 1024  # kB on Linux


def collect(pairs: int, batches: int, quick: bool) -> dict[str, Any]:
    import bench_backward_lines
    import bench_lines
    import bench_components
    import bench_gradients
    import bench_loop
    import bench_memory
    import bench_render
    import bench_trace

    rows: list[dict[str, Any]] = []

    def row(name: str, value: float, unit: str, target: float | None = None, **extra: Any) -> None:
        rows.append({"name": name, "value": value, "unit": unit, "target": target,
                     "met": None if target is None else value <= target, **extra})
        print(f"  measured {name}: {value:.4g} {unit}", file=sys.stderr, flush=True)

    corpora = [("embedded corpus", None)]
    if SHARED_DATA.is_dir() and not quick:
        corpora.append(("wikitext-2-lite", str(SHARED_DATA)))
    ms_per_batch: dict[str, float] = {}
    for label, data in corpora:
        loop = bench_loop.measure(data, batches=40, repeats=3)
        ms_per_batch[label] = loop["ms_per_batch"]
        row(f"reference loop, {label}: ms/batch", loop["ms_per_batch"], "ms",
            min=loop["min_ms_per_batch"], max=loop["max_ms_per_batch"])
        row(f"reference loop, {label}: tokens/s", loop["tokens_per_s"], "tok/s")

    def as_long_as_embedded(label: str, n: int, least: int) -> int:
        """Batches that take as many seconds on this corpus as ``n`` on the embedded one (a larger
        vocabulary makes each batch slower): every corpus's pairs are equally long, the bench no longer."""
        return max(least, round(n * ms_per_batch[corpora[0][0]] / ms_per_batch[label]))

    for label, data in corpora:
        # Longer pairs here: switching line_profiler's tracing on and off has a cost of its own
        # (Python 3.11 re-specialises traced code) that a real profile pays once, not per pair.
        lines = bench_lines.measure(pairs=5, max_batches=as_long_as_embedded(label, 40, 10), data=data)
        row(f"line profiling of train / bare, {label}", lines["median"], "x", 1.05,
            min=lines["min"], max=lines["max"], batches=lines["batches"])
    for label, data in corpora:
        phases = bench_loop.phase_recording_ratio(data, pairs=pairs, batches=as_long_as_embedded(label, batches, 2))
        row(f"phase recording / bare, {label}", phases["median"], "x", 1.02, min=phases["min"], max=phases["max"])
    for label, data in corpora:
        memory = bench_memory.memory_ratio(data, pairs=pairs, batches=as_long_as_embedded(label, batches, 2))
        row(f"--memory / bare, {label}", memory["median"], "x", memory["target"], min=memory["min"], max=memory["max"])
    for label, data in corpora:
        parts = bench_components.components_ratio(data, pairs=pairs, batches=as_long_as_embedded(label, batches, 2))
        row(f"--components / bare, {label}", parts["median"], "x", parts["target"], min=parts["min"], max=parts["max"])
    # a fixed cost (a profiler window on batches 2-4, read afterwards): measured over 40 batches of the embedded corpus
    lines_bwd = bench_backward_lines.backward_lines_ratio(None, pairs=7, batches=40)
    row("--backward-lines / bare, 40 batches, embedded corpus", lines_bwd["median"], "x", lines_bwd["target"],
        min=lines_bwd["min"], max=lines_bwd["max"])
    for label, data in corpora:
        grads = bench_gradients.grad_stats_ratio(data, pairs=pairs,
                                                batches=as_long_as_embedded(label, batches, 2))
        row(f"--grad-stats / bare, {label}", grads["median"], "x", grads["target"], min=grads["min"], max=grads["max"])
    standin_rows(row, pairs=5 if quick else 15)
    r = bench_trace.measure(3, 10, None)["profiler_active_steps"]
    row("torch.profiler active steps / bare", r["median"], "x", r["target"], min=r["min"], max=r["max"])
    render = bench_render.measure()
    row("flow chart render", render["flow_seconds"], "s", 1.0)
    row("BPTT graph render (bptt 35, 2 layers)", render["bptt_seconds"], "s", 5.0)
    with tempfile.TemporaryDirectory(prefix="lmprof-bench-") as tmp:
        row("lmprof --help", startup_seconds(), "s", 0.5)
        row("time to the first training step", first_step_seconds(Path(tmp)), "s")
        row("peak RSS, lmprof profile --fn train", profile_peak_rss_mb(Path(tmp), 40), "MB")
    return {"machine": machine(), "pairs": pairs, "batches": batches, "rows": rows,
            "date": time.strftime("%Y-%m-%d %H:%M")}


def standin_rows(row: Any, pairs: int) -> None:
    """The launch-bound stand-in (bench_standin.py): each instrument where a CPU step takes a few ms, as a GPU's
    does, with the CUDA default sampling (its targets) and every batch watched; then each per-call cost."""
    import bench_standin

    standin = bench_standin.measure(None, pairs=pairs)
    step = f"{standin['ms_per_batch']:.1f} ms step"
    for r in standin["rows"]:
        row(f"launch-bound stand-in ({step}): {r['instrument']} / bare, {r['sampling']}", r["median"], "x",
            r["target"], min=r["min"], max=r["max"])
    for name, us in standin["per_call_us"].items():
        row(f"per call: {name}", us, "us")


def render_table(doc: dict[str, Any]) -> Any:
    from rich.table import Table

    m = doc["machine"]
    table = Table(title=f"lmprof benchmarks · {m['cpu']} · {m['threads']} threads · torch {m['torch']} · "
                        f"{m['device']} · {doc['date']}", title_justify="left")
    for col, justify in (("measure", "left"), ("value", "right"), ("min .. max", "right"),
                         ("target", "right"), ("", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in doc["rows"]:
        unit = r["unit"]
        value = f"{r['value']:.3f}x" if unit == "x" else f"{r['value']:,.2f} {unit}"
        spread = f"{r['min']:.3f} .. {r['max']:.3f}" if "min" in r else ""
        target = f"<= {r['target']:g}{unit if unit == 'x' else ' ' + unit}" if r["target"] else ""
        verdict = "" if r["met"] is None else ("[green]met[/green]" if r["met"] else "[red bold]MISSED[/red bold]")
        table.add_row(r["name"], value, spread, target, verdict)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=25, help="A/B pairs per overhead ratio (median of them; 15 pairs of 4 batches let noise alone cross a 1.02 target here)")
    parser.add_argument("--batches", type=int, default=6, help="training batches per side of a pair")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, embedded corpus only (a smoke run)")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for the results JSON")
    args = parser.parse_args()
    from rich.console import Console

    start = time.perf_counter()
    doc = collect(args.pairs, args.batches, args.quick)
    doc["wall_seconds"] = time.perf_counter() - start
    Console(width=130).print(render_table(doc))
    minutes, seconds = divmod(round(doc["wall_seconds"]), 60)
    print(f"the whole bench took {minutes} min {seconds:02d} s")
    out = Path(args.out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{doc['machine']['host']}.json"
    from lmprof.fsutil import write_text_atomic

    write_text_atomic(out, json.dumps(doc, indent=1) + "\n")
    print(f"results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
