"""Sweeps: many configurations of the reference model, trained and recorded resumably.

    plan.py       --models x --vary factors -> the runs (one factor at a time, or a grid)
    worker.py     run_one(config, out_dir) -> record: the one worker every executor calls
    executors.py  the executor kit, inline (one after another) and local (--jobs N processes);
                  slurm.py and ray_executor.py beside it; ``make_executor`` (below) picks one
    store.py      results.jsonl: appended, fsynced, read back for resume
    driver.py     plan -> tasks -> executor -> rows; the folder; resume

    >>> from lmprof.config import RunConfig
    >>> from lmprof.sweeps import build_plan, parse_vary, run_sweep, InlineExecutor
    >>> plan = build_plan(RunConfig(epochs=1, max_batches=5), ["LSTM", "GRU"], [parse_vary("nhid=16,32")])
    >>> run_sweep(plan, "sweeps/demo", InlineExecutor())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from lmprof.errors import UsageError
from lmprof.sweeps.driver import SweepOutcome, load_rows, run_sweep
from lmprof.sweeps.executors import (EXECUTOR_NAMES, EXECUTOR_OPTIONS, Executor, InlineExecutor, LocalProcessExecutor,
                                    Resources)
from lmprof.sweeps.plan import Factor, Plan, build_plan, parse_vary
from lmprof.sweeps.worker import is_diverged, run_one

__all__ = ["EXECUTOR_NAMES", "Executor", "Factor", "InlineExecutor", "LocalProcessExecutor", "Plan",
           "SweepOutcome", "build_plan", "is_diverged", "load_rows", "make_executor", "parse_vary",
           "run_one", "run_sweep"]


# The factory sits above every executor (the kit, the local ones, slurm, ray), so none imports another.
def make_executor(name: str | None, jobs: int = 1, resources: Resources | None = None,
                  options: dict[str, Any] | None = None, **hooks: Any) -> Executor:
    """The executor the flags name; every flag it cannot honour is a UsageError saying who can.

    ``options``: executor-specific flags that were given (EXECUTOR_OPTIONS);
    ``hooks``: callables a command passes (slurm: ``confirm_cancel``).
    """
    resources = (resources or Resources()).validate()
    options = {k: v for k, v in (options or {}).items() if v is not None}  # None: not given
    if jobs < 1:
        raise UsageError(f"--jobs must be a positive integer, got {jobs}")
    name = name or ("local" if jobs > 1 else "inline")
    if name not in EXECUTOR_NAMES:
        raise UsageError(f"unknown --executor {name!r}: choose one of {', '.join(EXECUTOR_NAMES)}")
    for key in options:
        owner = EXECUTOR_OPTIONS.get(key)
        if owner is not None and owner != name:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag} is for --executor {owner}: add --executor {owner}, or drop {flag}")
    if name in ("slurm", "ray"):
        if jobs > 1:
            raise UsageError(f"--jobs is for --executor local; with --executor {name} use --max-parallel {jobs}")
        if name == "slurm":
            from lmprof.sweeps.slurm import SlurmExecutor

            return SlurmExecutor(resources, **options, **hooks)
        from lmprof.sweeps.ray_executor import RayExecutor

        return RayExecutor(resources, address=options.get("ray_address"))
    if resources.gpus_per_run is not None:
        raise UsageError(f"--gpus-per-run: --executor {name} does not hand out GPUs (runs use --device); "
                         "use --executor ray or slurm to give each run its own GPU")
    if resources.time_min is not None:
        raise UsageError(f"--time-min: --executor {name} has no time limit; use --executor slurm or ray")
    if name == "inline":
        if jobs > 1 or (resources.max_parallel or 1) > 1:
            raise UsageError("--executor inline runs one configuration at a time: drop --jobs/--max-parallel, "
                             "or use --executor local")
        return InlineExecutor(cpus_per_run=resources.cpus_per_run)
    if resources.max_parallel and jobs > 1 and resources.max_parallel != jobs:
        raise UsageError(f"--jobs {jobs} and --max-parallel {resources.max_parallel} disagree: give one")
    return LocalProcessExecutor(resources.max_parallel or jobs, cpus_per_run=resources.cpus_per_run)
