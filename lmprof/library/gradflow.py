"""The gradient flowing back through time (``lmprof gradflow``): its options, and the draws it measures.

The plot and the table are views (lmprof.views.gradflow); this module decides
what is measured (a fresh config, or a run folder's trained weights), where
the plot goes, and measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from lmprof.config import RNN_KINDS
from lmprof.errors import UsageError
from lmprof.experiments.gradient_draws import DRAWS, FLOW_BATCHES  # light: no torch at import
from lmprof.library.options import Option, config_from_values, flag_option, run_options

if TYPE_CHECKING:
    from lmprof.experiments.gradient_draws import FlowDraws

FLOW = "gradient flow"
GRADFLOW_OPTIONS = (
    *run_options(help={"out": "folder for gradflow.svg and gradflow.png (default: the --from run folder, else "
                              "runs/gradflow-<models>-<time>)"}),
    Option("models", f"model kinds to overlay on the same data and seed: {' '.join(RNN_KINDS)} (default: --model)",
           choices=RNN_KINDS, metavar="KIND", many=True, group=FLOW),
    Option("run", "measure a run folder's trained weights, with its config and data", flag="--from", metavar="RUN",
           group=FLOW),
    Option("batches", f"batches to average over (default {FLOW_BATCHES})", type=int, default=FLOW_BATCHES,
           metavar="N", group=FLOW),
    Option("draws", f"seeds to measure (--seed, --seed + 1, ...): each figure's median and range over them "
                    f"(default {DRAWS})", type=int, default=DRAWS, metavar="N", group=FLOW),
    flag_option("json", "print only the JSON object (per kind, one list per layer of norms, t = 1..bptt)",
                group=FLOW),
)


@dataclass
class GradflowRun:
    """What was measured, and the folder its plot belongs in."""

    draws: "FlowDraws"
    folder: Path


def measure_gradflow(values: Mapping[str, Any]) -> GradflowRun:
    """Measure the flow the options describe, on the CPU (--threads; an accelerator by name is refused)."""
    from lmprof.experiments.gradient_draws import gradient_flow_draws
    from lmprof.experiments.gradient_flow import load_run
    from lmprof.library.compute import apply_compute

    apply_compute(values["device"], values["threads"], cpu_only="gradient flow (the RNN unrolled step by step)")
    state_dict = None
    if values["run"] is not None:
        cfg, state_dict = load_run(values["run"])
        if values["models"] and values["models"] != [cfg.model]:
            raise UsageError(f"--from {values['run']} holds a {cfg.model}: drop --models, or measure other kinds "
                             "without --from")
        if values["data"] is not None:
            cfg = cfg.replace(data=values["data"])
        kinds = [cfg.model]
        folder = Path(values["out"] or values["run"])
    else:
        cfg = config_from_values(values)
        kinds = values["models"] or [cfg.model]
        if values["out"]:
            folder = Path(values["out"])
        else:
            from lmprof.runner import default_run_dir

            folder = default_run_dir("gradflow", cfg.replace(model="-".join(kinds)))
    draws = gradient_flow_draws(cfg, kinds=kinds, batches=values["batches"], draws=values["draws"],
                                state_dict=state_dict)
    return GradflowRun(draws, folder)
