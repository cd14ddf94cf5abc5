"""How long the diagrams take: the flow chart, and the BPTT graph for bptt 35, 2 layers.

    python benchmarks/bench_render.py [--repeats 3]

Targets (issue 5): the BPTT graph for bptt 35, 2 layers in at most 5 s, the
flow chart in at most 1 s, each from data to an svg on disk (with its .dot).
In-process figures (best of --repeats) leave out the interpreter's start and
torch's import; the process figure is the whole `lmprof diagram bptt`
command as a user runs it. Run it on an otherwise idle machine; it prints
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


def _best(repeats: int, work: Callable[[int], None]) -> float:
    best = float("inf")
    for i in range(repeats):
        start = time.perf_counter()
        work(i)
        best = min(best, time.perf_counter() - start)
    return best


def sample_result() -> Any:
    """A RunResult with a phase row for every phase (shares made up, summing to one)."""
    from lmprof.phases import PHASES, UNCOVERED
    from lmprof.record.result import RunResult

    names = [p.name for p in PHASES] + [UNCOVERED]
    weights = [i + 1 for i in range(len(names))]
    rows = [{"name": n, "label": n, "calls": 10, "seconds": w / 10, "host_seconds": w / 10,
             "mean_seconds": w / 100, "share": w / sum(weights)} for n, w in zip(names, weights)]
    return RunResult(config={"model": "LSTM", "nlayers": 2}, phases=rows,
                     phase_summary={"wall_seconds": sum(weights) / 10, "clock": "host"}, run_dir="runs/sample")


def measure(repeats: int = 3, bptt: int = 35, nlayers: int = 2, process: bool = True) -> dict[str, Any]:
    """Seconds to draw and render each diagram as svg (best of ``repeats``), and the bptt command's wall time."""
    from lmprof.config import RunConfig
    from lmprof.instrument.graph import capture
    from lmprof.views.bptt import bptt_graph
    from lmprof.views.flowchart import flow_chart
    from lmprof.views.render import render

    result = sample_result()
    cfg = RunConfig(model="LSTM", bptt=bptt, nlayers=nlayers, batch_size=2, emsize=8, nhid=8)
    with tempfile.TemporaryDirectory(prefix="lmprof-bench-render-") as tmp:
        folder = Path(tmp)
        capture(cfg.replace(bptt=2, nlayers=1))  # first-call costs (torch's lazy initialisation)
        flow = _best(repeats, lambda i: render(flow_chart(result), folder / f"flow{i}.svg", "svg"))
        bptt_s = _best(repeats, lambda i: render(bptt_graph(capture(cfg)), folder / f"bptt{i}.svg", "svg"))
        report: dict[str, Any] = {"flow_seconds": flow, "bptt_seconds": bptt_s, "bptt": bptt, "nlayers": nlayers,
                                  "targets": {"flow_seconds": 1.0, "bptt_seconds": 5.0}}
        if process:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lmprof", "diagram", "bptt", "--bptt", str(bptt), "--nlayers",
                            str(nlayers), "--out", str(folder / "cli.svg")], check=True, capture_output=True)
            report["bptt_process_seconds"] = time.perf_counter() - start
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many (default 3)")
    args = parser.parse_args()
    print(json.dumps(measure(args.repeats), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
