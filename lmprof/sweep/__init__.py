"""Sweeps: many configurations of the reference model, trained and recorded resumably.

    plan.py       --models x --vary factors -> the runs (one factor at a time, or a grid)
    worker.py     run_one(config, out_dir) -> record: the one worker every executor calls
    executors.py  inline (one after another) and local (--jobs N processes); cluster ones fit beside
    store.py      results.jsonl: appended, fsynced, read back for resume
    driver.py     plan -> tasks -> executor -> rows; the folder; resume

    >>> from lmprof.config import RunConfig
    >>> from lmprof.sweep import build_plan, parse_vary, run_sweep, InlineExecutor
    >>> plan = build_plan(RunConfig(epochs=1, max_batches=5), ["LSTM", "GRU"], [parse_vary("nhid=16,32")])
    >>> run_sweep(plan, "sweeps/demo", InlineExecutor())  # doctest: +SKIP
"""

from __future__ import annotations

from lmprof.sweep.driver import SweepOutcome, load_rows, run_sweep
from lmprof.sweep.executors import EXECUTOR_NAMES, Executor, InlineExecutor, LocalProcessExecutor, make_executor
from lmprof.sweep.plan import Factor, Plan, build_plan, parse_vary
from lmprof.sweep.worker import is_diverged, run_one

__all__ = ["EXECUTOR_NAMES", "Executor", "Factor", "InlineExecutor", "LocalProcessExecutor", "Plan",
           "SweepOutcome", "build_plan", "is_diverged", "load_rows", "make_executor", "parse_vary",
           "run_one", "run_sweep"]
