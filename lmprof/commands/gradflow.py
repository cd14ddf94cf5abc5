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

from lmprof.commands.common import add_options, values_of
from lmprof.errors import UsageError
from lmprof.library.gradflow import GRADFLOW_OPTIONS
from lmprof.record.files import GRADFLOW_STEM


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, GRADFLOW_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from lmprof.commands.console import make_console
    from lmprof.library.gradflow import measure_gradflow
    from lmprof.views.gradflow import flow_figure, flow_view
    from lmprof.views.plots import save

    measured = measure_gradflow(values_of(args, GRADFLOW_OPTIONS))
    # With --json, standard output carries the JSON alone: everything else goes to stderr.
    console = make_console(stderr=args.json)
    draws, folder = measured.draws, measured.folder
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
