"""A sweep (``lmprof sweep``): its options, the plan and executor they make, the run, the summary.

    setup = plan_sweep(values)            # every configuration validated, the executor chosen
    outcome = run_planned(setup, log=print)
    view = summarize(setup.folder)        # the tables' data; summary.csv written beside results.jsonl
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from lmprof.errors import UsageError
from lmprof.library.options import Option, config_from_values, flag_option, run_options
from lmprof.library.runs import REPORT
from lmprof.sweeps.executors import EXECUTOR_NAMES

if TYPE_CHECKING:
    from lmprof.record.sweep_summary import SweepView
    from lmprof.sweeps.driver import SweepOutcome
    from lmprof.sweeps.executors import Executor
    from lmprof.sweeps.plan import Plan

DEFAULT_ROOT = "sweeps"
OWN = "sweep flags"
EACH = "what each run gets (every executor honours these or says it cannot)"
SLURM = "--executor slurm (needs lmprof[slurm]; the sweep folder must be shared)"
RAY = "--executor ray (needs lmprof[ray])"
SWEEP_OWN = (
    Option("models", "models to compare side by side (default: --model); the non-linearity is a model choice: "
                     "RNN_TANH and RNN_RELU are Elman RNNs with tanh or ReLU, beside LSTM and GRU",
           metavar="MODEL", many=True, group=OWN),
    Option("vary", "a factor and its values, e.g. nhid=200,400,600 (repeatable); epochs needs none: every run "
                   "records each epoch up to --epochs", default=[], metavar="NAME=V1,V2", repeatable=True, group=OWN),
    flag_option("grid", "run every combination of the factors (default: one factor at a time around the base)",
                group=OWN),
    flag_option("fresh", "forget this sweep folder's results and start over", group=OWN),
    flag_option("grad_stats", "record each epoch's pre-clip gradient norms and the share of batches clipped "
                              "(default: on; under 2%% of the time)", default=True, switch=True, group=OWN),
    Option("jobs", "run N configurations at once in separate processes, CPU threads divided among them", type=int,
           default=1, metavar="N", group=OWN),
    Option("executor", "inline: one run after another in this process; local: --jobs processes; slurm: one job "
                       "array (submitit); ray: one Ray task per run (default: inline, or local with --jobs > 1)",
           choices=EXECUTOR_NAMES, group=OWN),
    flag_option("mixed_hardware", "put timings of runs from different hardware side by side anyway", group=OWN),
    Option("gpus_per_run", "whole GPUs each run owns: 0 or 1 (slurm, ray)", type=float, metavar="N", group=EACH),
    Option("cpus_per_run", "CPUs each run reserves, and its torch threads (default: --threads, or what `lmprof "
                           "train` uses on this machine)", type=int, metavar="N", group=EACH),
    Option("max_parallel", "at most N runs at once", type=int, metavar="N", group=EACH),
    Option("time_min", "each run's time limit in minutes (slurm: required, whole minutes; ray: the driver stops "
                       "the run)", type=float, metavar="MIN", group=EACH),
    Option("partition", "SLURM partition", group=SLURM),
    Option("gres", "generic resources per run, e.g. gpu:a100:1", group=SLURM),
    Option("gpus_per_node", "GPUs per job (one run)", type=int, metavar="N", group=SLURM),
    Option("constraint", "node features, e.g. a100", group=SLURM),
    Option("setup", "a shell line run before each run, e.g. 'module load cuda' (repeatable)", metavar="LINE",
           repeatable=True, group=SLURM),
    flag_option("exclusive", "each run has its node to itself", default=None, group=SLURM),
    flag_option("cancel_on_exit", "on Ctrl-C, cancel the submitted jobs (--no-cancel-on-exit: leave them running "
                                  "for a rerun to collect); default: ask, or leave them when there is no terminal",
                default=None, switch=True, group=SLURM),
    Option("ray_address", "a running cluster (e.g. auto, or HOST:6379); default: start a local one for the sweep",
           metavar="ADDR", group=RAY),
)
SWEEP_OPTIONS = (*SWEEP_OWN, *run_options(epochs=3, help={
    "out": f"sweep folder (default: {DEFAULT_ROOT}/<models>_<factors>; the same command resumes it)"}), REPORT)


@dataclass
class SweepSetup:
    """A sweep ready to run: the plan (every configuration), its executor and its folder."""

    plan: "Plan"
    executor: "Executor"
    folder: Path
    fresh: bool = False


def plan_sweep(values: Mapping[str, Any], *, confirm_cancel: Callable[[int], bool] | None = None) -> SweepSetup:
    """Every configuration the options describe, validated before anything trains; the executor that runs them."""
    if values["save"]:
        raise UsageError("--save: each run of a sweep saves model.pt in its own folder; drop --save")
    if values["force"]:
        raise UsageError("--force: a sweep folder is continued by the same command; --fresh starts it over")
    base = config_from_values(values).replace(out=None)
    from lmprof.sweeps import build_plan, make_executor, parse_vary
    from lmprof.sweeps.executors import EXECUTOR_OPTIONS, Resources

    plan = build_plan(base, values["models"] or [base.model], [parse_vary(v) for v in values["vary"]],
                      grid=values["grid"])
    plan.grad_stats = values["grad_stats"]  # the worker reads it; not part of a run's key
    resources = Resources(values["gpus_per_run"], values["cpus_per_run"], values["max_parallel"], values["time_min"])
    options = {name: values[name] for name in EXECUTOR_OPTIONS}
    executor = make_executor(values["executor"], values["jobs"], resources, options, confirm_cancel=confirm_cancel)
    folder = Path(values["out"]) if values["out"] else Path(DEFAULT_ROOT) / plan.name
    return SweepSetup(plan, executor, folder, values["fresh"])


def runs_inline(setup: SweepSetup) -> bool:
    """Whether the runs train in this process (then each can show its own stages: ``set_watchers``)."""
    return hasattr(setup.executor, "watchers")


def set_watchers(setup: SweepSetup, watchers: Callable[[Any, int, int], list[Any]] | None) -> None:
    """``watchers(task, i, n)``: the progress display each inline run gets."""
    setup.executor.watchers = watchers  # type: ignore[attr-defined]


def run_planned(setup: SweepSetup, *, log: Callable[[str], None] = print,
                on_run_end: Callable[[int, int], None] | None = None) -> "SweepOutcome":
    """Run what the sweep folder lacks; rows go to results.jsonl as epochs finish."""
    from lmprof.sweeps import run_sweep

    return run_sweep(setup.plan, setup.folder, setup.executor, fresh=setup.fresh, log=log, on_run_end=on_run_end)


def summarize(folder: Path) -> "SweepView":
    """The sweep's rows as its tables and plots read them; summary.csv written beside results.jsonl."""
    from lmprof.fsutil import write_text_atomic
    from lmprof.record.sweep_summary import summary_csv, sweep_view
    from lmprof.sweeps import load_rows
    from lmprof.sweeps.driver import SUMMARY_FILE

    view = sweep_view(*load_rows(folder))
    write_text_atomic(folder / SUMMARY_FILE, summary_csv(view))
    return view


def default_folder() -> str:
    """The API's sweep folder when none is given: sweeps/sweep-<time>."""
    return f"{DEFAULT_ROOT}/sweep-{time.strftime('%Y%m%d-%H%M%S')}"
