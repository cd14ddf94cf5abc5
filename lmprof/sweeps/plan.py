"""The plan of a sweep: which configurations run, how each is named, and its key.

``--vary nhid=200,400,600 --vary bptt=35,55,75`` around a base configuration
gives, by default, one factor at a time (the homework's design: nhid moves
while bptt stays at the base value, then bptt moves), or with ``--grid`` the
full product. Every model in ``--models`` runs every configuration.

A run's *key* is a hash of everything that changes its numbers (the whole
RunConfig except where it writes, how many threads it uses, how often it
logs), so the same configuration reached from two factors runs once, and a
rerun of the same command finds its runs again.

    >>> from lmprof.config import RunConfig
    >>> plan = build_plan(RunConfig(), ["LSTM", "GRU"], [parse_vary("nhid=200,400")])
    >>> [run.label for run in plan.runs]
    ['LSTM nhid=200', 'GRU nhid=200', 'LSTM nhid=400', 'GRU nhid=400']
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lmprof.config import MODEL_KINDS, RunConfig
from lmprof.errors import UsageError

PLAN_SCHEMA_VERSION = 1

# What --vary may change, and how to read its values. `model` is not here: --models lists those.
VARIABLE: dict[str, Callable[[str], Any]] = {
    "emsize": int, "nhid": int, "nlayers": int, "bptt": int, "batch_size": int, "nhead": int,
    "max_batches": int, "seed": int, "lr": float, "clip": float, "dropout": float,
    "tied": lambda v: _boolean(v), "use_optimizer": lambda v: _boolean(v),
}
# Fields that do not change a run's numbers: left out of its key.
NOT_IN_KEY = ("out", "save", "threads", "log_interval")


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


@dataclass(frozen=True)
class Factor:
    name: str
    values: tuple[Any, ...]


def parse_vary(text: str) -> Factor:
    """``"nhid=200,400"`` -> Factor("nhid", (200, 400)); a bad one is a UsageError saying how to write it."""
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise UsageError(f"--vary {text!r}: write NAME=V1,V2,... (e.g. --vary nhid=200,400,600)")
    if name == "model":
        raise UsageError("--vary model=...: list the models with --models instead (e.g. --models LSTM GRU)")
    if name == "epochs":
        raise UsageError("--vary epochs=...: not needed: every run records each epoch (the tables' epoch column "
                         "and the per-epoch plot), so one sweep with --epochs set to the largest value answers "
                         "how the number of epochs matters")
    if name not in VARIABLE:
        raise UsageError(f"--vary {name}: not a factor a sweep can vary; choose one of {', '.join(VARIABLE)}")
    words = [w.strip() for w in raw.split(",") if w.strip()]
    if not words:
        raise UsageError(f"--vary {name}= has no values: write e.g. --vary {name}=1,2")
    values = []
    for word in words:
        try:
            values.append(VARIABLE[name](word))
        except ValueError:
            kind = {int: "a whole number", float: "a number"}.get(VARIABLE[name], "true or false")  # type: ignore[call-overload]
            raise UsageError(f"--vary {name}: {word!r} is not {kind}") from None
    if len(set(values)) != len(values):
        raise UsageError(f"--vary {name}={raw}: a value is listed twice")
    return Factor(name, tuple(values))


def format_value(value: Any) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


@dataclass
class PlannedRun:
    key: str  # hash of what changes the numbers
    label: str  # "GRU nhid=400 bptt=35": legends, log lines, rows
    model: str
    settings: dict[str, Any]  # the varied factors' values for this run
    config: RunConfig

    @property
    def folder_name(self) -> str:
        """Its folder under runs/: readable, and unique even when the base changes."""
        return self.label.replace(" ", "_").replace("/", "-") + "-" + self.key[:8]


@dataclass
class TableRow:
    value: str  # what the factor column shows: "400", or "nhid=400 bptt=55" for a grid
    keys: dict[str, str]  # model -> run key


@dataclass
class Group:
    """One table: a factor and its values, models side by side."""

    factor: str
    rows: list[TableRow]


@dataclass
class Plan:
    base: RunConfig
    models: list[str]
    factors: list[Factor]
    grid: bool
    runs: list[PlannedRun]  # unique by key, in the order they run
    groups: list[Group]
    grad_stats: bool = True  # every run records its pre-clip gradient norms (lmprof sweep --no-grad-stats: off)

    @property
    def name(self) -> str:
        """The default folder name: the same command gives the same folder, so a rerun resumes."""
        parts = ["-".join(self.models)]
        if self.factors:
            parts.append("-".join(f.name for f in self.factors))
        if self.grid:
            parts.append("grid")
        return "_".join(parts)

    def to_doc(self) -> dict[str, Any]:
        """Plain data for sweep.json: what a view needs to lay out the tables again."""
        return {
            "schema_version": PLAN_SCHEMA_VERSION, "name": self.name, "models": self.models,
            "factors": [{"name": f.name, "values": list(f.values)} for f in self.factors],
            "grid": self.grid, "epochs": self.base.epochs, "base": self.base.to_dict(),
            "runs": [{"key": r.key, "label": r.label, "model": r.model, "settings": r.settings,
                      "folder": r.folder_name} for r in self.runs],
            "groups": [{"factor": g.factor, "rows": [{"value": row.value, "keys": row.keys} for row in g.rows]}
                       for g in self.groups],
        }


def run_key(cfg: RunConfig) -> str:
    values = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_KEY}
    if values.get("data"):
        values["data"] = str(Path(values["data"]).resolve())  # the same corpus from another folder
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def build_plan(base: RunConfig, models: list[str], factors: list[Factor], grid: bool = False) -> Plan:
    """Every configuration, validated before anything trains (a bad one is a UsageError)."""
    for model in models:
        if model not in MODEL_KINDS:
            raise UsageError(f"unknown model {model!r} in --models: choose from {', '.join(MODEL_KINDS)}")
    if len(set(models)) != len(models):
        raise UsageError("--models lists a model twice")
    names = [f.name for f in factors]
    if len(set(names)) != len(names):
        raise UsageError("--vary names a factor twice: give all its values once, e.g. --vary nhid=200,400")
    base = base.replace(out=None, save=None)

    # Each table: (factor column, [(value as shown, changes to the base)]).
    layout: list[tuple[str, list[tuple[str, dict[str, Any]]]]]
    if not factors:
        layout = [("base", [("base", {})])]
    elif grid:
        combos = [(" ".join(f"{f.name}={format_value(v)}" for f, v in zip(factors, values)),
                   {f.name: v for f, v in zip(factors, values)})
                  for values in itertools.product(*(f.values for f in factors))]
        layout = [("configuration", combos)]
    else:
        layout = [(f.name, [(format_value(v), {f.name: v}) for v in f.values]) for f in factors]

    runs: dict[str, PlannedRun] = {}
    groups = []
    for factor, combos in layout:
        rows = []
        for value_text, changes in combos:
            keys = {}
            for model in models:
                run = _planned(base, model, changes, factors)
                runs.setdefault(run.key, run)
                keys[model] = run.key
            rows.append(TableRow(value_text, keys))
        groups.append(Group(factor, rows))
    return Plan(base, list(models), list(factors), grid, list(runs.values()), groups)


def _planned(base: RunConfig, model: str, changes: dict[str, Any], factors: list[Factor]) -> PlannedRun:
    cfg = base.replace(model=model, **changes)
    try:
        cfg.validate()
    except UsageError as e:
        where = " ".join(f"{k}={format_value(v)}" for k, v in changes.items()) or "the base configuration"
        raise UsageError(f"{model} with {where}: {e}") from None
    # Every varied factor's value, so one label names one configuration.
    settings = {f.name: getattr(cfg, f.name) for f in factors}
    label = " ".join([model, *(f"{k}={format_value(v)}" for k, v in settings.items())])
    return PlannedRun(key=run_key(cfg), label=label, model=model, settings=settings, config=cfg)
