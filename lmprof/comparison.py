"""Two to six RunResults -> one Comparison: what differs, ratios, intervals, verdicts. Pure data, no drawing.

The first run is the baseline; every ratio is other / baseline, so 1.30 means
"30% more time than the baseline". Views (``lmprof.views.compare``) render a
Comparison for the terminal, as JSON and as an HTML page.

How a phase gets its verdict. Each training batch records its time in every
step phase (``samples`` on the phase rows of result.json). For a phase, the
ratio is median(other) / median(baseline); its 95% interval comes from a
bootstrap over batches (each run's batches resampled on their own). A
verdict of ``faster`` or ``slower`` needs both:

- the interval excludes 1 (the difference is bigger than batch-to-batch
  scatter), and
- the ratio clears the drift margin (the difference is bigger than what a
  rerun of the same command drifts on this machine: the batches of one run
  share its machine state, so the bootstrap alone cannot see that). It is
  this machine's when ``benchmarks/bench_compare_noise.py --save`` measured
  it here, else the labelled default (``lmprof.drift``).

Otherwise ``within noise``. A phase under the noise floor (1% of the
baseline's step and ``PHASE_FLOOR_SECONDS``, in both runs) gets no verdict:
``too small to judge``; so does a line with fewer than ``LINE_MIN_HITS`` hits. Runs on different hardware or thread counts are
``not comparable on time``: their ratios are shown, never judged.

    >>> c = compare([RunResult.load("runs/a"), RunResult.load("runs/b")])  # doctest: +SKIP
    >>> [(p.name, p.verdicts[1]) for p in c.phases]                         # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from lmprof.drift import DEFAULT_MARGIN
from lmprof.phases import LABELS, STEP_PHASES
from lmprof.record.derived import component_label, component_rows, cost_line, run_description
from lmprof.record.result import RESULT_FILE, RunResult
from lmprof.record.sections import (BWD_SECONDS, CLIPPED_FRACTION, CUDA_PEAK_BYTES, FLOPS_PER_CALL, RSS_PEAK_BYTES,
    SAVED_BYTES_PEAK, SELF_CPU_SECONDS, SELF_CUDA_SECONDS, SORT_BY, STEP_FLOPS, TEST_PPL, TRAIN_SECONDS, VAL_PPL)

JSON_FORMAT = "lmprof.compare/1"
MAX_RUNS = 6
# Run-to-run drift of a phase's median, when this machine has none measured (lmprof.drift):
# reruns of one command on lmprof's 2-core reference VM drifted up to 13% while their bootstrap
# intervals excluded 1. A verdict must clear it; --drift sets another.
DRIFT_MARGIN = DEFAULT_MARGIN
# The noise floor: a phase this small (zero_grad, repackage: ~100 us at the default size) moves by
# tens of percent between runs for reasons that are not the change under study (timer and
# scheduler granularity, a cache line); no verdict below it.
PHASE_FLOOR_SHARE = 0.01  # of the baseline's whole step
PHASE_FLOOR_SECONDS = 200e-6
LINE_MIN_HITS = 10  # a line run once an epoch (model.train(), init_hidden) has no per-hit spread to judge
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # the same runs always give the same intervals
CONFIDENCE = 0.95
STEP_ROW = "step"  # the sum of every step phase of one batch
# Settings that name where a run went, not what it ran: never a difference worth showing.
PLACE_KEYS = ("out", "save")
ENV_KEYS = ("cpu", "gpu", "threads", "device", "torch", "host")
LINES_SHOWN = 8
MEMORY_ROWS = (("saved activations, MiB", SAVED_BYTES_PEAK), ("peak RSS, MiB", RSS_PEAK_BYTES),
               ("peak CUDA memory, MiB", CUDA_PEAK_BYTES))
OPS_SHOWN = 12

BASELINE, FASTER, SLOWER, NOISE = "baseline", "faster", "slower", "within noise"
TOO_SMALL = "too small to judge"
NOT_COMPARABLE, NO_SAMPLES = "not comparable on time", "no per-batch samples"


@dataclass
class Difference:
    key: str
    values: list[Any]  # one per run, None where the run does not record it


@dataclass
class OutcomeRow:
    metric: str  # "val ppl (epoch 1)", "test ppl", "ms per batch", "tokens/s"
    values: list[float | None]
    ratios: list[float | None]  # value / baseline's


@dataclass
class PhaseRow:
    name: str
    label: str
    medians: list[float | None]  # seconds per batch (mean per call where a run has no samples)
    spreads: list[float | None]  # interquartile range of the per-batch seconds
    batches: list[int]  # samples behind each median (0: the mean of the phase total)
    ratios: list[float | None]
    intervals: list[list[float] | None]  # 95% bootstrap interval of each ratio
    verdicts: list[str]


@dataclass
class FlopRow:
    phase: str
    flops: list[float | None]  # matmul FLOPs per call
    flop_ratios: list[float | None]  # what arithmetic predicts
    time_ratios: list[float | None]  # what the clock measured


@dataclass
class LineDiff:
    source: str
    per_hit: list[float | None]  # seconds per hit, per run (None: the statement is not in that run)
    ratios: list[float | None]
    hits: list[int | None] = field(default_factory=list)  # per run
    judged: bool = True  # False: fewer than LINE_MIN_HITS hits in a run ("too small to judge")


@dataclass
class FunctionDiff:
    name: str
    rows: list[LineDiff]
    # --backward-lines in every run: statement -> its backward seconds per step, per run (None: not in that run)
    bwd: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass
class OpRow:
    name: str
    per_step: list[float | None]  # self CPU (or CUDA) seconds per traced step
    ratios: list[float | None]


@dataclass
class ComponentRow:
    label: str  # the role and each run's module kind: "rnn (LSTM vs GRU)", "decoder (Linear)"
    forward: list[float | None]  # seconds per training step, each run (None: the run has no such component)
    backward: list[float | None]
    ratios: list[float | None]  # forward + backward per step, against the first run
    role: str = ""  # what the component does in the model, matched across runs: encoder, rnn, decoder, drop#2
    modules: list[str | None] = field(default_factory=list)  # each run's module kind (None: not in that run)


@dataclass
class Comparison:
    names: list[str]  # each run's folder name; the first is the baseline
    run_dirs: list[str]
    descriptions: list[str]
    config: list[Difference]
    environment: list[Difference]
    comparable_on_time: bool
    outcomes: list[OutcomeRow]
    phases: list[PhaseRow]
    flops: list[FlopRow]
    lines: list[FunctionDiff]
    ops: list[OpRow]
    op_unit: str  # "self CPU" or "self CUDA"
    notes: list[str] = field(default_factory=list)  # what could not be compared, and why
    drift_margin: float = DRIFT_MARGIN
    confidence: float = CONFIDENCE
    components: list[ComponentRow] = field(default_factory=list)  # when every run has --components
    drift_source: str = ""  # where drift_margin comes from: measured on this machine, the default, or --drift
    judgements: list[dict[str, str] | None] = field(default_factory=list)  # per run: diverged / not converged, why

    def to_dict(self) -> dict[str, Any]:
        """Plain data with stable keys (``lmprof compare --json``)."""
        from lmprof.record.result import json_safe

        return {"format": JSON_FORMAT, **json_safe(asdict(self))}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def _repr_html_(self) -> str | None:
        """In a notebook: the comparison's tables, as its HTML page shows them (``lmprof.views.notebook``)."""
        from lmprof.display import html

        return html(self)

    def __repr__(self) -> str:
        return f"Comparison({' vs '.join(self.names)}: {len(self.phases)} phases, {len(self.notes)} note(s))"

    def show(self, width: int | None = None) -> None:
        """Print the tables ``lmprof compare`` prints (``lmprof.views.compare``)."""
        from lmprof.display import show

        show(self, width)

    def verdict_counts(self, run: int = 1) -> Counter[str]:
        """How many phases got each verdict for run ``run`` (the step row left out)."""
        return Counter(p.verdicts[run] for p in self.phases if p.name != STEP_ROW)


# --- loading -------------------------------------------------------------------------------
def load_runs(folders: Sequence[str | Path]) -> tuple[list[RunResult], list[str]]:
    """Each folder's RunResult, and notes on what differs in how they were stored (schema versions).

    Raises UsageError (one line, exit 2) for fewer than two folders, more than
    MAX_RUNS, a sweep folder, or a folder that is not a run.
    """
    from lmprof.errors import UsageError

    if len(folders) < 2:
        raise UsageError("give two or more run folders to compare (the first is the baseline), "
                         f"e.g. lmprof compare runs/a runs/b; got {len(folders)}")
    if len(folders) > MAX_RUNS:
        raise UsageError(f"compare at most {MAX_RUNS} runs at once; got {len(folders)}")
    results, versions = [], []
    for folder in folders:
        path = Path(folder)
        if path.is_dir() and (path / "sweep.json").is_file() and not (path / RESULT_FILE).is_file():
            raise UsageError(f"{folder} is a sweep folder: compare the run folders in {path / 'runs'}, "
                             "or see the sweep's own tables with lmprof report")
        results.append(RunResult.load(path))
        versions.append(stored_version(path))
    notes = []
    if len(set(versions)) > 1:
        listed = ", ".join(f"{Path(r.run_dir).name} v{v}" for r, v in zip(results, versions))
        notes.append(f"result.json schema versions differ ({listed}): read with defaults; "
                     "sections an older version did not record are left out")
    notes += same_run_notes(results)
    return results, notes


def same_run_notes(results: Sequence[RunResult]) -> list[str]:
    """A note for each run that is the baseline itself (the same folder, or a copy of its record):
    its 'within noise' compares a run with itself, not two runs."""
    base, notes = results[0], []
    for other in results[1:]:
        same_folder = Path(other.run_dir).resolve() == Path(base.run_dir).resolve()
        if same_folder or (other.phases, other.metrics) == (base.phases, base.metrics):
            how = "the same folder" if same_folder else "a copy of the same record"
            notes.append(f"{other.run_dir} and {base.run_dir} are the same run ({how}): "
                         "every ratio is 1 by construction, not a measurement of noise")
    return notes


def stored_version(folder: Path) -> int:
    """The schema version as written in the file (RunResult.load upgrades it in memory)."""
    from lmprof.errors import UsageError
    from lmprof.safe_files import RESULT_BYTES, read_member

    path = folder / RESULT_FILE if folder.is_dir() else folder
    try:  # RunResult.load has read this file already, through no link and within its cap
        return int(json.loads(read_member(path.parent, path.name, limit=RESULT_BYTES)).get("schema_version", 0))
    except (UsageError, ValueError, AttributeError, TypeError, RecursionError):
        return 0


# --- the comparison ------------------------------------------------------------------------
def compare(results: Sequence[RunResult], notes: Sequence[str] = (), *,
            drift_margin: float | None = None) -> Comparison:
    """Compare ``results`` against the first: configuration, outcome, phases, FLOPs, lines, operators.

    ``drift_margin`` None: this machine's measured drift, else the labelled default (``lmprof.drift``).
    """
    from lmprof.divergence import judge_result
    from lmprof.drift import machine_drift

    runs = list(results)
    if drift_margin is None:
        drift_margin, drift_source = machine_drift(runs[0].environment)
    else:
        drift_source = f"{drift_margin:.0%}, as given (--drift)"
    judgements = [judge_result(r) for r in runs]
    environment = differences([r.environment for r in runs], ENV_KEYS)
    hardware = {_hardware(r) for r in runs}
    comparable = len(hardware) == 1
    all_notes = list(notes)
    if not comparable:
        all_notes.append("the runs ran on different hardware or thread counts: times are shown, "
                         "but no timing verdict is given (" + "; ".join(sorted(str(h) for h in hardware)) + ")")
    phases = phase_rows(runs, comparable, drift_margin)
    if not any(r.phases for r in runs):
        all_notes.append("no phase times in these runs (made by lmprof train?): outcomes only; "
                         "lmprof profile --fn train records them")
    elif any(not r.phases for r in runs):
        missing = ", ".join(Path(r.run_dir).name for r in runs if not r.phases)
        all_notes.append(f"{missing}: no phase times (lmprof profile --fn train records them)")
    elif any(NO_SAMPLES in p.verdicts for p in phases):
        all_notes.append("some runs have no per-batch samples (recorded before lmprof kept them): "
                         "their phases compare mean times only, without a verdict")
    ops, op_unit = op_rows(runs)
    for r, judged in zip(runs, judgements):  # the sweep's rule: a run worse than a uniform guess is named
        if judged:
            all_notes.append(f"{Path(r.run_dir).name}: {judged.line()}")
    for r in runs:  # what each run's instruments cost it (bare vs watched batches), one line a run
        if r.overhead:
            all_notes.append(f"{Path(r.run_dir).name}: {cost_line(r.overhead)}")
    return Comparison(
        names=[Path(r.run_dir).name or f"run {i}" for i, r in enumerate(runs)],
        run_dirs=[r.run_dir for r in runs], descriptions=[run_description(r) for r in runs],
        config=differences([r.config for r in runs], exclude=PLACE_KEYS), environment=environment,
        comparable_on_time=comparable, outcomes=outcome_rows(runs), phases=phases,
        flops=flop_rows(runs, phases), lines=line_diffs(runs), ops=ops, op_unit=op_unit,
        notes=all_notes, drift_margin=drift_margin, components=component_rows_compared(runs),
        drift_source=drift_source, judgements=[j.to_dict() if j else None for j in judgements])


def _hardware(result: RunResult) -> str | None:
    from lmprof.record.sweep_summary import hardware_label  # the sweep tables' rule, so both agree

    return hardware_label(result.environment)


def differences(sections: list[dict[str, Any]], keys: Sequence[str] | None = None,
                exclude: Sequence[str] = ()) -> list[Difference]:
    """The keys whose values are not all equal (in ``keys``' order, else the first section's)."""
    order = list(keys) if keys is not None else list(dict.fromkeys(k for s in sections for k in s))
    out = []
    for key in order:
        if key in exclude:
            continue
        values = [s.get(key) for s in sections]
        if any(v != values[0] for v in values[1:]):
            out.append(Difference(key, values))
    return out


def ratio_of(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base <= 0 or not math.isfinite(value) or not math.isfinite(base):
        return None
    return value / base


def outcome_rows(runs: list[RunResult]) -> list[OutcomeRow]:
    """Validation ppl per epoch, test ppl, ms per training batch and tokens per second."""
    def row(metric: str, values: list[float | None]) -> OutcomeRow:
        return OutcomeRow(metric, values, [ratio_of(v, values[0]) for v in values])

    rows = []
    for i in range(max((len(r.epochs) for r in runs), default=0)):
        rows.append(row(f"val ppl (epoch {i + 1})",
                        [_number(r.epochs[i].get(VAL_PPL)) if i < len(r.epochs) else None for r in runs]))
    if any(TEST_PPL in r.metrics for r in runs):
        rows.append(row("test ppl", [_number(r.metrics.get(TEST_PPL)) for r in runs]))
    per_batch, rate = [], []
    for r in runs:
        seconds = sum(float(e.get(TRAIN_SECONDS) or 0.0) for e in r.epochs)
        batches = sum(int(e.get("batches") or 0) for e in r.epochs)
        tokens = sum(int(e.get("tokens") or 0) for e in r.epochs)
        per_batch.append(1e3 * seconds / batches if batches and seconds > 0 else None)
        rate.append(tokens / seconds if tokens and seconds > 0 else None)
    if any(v is not None for v in per_batch):
        rows.append(row("ms per batch", per_batch))
    if any(v is not None for v in rate):
        rows.append(row("tokens/s", rate))
    if any(r.metrics.get("nparams") for r in runs):
        rows.append(row("parameters", [_number(r.metrics.get("nparams")) for r in runs]))
    for metric, key in MEMORY_ROWS:  # when lmprof profile --memory measured them
        if any(r.memory.get(key) for r in runs):
            rows.append(row(metric, [r.memory[key] / 2**20 if r.memory.get(key) else None for r in runs]))
    for i in range(max((len(r.gradients.get("epochs", [])) for r in runs), default=0)):  # with gradient statistics
        rows.append(row(f"batches clipped (epoch {i + 1})",
                        [_number(r.gradients["epochs"][i].get(CLIPPED_FRACTION))
                         if i < len(r.gradients.get("epochs", [])) else None for r in runs]))
    return rows


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


# --- phases --------------------------------------------------------------------------------
def step_samples(result: RunResult) -> dict[str, list[float]]:
    """Per-batch seconds of each step phase, plus the whole step when every phase has one per batch."""
    samples = {r["name"]: [float(s) for s in r["samples"]] for r in result.phases
               if r["name"] in STEP_PHASES and r.get("samples")}
    lengths = {len(s) for s in samples.values()}
    if samples and len(lengths) == 1:
        samples[STEP_ROW] = [sum(batch) for batch in zip(*samples.values())]
    return samples


def _mean_per_call(result: RunResult, name: str) -> float | None:
    if name == STEP_ROW:
        return None
    row = next((r for r in result.phases if r["name"] == name), None)
    calls = int(row.get("calls", 0)) if row else 0
    return float(row["seconds"]) / calls if row and calls else None


def phase_rows(runs: list[RunResult], comparable: bool, drift_margin: float = DRIFT_MARGIN) -> list[PhaseRow]:
    """One row per step phase any run recorded (and the whole step), each run's time per batch against the first's."""
    import numpy as np

    samples = [step_samples(r) for r in runs]
    recorded = {r["name"] for run in runs for r in run.phases}
    names = [n for n in (*STEP_PHASES, STEP_ROW) if n in recorded or any(n in s for s in samples)]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    floor = noise_floor([float(np.median(s[STEP_ROW])) if STEP_ROW in s else None for s in samples])
    rows = []
    for name in names:
        arrays = [np.asarray(s[name]) if name in s else None for s in samples]
        medians = [float(np.median(a)) if a is not None else _mean_per_call(r, name) for a, r in zip(arrays, runs)]
        spreads = [float(np.subtract(*np.percentile(a, [75, 25]))) if a is not None else None for a in arrays]
        row = PhaseRow(name, "whole training step" if name == STEP_ROW else LABELS.get(name, name), medians, spreads,
                       [len(a) if a is not None else 0 for a in arrays], [ratio_of(m, medians[0]) for m in medians],
                       [None] * len(runs), [BASELINE] + [""] * (len(runs) - 1))
        base = arrays[0]
        for i in range(1, len(runs)):
            other = arrays[i]
            if base is not None and other is not None and medians[0]:
                row.intervals[i] = bootstrap_interval(base, other, rng)
            row.verdicts[i] = verdict(row.ratios[i], row.intervals[i], comparable, drift_margin)
            if row.verdicts[i] in (FASTER, SLOWER, NOISE) and below_floor(medians[0], medians[i], floor):
                row.verdicts[i] = TOO_SMALL
        rows.append(row)
    return rows


def noise_floor(step_medians: Sequence[float | None]) -> float:
    """The time under which a phase gets no verdict: 1% of the baseline's whole step, and at least PHASE_FLOOR_SECONDS."""
    step = step_medians[0] if step_medians and step_medians[0] else 0.0
    return max(PHASE_FLOOR_SHARE * step, PHASE_FLOOR_SECONDS)


def below_floor(base: float | None, other: float | None, floor: float) -> bool:
    """Both runs' times under the floor: a change there is not the experiment's to claim."""
    return base is not None and other is not None and max(base, other) < floor


def bootstrap_interval(base: Any, other: Any, rng: Any, resamples: int = BOOTSTRAP_RESAMPLES,
                       confidence: float = CONFIDENCE) -> list[float] | None:
    """Percentile interval of median(other) / median(base), each run's batches resampled on their own."""
    import numpy as np

    base_medians = np.median(rng.choice(base, size=(resamples, len(base))), axis=1)
    other_medians = np.median(rng.choice(other, size=(resamples, len(other))), axis=1)
    if np.any(base_medians <= 0):
        return None
    ratios = other_medians / base_medians
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return [float(low), float(high)]


def verdict(value: float | None, interval: list[float] | None, comparable: bool,
            drift_margin: float = DRIFT_MARGIN) -> str:
    """faster / slower only when the interval excludes 1 and the ratio clears the drift margin."""
    if interval is None or value is None:
        return NO_SAMPLES
    if not comparable:
        return NOT_COMPARABLE
    if interval[1] < 1 and value < 1 / (1 + drift_margin):
        return FASTER
    if interval[0] > 1 and value > 1 + drift_margin:
        return SLOWER
    return NOISE


# --- predicted vs measured -----------------------------------------------------------------
def flop_rows(runs: list[RunResult], phases: list[PhaseRow]) -> list[FlopRow]:
    """Forward and backward: the FLOP ratio (arithmetic's prediction) beside the measured time ratio."""
    by_name = {p.name: p for p in phases}
    rows = []
    for name in ("forward", "backward"):
        flops = [_flops_per_call(r, name) for r in runs]
        if sum(f is not None for f in flops) < 2 or name not in by_name:
            continue
        rows.append(FlopRow(name, flops, [ratio_of(f, flops[0]) for f in flops], list(by_name[name].ratios)))
    return rows


def _flops_per_call(result: RunResult, name: str) -> float | None:
    for row in result.flops.get("phases", []):
        if row.get("name") == name and row.get(FLOPS_PER_CALL):
            return float(row[FLOPS_PER_CALL])
    step = result.flops.get(STEP_FLOPS, {}).get(name)
    return float(step) if step else None


# --- lines and operators -------------------------------------------------------------------
def _statements(function: dict[str, Any]) -> dict[tuple[str, int], tuple[int, float]]:
    """(statement text, occurrence) -> (hits, seconds) for every line that ran."""
    seen: Counter[str] = Counter()
    out = {}
    for record in function.get("lines", []):
        text = str(record.get("source", "")).strip()
        if not text or text.startswith("#"):
            continue
        seen[text] += 1
        if int(record.get("hits", 0)):
            out[(text, seen[text])] = (int(record["hits"]), float(record.get("seconds", 0.0)))
    return out


def line_diffs(runs: list[RunResult], shown: int = LINES_SHOWN) -> list[FunctionDiff]:
    """For each function profiled in every run: the statements whose time per hit changed most.

    Statements are matched by their text (the k-th occurrence of a text with
    the k-th), so an edit that moves lines still pairs them. Ranked by the
    largest change in seconds per hit against the baseline.
    """
    tables = [{f.get("qualname", f.get("name")): _statements(f) for f in r.lines.get("functions", [])} for r in runs]
    out = []
    for name in tables[0]:
        if not all(name in t for t in tables[1:]):
            continue
        keys = [k for k in tables[0][name] if any(k in t[name] for t in tables[1:])]
        diffs = []
        for key in keys:
            per_hit = [t[name][key][1] / t[name][key][0] if key in t[name] else None for t in tables]
            hits = [t[name][key][0] if key in t[name] else None for t in tables]
            judged = all(h is not None and h >= LINE_MIN_HITS for h in hits)
            diffs.append(LineDiff(key[0], per_hit, [ratio_of(v, per_hit[0]) for v in per_hit], hits, judged))
        # Lines with enough hits first, by the largest change per hit; the few-hit lines after them.
        diffs.sort(key=lambda d: (not d.judged, -max(abs((v or 0.0) - (d.per_hit[0] or 0.0)) for v in d.per_hit[1:])))
        if diffs:
            out.append(FunctionDiff(str(name), diffs[:shown], backward_by_statement(runs, str(name))))
    return out


def backward_by_statement(runs: list[RunResult], qualname: str) -> dict[str, list[float | None]]:
    """--backward-lines: each statement of ``qualname`` -> its backward seconds per step in each run, matched by
    text (the k-th occurrence with the k-th, as the line table); empty unless every run has the attribution."""
    sections = [r.backward_lines for r in runs]
    if not all(s.get("qualname") == qualname and s.get("lines") for s in sections):
        return {}
    per_run = []
    for s in sections:
        seen: Counter[str] = Counter()
        values = {}
        for row in s["lines"]:
            text = str(row.get("source", "")).strip()
            seen[text] += 1
            values[text if seen[text] == 1 else f"{text} #{seen[text]}"] = float(row.get(BWD_SECONDS) or 0.0)
        per_run.append(values)
    return {text: [v.get(text) for v in per_run] for text in per_run[0]}


def op_rows(runs: list[RunResult], shown: int = OPS_SHOWN) -> tuple[list[OpRow], str]:
    """When every run was traced: the top operators by self time per traced step, side by side."""
    if not all(r.ops.get("rows") for r in runs):
        return [], ""
    by_cuda = all(r.ops.get(SORT_BY) == "self_cuda" for r in runs)
    key = SELF_CUDA_SECONDS if by_cuda else SELF_CPU_SECONDS
    per_step: list[dict[str, float]] = []
    for r in runs:
        steps = max(int(r.ops.get("steps") or 1), 1)
        totals: dict[str, float] = {}
        for op in r.ops["rows"]:  # rows grouped by input shape add up per operator
            totals[op["name"]] = totals.get(op["name"], 0.0) + float(op.get(key) or 0.0) / steps
        per_step.append(totals)
    names = sorted({n for t in per_step for n in t}, key=lambda n: -max(t.get(n, 0.0) for t in per_step))[:shown]
    rows = []
    for name in names:
        values = [t.get(name) for t in per_step]
        rows.append(OpRow(name, values, [ratio_of(v, values[0]) for v in values]))
    return rows, "self CUDA" if by_cuda else "self CPU"


def component_rows_compared(runs: list[RunResult]) -> list[ComponentRow]:
    """When every run timed its components: each component's forward and backward per step, side by side.

    Components are matched by role (the model's attribute name: encoder, rnn, decoder, and drop#2 for
    the second call of drop), not by module kind, so an LSTM's rnn and a GRU's rnn share one row with a
    ratio; the row names each run's kind ("rnn (LSTM vs GRU)").
    """
    if not all(r.components.get("rows") for r in runs):
        return []
    kinds = [{str(row.get("name")): str(row.get("module") or "") for row in r.components["rows"]} for r in runs]
    tables = [{row["name"]: row for row in component_rows(r)} for r in runs]
    roles = list(dict.fromkeys(role for t in tables for role in t))  # the first run's order first
    rows = []
    for role in roles:
        cells = [t.get(role) for t in tables]
        modules = [k.get(role) if c else None for k, c in zip(kinds, cells)]
        totals = [c["total"] if c else None for c in cells]
        rows.append(ComponentRow(role_label(role, modules), [c["forward"] if c else None for c in cells],
                                 [c["backward"] if c else None for c in cells],
                                 [ratio_of(v, totals[0]) for v in totals], role, modules))
    return rows


def role_label(role: str, modules: Sequence[str | None]) -> str:
    """'rnn' with LSTM and GRU -> 'rnn (LSTM vs GRU)'; one kind everywhere -> the component table's label."""
    kinds = list(dict.fromkeys(m for m in modules if m))
    return component_label(role, " vs ".join(kinds))
