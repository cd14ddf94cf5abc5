"""The numbers behind the profile's tables, as plain rows: no rich, nothing drawn.

``lmprof.views.tables`` renders these rows for the terminal; the HTML report
renders the same rows, so both show the same numbers. Each function takes a
RunResult (or one function record of ``result.lines``) and returns plain data.

Durations are written by ``lmprof.views.format`` (imported here for the views that read rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lmprof.phases import BETWEEN, STEP_PHASES, UNCOVERED
from lmprof.record.sections import (EVALUATION_CALLS, FIRST_LINE, GPU_BUSY, HOST_SECONDS, MEAN_SECONDS, SHARE_OF_RUN,
    TOTAL_SECONDS, TRAINING_CALLS, TRAIN_COVERAGE, WALL_SECONDS)
from lmprof.views.format import pick_unit

if TYPE_CHECKING:
    from lmprof.record.result import RunResult

HOT_LINES = 3  # the hottest lines of a function stand out
CUDA_CLOCK = "cuda events"

# The top-level parts of a run, in the spirit of the homework's "main flow" figure.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("training", (*STEP_PHASES, BETWEEN)),  # BETWEEN: instruments' own work inside the steps, named
    ("validation evaluation", ("evaluate_valid",)),
    ("test evaluation", ("evaluate_test",)),
    ("corpus reading", ("corpus",)),
    ("batchify", ("batchify",)),
    ("model build", ("model_build",)),
    ("checkpoint save/load", ("checkpoint_save", "checkpoint_load")),
    (UNCOVERED, (UNCOVERED,)),
)


def interrupted(result: "RunResult") -> bool:
    return result.status == "interrupted"


# --- line tables ---------------------------------------------------------------------

@dataclass
class LineRow:
    line: int
    hits: int
    seconds: float
    per_hit: float
    share: float
    source: str  # dedented with the rest of the function
    kind: str  # code, blank or comment
    hot_rank: int | None = None  # 1 for the hottest line, up to HOT_LINES


@dataclass
class LineTableData:
    name: str
    qualname: str
    file: str
    first_line: int
    calls: int
    total_seconds: float
    share_of_run: float
    time_unit: str
    per_hit_unit: str
    rows: list[LineRow] = field(default_factory=list)
    callers: str = ""  # for a function train() and evaluate() share: how many calls came from each


def _dedent(sources: list[str]) -> list[str]:
    """Remove the indentation every non-blank line shares (a method's four spaces)."""
    indents = [len(s) - len(s.lstrip()) for s in sources if s.strip()]
    cut = min(indents, default=0)
    return [s[cut:] for s in sources]


def line_table_data(function: dict[str, Any], unit: str | None = "auto") -> LineTableData:
    """One function of ``result.lines`` as rows with per-hit times, kinds and hot ranks."""
    records = function.get("lines", [])
    sources = _dedent([r.get("source", "") for r in records])
    rows = []
    for record, source in zip(records, sources):
        stripped = source.strip()
        kind = "blank" if not stripped else "comment" if stripped.startswith("#") else "code"
        hits = int(record.get("hits", 0))
        seconds = float(record.get("seconds", 0.0))
        rows.append(LineRow(int(record["line"]), hits, seconds, seconds / hits if hits else 0.0,
                            float(record.get("share", 0.0)), source, kind))
    for rank, row in enumerate(sorted((r for r in rows if r.seconds > 0), key=lambda r: -r.seconds)[:HOT_LINES], 1):
        row.hot_rank = rank
    return LineTableData(
        name=function.get("name", "?"), qualname=function.get("qualname", function.get("name", "?")),
        file=function.get("file", "?"), first_line=int(function.get(FIRST_LINE, 0)),
        calls=int(function.get("calls", 0)), total_seconds=float(function.get(TOTAL_SECONDS, 0.0)),
        share_of_run=float(function.get(SHARE_OF_RUN, 0.0)),
        time_unit=pick_unit(max((r.seconds for r in rows), default=0.0), unit),
        per_hit_unit=pick_unit(max((r.per_hit for r in rows), default=0.0), unit), rows=rows,
        callers=callers_note(function))


def callers_note(function: dict[str, Any]) -> str:
    """'30 training + 70 evaluation calls, mixed in this table' for a function both call; else ''."""
    if TRAINING_CALLS not in function or not function.get(EVALUATION_CALLS):
        return ""
    return (f"{function[TRAINING_CALLS]:,} training + {function[EVALUATION_CALLS]:,} evaluation calls, "
            "mixed in this table")


def sync_note(result: "RunResult") -> str:
    """Under each line table on CUDA: what the line times mean in this sync mode. Empty on CPU."""
    if not str(result.environment.get("device", "cpu")).startswith("cuda"):
        return ""
    if result.lines.get("sync") == "blocking":
        return ("CUDA, blocking launches (CUDA_LAUNCH_BLOCKING=1): each line waits for its kernels, so its "
                "time includes its GPU work; the whole run is slower than a normal one.")
    return ("CUDA, asynchronous launches: a line's time is the time to queue its kernels, and GPU time lands "
            "on the next line that waits (often loss.item()). Rerun with --sync blocking for each line's GPU time.")


# --- phases --------------------------------------------------------------------------

def phase_table_rows(result: "RunResult") -> list[dict[str, Any]]:
    """The phase rows of result.json, each with the host-minus-device gap and (cut runs) the full-epoch share."""
    from lmprof.views.projection import projected_shares

    projected = projected_shares(result)
    rows = []
    for r in result.phases:
        seconds, host = float(r.get("seconds", 0.0)), float(r.get(HOST_SECONDS, r.get("seconds", 0.0)))
        calls = int(r.get("calls", 0))
        rows.append({"name": r["name"], "label": r.get("label", r["name"]), "calls": calls, "seconds": seconds,
                     MEAN_SECONDS: seconds / calls if calls else 0.0, "share": float(r.get("share", 0.0)),
                     HOST_SECONDS: host, "gap_seconds": host - seconds,
                     "full_share": projected.get(r["name"]) if projected is not None else None})
    return rows


def coverage(result: "RunResult") -> float | None:
    """Share of train()'s wall time that the step phases explain (None if no training ran)."""
    value = result.phase_summary.get(TRAIN_COVERAGE)
    return float(value) if value is not None else None


def summary_parts(result: "RunResult") -> list[dict[str, Any]]:
    """Seconds and share of the run's wall time of each top-level part that ran (cut runs: and full-epoch share)."""
    from lmprof.views.projection import projected_shares

    seconds = {r["name"]: float(r.get("seconds", 0.0)) for r in result.phases}
    wall = float(result.phase_summary.get(WALL_SECONDS) or sum(seconds.values()))
    projected = projected_shares(result)
    parts = []
    for part, names in PARTS:
        ran = [n for n in names if n in seconds]
        if ran:
            total = sum(seconds[n] for n in ran)
            parts.append({"part": part, "seconds": total, "share": total / wall if wall > 0 else 0.0,
                          "full_share": sum(projected[n] for n in ran) if projected is not None else None})
    return parts


GPU_REGIMES = ("launch-bound", "mixed", "compute-bound")  # lmprof.instrument.gpu_busy's words


def gpu_busy(row: dict[str, Any]) -> tuple[float, str] | None:
    """A phase row's GPU busy fraction and regime word, when measured (on CUDA) and sane; else None."""
    import math

    busy, word = row.get(GPU_BUSY), row.get("regime")
    if isinstance(busy, bool) or not isinstance(busy, (int, float)) or not math.isfinite(busy):
        return None
    if not 0.0 <= busy <= 1.5 or word not in GPU_REGIMES:  # a stranger's file: only what lmprof could write
        return None
    return float(busy), str(word)


def has_gpu_busy(result: "RunResult") -> bool:
    return any(gpu_busy(r) for r in result.phases if isinstance(r, dict))


def gpu_busy_caption(result: "RunResult") -> str:
    """How to read the GPU busy column (empty when the run has none)."""
    if not has_gpu_busy(result):
        return ""
    watched = result.phase_summary.get(GPU_BUSY) or {}
    n = watched.get("batches") if isinstance(watched, dict) else None
    on = (f"{n} watched batch{'es' if n != 1 else ''}" if isinstance(n, int) and not isinstance(n, bool)
          else "a few watched batches")
    return ("GPU busy: kernel time inside the phase's window over the window, on " + on + " (torch.profiler, "
            "synchronised at each phase's edges). launch-bound: busy under 40%, the GPU waits for the host's "
            "launches (fewer launches help: a CUDA graph); compute-bound: 75% or more; mixed between.")


def phase_caption(result: "RunResult") -> str:
    """The coverage line (and on CUDA, what the gap means)."""
    value = coverage(result)
    lines = []
    if value is not None:
        lines.append(f"Phases cover {value:.1%} of train()'s wall time; shares are of the whole run's wall time.")
    if result.phase_summary.get("clock") == CUDA_CLOCK:
        lines.append("GPU total: CUDA events around each phase. host - GPU: what a host clock around the "
                     "same code would misattribute (launches return before their kernels finish).")
    if has_gpu_busy(result):
        lines.append(gpu_busy_caption(result))
    from lmprof.views.overhead import watched_program_note

    note = watched_program_note(result.overhead)  # a watched step over 10% slower: say whose shares these are
    if note:
        lines.append(note)
    return "\n".join(lines)
