"""The commands that train into a run folder (train, profile; trace in library/trace.py): options, instruments.

Each function takes a RunConfig and the command's own options, runs the
reference loop under the instruments, and returns the RunResult. What shows
progress (``watchers``) and where the log lines go (``log``) are the caller's:
the command line passes a terminal bar and upstream's printed lines, the API
a notebook bar and nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from lmprof.config import RunConfig
from lmprof.errors import UsageError
from lmprof.instrument.lines import ALL, FUNCTIONS, SYNC_MODES, UNITS
from lmprof.library.options import Option, config_from_values, flag_option, own_values, run_options
from lmprof.record.files import RESULT_FILE

if TYPE_CHECKING:
    from lmprof.instrument.base import Instrument
    from lmprof.record.result import RunResult

Log = Callable[[str], None]
Progress = Callable[[str], Sequence["Instrument"]]  # a run's name -> what shows its progress

REPORT = flag_option("report", "also write report.html into the folder (the page `lmprof report` makes)")
GRAD_STATS = flag_option("grad_stats", "also record the gradient norm before clipping, per epoch: median, max and "
                                      "the fraction of batches clip_grad_norm_ scaled down")
COMPONENTS = flag_option("components", "also time each model component (encoder, rnn, decoder, ...), forward and "
                                      "backward")


def memory_options(*, operators: bool = False) -> tuple[Option, ...]:
    return (flag_option("memory", "also record where the bytes go: saved activations per batch and by module, "
                                  "parameter/gradient/optimizer bytes, peak RSS (CUDA: allocated and peak) per phase"
                        + ("; and the memory each operator allocates, in the trace" if operators else ""),
                        group="memory"),
            flag_option("memory_snapshot", "CUDA only: with --memory, record the allocator's history and write "
                                           "memory_snapshot.pickle (open it at https://pytorch.org/memory_viz)",
                        group="memory"))


TRAIN_OWN = (GRAD_STATS,)
TRAIN_OPTIONS = (*run_options(), *TRAIN_OWN)

LINES = "line profiling"
PROFILE_OWN = (
    Option("fn", f"function to time line by line, repeatable: {', '.join(FUNCTIONS)} or {ALL} (default: train)",
           metavar="NAME", repeatable=True, group=LINES),
    Option("unit", "time unit of the line tables (default: auto, per table)", default="auto", choices=UNITS,
           group=LINES),
    Option("sync", "CUDA only: blocking sets CUDA_LAUNCH_BLOCKING=1 so each line's time includes its kernels "
                   "(slower); launch (default) times kernel launches", default="launch", choices=SYNC_MODES,
           group=LINES),
    flag_option("remeasure_peak", "measure this machine's matmul peak again (else: the cached one, if under a day "
                                  "old and taken with the same thread count)"),
    COMPONENTS,
    flag_option("backward_lines", "with --fn forward or --fn train: each line of the model's forward with its "
                                  "operators' time, forward (device) and in backward, from a torch.profiler window "
                                  "on a few batches"),
    GRAD_STATS,
    *memory_options(),
)
PROFILE_OPTIONS = (*run_options(epochs=1), REPORT, *PROFILE_OWN)

def grad_stats_instruments(grad_stats: bool) -> list["Instrument"]:
    if not grad_stats:
        return []
    from lmprof.instrument.gradients import GradStatsInstrument

    return [GradStatsInstrument()]


def memory_instruments(cfg: RunConfig, memory: bool, snapshot: bool) -> list["Instrument"]:
    """[MemoryInstrument] when --memory (or --memory-snapshot) was given, else nothing."""
    if not (memory or snapshot):
        return []
    from lmprof.instrument.memory import MemoryInstrument

    if snapshot:
        from lmprof.prepare import resolve_device

        device = resolve_device(cfg)
        if device.type != "cuda":
            raise UsageError(f"--memory-snapshot records the CUDA allocator's history, and this run is on "
                             f"{device.type}: use --memory (saved activations and RSS per phase), or a GPU")
    return [MemoryInstrument(snapshot=snapshot)]


def train(cfg: RunConfig, *, grad_stats: bool = False, force: bool = False,
          watchers: Sequence["Instrument"] = (), log: Log | None = None) -> "RunResult":
    """Train as upstream does (``lmprof train``)."""
    from lmprof.runner import run

    return run(cfg, command="train", instruments=[*grad_stats_instruments(grad_stats), *watchers],
               log=log or quiet_log, force=force)


def quiet_log(line: str) -> None:
    """The API's log: upstream's lines are not printed (the returned RunResult shows what they said)."""


def check_profile(fn: Sequence[str] | None, backward_lines: bool) -> list[str]:
    """The functions --fn names (a bad name refused before the run's config is read)."""
    from lmprof.instrument.lines import choose_functions

    functions = choose_functions(fn)
    if backward_lines and not {"forward", "train"} & set(functions):
        raise UsageError("--backward-lines shows each line of forward with its backward: add --fn forward "
                         "(or --fn train, where loss.backward() gets the breakdown)")
    return list(functions)


def profile_dir(cfg: RunConfig) -> Path:
    from lmprof.runner import default_run_dir

    return Path(cfg.out) if cfg.out else default_run_dir("profile", cfg)


def profile(cfg: RunConfig, *, fn: Sequence[str] | None = None, unit: str = "auto", sync: str = "launch",
            remeasure_peak: bool = False, components: bool = False, backward_lines: bool = False,
            grad_stats: bool = False, memory: bool = False, memory_snapshot: bool = False, force: bool = False,
            watchers: Sequence["Instrument"] = (), log: Log | None = None, run_dir: Path | None = None) -> "RunResult":
    """Time training line by line and phase by phase (``lmprof profile``).

    Interrupted outside the training loop, the run that the runner saved is returned (status "interrupted").
    """
    functions = check_profile(fn, backward_lines)
    if sync == "blocking":
        from lmprof.config import set_launch_blocking

        set_launch_blocking()  # read when CUDA starts: set before anything touches the GPU, or refused
    from lmprof.instrument.flops import FlopInstrument
    from lmprof.instrument.lines import LineInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run

    instruments = [PhaseInstrument(), FlopInstrument(remeasure_peak=remeasure_peak),
                   LineInstrument(functions, unit=unit, sync=sync), *grad_stats_instruments(grad_stats),
                   *memory_instruments(cfg, memory, memory_snapshot), *watchers]
    if components:
        from lmprof.instrument.components import ComponentInstrument

        instruments.insert(1, ComponentInstrument())  # after the phase timer: its markers open first
    if backward_lines:
        from lmprof.instrument.backward_lines import BackwardLineInstrument

        instruments.append(BackwardLineInstrument())  # after --components: its contribute reads theirs
    folder = run_dir or profile_dir(cfg)
    try:
        return run(cfg, command="profile", instruments=instruments, log=log or quiet_log, run_dir=folder, force=force)
    except KeyboardInterrupt:
        # Ctrl-C outside the training loop (which handles its own): the runner has still written
        # what the instruments saw; that run is the result, marked interrupted.
        interrupted = interrupted_result(folder)
        if interrupted is None:
            raise
        return interrupted


def interrupted_result(run_dir: Path) -> "RunResult | None":
    """The run that Ctrl-C outside the training loop cut short, as the runner saved it (None: this run wrote none)."""
    from lmprof.record.result import RunResult

    if not (run_dir / RESULT_FILE).is_file():
        return None
    result = RunResult.load(run_dir)
    return result if result.status == "interrupted" else None  # else an older run's file


# --- a command's whole composition, from its option values (what both faces call) -----------------------------
def train_from(values: Mapping[str, Any], *, progress: Progress, log: Log | None = None) -> "RunResult":
    """``lmprof train`` from its option values (TRAIN_OPTIONS)."""
    cfg = config_from_values(values)
    return train(cfg, **own_values(values, TRAIN_OWN), force=values["force"], watchers=progress(""), log=log)


def profile_from(values: Mapping[str, Any], *, progress: Progress, log: Log | None = None) -> "RunResult":
    """``lmprof profile`` from its option values (PROFILE_OPTIONS)."""
    check_profile(values["fn"], values["backward_lines"])  # a bad --fn before a bad run flag
    cfg = config_from_values(values)
    return profile(cfg, **own_values(values, PROFILE_OWN), force=values["force"], watchers=progress(""), log=log)
