"""Figures derived from a RunResult, and the rows writers build: plain data, nothing drawn, no unit chosen.

Views (``lmprof.views``) and compare (``lmprof.comparison``) both read these,
so a run's description, its component rows and its step time are computed
once, below both. The row builders (``epoch_record``, ``phase_row``) are
what the runner and the speed lab write, so every writer's rows have the
same keys (the speed lab's epochs and phases have their share and host time too).

    >>> phase_row("forward", "forward", calls=2, seconds=0.5, host_seconds=0.5, wall_seconds=2.0)["share"]
    0.25
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from lmprof.phases import STEP_PHASES
from lmprof.record import sections as s

if TYPE_CHECKING:
    from lmprof.record.result import RunResult

BETWEEN_COMPONENTS = "(between components)"
ORDINALS = {2: "2nd", 3: "3rd"}


# --- rows the writers build ---------------------------------------------------------------------------------
def epoch_record(epoch: int, lr: float, batches: int, tokens: int, train_seconds: float) -> dict[str, Any]:
    """One epoch's training record (its validation is added when it ends: ``validated``)."""
    return {s.EPOCH: epoch, s.LR: lr, s.BATCHES: batches, s.TOKENS: tokens, s.TRAIN_SECONDS: train_seconds,
            s.TOKENS_PER_S: tokens / train_seconds if train_seconds > 0 else None}


def with_validation(record: dict[str, Any], val_loss: float | None, val_ppl: float | None) -> dict[str, Any]:
    """The epoch's record once validation has run."""
    return {**record, s.VAL_LOSS: val_loss, s.VAL_PPL: val_ppl}


def phase_row(name: str, label: str, *, calls: int, seconds: float, host_seconds: float, wall_seconds: float,
              samples: Sequence[float] | None = None) -> dict[str, Any]:
    """One row of ``phases``: device-clock seconds, the host clock's beside them, the share of the wall time."""
    row = {s.NAME: name, s.LABEL: label, s.CALLS: calls, s.SECONDS: seconds, s.HOST_SECONDS: host_seconds,
           s.MEAN_SECONDS: seconds / calls if calls else 0.0,
           s.SHARE: seconds / wall_seconds if wall_seconds > 0 else 0.0}
    if samples is not None:
        row[s.SAMPLES] = list(samples)
    return row


# --- what the views and compare read ------------------------------------------------------------------------
def run_description(result: "RunResult") -> str:
    """LSTM, emsize 200, nhid 200, 2 layers, bptt 35, batch 20 · 1 epoch, 30 batches · cpu (what is known)."""
    c = result.config
    model = [f"{label}{c[key]}{suffix}" for key, label, suffix in (
        ("model", "", ""), ("emsize", "emsize ", ""), ("nhid", "nhid ", ""), ("nlayers", "", " layers"),
        ("bptt", "bptt ", ""), ("batch_size", "batch ", "")) if c.get(key) is not None]
    parts = [", ".join(model)] if model else []
    epochs = result.epochs
    if epochs:
        batches = sum(int(e.get(s.BATCHES, 0)) for e in epochs)
        parts.append(f"{len(epochs)} epoch{'s' if len(epochs) != 1 else ''}, {batches:,} batches")
    if result.environment.get(s.DEVICE):
        parts.append(str(result.environment[s.DEVICE]))
    return " · ".join(parts)


def component_label(name: str, module: str) -> str:
    """``drop#2``, Dropout -> 'drop (Dropout), 2nd call'; log_softmax has no module."""
    base, _, call = name.partition("#")
    if call and not (call.isascii() and call.isdigit()):  # not a call count (a hand-edited or hostile name): shown as written
        base, call = name, ""
    label = f"{base} ({module})" if module else base
    return f"{label}, {ORDINALS.get(int(call), call + 'th')} call" if call else label


def step_seconds(result: "RunResult") -> float:
    """Time of the training steps the component totals cover: the step phases' time (after the
    component timer's warm-up steps), else forward + loss + backward as the components saw them."""
    warm = int(result.components.get(s.WARMUP_STEPS) or 0)
    rows = [r for r in result.phases if r[s.NAME] in STEP_PHASES]
    if warm and not all(s.SAMPLES in r for r in rows):
        rows = []  # an older result without per-step samples: the warm-up cannot be left out
    step = sum(_after_warmup(r, warm) if warm else r[s.SECONDS] for r in rows)
    return step or sum(result.components.get(s.PHASES, {}).values())


def _after_warmup(row: dict[str, Any], warm: int) -> float:
    """A step phase's seconds after its first ``warm`` calls: from its samples, or (a long run keeps one
    call in k) its total less ``warm`` mean calls."""
    if int(row.get(s.SAMPLES_EVERY) or 1) == 1:
        return float(sum(row[s.SAMPLES][warm:]))
    calls = int(row.get(s.CALLS) or 0)
    return float(row[s.SECONDS]) * (1 - warm / calls) if calls > warm else 0.0


def component_rows(result: "RunResult") -> list[dict[str, Any]]:
    """Per component (forward order): seconds per step forward, backward, total, share of the step.

    The last row, BETWEEN_COMPONENTS, is what the forward, loss and backward phases hold
    outside every component (hook calls, reshapes, the autograd engine's start).
    """
    c = result.components
    steps = int(c.get(s.STEPS) or 0)
    if not c.get(s.ROWS) or steps == 0:
        return []
    step = step_seconds(result)
    rows = []
    for r in c[s.ROWS]:
        fwd, bwd = r[s.FORWARD_SECONDS], r[s.BACKWARD_SECONDS]
        rows.append({"name": r[s.NAME], "label": component_label(r[s.NAME], r.get(s.MODULE, "")),
                     "forward": fwd / steps, "backward": bwd / steps, "total": (fwd + bwd) / steps,
                     "share": (fwd + bwd) / step if step > 0 else 0.0, "between": False})
    phases = c.get(s.PHASES, {})
    rest_fwd = phases.get("forward", 0.0) + phases.get("loss", 0.0) - sum(r[s.FORWARD_SECONDS] for r in c[s.ROWS])
    rest_bwd = phases.get("backward", 0.0) - sum(r[s.BACKWARD_SECONDS] for r in c[s.ROWS])
    rows.append({"name": BETWEEN_COMPONENTS, "label": BETWEEN_COMPONENTS, "forward": rest_fwd / steps,
                 "backward": rest_bwd / steps, "total": (rest_fwd + rest_bwd) / steps,
                 "share": (rest_fwd + rest_bwd) / step if step > 0 else 0.0, "between": True})
    return rows


def cost_line(overhead: dict[str, Any]) -> str:
    """One line for show, the report, the notebook and compare: what the instruments cost on this run.

    >>> cost_line({"sample_every": 4, "instruments": ["components"], "batches": 24, "watched_batches": 6,
    ...            "watched_ms_per_batch": 13.0, "bare_ms_per_batch": 10.0, "ratio": 1.3, "run_cost": 0.075})
    'instruments cost +8% on this run (components watched 6 of 24 batches, 1 in 4; a watched batch 13.00 ms, a bare one 10.00 ms: 1.30x)'
    """
    if not overhead:
        return ""
    every, watched, batches = overhead.get(s.SAMPLE_EVERY, 0), overhead.get(s.WATCHED_BATCHES, 0), \
        overhead.get(s.BATCHES, 0)
    names = ", ".join(overhead.get(s.INSTRUMENTS) or []) or "phase events"
    sampling = (f"{names} watched {watched} of {batches} batches, 1 in {every}" if every and every > 1
                else f"{names} watched every batch")
    slowdown = overhead.get(s.WATCHED_OVER_BARE)
    if not isinstance(slowdown, (int, float)):
        return (f"instruments cost: not measured on this run ({sampling}; with --sample-every K the bare "
                "batches give the bare step)")
    run_cost = overhead.get(s.RUN_COST, slowdown - 1)
    return (f"instruments cost {100 * run_cost:+.0f}% on this run ({sampling}; a watched batch "
            f"{overhead[s.WATCHED_MS_PER_BATCH]:.2f} ms, a bare one {overhead[s.BARE_MS_PER_BATCH]:.2f} ms: "
            f"{slowdown:.2f}x)")
