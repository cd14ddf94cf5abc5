"""How long a class of 300 bundles takes: `lmprof class` to its terminal summary and its dashboard page.

    python benchmarks/bench_class.py [--students 300] [--repeats 3] [--save]

Target (issue 32): 300 bundles to terminal summary and dashboard in under 5 s
on the 2-core reference machine. The bundles are the test suite's generated
class (tests/class_maker.py: three real tiny runs, perturbed per machine kind,
misconceptions planted), with every step phase's per-batch series padded to
the 256 samples a bundle keeps at most (bundle.SAMPLES_KEPT), so each bundle
weighs what a long run's would. The process figure is the whole command as a user
runs it (`lmprof class DIR --expect --report --csv`, interpreter start
included), best of --repeats; the in-process figures split it into reading
and detecting, the terminal view and the page. Run it on an otherwise idle
machine (under the CPU lock); it prints one JSON object, and --save writes
it to benchmarks/results/class-<date>-<host>.json.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
TARGET_SECONDS = 5.0


def padded(bases: list[dict[str, Any]], samples: int = 256) -> list[dict[str, Any]]:
    """The bases with each per-batch series as long as a bundle keeps (the same values, resampled)."""
    rng = random.Random(0)
    for doc in bases:
        for row in doc["phases"]:
            series = row.get("samples") or []
            if series:
                row["samples"] = [series[i * len(series) // samples] * rng.uniform(0.95, 1.05)
                                  for i in range(samples)]
    return bases


def write_class(folder: Path, students: int) -> Path:
    from lmprof.corpora import synth
    from tests import class_maker

    corpus = synth.write(folder / "corpus", seed=0, sizes={"train": 3000, "valid": 600, "test": 600})
    bases = padded(class_maker.real_runs(folder / "bases", corpus))
    files, _ = class_maker.make_class(bases, n=students)
    files.update(class_maker.hostile(bases[0]))
    handins = folder / "handins"
    handins.mkdir()
    for name, data in files.items():
        (handins / name).write_bytes(data)
    (folder / "assignment.toml").write_text("".join(f"{k} = {json.dumps(v)}\n"
                                                    for k, v in class_maker.EXPECT.items()))
    return handins


def best_of(repeats: int, work: Any) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def measure(students: int, repeats: int) -> dict[str, Any]:
    from rich.console import Console

    from lmprof.classroom.summary import class_summary
    from lmprof.views.class_page import class_html
    from lmprof.views.class_terminal import class_view
    from run import machine

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        handins = write_class(folder, students)
        bundle_bytes = sum(p.stat().st_size for p in handins.iterdir())
        expect = folder / "assignment.toml"
        command = [sys.executable, "-m", "lmprof", "class", str(handins), "--expect", str(expect),
                   "--report", str(folder / "class.html"), "--csv", str(folder / "class.csv")]
        process = best_of(repeats, lambda: subprocess.run(command, capture_output=True, check=True))
        summaries = []
        reading = best_of(repeats, lambda: summaries.append(class_summary([handins], {})))
        summary = summaries[-1]
        terminal = best_of(repeats, lambda: Console(file=io.StringIO(), width=100).print(class_view(summary)))
        page = best_of(repeats, lambda: class_html(summary))
        page_bytes = (folder / "class.html").stat().st_size
    return {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "students": students,
            "bundles": students + 9, "bundle_mib": round(bundle_bytes / 2**20, 1),
            "rows": [{"name": f"lmprof class: {students} bundles to summary, dashboard and CSV (process)",
                      "value": round(process, 3), "unit": "s", "target": TARGET_SECONDS,
                      "met": process < TARGET_SECONDS},
                     {"name": "reading, checking and detecting (in process)", "value": round(reading, 3), "unit": "s"},
                     {"name": "terminal summary (in process)", "value": round(terminal, 3), "unit": "s"},
                     {"name": "dashboard page (in process)", "value": round(page, 3), "unit": "s"}],
            "page_mib": round(page_bytes / 2**20, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/class-<date>-<host>.json")
    args = parser.parse_args()
    doc = measure(args.students, args.repeats)
    text = json.dumps(doc, indent=1)
    print(text)
    if args.save:
        name = f"class-{time.strftime('%Y%m%d')}-{doc['machine']['host']}.json"
        (HERE / "results" / name).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
