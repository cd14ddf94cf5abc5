"""The commands that train into a run folder (train, profile, trace): their options and the instruments each gets.

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
    from lmprof.instrument.trace import TraceSchedule
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

PROFILER = "torch.profiler"
TRACE_OWN = (
    Option("wait", "steps to skip first (default 1)", type=int, default=1, metavar="N", group=PROFILER),
    Option("warmup", "steps traced but discarded, so the profiler's start-up cost stays out (default 1)", type=int,
           default=1, metavar="N", group=PROFILER),
    Option("active", "steps recorded (default 3)", type=int, default=3, metavar="N", group=PROFILER),
    Option("repeat", "how many wait/warmup/active cycles; one trace file each (default 1)", type=int, default=1,
           metavar="N", group=PROFILER),
    flag_option("group_by_shape", "one row per operator and input shapes (records shapes)", group=PROFILER),
    flag_option("gzip", "write *.pt.trace.json.gz", group=PROFILER),
    Option("row_limit", "operators to show (default 15)", type=int, default=15, metavar="N", group=PROFILER),
    COMPONENTS,
    *memory_options(operators=True),
    Option("into", "add the trace to an existing run folder: trace RUN's own configuration and write only its top "
                   "operators and trace/ files, leaving its other tables as they are", metavar="RUN", group=PROFILER),
)
TRACE_OPTIONS = (*run_options(epochs=1), REPORT, *TRACE_OWN)


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
               log=log or _quiet, force=force)


def _quiet(line: str) -> None:
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
        return run(cfg, command="profile", instruments=instruments, log=log or _quiet, run_dir=folder, force=force)
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


def trace_schedule(wait: int, warmup: int, active: int, repeat: int, row_limit: int) -> "TraceSchedule":
    """The profiler's schedule, checked (and --row-limit with it) before anything trains."""
    from lmprof.instrument.trace import TraceSchedule

    schedule = TraceSchedule(wait, warmup, active, repeat).validate()
    if row_limit < 1:
        raise UsageError(f"--row-limit must be 1 or more, got {row_limit}")
    return schedule


def progress_name(schedule: "TraceSchedule") -> str:
    """What a trace's progress display calls the run."""
    return f"trace (skip {schedule.wait}, warm up {schedule.warmup}, record {schedule.active})"


def trace(cfg: RunConfig, schedule: "TraceSchedule", *, group_by_shape: bool = False, gzip: bool = False,
          components: bool = False, memory: bool = False, memory_snapshot: bool = False, force: bool = False,
          watchers: Sequence["Instrument"] = (), log: Log | None = None) -> "RunResult":
    """Train under torch.profiler (``lmprof trace``); ``cfg.max_batches`` None: stop when the schedule is done."""
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.instrument.trace import TraceInstrument
    from lmprof.runner import run

    if cfg.max_batches is None and not cfg.dry_run:
        cfg = cfg.replace(max_batches=schedule.steps)  # the steps after the schedule would go untraced
    # The trace's recorder goes first: it opens each phase's span before the phase timer starts
    # and closes it after, so the profiler's own bookkeeping stays out of the phase times.
    tracer = TraceInstrument(schedule, group_by_shape=group_by_shape, memory=memory, gzip=gzip)
    instruments = [tracer, PhaseInstrument(), *memory_instruments(cfg, memory, memory_snapshot)]
    if components:
        from lmprof.instrument.components import ComponentInstrument

        instruments.append(ComponentInstrument())
    return run(cfg, command="trace", instruments=[*instruments, *watchers], log=log or _quiet, force=force)


def trace_into(run_folder: str, schedule: "TraceSchedule", *, out: str | None = None, max_batches: int | None = None,
               dry_run: bool = False,
               group_by_shape: bool = False, gzip: bool = False, memory: bool = False,
               watchers: Sequence["Instrument"] = (), log: Log | None = None,
               announce: Log | None = None) -> "RunResult":
    """Trace RUN's configuration in a scratch folder inside RUN, then move only the trace into RUN (``--into``).

    RUN's other sections (phases, lines, metrics, command) stay as they were; an
    earlier trace there is replaced. Interrupted, RUN is left untouched.
    """
    import os
    import shutil
    import tempfile

    from lmprof.instrument.trace import TRACE_DIR, TraceInstrument
    from lmprof.record.result import RunResult
    from lmprof.runner import run
    from lmprof.safe_files import member_state

    if out is not None:
        raise UsageError("--into RUN writes into RUN: leave out --out")
    target = RunResult.load(run_folder)
    folder = Path(target.run_dir)
    state = member_state(folder, TRACE_DIR)  # checked before training, not after it
    if state not in ("dir", "missing"):
        what = "a symbolic link" if state == "link" else "not a folder"
        raise UsageError(f"{folder / TRACE_DIR} is {what}: lmprof writes the trace only into a folder of its own "
                         "there; remove it and run again")
    if max_batches is None and not dry_run:
        max_batches = schedule.steps
    cfg = RunConfig.from_dict(target.config).replace(
        out=None, save=None, epochs=1, max_batches=max_batches, dry_run=dry_run).validate()
    if announce is not None:
        announce(f"Tracing {folder}'s configuration ({cfg.model}); its other tables stay as they are.")
    tracer = TraceInstrument(schedule, group_by_shape=group_by_shape, memory=memory, gzip=gzip)
    scratch = Path(tempfile.mkdtemp(dir=folder, prefix=".trace-into-"))
    try:
        traced = run(cfg, command="trace", instruments=[tracer, *watchers], log=log or _quiet, run_dir=scratch)
        if (scratch / TRACE_DIR).is_dir():
            shutil.rmtree(folder / TRACE_DIR, ignore_errors=True)
            os.replace(scratch / TRACE_DIR, folder / TRACE_DIR)
        target.ops = traced.ops
        target.files = {role: name for role, name in target.files.items() if not role.startswith("trace")}
        target.files.update({role: name for role, name in traced.files.items() if role.startswith("trace")})
        target.save(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


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


def trace_from(values: Mapping[str, Any], *, progress: Progress, log: Log | None = None,
               announce: Log | None = None) -> "RunResult":
    """``lmprof trace`` (or ``trace --into RUN``) from its option values (TRACE_OPTIONS)."""
    schedule = trace_schedule(values["wait"], values["warmup"], values["active"], values["repeat"],
                              values["row_limit"])
    shown = {"group_by_shape": values["group_by_shape"], "gzip": values["gzip"], "memory": values["memory"]}
    if values["into"] is not None:
        return trace_into(values["into"], schedule, out=values["out"], max_batches=values["max_batches"],
                          dry_run=values["dry_run"], **shown, watchers=progress(progress_name(schedule)), log=log,
                          announce=announce)
    cfg = config_from_values(values)
    return trace(cfg, schedule, **shown, components=values["components"], memory_snapshot=values["memory_snapshot"],
                 force=values["force"], watchers=progress(progress_name(schedule)), log=log)
