"""benchmarks/gpu_check.sh: its CPU half runs here, at tiny sizes, and writes a one-page summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
CHECKS = ("set-up", "train", "CPU twin, dropout 0", "diagram bptt", "pytest -m cuda", "profile --sync launch",
          "profile --sync blocking", "phase table", "trace", "speedlab --device cpu", "sweep LSTM GRU", "report")
GPU_ONLY = ("CPU twin, TF32 off", "cuDNN off, same outputs", "blocking moves time off loss.item()",
            "CUDA overhead bench", "explain gpu")


def summary_rows(page: str) -> dict[str, tuple[str, str]]:
    """check -> (status, what it saw), from the summary's table."""
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[0] not in ("check", "---"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


@pytest.mark.slow
def test_cpu_half_runs_every_check_and_writes_the_summary(tiny_corpus: Path, tmp_path: Path) -> None:
    assert os.access(SCRIPT, os.X_OK), "benchmarks/gpu_check.sh is not executable"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_INSTALL": "0", "GPU_DATA": str(tiny_corpus),
           "GPU_CHECK_BATCHES": "3", "GPU_CHECK_TWIN_BATCHES": "3", "GPU_CHECK_LADDER_BATCHES": "3",
           "GPU_CHECK_SIZE": "16", "GPU_CHECK_BPTT": "8", "OMP_NUM_THREADS": "2",
           # the CPU half on any machine: on a GPU machine its pytest -m cuda would otherwise run the real
           # CUDA tests (and --pretend-cuda's stand-in would make them fail here)
           "CUDA_VISIBLE_DEVICES": "", "LMPROF_TEST_PRETEND_CUDA": "0"}
    out = tmp_path / "gpu-check"
    done = subprocess.run([str(SCRIPT), str(out), "--cpu-only"], env=env, capture_output=True, text=True,
                          timeout=600)
    page = (out / "summary.md").read_text(encoding="utf-8")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{page}"
    assert "device **cpu**" in page and "the CPU half only" in page
    rows = summary_rows(page)
    for check in CHECKS:
        assert rows[check][0] == "ok", (check, rows.get(check))
    for check in GPU_ONLY:
        assert rows[check] == ("skipped", "needs CUDA"), check
    # what the page reports is what the runs measured: on one CPU the twin is the same run, to the bit
    assert "valid loss" in rows["train"][1]
    assert rows["CPU twin, dropout 0"][1].endswith("(0.00e+00 relative)")
    assert re.match(r"\d+ skipped(, \d+ deselected)? in [0-9.]+s \(\d+ s\)$", rows["pytest -m cuda"][1])
    assert rows["speedlab --device cpu"][1].startswith("reference 1.00x, foreach ")
    assert "per-call samples" in rows["phase table"][1] and "of train()" in rows["phase table"][1]
    for folder in ("train", "twin", "twin-cpu", "profile-launch", "profile-blocking", "trace"):
        assert (out / folder / "result.json").is_file(), folder
    assert (out / "profile-launch" / "report.html").stat().st_size > 1000
    assert (out / "bptt.svg").is_file()


def test_every_run_folder_may_be_written_again() -> None:
    """A second gpu_check.sh into the same folder reruns each check (run folders belong to one run)."""
    script = SCRIPT.read_text(encoding="utf-8").replace("\\\n", " ")  # continued lines joined
    runs = [line for line in script.splitlines()
            if '--out "$out/' in line and not re.search(r'--out "\$out/[\w-]+\.(svg|md)"', line)]  # not files
    assert len(runs) >= 8, runs
    assert all("--force" in line or "--fresh" in line for line in runs), runs

