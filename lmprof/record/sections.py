"""The sections of result.json: their key names, once, and their shapes as typed definitions.

Writers (the runner, lmprof.instrument.*) build each section with these
names, readers (views, compare, sweeps, the class tools) read it with them,
and the checker (``lmprof.record.check``) is built from the TypedDicts
below, so what is checked is what is written. A field's type says what the
views may rely on: ``Seconds`` a measured time (finite, 0 or more), ``Count``
a whole number 0 or more, ``Number`` any finite number, ``X | None`` a value
that may be null (a NaN or infinity is stored as null). Fields marked
``Required`` must be present; every other field may be absent (an older
file, an instrument that did not run). Keys a section does not name pass
unchecked, as long as they are plain JSON.

One module on purpose, past the house's 300 lines: it is the whole file format,
read top to bottom as result.json is, definitions only (no logic).

    >>> SAVED_BYTES_PEAK
    'saved_bytes_peak'
    >>> TRAIN_COVERAGE in PhaseSummary.__annotations__
    True
"""

# No ``from __future__ import annotations`` here: TypedDict must see Required[...] as written, not as a string.
from typing import Annotated, Any, Required, TypedDict

# --- the kinds of values (the checker reads these markers) ----------------------------------------------
Count = Annotated[int, "count"]  # calls, batches, tokens, bytes: a whole number 0 or more
Number = Annotated[float, "number"]  # a finite number (a ratio, a loss, a learning rate)
Seconds = Annotated[float, "seconds"]  # a measured time: finite, 0 or more
Seed = Annotated[int, "seed"]  # what torch.manual_seed takes
FileName = Annotated[str, "file name"]  # a path inside the run folder, never climbing out of it
LINE_UNITS = ("auto", "s", "ms", "us")  # the line table's time units (--unit)
LineUnit = Annotated[str, ("one of", LINE_UNITS)]

# --- the top-level sections (RunResult's fields) ---------------------------------------------------------
SCHEMA_VERSION_KEY, COMMAND, CONFIG, ENVIRONMENT, METRICS = "schema_version", "command", "config", "environment", "metrics"
PHASES, PHASE_SUMMARY, LINES, OPS, FLOPS = "phases", "phase_summary", "lines", "ops", "flops"
COMPONENTS, MEMORY, GRADIENTS, BACKWARD_LINES = "components", "memory", "gradients", "backward_lines"
OVERHEAD, SWEEP, FILES, RUN_DIR = "overhead", "sweep", "files", "run_dir"

# --- keys many sections share ---------------------------------------------------------------------------
NAME, LABEL, CALLS, SECONDS, SHARE, ROWS = "name", "label", "calls", "seconds", "share", "rows"
EPOCH, EPOCHS, BATCHES, STEPS, CLOCK, DEVICE = "epoch", "epochs", "batches", "steps", "clock", "device"
LINE, SOURCE, FILE, FIRST_LINE, QUALNAME = "line", "source", "file", "first_line", "qualname"
MEAN_SECONDS, WALL_SECONDS, SAMPLE_EVERY, WATCHED_BATCHES = "mean_seconds", "wall_seconds", "sample_every", "watched_batches"
STEP_SECONDS, STEP_SHARE, METHOD, PEAK, MODEL = "step_seconds", "step_share", "method", "peak", "model"


class RunConfigRecord(TypedDict, total=False):
    """``config``: RunConfig.to_dict() (lmprof.config names every field); the ones the views read are checked."""

    model: str
    emsize: Count
    nhid: Count
    nlayers: Count
    bptt: Count
    batch_size: Count
    epochs: Count
    lr: Number
    clip: Number
    dropout: Number
    data: str | None
    seed: Seed
    max_batches: Count | None
    threads: Count | None
    nhead: Count


# --- metrics ----------------------------------------------------------------------------------------------
STATUS, MESSAGE, TEST_LOSS, TEST_PPL, PID, HOST = "status", "message", "test_loss", "test_ppl", "pid", "host"
NTOKENS, NPARAMS, TRAIN_TOKENS, UNSAVED = "ntokens", "nparams", "train_tokens", "unsaved"
SPEEDLAB_VARIANT, NOTES = "speedlab_variant", "notes"
CORPUS, CORPUS_TOKENS = "corpus", "corpus_tokens"
LR, TOKENS, TRAIN_SECONDS, TOKENS_PER_S, VAL_LOSS, VAL_PPL = "lr", "tokens", "train_seconds", "tokens_per_s", "val_loss", "val_ppl"


class Epoch(TypedDict, total=False):
    """One epoch of training and its validation (lmprof.record.epochs)."""

    epoch: Required[Count]
    lr: Number
    batches: Count
    tokens: Count
    train_seconds: Seconds
    tokens_per_s: Number | None  # None when no time was measured
    val_loss: Number | None
    val_ppl: Number | None


class Metrics(TypedDict, total=False):
    """How the run ended, its epochs and its test figures (lmprof.runner)."""

    status: str  # running, ok, diverged, interrupted, failed
    message: str | None
    epochs: list[Epoch]
    test_loss: Number | None
    test_ppl: Number | None
    wall_seconds: Seconds | None
    pid: Count | None
    host: str | None
    ntokens: Count | None
    nparams: Count | None
    train_tokens: Count | None
    unsaved: bool  # result.json could not be written at the end: the file holds an earlier save
    corpus: str  # the corpus folder read (config.data stays as given: None for the embedded one)
    corpus_tokens: dict[str, Count]  # tokens per split
    speedlab_variant: str  # a speed lab rung's run (lmprof.experiments.speedlab)
    notes: list[str]


# --- phases and their summary (lmprof.instrument.recorders, gpu_busy) --------------------------------------
HOST_SECONDS, SAMPLES, SAMPLES_EVERY, WATCHED_CALLS = "host_seconds", "samples", "samples_every", "watched_calls"
GPU_BUSY, REGIME = "gpu_busy", "regime"


class PhaseRow(TypedDict, total=False):
    """One phase of the run: its device-clock total, the host clock's beside it, share of the run's wall time."""

    name: Required[str]
    label: str
    calls: Required[Count]
    seconds: Required[Seconds]
    host_seconds: Seconds
    mean_seconds: Seconds
    share: Number
    samples: list[Seconds | None]  # step phases: seconds per call, in call order
    samples_every: Count | None  # a long run keeps one call in this many
    watched_calls: Count | None  # sampled CUDA events: the calls the total is scaled from
    gpu_busy: Any  # CUDA: kernel time over the phase's window (views.rows.gpu_busy reads it warily)
    regime: Any  # launch-bound, mixed or compute-bound


TRAIN_COVERAGE, FULL_BATCHES_PER_EPOCH, CUT = "train_coverage", "full_batches_per_epoch", "cut"


class PhaseSummary(TypedDict, total=False):
    clock: str  # host, cuda events, host synchronised
    wall_seconds: Seconds | None
    train_seconds: Seconds | None
    train_coverage: Number | None  # share of train()'s wall time that the step phases explain
    full_batches_per_epoch: Count | None
    cut: bool | None  # --max-batches, --dry-run or Ctrl-C cut an epoch short
    gpu_busy: dict[str, Any]  # CUDA: how the GPU busy column was measured (batches watched, method, thresholds)


# --- lines (lmprof.instrument.lines) -----------------------------------------------------------------------
HITS, UNIT, SYNC, FUNCTIONS = "hits", "unit", "sync", "functions"
TOTAL_SECONDS, SHARE_OF_RUN, TRAINING_CALLS, EVALUATION_CALLS = ("total_seconds", "share_of_run", "training_calls",
                                                                 "evaluation_calls")


class LineRow(TypedDict, total=False):
    line: Required[Count]
    hits: Count
    seconds: Seconds
    share: Number
    source: str


class FunctionLines(TypedDict, total=False):
    name: Required[str]
    qualname: str
    file: str
    first_line: Count
    calls: Count
    total_seconds: Seconds
    share_of_run: Number
    lines: list[LineRow]
    training_calls: Count
    evaluation_calls: Count


class Lines(TypedDict, total=False):
    unit: LineUnit
    sync: str
    functions: list[FunctionLines]


# --- ops (lmprof.instrument.trace) -------------------------------------------------------------------------
INPUT_SHAPES, SELF_CPU_SECONDS, CPU_TOTAL_SECONDS = "input_shapes", "self_cpu_seconds", "cpu_total_seconds"
SELF_CUDA_SECONDS, CUDA_SHARE, SORT_BY = "self_cuda_seconds", "cuda_share", "sort_by"
TRACE_DIR_KEY, TRACE_FILES, PHASE_SPANS = "trace_dir", "trace_files", "phase_spans"
SELF_CPU_MEMORY_BYTES, CPU_MEMORY_BYTES, SELF_CUDA_MEMORY_BYTES = ("self_cpu_memory_bytes", "cpu_memory_bytes",
                                                                   "self_cuda_memory_bytes")
TOTAL_SELF_CPU_SECONDS, TOTAL_SELF_CUDA_SECONDS = "total_self_cpu_seconds", "total_self_cuda_seconds"


class OpRow(TypedDict, total=False):
    name: Required[str]
    input_shapes: str
    calls: Required[Count]
    self_cpu_seconds: Seconds | None
    cpu_total_seconds: Seconds | None
    self_cuda_seconds: Seconds | None
    share: Number | None
    cuda_share: Number | None
    self_cpu_memory_bytes: Number  # --trace memory: self memory can be negative (an operator that frees)
    cpu_memory_bytes: Number
    self_cuda_memory_bytes: Number


class PhaseSpan(TypedDict, total=False):
    name: Required[str]
    calls: Count
    seconds: Seconds


class Ops(TypedDict, total=False):
    rows: list[OpRow]
    steps: Count | None
    trace_dir: FileName
    trace_files: list[FileName]
    sort_by: str
    total_self_cpu_seconds: Seconds | None
    total_self_cuda_seconds: Seconds | None
    phase_spans: list[PhaseSpan]  # the phases as the profiler saw them
    schedule: dict[str, Any]  # wait, warmup, active, repeat
    group_by_shape: bool
    memory: bool
    device: str


# --- flops (lmprof.instrument.flops) -----------------------------------------------------------------------
FLOPS_PER_CALL, GFLOPS_PER_S, SHARE_OF_PEAK = "flops_per_call", "gflops_per_s", "share_of_peak"
STEP_FLOPS, LENGTH_SCALE, GFLOPS, COUNTED_ON = "step_flops", "length_scale", "gflops", "counted_on"


class FlopPhase(TypedDict, total=False):
    name: Required[str]
    label: str
    flops_per_call: Number
    mean_seconds: Seconds
    gflops_per_s: Number
    share_of_peak: Number | None  # None: no peak measured


class Peak(TypedDict, total=False):
    """This machine's matmul peak, measured (lmprof.instrument.flops.measure) or read from its cache."""

    gflops: Number
    size: Count
    dtype: str
    repetitions: Count
    device: str
    threads: Count | None
    load: Number | None  # the 1-minute load average while it was measured
    measured_unix: Number
    measured_at: str
    cached: bool


class Flops(TypedDict, total=False):
    method: str
    step_flops: dict[str, Number]
    length_scale: Number
    peak: Peak
    phases: list[FlopPhase]


# --- components (lmprof.instrument.components) -------------------------------------------------------------
MODULE, FORWARD_SECONDS, BACKWARD_SECONDS, EVALUATION, WARMUP_STEPS = ("module", "forward_seconds",
                                                                       "backward_seconds", "evaluation", "warmup_steps")


class ComponentRow(TypedDict, total=False):
    """A component in the training steps: its forward and its backward time, summed over the steps."""

    name: Required[str]
    module: str
    calls: Count
    forward_seconds: Required[Seconds]
    backward_seconds: Required[Seconds]


class EvaluatedComponent(TypedDict, total=False):
    """A component in evaluation: forward only (no gradients)."""

    name: Required[str]
    module: str
    calls: Required[Count]
    forward_seconds: Seconds


class Components(TypedDict, total=False):
    clock: str
    model: str
    rows: list[ComponentRow]  # training steps, forward order
    evaluation: list[EvaluatedComponent]  # kept apart from training
    steps: Count | None  # training steps in the totals (after the warm-up)
    warmup_steps: Count | None
    phases: dict[str, Seconds]  # forward, loss, backward as the component timer saw them


# --- memory (lmprof.instrument.memory) ---------------------------------------------------------------------
SAVED_BYTES_PEAK, SAVED_BYTES_BY_MODULE, SAVED_BYTES_PER_BATCH = ("saved_bytes_peak", "saved_bytes_by_module",
                                                                  "saved_bytes_per_batch")
PARAM_BYTES, GRAD_BYTES, OPTIMIZER_BYTES = "param_bytes", "grad_bytes", "optimizer_bytes"
RSS_PEAK_BYTES, RSS_PER_BATCH, RSS_PEAK_SCOPE = "rss_peak_bytes", "rss_per_batch", "rss_peak_scope"
CUDA_PEAK_BYTES, CUDA_ALLOCATED_PER_BATCH = "cuda_peak_bytes", "cuda_allocated_per_batch"
CUDA_ALLOCATED_BYTES = "cuda_allocated_bytes"
MEMORY_SERIES = (SAVED_BYTES_PER_BATCH, RSS_PER_BATCH, CUDA_ALLOCATED_PER_BATCH)  # one figure per batch


class PhasePeaks(TypedDict, total=False):
    """One phase's memory: the most seen at its ends (RSS, and on CUDA the allocator's peak and its last reading)."""

    rss_peak_bytes: Count | None
    cuda_peak_bytes: Count | None
    cuda_allocated_bytes: Count | None


class Memory(TypedDict, total=False):
    saved_bytes_peak: Count  # the most bytes autograd held for backward in one batch
    saved_bytes_by_module: dict[str, Count]
    saved_bytes_per_batch: list[Count]
    param_bytes: Count
    grad_bytes: Count
    optimizer_bytes: Count
    rss_peak_bytes: Count
    rss_per_batch: list[Count]
    rss_peak_scope: str | None  # phase (cleared per phase) or process
    cuda_peak_bytes: Count
    cuda_allocated_per_batch: list[Count]
    phases: dict[str, PhasePeaks]


# --- gradients (lmprof.instrument.gradients) ---------------------------------------------------------------
NORM, CLIP = "norm", "clip"
PRECLIP_NORM_MEDIAN, PRECLIP_NORM_MAX = "preclip_norm_median", "preclip_norm_max"
CLIPPED_FRACTION, NONFINITE_BATCHES = "clipped_fraction", "nonfinite_batches"


class ClipEpoch(TypedDict, total=False):
    epoch: Required[Count]
    batches: Count
    preclip_norm_median: Number | None  # an infinite norm (a diverged batch) is stored as null
    preclip_norm_max: Number | None
    clipped_fraction: Required[Number]
    nonfinite_batches: Count


class Gradients(TypedDict, total=False):
    norm: str
    clip: Number
    epochs: list[ClipEpoch]


# --- backward lines (lmprof.instrument.backward_lines, backward_attribution) -------------------------------
FWD_DEVICE_SECONDS, BWD_SECONDS, BWD_FWD_RATIO = "fwd_device_seconds", "bwd_seconds", "bwd_fwd_ratio"
ACCUMULATE_SECONDS, FWD_LAUNCH_SECONDS, BWD_LAUNCH_SECONDS = ("accumulate_seconds", "fwd_launch_seconds",
                                                              "bwd_launch_seconds")
NODES, OUTSIDE, PART, FIRST_BATCH, FUNCTION = "nodes", "outside", "part", "first_batch", "function"
BACKWARD_OP_SECONDS, ATTRIBUTED_BACKWARD_SECONDS = "backward_op_seconds", "attributed_backward_seconds"
CONSISTENCY, CONSISTENT_WITHIN, SHARED_PARAMETERS = "consistency", "consistent_within", "shared_parameters"
COMPONENTS_AGREEMENT, MAX_POINTS, WITHIN, POINTS_ALLOWED = ("components_agreement", "max_points", "within",
                                                            "points_allowed")
DIRECTION, COMPONENTS_SHARE = "direction", "components_share"


class BackwardLine(TypedDict, total=False):
    line: Required[Count]
    source: str
    fwd_device_seconds: Seconds
    bwd_seconds: Seconds
    bwd_fwd_ratio: Number | None
    step_share: Number | None
    accumulate_seconds: Seconds | None
    fwd_launch_seconds: Seconds | None
    bwd_launch_seconds: Seconds | None
    nodes: list[str]


class OutsideLines(TypedDict, total=False):
    name: Required[str]
    label: str
    part: str
    seconds: Required[Seconds]
    step_share: Number | None


class SharedParameter(TypedDict, total=False):
    name: Required[str]
    lines: list[Count]
    counted_on: Required[Count]


class AgreementRow(TypedDict, total=False):
    components: str
    direction: str
    share: Number
    components_share: Number


class ComponentsAgreement(TypedDict, total=False):
    """--backward-lines beside --components: do the two attributions agree, group by group?"""

    rows: list[AgreementRow]
    max_points: Number
    within: bool
    points_allowed: Number


class BackwardLines(TypedDict, total=False):
    lines: list[BackwardLine]
    batches: Count
    first_batch: Count
    device: str
    watched_batches: list[Count]
    sample_every: Count | None
    function: str
    qualname: str
    file: str
    first_line: Count
    step_seconds: Seconds
    backward_op_seconds: Seconds
    attributed_backward_seconds: Seconds
    consistency: Number | None
    consistent_within: Number
    clock: str
    outside: list[OutsideLines]
    shared_parameters: list[SharedParameter]
    components_agreement: ComponentsAgreement


# --- overhead (lmprof.instrument.sampling) ----------------------------------------------------------------
INSTRUMENTS, BARE_BATCHES, WATCHED_MS_PER_BATCH, BARE_MS_PER_BATCH = ("instruments", "bare_batches",
                                                                      "watched_ms_per_batch", "bare_ms_per_batch")
BARE_TOKENS_PER_S, WATCHED_OVER_BARE, RUN_COST = "bare_tokens_per_s", "ratio", "run_cost"


class Overhead(TypedDict, total=False):
    sample_every: Count
    instruments: list[str]
    batches: Count
    watched_batches: Count
    bare_batches: Count
    watched_ms_per_batch: Number | None
    bare_ms_per_batch: Number | None
    bare_tokens_per_s: Number | None
    ratio: Number | None  # watched over bare ms per batch
    run_cost: Number | None  # what watching added to the whole run (+0.04: 4% longer)


# --- sweep (lmprof.sweeps.worker) -------------------------------------------------------------------------
RUN, KEY, VOCAB_SIZE, STARTED, FINISHED = "run", "key", "vocab_size", "started", "finished"
SCHEDULER, JOB_ID, ATTEMPT, ERROR = "scheduler", "job_id", "attempt", "error"
CUDA_VISIBLE_DEVICES, FINISHED_AT = "cuda_visible_devices", "finished_at"


class SweepEpoch(TypedDict, total=False):
    epoch: Required[Count]
    finished_at: str
    preclip_norm_median: Number | None
    preclip_norm_max: Number | None
    clipped_fraction: Number


class SweepError(TypedDict, total=False):
    type: str
    message: str
    traceback: str


class SweepPlace(TypedDict, total=False):
    run: str
    key: str | None
    vocab_size: Count | None
    started: str | None
    finished: str | None
    host: str | None
    pid: Count | None
    scheduler: str | None
    job_id: str | None
    attempt: Count | None
    cuda_visible_devices: str | None
    error: SweepError | None
    epochs: list[SweepEpoch]


class ResultDocument(TypedDict, total=False):
    """A whole result.json."""

    schema_version: Count
    command: str
    config: Required[RunConfigRecord]
    environment: dict[str, Any]
    metrics: Metrics
    phases: list[PhaseRow]
    phase_summary: PhaseSummary
    lines: Lines
    ops: Ops
    flops: Flops
    components: Components
    memory: Memory
    gradients: Gradients
    backward_lines: BackwardLines
    overhead: Overhead
    sweep: SweepPlace
    files: dict[str, FileName]  # role -> file name in the run folder (lmprof.record.files)
    run_dir: str  # where the folder was when last saved


# Sections whose keys are another module's: RunConfig's fields (lmprof.config). A strict check lets
# keys these do not name pass (the checked ones are still checked).
OPEN = (RunConfigRecord,)
