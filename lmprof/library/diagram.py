"""What a drawing needs (``lmprof diagram``): the run behind a flow chart, the BPTT graph's real forward and backward.

The drawing itself is a view (lmprof.views.flowchart, flowchart_compare, bptt);
these functions check the options and produce the data it draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from lmprof.config import RNN_KINDS, RunConfig
from lmprof.errors import UsageError
from lmprof.library.options import Option, compute_options, flag_option
from lmprof.picture_formats import FORMATS
from lmprof.record.files import BPTT_STEM, FLOW_STEM

if TYPE_CHECKING:
    from lmprof.comparison import Comparison
    from lmprof.instrument.base import Instrument
    from lmprof.instrument.graph import StepGraph
    from lmprof.record.result import RunResult

PROFILE_BATCHES = 20  # --profile: training batches of the short run
MAX_STEPS = 150  # bptt x nlayers: beyond this the graph takes too long to lay out and to read
# Small on purpose: the drawing shows the structure, and every box stays readable.
BPTT_DEFAULTS = RunConfig(model="LSTM", nlayers=1, bptt=4, batch_size=2, emsize=8, nhid=8)


def output_options(stem: str) -> tuple[Option, ...]:
    return (Option("format", "picture format (default: from --out's suffix, else svg); the .dot is always written",
                   choices=FORMATS),
            Option("out", f"the picture's file, or a folder to write {stem}.<format> in", metavar="PATH"))


FLOW_OPTIONS = (
    Option("run", "a run folder with phase times (lmprof profile); writes RUN/flow.<format>", flag="--from",
           metavar="RUN", exclusive="source"),
    flag_option("profile", f"profile {PROFILE_BATCHES} training batches first, then draw that run",
                exclusive="source"),
    Option("vs", "with --from A: colour each phase by B's time ratio to A and its verdict (lmprof compare's); "
                 "writes A/flow-vs-<B>.<format>", metavar="RUN_B"),
    Option("data", "--profile: corpus folder (default: lmprof's embedded corpus)", metavar="DIR"),
    Option("max_batches", f"--profile: training batches (default {PROFILE_BATCHES})", type=int, metavar="N"),
    Option("profile_out", "--profile: the run folder (default: runs/diagram-<model>-<time>)", metavar="DIR"),
    flag_option("force", "--profile: let --profile-out replace the run already there"),
    *compute_options("--profile: where the short run computes"),
    *output_options(FLOW_STEM),
)

_d = BPTT_DEFAULTS
BPTT_OPTIONS = (
    Option("model", f"recurrent cell (default {_d.model})", default=_d.model, choices=RNN_KINDS),
    Option("bptt", f"time steps per batch (default {_d.bptt})", type=int, default=_d.bptt),
    Option("nlayers", f"layers (default {_d.nlayers})", type=int, default=_d.nlayers),
    Option("batch_size", f"batch columns (default {_d.batch_size})", type=int, default=_d.batch_size,
           flag="--batch_size", metavar="N"),
    Option("emsize", f"embedding size (default {_d.emsize})", type=int, default=_d.emsize),
    Option("nhid", f"hidden units per layer (default {_d.nhid})", type=int, default=_d.nhid),
    Option("dropout", f"dropout (default {_d.dropout})", type=float, default=_d.dropout),
    flag_option("tied", "tie the embedding and decoder weights"),
    Option("ntokens", "vocabulary size (default 10)", type=int, default=10),
    Option("seed", f"random seed (default {_d.seed})", type=int, default=_d.seed),
    flag_option("no_repackage", "no repackage_hidden: draw two batches, the graph reaching back into the first"),
    flag_option("raw", "every autograd node with parameter names (torchviz-style)"),
    flag_option("grads", "measure |dLoss_T/dh_t| on the embedded corpus (as lmprof gradflow does, same shapes) and "
                         "draw each h/c edge with width and colour by it"),
    *compute_options(),
    *output_options(BPTT_STEM),
)


def flow_run(values: Mapping[str, Any], *, watchers: Sequence["Instrument"] = (),
             log: Callable[[str], None] = print) -> tuple["RunResult | None", str | Path]:
    """The run a flow chart is shaded by (--from, or a short --profile run; None: the plain chart), and its folder."""
    if not values["profile"] and (values["data"], values["max_batches"], values["profile_out"],
                                  values["threads"]) != (None,) * 4:
        raise UsageError("--data, --max-batches, --profile-out and --threads set up the --profile run: "
                         "add --profile, or drop them")
    result: RunResult | None = None
    folder: str | Path = "."
    if values["run"] is not None:
        from lmprof.record.result import RunResult

        result = RunResult.load(values["run"])
        folder = values["run"]
    elif values["profile"]:
        result = _profile(values, watchers, log)
        folder = result.run_dir
    if result is not None and not result.phases:
        raise UsageError(f"{folder} has no phase times: make the run with `lmprof profile --fn train`, "
                         "or draw with --profile")
    if values["vs"] is not None and (result is None or values["run"] is None):
        raise UsageError("--vs B compares with a baseline run: give it with --from A")
    return result, folder


def _profile(values: Mapping[str, Any], watchers: Sequence["Instrument"], log: Callable[[str], None]) -> "RunResult":
    """A short run under the phase and component timers: one epoch of a few batches, the rest upstream's defaults."""
    from lmprof.instrument.components import ComponentInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run

    cfg = RunConfig(data=values["data"], epochs=1, max_batches=values["max_batches"] or PROFILE_BATCHES,
                    out=values["profile_out"], device=values["device"], threads=values["threads"]).validate()
    log(f"Profiling {cfg.max_batches} training batches of {cfg.model} for the chart ...")
    # Components too: the chart then shows each model component's forward and backward time.
    return run(cfg, command="diagram", instruments=[PhaseInstrument(), ComponentInstrument(), *watchers],
               log=log, force=values["force"])


def flow_comparison(base_run: str, other_run: str) -> tuple["Comparison", "RunResult", "RunResult"]:
    """--from A --vs B: how B compares with A, phase by phase (B must have phase times)."""
    from lmprof.comparison import compare, load_runs

    (base, other), notes = load_runs([base_run, other_run])
    if not other.phases:
        raise UsageError(f"{other_run} has no phase times: make the run with `lmprof profile --fn train`")
    return compare([base, other], notes), base, other


def vs_stem(other: "RunResult") -> str:
    """The --vs chart's file name: flow-vs-<B's folder name>, in A's folder."""
    return f"{FLOW_STEM}-vs-{Path(other.run_dir).name}"


@dataclass
class BpttCapture:
    """One real forward and backward, as the BPTT drawing needs it; ``grads`` when --grads measured them."""

    cfg: RunConfig
    data: "StepGraph"
    grads: Any = None


def bptt_config(values: Mapping[str, Any]) -> RunConfig:
    """The drawn model's config, checked (and --ntokens, the size, --grads with --raw) before anything runs."""
    cfg = RunConfig(model=values["model"], bptt=values["bptt"], nlayers=values["nlayers"],
                    batch_size=values["batch_size"], emsize=values["emsize"], nhid=values["nhid"],
                    dropout=values["dropout"], tied=values["tied"], seed=values["seed"]).validate()
    if values["ntokens"] < 2:
        raise UsageError(f"--ntokens must be 2 or more, got {values['ntokens']}")
    if cfg.bptt * cfg.nlayers > MAX_STEPS:
        raise UsageError(f"--bptt {cfg.bptt} × --nlayers {cfg.nlayers} is {cfg.bptt * cfg.nlayers} cell steps: "
                         f"draw at most {MAX_STEPS} (the picture would be unreadable and slow to lay out)")
    if values["grads"] and values["raw"]:
        raise UsageError("--grads colours the time-step view: drop --raw")
    return cfg


def bptt_capture(cfg: RunConfig, values: Mapping[str, Any]) -> BpttCapture:
    """Run the step on the CPU (--device, --threads) and capture its autograd graph; --grads: the gradient flow."""
    from lmprof.library.compute import apply_compute

    apply_compute(values["device"], values["threads"], cpu_only="the BPTT graph's forward and backward")
    from lmprof.instrument.graph import capture

    data = capture(cfg, repackage=not values["no_repackage"], ntokens=values["ntokens"])
    grads = None
    if values["grads"]:
        from lmprof.experiments.gradient_flow import gradient_flow

        grads = gradient_flow(cfg).curves[cfg.model]
    return BpttCapture(cfg, data, grads)
