"""The arithmetic of ``--backward-lines``: profiler operators -> forward lines, forward and backward.

Pure data in, pure data out (no torch here), so the rules can be tested on
made-up operators: ``attribute(ops, param_lines)`` walks each operator up to
what owns it (a line annotation, an autograd node, a named gradient
accumulation), finds each node's forward operator by (thread, sequence
number), and adds the operators' times per line. ``lmprof.instrument.backward_lines``
collects the operators; its docstring says how the attribution works.

    >>> fwd = Op("aten::mm", False, 1, 10.0, 20.0, 7, 0, 0.5, 0.5, 0.5, parent=1)
    >>> ops = [Op("lmprof-phase:forward", True, 1, 0.0, 30.0, -1, 0, 0, 0, 0),
    ...        Op("lmprof-line:61", True, 1, 5.0, 25.0, -1, 0, 0, 0, 0, parent=0), fwd]
    >>> attribute(ops, {}).fwd[61]
    0.5
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from lmprof.record.sections import (ACCUMULATE_SECONDS, ATTRIBUTED_BACKWARD_SECONDS, BACKWARD_OP_SECONDS,
    BACKWARD_SECONDS, BWD_FWD_RATIO, BWD_LAUNCH_SECONDS, BWD_SECONDS, COMPONENTS_SHARE, CONSISTENT_WITHIN,
    COUNTED_ON, FORWARD_SECONDS, FWD_DEVICE_SECONDS, FWD_LAUNCH_SECONDS, MAX_POINTS, POINTS_ALLOWED,
    SHARED_PARAMETERS, STEP_SECONDS, STEP_SHARE)

PHASE_PREFIX = "lmprof-phase:"  # a step phase's window: lmprof-phase:backward
LINE_PREFIX = "lmprof-line:"  # a torch call made from line N of forward: lmprof-line:61
GRAD_PREFIX = "lmprof-grad:"  # a parameter's gradient accumulation: lmprof-grad:encoder.weight
ENGINE_PREFIX = "autograd::engine::evaluate_function: "  # the engine's event around one node's work
CONSISTENCY_TOLERANCE = 0.02  # attributed backward vs the backward phase's operator time
AGREE_POINTS = 5.0  # per component, share points between this attribution and --components
NODES_KEPT = 3  # the costliest backward nodes named per line

# Rows of the step that no forward line created: name -> (label, which column they fill)
OUTSIDE: dict[str, tuple[str, str]] = {
    "forward_unmarked": ("forward, outside its lines (the call itself, hooks)", "fwd"),
    "loss": ("loss = criterion(output, targets)", "fwd"),
    "loss_backward": ("the loss's backward (the root of the graph)", "bwd"),
    "engine": ("autograd engine, in no node (the loss's gradient of ones)", "bwd"),
    "accumulate_unnamed": ("gradient accumulation, parameter not named", "bwd"),
    "unmatched": ("backward nodes whose forward operator was not seen", "bwd"),
}
STEP_LABELS = {"data": "get_batch", "zero_grad": "zero_grad", "repackage": "repackage_hidden",
               "clip": "clip_grad_norm_", "update": "update parameters", "logging": "loss.item(), logging",
               "between": "between phases"}


@dataclass
class Op:
    """One profiler event on the host: an operator, or an annotation (times in seconds, ends in µs)."""

    name: str
    annotation: bool
    thread: int
    start: float
    end: float
    seq: int  # autograd sequence number (-1: none)
    fwd_thread: int  # on a backward node's event: the thread its forward ran on
    self_seconds: float  # CPU: self time; CUDA: self kernel time
    total_seconds: float
    launch_seconds: float  # self CPU time (on CPU the same as self_seconds)
    parent: int | None = None


@dataclass
class Attribution:
    fwd: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    bwd: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    fwd_launch: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    bwd_launch: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    accumulate: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    nodes: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    outside: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    backward_op_seconds: float = 0.0
    shared: list[dict[str, Any]] = field(default_factory=list)

    def section(self, *, batches: int, texts: dict[int, str], device: str, about: dict[str, Any]) -> dict[str, Any]:
        """result.backward_lines: every figure per watched step."""
        n = max(batches, 1)
        lines = sorted(set(self.fwd) | set(self.bwd))
        step = (sum(self.fwd.values()) + sum(self.bwd.values()) + sum(self.outside.values())) / n
        attributed = (sum(self.bwd.values()) + self.outside.get("loss_backward", 0.0)) / n
        phase = self.backward_op_seconds / n
        rows = []
        for line in lines:
            fwd, bwd = self.fwd.get(line, 0.0) / n, self.bwd.get(line, 0.0) / n
            row: dict[str, Any] = {
                "line": line, "source": texts.get(line, ""), FWD_DEVICE_SECONDS: fwd, BWD_SECONDS: bwd,
                BWD_FWD_RATIO: bwd / fwd if fwd > 0 else None, STEP_SHARE: (fwd + bwd) / step if step else 0.0,
                ACCUMULATE_SECONDS: self.accumulate.get(line, 0.0) / n,
                "nodes": [name for name, _ in sorted(self.nodes.get(line, {}).items(), key=lambda kv: -kv[1])][:NODES_KEPT]}
            if device == "cuda":  # what a host clock sees of the same operators: their launches
                row[FWD_LAUNCH_SECONDS] = self.fwd_launch.get(line, 0.0) / n
                row[BWD_LAUNCH_SECONDS] = self.bwd_launch.get(line, 0.0) / n
            rows.append(row)
        outside = [{"name": name, "label": OUTSIDE.get(name, (STEP_LABELS.get(name, name), "step"))[0],
                    "part": OUTSIDE.get(name, ("", "step"))[1], "seconds": seconds / n,
                    STEP_SHARE: seconds / n / step if step else 0.0}
                   for name, seconds in self.outside.items() if seconds > 0]
        return {**about, "device": device, "batches": batches,
                "clock": "kernel time (CUDA); launch time beside it" if device == "cuda" else "operator self time (CPU)",
                "lines": rows, "outside": outside, STEP_SECONDS: step, BACKWARD_OP_SECONDS: phase,
                ATTRIBUTED_BACKWARD_SECONDS: attributed,
                "consistency": attributed / phase if phase > 0 else None,
                CONSISTENT_WITHIN: CONSISTENCY_TOLERANCE, SHARED_PARAMETERS: self.shared}


def _windows(ops: list[Op]) -> tuple[list[float], list[tuple[float, float, str]]]:
    windows = sorted((op.start, op.end, op.name[len(PHASE_PREFIX):]) for op in ops
                     if op.annotation and op.name.startswith(PHASE_PREFIX))
    return [w[0] for w in windows], windows


def _phase_at(starts: list[float], windows: list[tuple[float, float, str]], t: float) -> str:
    i = bisect.bisect_right(starts, t) - 1
    return windows[i][2] if i >= 0 and t <= windows[i][1] else "between"


class _Owners:
    """Who owns each profiler event: the forward line, parameter or backward node it runs under (memoised)."""

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.found: dict[int, tuple[str, Any]] = {}
        # an AccumulateGrad node's engine event holds the hook's annotation: that names the parameter
        self.named = {op.parent: op.name[len(GRAD_PREFIX):] for op in ops
                      if op.annotation and op.name.startswith(GRAD_PREFIX) and op.parent is not None}

    def __call__(self, i: int) -> tuple[str, Any]:
        """("line", n), ("param", name), ("node", (thread, seq, name)) or ("none", None), from the nearest
        event above ``i`` that says."""
        path: list[int] = []
        j: int | None = i
        found: tuple[str, Any] = ("none", None)
        while j is not None:
            if j in self.found:
                found = self.found[j]
                break
            path.append(j)
            said = self._says(j)
            if said is not None:
                found = said
                break
            j = self.ops[j].parent
        for k in path:
            self.found[k] = found
        return found

    def _says(self, j: int) -> tuple[str, Any] | None:
        op = self.ops[j]
        if op.annotation and op.name.startswith(LINE_PREFIX):
            return ("line", int(op.name[len(LINE_PREFIX):]))
        if op.annotation and op.name.startswith(GRAD_PREFIX):
            return ("param", op.name[len(GRAD_PREFIX):])
        if op.name.startswith(ENGINE_PREFIX):
            return ("param", self.named[j]) if j in self.named else ("node", (op.fwd_thread, op.seq, op.name))
        return None

    def under_op(self, i: int) -> bool:
        """Whether an operator (not an annotation) encloses event ``i``."""
        j = self.ops[i].parent
        while j is not None:
            if not self.ops[j].annotation:
                return True
            j = self.ops[j].parent
        return False


Creators = dict[tuple[int, int], tuple[float, str, Any]]  # (thread, seq) -> (start, phase, owner)


def _creators(ops: list[Op], phases: list[str], owner: _Owners) -> Creators:
    """The forward operator that made each autograd node, by its (thread, sequence number)."""
    creators: Creators = {}
    for i, op in enumerate(ops):
        if not op.annotation and op.seq >= 0 and phases[i] in ("forward", "loss"):
            key = (op.thread, op.seq)
            # the node is made by the last operator that starts with its number (later ones carry the next)
            if key not in creators or op.start >= creators[key][0]:
                creators[key] = (op.start, phases[i], owner(i))
    return creators


def attribute(ops: list[Op], param_lines: dict[str, list[int]]) -> Attribution:
    """Add every operator's time to the forward line (or the part of the step) that owns it."""
    starts, windows = _windows(ops)
    owner = _Owners(ops)
    phases = [_phase_at(starts, windows, op.start) for op in ops]
    creators = _creators(ops, phases, owner)
    out = Attribution()
    for i, op in enumerate(ops):
        _add_event(out, i, phases[i], owner, creators, param_lines)
    out.shared = [{"name": name, "lines": lines, COUNTED_ON: lines[0]}
                  for name, lines in param_lines.items() if len(lines) > 1]
    return out


def _add_event(out: Attribution, i: int, phase: str, owner: _Owners, creators: Creators,
               param_lines: dict[str, list[int]]) -> None:
    """One event's time to its owner; the backward phase's operator total kept beside (hooks' own time out)."""
    op = owner.ops[i]
    if op.annotation:
        if phase == "backward" and owner.under_op(i):  # a hook's own time, inside the engine's event
            out.backward_op_seconds -= op.self_seconds
        return
    if phase == "backward" and not owner.under_op(i):
        out.backward_op_seconds += op.total_seconds
    kind, what = owner(i)
    if phase == "forward":
        if kind == "line":
            out.fwd[what] += op.self_seconds
            out.fwd_launch[what] += op.launch_seconds
        else:
            out.outside["forward_unmarked"] += op.self_seconds
    elif phase == "backward":
        _backward(out, op, kind, what, creators, param_lines)
    else:
        out.outside[phase] += op.self_seconds


def _backward(out: Attribution, op: Op, kind: str, what: Any, creators: Creators,
              param_lines: dict[str, list[int]]) -> None:
    line: int | None = None
    if kind == "param":
        line = param_lines[what][0] if param_lines.get(what) else None
        if line is None:
            out.outside["accumulate_unnamed"] += op.self_seconds
            return
        out.accumulate[line] += op.self_seconds
    elif kind == "node":
        fwd_thread, seq, node = what
        creator = creators.get((fwd_thread, seq))
        if creator is None:
            out.outside["unmatched"] += op.self_seconds
            return
        if creator[1] == "loss":
            out.outside["loss_backward"] += op.self_seconds
            return
        if creator[2][0] != "line":
            out.outside["forward_unmarked"] += op.self_seconds
            return
        line = creator[2][1]
        out.nodes[line][node[len(ENGINE_PREFIX):]] += op.self_seconds
    else:
        out.outside["engine"] += op.self_seconds
        return
    out.bwd[line] += op.self_seconds
    out.bwd_launch[line] += op.launch_seconds


# --- agreement with --components -------------------------------------------------------------
_CALL = re.compile(r"self\.(\w+)\(")


def line_components(rows: list[dict[str, Any]], known: set[str]) -> dict[int, str]:
    """line -> the components (``--components`` names) it calls, joined with ' + '; a line calling none
    joins the next line that does (``decoded.view`` goes with ``log_softmax``, as --components counts it)."""
    seen: dict[str, int] = defaultdict(int)
    named: dict[int, str] = {}
    for row in sorted(rows, key=lambda r: r["line"]):
        parts = []
        for call in _CALL.findall(row.get("source", "")):
            seen[call] += 1
            name = call if seen[call] == 1 else f"{call}#{seen[call]}"
            if name in known:
                parts.append(name)
        if "log_softmax" in known and "log_softmax" in row.get("source", ""):
            parts.append("log_softmax")
        named[row["line"]] = " + ".join(parts)
    out, pending = {}, []
    for line in sorted(named):
        pending.append(line)
        if named[line]:
            out.update({p: named[line] for p in pending})
            pending = []
    last = next((named[line] for line in sorted(named, reverse=True) if named[line]), "")
    out.update({p: last for p in pending if last})
    return out


def component_agreement(section: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Per group of components, the share of the model's forward and backward time in each measurement.

    The two differ in method: --components reads a host clock at module hooks (Python and engine
    overhead included), this attribution adds operator times; ``max_points`` is their largest gap.
    """
    comp = {r["name"]: r for r in components.get("rows", []) if r.get("name") != "loss"}
    groups = line_components(section.get("lines", []), set(comp))
    rows = []
    for direction, mine_key, theirs_key in (("fwd", FWD_DEVICE_SECONDS, FORWARD_SECONDS),
                                            ("bwd", BWD_SECONDS, BACKWARD_SECONDS)):
        mine: dict[str, float] = defaultdict(float)
        for row in section.get("lines", []):
            if row["line"] in groups:
                mine[groups[row["line"]]] += float(row.get(mine_key) or 0.0)
        theirs = {g: sum(float(comp[c].get(theirs_key) or 0.0) for c in g.split(" + ")) for g in mine}
        mine_total, theirs_total = sum(mine.values()), sum(theirs.values())
        for g in mine:
            rows.append({"components": g, "direction": direction,
                         "share": mine[g] / mine_total if mine_total else 0.0,
                         COMPONENTS_SHARE: theirs[g] / theirs_total if theirs_total else 0.0})
    gap = max((abs(r["share"] - r[COMPONENTS_SHARE]) * 100 for r in rows), default=0.0)
    return {"rows": rows, MAX_POINTS: gap, "within": gap <= AGREE_POINTS, POINTS_ALLOWED: AGREE_POINTS}
