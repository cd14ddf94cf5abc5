"""Helpers shared by the executor tests: the tiny sweep's command line and its rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmprof.sweeps.store import RESULTS_FILE


def args_for(corpus: Path, out: Path, *extra: str, models: tuple[str, ...] = ("LSTM", "GRU"),
             vary: str = "nhid=16,24") -> list[str]:
    return ["sweep", "--models", *models, "--vary", vary, "--emsize", "16", "--epochs", "1", "--max-batches", "3",
            "--bptt", "8", "--cpus-per-run", "1", "--data", str(corpus), "--out", str(out), *extra]


def rows(folder: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, (folder / RESULTS_FILE).read_text().splitlines()) if r["kind"] == kind]
