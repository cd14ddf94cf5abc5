"""A sweep's results as data: each run's series, epoch by epoch, laid out in the plan's tables.

``sweep_view(plan_doc, rows)`` fills the plan (sweep.json) with the rows of
results.jsonl (see ``lmprof.sweeps.store``): the tables, the CSV summary, the
plots, the report and ``lmprof compare`` read this one model. What a run's
timings depend on (``hardware_label``) and which cluster runs shared a host
at the same time (``shared_hosts``) are worked out here too, so every view
draws the same conclusion. Nothing here draws.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from statistics import mean
from typing import Any

from lmprof.divergence import NOT_CONVERGED, is_not_converged  # the one rule, re-exported here


@dataclass
class RunSeries:
    """One configuration's measurements, epoch by epoch."""

    key: str
    label: str
    model: str
    status: str = "pending"  # ok, diverged, failed, interrupted, pending (no row yet)
    message: str = ""
    epochs: list[int] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    tokens: list[int | None] = field(default_factory=list)  # training tokens of each epoch (None: not recorded)
    val_ppl: list[float | None] = field(default_factory=list)  # None: NaN/inf
    clipped: list[float | None] = field(default_factory=list)  # fraction of the epoch's batches clipped
    preclip_max: list[float | None] = field(default_factory=list)  # largest pre-clip gradient norm
    test_ppl: float | None = None
    nparams: int | None = None
    memory: dict[str, Any] = field(default_factory=dict)  # the run's memory peaks (result.json's memory, via the sweep's rows)
    jobs: int = 1  # runs at once when it was measured
    threads: int | None = None
    host: str | None = None
    hardware: str | None = None  # GPU name, or CPU model and threads; None: not recorded
    executor: str | None = None
    started: str | None = None  # ISO times of the run's last attempt
    finished: str | None = None

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def counts(self) -> bool:
        """Does it enter averages? Only runs that ended ok."""
        return self.status == "ok"

    @property
    def not_converged(self) -> bool:
        return self.status == NOT_CONVERGED

    @property
    def total_seconds(self) -> float:
        return sum(self.train_seconds)

    @property
    def tokens_per_s(self) -> float | None:
        """Training tokens per second over every epoch: comparable across bptt, batch size and --max-batches."""
        if not self.tokens or any(t is None for t in self.tokens) or self.total_seconds <= 0:
            return None
        return sum(t for t in self.tokens if t) / self.total_seconds

    @property
    def ms_per_1k_tokens(self) -> float | None:
        rate = self.tokens_per_s
        return 1e6 / rate if rate else None

    @property
    def finite_ppl(self) -> list[float]:
        return [p for p in self.val_ppl if p is not None]

    def steady_ppl(self, vocab_size: int | None) -> list[float]:
        """The finite perplexities at or below the vocabulary size: what an average may include.

        A run that recovers from one epoch above it (a spike of 1e6 and more) is still ok, but that
        epoch would swamp a mean of a few hundreds; it is left out, and the notes say so.
        """
        return [p for p in self.finite_ppl if vocab_size is None or p <= vocab_size]


@dataclass
class FactorTable:
    factor: str  # "nhid"; "configuration" for a grid; "base" with no factor
    models: list[str]
    rows: list[tuple[str, dict[str, str]]]  # (value as shown, model -> run key)


@dataclass
class SweepView:
    name: str
    epochs: int
    models: list[str]
    tables: list[FactorTable]
    runs: dict[str, RunSeries]  # key -> series, in plan order
    vocab_size: int | None = None
    max_batches: dict[str, int] = field(default_factory=dict)  # run key -> its --max-batches (runs cut short only)

    @property
    def parallel_jobs(self) -> int:
        return max((run.jobs for run in self.runs.values() if run.epochs), default=1)

    @property
    def hosts(self) -> list[str]:
        return sorted({run.host for run in self.runs.values() if run.host})

    def hardware(self, keys: list[str] | None = None) -> dict[str, list[str]]:
        """hardware -> labels of its runs, among ``keys`` (default: every run); unrecorded left out."""
        out: dict[str, list[str]] = {}
        for key in self.runs if keys is None else keys:
            run = self.runs[key]
            if run.hardware:
                out.setdefault(run.hardware, []).append(run.label)
        return out

    def mixed(self, keys: list[str] | None = None) -> bool:
        return len(self.hardware(keys)) > 1


def table_keys(table: "FactorTable") -> list[str]:
    return list(dict.fromkeys(keys[m] for _, keys in table.rows for m in table.models))


def hardware_label(row: dict[str, Any]) -> str | None:
    """What a run's timings depend on: its GPU, else its CPU model and thread count."""
    if row.get("gpu"):
        return str(row["gpu"])
    if not row.get("cpu"):
        return None  # rows written before lmprof recorded it
    device = "" if str(row.get("device") or "cpu").startswith("cpu") else f"{row['device']} on "
    threads = f", {row['threads']} thread(s)" if row.get("threads") else ""
    return f"{device}{row['cpu']}{threads}"


def sweep_view(plan_doc: dict[str, Any], rows: list[dict[str, Any]]) -> SweepView:
    """The plan's layout filled with results.jsonl's rows (first row per epoch, last run row wins)."""
    runs = {r["key"]: RunSeries(key=r["key"], label=r["label"], model=r["model"]) for r in plan_doc.get("runs", [])}
    seen: set[tuple[str, int]] = set()
    vocab = None
    for row in rows:
        series = runs.get(str(row.get("key")))
        if series is None:
            continue  # a run of an earlier plan in the same folder
        if row.get("kind") == "epoch" and (series.key, row.get("epoch")) not in seen:
            seen.add((series.key, row["epoch"]))
            series.epochs.append(row["epoch"])
            series.train_seconds.append(float(row.get("train_seconds") or 0.0))
            series.tokens.append(int(row["tokens"]) if isinstance(row.get("tokens"), (int, float)) else None)
            series.val_ppl.append(row.get("val_ppl"))
            series.clipped.append(row.get("clipped_fraction"))
            series.preclip_max.append(row.get("preclip_norm_max"))
            series.jobs = max(series.jobs, int(row.get("jobs") or 1))
            series.threads = row.get("threads")
            if series.status == "pending":
                series.status = "interrupted"  # epochs but no end (yet)
        elif row.get("kind") == "run":
            series.status = str(row.get("status"))
            series.message = str(row.get("message") or "")
            series.test_ppl, series.nparams, series.host = row.get("test_ppl"), row.get("nparams"), row.get("host")
            series.memory = row.get("memory") or {}
            series.hardware, series.executor = hardware_label(row), row.get("executor")
            series.started, series.finished = row.get("started"), row.get("finished")
            vocab = row.get("vocab_size") or vocab
    for series in runs.values():
        order = sorted(range(len(series.epochs)), key=series.epochs.__getitem__)
        for name in ("epochs", "train_seconds", "tokens", "val_ppl", "clipped", "preclip_max"):
            values = getattr(series, name)
            setattr(series, name, [values[i] for i in order])
    for series in runs.values():
        if is_not_converged(series.status, series.val_ppl, vocab):
            series.status = NOT_CONVERGED
    tables = [FactorTable(g["factor"], list(plan_doc.get("models", [])),
                          [(row["value"], row["keys"]) for row in g["rows"]]) for g in plan_doc.get("groups", [])]
    return SweepView(name=str(plan_doc.get("name", "sweep")), epochs=int(plan_doc.get("epochs", 0)),
                     models=list(plan_doc.get("models", [])), tables=tables, runs=runs, vocab_size=vocab,
                     max_batches=_max_batches(plan_doc))


def _max_batches(plan_doc: dict[str, Any]) -> dict[str, int]:
    """Run key -> --max-batches, for the runs whose epochs were cut (the base's, unless a run varies it)."""
    base = plan_doc.get("base") if isinstance(plan_doc.get("base"), dict) else {}
    out = {}
    for run in plan_doc.get("runs", []):
        settings = run.get("settings") if isinstance(run.get("settings"), dict) else {}
        value = settings.get("max_batches", base.get("max_batches"))
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[str(run.get("key"))] = value
    return out


def summary_rows(view: SweepView) -> list[dict[str, Any]]:
    """One row per run: the figures of the summary lines (summary.csv).

    The base configuration sits in every factor's table; it is listed once, its
    ``factor`` naming every table it belongs to ("nhid, bptt") and ``value`` its value in each.
    """
    places: dict[str, list[tuple[str, str]]] = {}
    for table in view.tables:
        for value, keys in table.rows:
            for model in table.models:
                places.setdefault(keys[model], []).append((table.factor, value))
    out = []
    for key, where in places.items():
        run = view.runs[key]
        model = run.model
        ok = run.counts and run.finite_ppl
        steady = run.steady_ppl(view.vocab_size)
        out.append({
            "factor": ", ".join(f for f, _ in where), "value": ", ".join(v for _, v in where),
            "model": model, "run": run.label,
            "status": run.status, "epochs": len(run.epochs),
            "total_seconds": round(run.total_seconds, 4) if run.epochs else None,
            "avg_epoch_seconds": round(mean(run.train_seconds), 4) if run.epochs else None,
            "tokens_per_s": round(run.tokens_per_s, 1) if run.tokens_per_s else None,
            "ms_per_1k_tokens": round(run.ms_per_1k_tokens, 3) if run.ms_per_1k_tokens else None,
            "max_batches": view.max_batches.get(key),
            "min_val_ppl": min(run.finite_ppl) if ok else None,
            "max_val_ppl": max(run.finite_ppl) if ok else None,
            "avg_val_ppl": mean(steady) if ok and steady else None,  # epochs above the vocabulary left out
            "final_val_ppl": run.val_ppl[-1] if ok else None,
            "test_ppl": run.test_ppl if run.counts else None,
            "nparams": run.nparams, "parallel_jobs": run.jobs, "threads": run.threads,
            "saved_bytes_peak": run.memory.get("saved_bytes_peak"), "rss_peak_bytes": run.memory.get("rss_peak_bytes"),
            "hardware": run.hardware, "host": run.host,
        })
    return out


def summary_csv(view: SweepView) -> str:
    rows = summary_rows(view)
    buffer = io.StringIO()
    names = list(rows[0]) if rows else ["factor", "value", "model", "run", "status"]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def shared_hosts(view: SweepView) -> dict[str, tuple[int, str]]:
    """Cluster runs that overlapped in time on one host: host -> (most at once, executor)."""
    events: dict[str, list[tuple[datetime, int]]] = {}
    executors: dict[str, str] = {}
    for run in view.runs.values():
        if run.executor not in ("slurm", "ray") or not (run.host and run.started and run.finished):
            continue
        try:
            start, end = datetime.fromisoformat(run.started), datetime.fromisoformat(run.finished)
        except ValueError:
            continue
        events.setdefault(run.host, []).extend([(start, 1), (end, -1)])
        executors[run.host] = run.executor
    out = {}
    for host, marks in events.items():
        now = most = 0
        for _, step in sorted(marks, key=lambda m: (m[0], m[1])):  # an end before a start at the same instant
            now += step
            most = max(most, now)
        if most > 1:
            out[host] = (most, executors[host])
    return out
