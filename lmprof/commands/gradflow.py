"""Measure how the gradient flows back through time: |dLoss_T/dh_t| per layer and step, per model kind.

    lmprof gradflow --models LSTM RNN_TANH          same data and seed, both kinds, one plot
    lmprof gradflow --from runs/demo                the trained weights of a run
    lmprof gradflow --models GRU --json             the per-step norms as JSON on standard output

Runs forward and backward through the unrolled model (the one `lmprof diagram
bptt` draws, outputs equal to the fused kernel's) on real batches, without
updating the weights; the loss is the last time step's. It measures --draws
seeds (--seed, --seed + 1, ...) and gives each figure as its median and range
over them (`lmprof explain bptt` prints the same figures for the same config
and seed). Writes gradflow.svg
and gradflow.png (in --out, or the run folder with --from, else runs/gradflow-<models>-<time>).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmprof.commands.common import add_run_flags, config_from_args
from lmprof.config import RNN_KINDS
from lmprof.errors import UsageError
from lmprof.record.files import GRADFLOW_STEM

from lmprof.experiments.gradient_draws import DRAWS, FLOW_BATCHES  # light: no torch at import


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_flags(parser)
    flow = parser.add_argument_group("gradient flow")
    flow.add_argument("--models", nargs="+", choices=RNN_KINDS, default=None, metavar="KIND",
                      help=f"model kinds to overlay on the same data and seed: {' '.join(RNN_KINDS)} "
                           "(default: --model)")
    flow.add_argument("--from", dest="run", type=str, default=None, metavar="RUN",
                      help="measure a run folder's trained weights, with its config and data")
    flow.add_argument("--batches", type=int, default=FLOW_BATCHES, metavar="N",
                      help=f"batches to average over (default {FLOW_BATCHES})")
    flow.add_argument("--draws", type=int, default=DRAWS, metavar="N",
                      help=f"seeds to measure (--seed, --seed + 1, ...): each figure's median and range over them "
                           f"(default {DRAWS})")
    flow.add_argument("--json", action="store_true",
                      help="print only the JSON object (per kind, one list per layer of norms, t = 1..bptt)")
    for action in parser._actions:  # --out names where the plot goes here, not a run folder
        if action.dest == "out":
            action.help = ("folder for gradflow.svg and gradflow.png (default: the --from run folder, "
                           "else runs/gradflow-<models>-<time>)")


def run(args: argparse.Namespace) -> int:
    from lmprof.experiments.gradient_draws import gradient_flow_draws
    from lmprof.experiments.gradient_flow import load_run
    from lmprof.views.gradflow import flow_figure, flow_view
    from lmprof.views.plots import save

    from lmprof.commands.common import apply_compute_flags

    apply_compute_flags(args, cpu_only="gradient flow (the RNN unrolled step by step)")  # --threads; no GPU
    state_dict = None
    if args.run is not None:
        cfg, state_dict = load_run(args.run)
        if args.models and args.models != [cfg.model]:
            raise UsageError(f"--from {args.run} holds a {cfg.model}: drop --models, or measure other kinds "
                             "without --from")
        if args.data is not None:
            cfg = cfg.replace(data=args.data)
        kinds = [cfg.model]
        folder = Path(args.out or args.run)
    else:
        cfg = config_from_args(args)
        kinds = args.models or [cfg.model]
        if args.out:
            folder = Path(args.out)
        else:
            from lmprof.runner import default_run_dir

            folder = default_run_dir("gradflow", cfg.replace(model="-".join(kinds)))
    # With --json, standard output carries the JSON alone: everything else goes to stderr.
    from lmprof.commands.console import make_console

    console = make_console(stderr=args.json)
    draws = gradient_flow_draws(cfg, kinds=kinds, batches=args.batches, draws=args.draws, state_dict=state_dict)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        pictures = save(flow_figure(draws.mean_flow()), folder / GRADFLOW_STEM)
    except OSError as e:
        raise UsageError(f"cannot write the plot into {folder}: {e.strerror}: choose another --out") from None
    if args.json:
        from lmprof.record.result import json_safe

        json.dump(json_safe(draws.to_dict()), sys.stdout, allow_nan=False)  # a NaN decay is null
        sys.stdout.write("\n")
    else:
        console.print(flow_view(draws))
    for picture in pictures:
        console.print(f"plot: {picture}", markup=False, soft_wrap=True)
    return 0
