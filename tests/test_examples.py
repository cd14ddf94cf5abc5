"""Every classroom example script runs to completion on its own and prints what its lesson is about."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHORT_BATCHES = 10

# script -> a line its output must contain (the number the lesson is about)
EXPECTED = {
    "01_batchify.py": "   a g m s",
    "02_get_batch.py": "i=4: data [e k q w]  target [f l r x]  (seq_len 1)",
    "03_repackage_hidden.py": "RuntimeError: Trying to backward through the graph a second time",
    "04_bptt.py": "previous window (after repackage_hidden): None",
    "05_tied.py": "untied 13,987,678, tied 7,332,078 parameters",
    "06_dropout.py": "whole channels zeroed: True",
    "07_batchnorm.py": "running_var matches the unbiased variance: True",
    "08_perplexity.py": "uniform model over 33,278 words: perplexity 33,278.00",
    "09_profiling.py": "backward (BPTT)",
    "10_test_set.py": "test set evaluated 1 time(s), with epoch",
    "compare_tied.py": "parameters: untied 3,641,477, tied 2,146,077 (1,495,400 fewer)",
    "compare_lstm_gru.py": "forward FLOPs GRU/LSTM: 0.93×",
    "compare_bptt.py": "forward FLOPs bptt 70 / bptt 35: 2.00×",
    "memory_bptt.py": "logits of one batch: 35 x 20 x 10,000 x 4 B = 28,000,000 B",
    "gradflow_kinds.py": "state  decay/step  steps back until 1% of the last step's gradient",
    "gradflow_clip.py": "RNN_TANH  epoch 1: pre-clip norm median",
    "speedlab_decoder.py": "decoder share of forward FLOPs: 70% (nhid 200 x 7,477 words",
    "class_handins.py": "chen  diverged:",
}


def test_every_example_script_is_listed_here() -> None:
    scripts = [p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")]  # _name.py: a shared helper
    assert sorted(scripts) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs_and_prints_its_lesson(script: str, tmp_path: Path) -> None:
    # run from a scratch folder, as a student would from anywhere, with the project's python
    # LMPROF_EXAMPLE_BATCHES: the comparisons and the speed lab train 10 batches a run instead of 30-40
    # (the figures checked below, FLOP ratios and parameter counts, do not depend on it; 60 s saved)
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "LMPROF_EXAMPLE_BATCHES": str(SHORT_BATCHES)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert EXPECTED[script] in done.stdout, done.stdout[-2000:]
    assert "Traceback" not in done.stderr
