"""Draw the program: the flow chart shaded by measured time, or the unrolled BPTT graph.

    lmprof diagram flow --from runs/demo          runs/demo/flow.svg, each phase shaded by its share
    lmprof diagram flow --profile                 a short profile first, then its chart
    lmprof diagram flow --from runs/a --vs runs/b runs/a/flow-vs-b.svg, each phase coloured by b's ratio to a
    lmprof diagram bptt --bptt 4 --nlayers 1      bptt.svg: one cluster per time step
    lmprof diagram bptt --no-repackage            two batches: the graph reaches the previous one
    lmprof diagram bptt --raw                     every autograd node, torchviz-style

The .dot source is always written beside the picture (svg by default; png,
pdf, or dot alone with --format).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmprof.commands.common import add_options, values_of
from lmprof.config import RunConfig
from lmprof.library.diagram import BPTT_OPTIONS, FLOW_OPTIONS
from lmprof.record.files import BPTT_RAW_STEM, BPTT_STEM, FLOW_STEM

if TYPE_CHECKING:
    from rich.console import Console

    from lmprof.library.diagram import BpttCapture


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="diagram", metavar="DIAGRAM", required=True)
    flow = sub.add_parser("flow", help="the program's components in order, shaded by measured time",
                          description="The flow chart of the training program; with a run, each phase "
                                      "shows its time and share on a heat scale.")
    add_options(flow, FLOW_OPTIONS)
    bptt = sub.add_parser("bptt", help="the autograd graph of one training step, unrolled over time",
                          description="One real forward and backward of the reference model, drawn with one "
                                      "cluster per time step, shared weights and the repackage_hidden cut.")
    add_options(bptt, BPTT_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from lmprof.commands.console import make_console

    console = make_console()
    return _flow(args, console) if args.diagram == "flow" else _bptt(args, console)


def _flow(args: argparse.Namespace, console: "Console") -> int:
    from lmprof.commands.console import log_to
    from lmprof.views.progress import progress_instruments
    from lmprof.library.diagram import flow_run
    from lmprof.views.flowchart import flow_chart
    from lmprof.views.render import output_path

    values = values_of(args, FLOW_OPTIONS)
    watchers = progress_instruments(console) if args.profile else []
    result, folder = flow_run(values, watchers=watchers, log=log_to(console))
    if args.vs is not None:
        return _flow_vs(args, console)
    picture, fmt = output_path(args.out, args.format, FLOW_STEM, folder)
    upstream = RunConfig()  # the plain chart shows upstream's default model
    graph = flow_chart(result) if result is not None else flow_chart(model=upstream.model, nlayers=upstream.nlayers)
    _save(console, graph, picture, fmt, "flow chart")
    return 0


def _flow_vs(args: argparse.Namespace, console: "Console") -> int:
    """The flow chart of --from A, coloured by how --vs B compares with it."""
    from lmprof.library.diagram import flow_comparison, vs_stem
    from lmprof.views.flowchart_compare import vs_chart
    from lmprof.views.render import output_path

    comparison, base, other = flow_comparison(args.run, args.vs)
    picture, fmt = output_path(args.out, args.format, vs_stem(other), args.run)
    _save(console, vs_chart(comparison, base, other), picture, fmt, "flow chart by time ratio")
    for note in comparison.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    return 0


def _bptt(args: argparse.Namespace, console: "Console") -> int:
    from lmprof.library.diagram import bptt_capture, bptt_config
    from lmprof.views.bptt import bptt_graph, raw_graph
    from lmprof.views.render import output_path

    values = values_of(args, BPTT_OPTIONS)
    cfg = bptt_config(values)
    picture, fmt = output_path(args.out, args.format, BPTT_RAW_STEM if args.raw else BPTT_STEM)
    captured = bptt_capture(cfg, values)
    graph = raw_graph(captured.data) if args.raw else bptt_graph(captured.data, captured.grads)
    _save(console, graph, picture, fmt, "autograd graph" if args.raw else "BPTT graph")
    _say_bptt(console, captured, args.no_repackage)
    return 0


def _say_bptt(console: "Console", captured: "BpttCapture", no_repackage: bool) -> None:
    cfg, data = captured.cfg, captured.data
    check = data.check
    fused = ", ".join(f"{name} ×{n}" for name, n in data.fused_rnn_nodes().items()) or "none (already step by step)"
    steps = data.step_clusters()
    console.print(f"{len(steps)} time-step clusters ({cfg.bptt} steps × {cfg.nlayers} layer(s)"
                  f"{' × 2 batches' if no_repackage else ''}), {len(data.params())} parameters, "
                  f"{len([n for n in data.nodes if n.kind in ('op', 'loss')])} autograd nodes", highlight=False,
                  soft_wrap=True)
    console.print(f"the fused path's RNN nodes: {fused}; unrolled outputs equal the fused path's: "
                  f"{check['allclose']} (max |Δ| {check['max_abs_diff']:.1e})", highlight=False, markup=False,
                  soft_wrap=True)


def _save(console: "Console", graph: Any, picture: Path, fmt: str, what: str) -> None:
    from lmprof.views.render import render

    rendered = render(graph, picture, fmt)
    by = f" (rendered by {rendered.renderer})" if rendered.renderer else ""
    console.print(f"{what}: {rendered.picture}{by}", highlight=False, markup=False, soft_wrap=True)
    if rendered.picture != rendered.dot:
        console.print(f"source: {rendered.dot}", highlight=False, markup=False, soft_wrap=True)
