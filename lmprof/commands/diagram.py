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

from lmprof.commands.common import add_compute_flags
from lmprof.config import RNN_KINDS, RunConfig
from lmprof.errors import UsageError
from lmprof.views.diagram_formats import FORMATS

if TYPE_CHECKING:
    from rich.console import Console

    from lmprof.record.result import RunResult

PROFILE_BATCHES = 20  # --profile: training batches of the short run
MAX_STEPS = 150  # bptt x nlayers: beyond this the graph takes too long to lay out and to read
# Small on purpose: the drawing shows the structure, and every box stays readable.
BPTT_DEFAULTS = RunConfig(model="LSTM", nlayers=1, bptt=4, batch_size=2, emsize=8, nhid=8)


def _output_flags(parser: argparse.ArgumentParser, stem: str) -> None:
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="picture format (default: from --out's suffix, else svg); the .dot is always written")
    parser.add_argument("--out", type=str, default=None, metavar="PATH",
                        help=f"the picture's file, or a folder to write {stem}.<format> in")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="diagram", metavar="DIAGRAM", required=True)
    flow = sub.add_parser("flow", help="the program's components in order, shaded by measured time",
                          description="The flow chart of the training program; with a run, each phase "
                                      "shows its time and share on a heat scale.")
    source = flow.add_mutually_exclusive_group()
    source.add_argument("--from", dest="run", type=str, default=None, metavar="RUN",
                        help="a run folder with phase times (lmprof profile); writes RUN/flow.<format>")
    source.add_argument("--profile", action="store_true",
                        help=f"profile {PROFILE_BATCHES} training batches first, then draw that run")
    flow.add_argument("--vs", type=str, default=None, metavar="RUN_B",
                      help="with --from A: colour each phase by B's time ratio to A and its verdict "
                           "(lmprof compare's); writes A/flow-vs-<B>.<format>")
    flow.add_argument("--data", type=str, default=None, metavar="DIR",
                      help="--profile: corpus folder (default: lmprof's embedded corpus)")
    flow.add_argument("--max-batches", type=int, default=None, metavar="N",
                      help=f"--profile: training batches (default {PROFILE_BATCHES})")
    flow.add_argument("--profile-out", type=str, default=None, metavar="DIR",
                      help="--profile: the run folder (default: runs/diagram-<model>-<time>)")
    flow.add_argument("--force", action="store_true",
                      help="--profile: let --profile-out replace the run already there")
    add_compute_flags(flow.add_argument_group("--profile: where the short run computes"))
    _output_flags(flow, "flow")

    d = BPTT_DEFAULTS
    bptt = sub.add_parser("bptt", help="the autograd graph of one training step, unrolled over time",
                          description="One real forward and backward of the reference model, drawn with one "
                                      "cluster per time step, shared weights and the repackage_hidden cut.")
    bptt.add_argument("--model", choices=RNN_KINDS, default=d.model, help=f"recurrent cell (default {d.model})")
    bptt.add_argument("--bptt", type=int, default=d.bptt, help=f"time steps per batch (default {d.bptt})")
    bptt.add_argument("--nlayers", type=int, default=d.nlayers, help=f"layers (default {d.nlayers})")
    bptt.add_argument("--batch_size", dest="batch_size", type=int, default=d.batch_size,
                      metavar="N", help=f"batch columns (default {d.batch_size})")
    bptt.add_argument("--emsize", type=int, default=d.emsize, help=f"embedding size (default {d.emsize})")
    bptt.add_argument("--nhid", type=int, default=d.nhid, help=f"hidden units per layer (default {d.nhid})")
    bptt.add_argument("--dropout", type=float, default=d.dropout, help=f"dropout (default {d.dropout})")
    bptt.add_argument("--tied", action="store_true", help="tie the embedding and decoder weights")
    bptt.add_argument("--ntokens", type=int, default=10, help="vocabulary size (default 10)")
    bptt.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    bptt.add_argument("--no-repackage", action="store_true",
                      help="no repackage_hidden: draw two batches, the graph reaching back into the first")
    bptt.add_argument("--raw", action="store_true", help="every autograd node with parameter names (torchviz-style)")
    bptt.add_argument("--grads", action="store_true",
                      help="measure |dLoss_T/dh_t| on the embedded corpus (as lmprof gradflow does, same shapes) "
                           "and draw each h/c edge with width and colour by it")
    add_compute_flags(bptt)
    _output_flags(bptt, "bptt")


def run(args: argparse.Namespace) -> int:
    from lmprof.commands.console import make_console

    console = make_console()
    return _flow(args, console) if args.diagram == "flow" else _bptt(args, console)


def _flow(args: argparse.Namespace, console: "Console") -> int:
    from lmprof.views.flowchart import flow_chart
    from lmprof.views.render import output_path

    if not args.profile and (args.data, args.max_batches, args.profile_out, args.threads) != (None,) * 4:
        raise UsageError("--data, --max-batches, --profile-out and --threads set up the --profile run: "
                         "add --profile, or drop them")
    result: RunResult | None = None
    folder: str | Path = "."
    if args.run is not None:
        from lmprof.record.result import RunResult

        result = RunResult.load(args.run)
        folder = args.run
    elif args.profile:
        result = _profile(args, console)
        folder = result.run_dir
    if result is not None and not result.phases:
        raise UsageError(f"{folder} has no phase times: make the run with `lmprof profile --fn train`, "
                         "or draw with --profile")
    if args.vs is not None:
        return _flow_vs(args, console, result)
    picture, fmt = output_path(args.out, args.format, "flow", folder)
    upstream = RunConfig()  # the plain chart shows upstream's default model
    graph = flow_chart(result) if result is not None else flow_chart(model=upstream.model, nlayers=upstream.nlayers)
    _save(console, graph, picture, fmt, "flow chart")
    return 0


def _flow_vs(args: argparse.Namespace, console: "Console", base: "RunResult | None") -> int:
    """The flow chart of --from A, coloured by how --vs B compares with it."""
    from lmprof.comparison import compare, load_runs
    from lmprof.views.flowchart_compare import vs_chart
    from lmprof.views.render import output_path

    if base is None or args.run is None:
        raise UsageError("--vs B compares with a baseline run: give it with --from A")
    (base, other), notes = load_runs([args.run, args.vs])
    if not other.phases:
        raise UsageError(f"{args.vs} has no phase times: make the run with `lmprof profile --fn train`")
    comparison = compare([base, other], notes)
    picture, fmt = output_path(args.out, args.format, f"flow-vs-{Path(other.run_dir).name}", args.run)
    _save(console, vs_chart(comparison, base, other), picture, fmt, "flow chart by time ratio")
    for note in comparison.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    return 0


def _profile(args: argparse.Namespace, console: "Console") -> "RunResult":
    """A short run under the phase and component timers: one epoch of a few batches, the rest upstream's defaults."""
    from lmprof.commands.console import log_to, progress_instruments
    from lmprof.instrument.components import ComponentInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run as run_training

    cfg = RunConfig(data=args.data, epochs=1, max_batches=args.max_batches or PROFILE_BATCHES,
                    out=args.profile_out, device=args.device, threads=args.threads).validate()
    console.print(f"Profiling {cfg.max_batches} training batches of {cfg.model} for the chart ...")
    # Components too: the chart then shows each model component's forward and backward time.
    return run_training(cfg, command="diagram", instruments=[PhaseInstrument(), ComponentInstrument(),
                                                             *progress_instruments(console)],
                        log=log_to(console), force=args.force)


def _bptt(args: argparse.Namespace, console: "Console") -> int:
    from lmprof.views.render import output_path

    cfg = RunConfig(model=args.model, bptt=args.bptt, nlayers=args.nlayers, batch_size=args.batch_size,
                    emsize=args.emsize, nhid=args.nhid, dropout=args.dropout, tied=args.tied,
                    seed=args.seed).validate()
    if args.ntokens < 2:
        raise UsageError(f"--ntokens must be 2 or more, got {args.ntokens}")
    if cfg.bptt * cfg.nlayers > MAX_STEPS:
        raise UsageError(f"--bptt {cfg.bptt} × --nlayers {cfg.nlayers} is {cfg.bptt * cfg.nlayers} cell steps: "
                         f"draw at most {MAX_STEPS} (the picture would be unreadable and slow to lay out)")
    if args.grads and args.raw:
        raise UsageError("--grads colours the time-step view: drop --raw")
    picture, fmt = output_path(args.out, args.format, "bptt-raw" if args.raw else "bptt")
    from lmprof.commands.common import apply_compute_flags

    apply_compute_flags(args, cpu_only="the BPTT graph's forward and backward")

    from lmprof.instrument.graph import capture
    from lmprof.views.bptt import bptt_graph, raw_graph

    data = capture(cfg, repackage=not args.no_repackage, ntokens=args.ntokens)
    grads = None
    if args.grads:
        from lmprof.experiments.gradient_flow import gradient_flow

        grads = gradient_flow(cfg).curves[cfg.model]
    _save(console, raw_graph(data) if args.raw else bptt_graph(data, grads), picture, fmt,
          "autograd graph" if args.raw else "BPTT graph")
    check = data.check
    fused = ", ".join(f"{name} ×{n}" for name, n in data.fused_rnn_nodes().items()) or "none (already step by step)"
    steps = data.step_clusters()
    console.print(f"{len(steps)} time-step clusters ({cfg.bptt} steps × {cfg.nlayers} layer(s)"
                  f"{' × 2 batches' if args.no_repackage else ''}), {len(data.params())} parameters, "
                  f"{len([n for n in data.nodes if n.kind in ('op', 'loss')])} autograd nodes", highlight=False,
                  soft_wrap=True)
    console.print(f"the fused path's RNN nodes: {fused}; unrolled outputs equal the fused path's: "
                  f"{check['allclose']} (max |Δ| {check['max_abs_diff']:.1e})", highlight=False, markup=False,
                  soft_wrap=True)
    return 0


def _save(console: "Console", graph: Any, picture: Path, fmt: str, what: str) -> None:
    from lmprof.views.render import render

    rendered = render(graph, picture, fmt)
    by = f" (rendered by {rendered.renderer})" if rendered.renderer else ""
    console.print(f"{what}: {rendered.picture}{by}", highlight=False, markup=False, soft_wrap=True)
    if rendered.picture != rendered.dot:
        console.print(f"source: {rendered.dot}", highlight=False, markup=False, soft_wrap=True)
