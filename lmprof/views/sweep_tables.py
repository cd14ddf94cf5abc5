"""A sweep's tables, as the homework laid them out: one per varied factor, models side by side.

Each table shows, for every value of the factor, each model's training
seconds and validation perplexity per epoch, then the run's total and
average time, average and min / max perplexity, and test perplexity. A
diverged run (NaN loss, or validation perplexity above the vocabulary size at two epochs in a row or the last)
says so in its cells and is left out of every average; the last row of a
table averages the runs that ended ok. ``summary_rows`` gives the same
figures as plain data (summary.csv).

Honest timings: a run's *hardware* is its GPU, or its CPU model and thread
count. When the runs of one table ran on different hardware, the table
says so and hides their times (a '—'), so they are not read side by side,
unless ``mixed_hardware=True`` (``--mixed-hardware``); perplexities are
shown either way. Runs that shared a host at the same time are noted too.

Input is plain data: ``sweep_view(plan_doc, rows)`` from sweep.json and the
rows of results.jsonl (see ``lmprof.sweep.store``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from statistics import mean
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table


# A run that ended above the vocabulary size after a single epoch: too little evidence to call it
# diverged (the sweep's rule needs two epochs), and no model worth averaging either.
NOT_CONVERGED = "not converged"


def is_not_converged(status: str, val_ppls: list[float | None], vocab_size: int | None) -> bool:
    """Ended "ok" but worse than a uniform guess: only possible after a single epoch (see is_diverged)."""
    last = val_ppls[-1] if val_ppls else None
    return status == "ok" and vocab_size is not None and last is not None and last > vocab_size


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
        for name in ("epochs", "train_seconds", "val_ppl", "clipped", "preclip_max"):
            values = getattr(series, name)
            setattr(series, name, [values[i] for i in order])
    for series in runs.values():
        if is_not_converged(series.status, series.val_ppl, vocab):
            series.status = NOT_CONVERGED
    tables = [FactorTable(g["factor"], list(plan_doc.get("models", [])),
                          [(row["value"], row["keys"]) for row in g["rows"]]) for g in plan_doc.get("groups", [])]
    return SweepView(name=str(plan_doc.get("name", "sweep")), epochs=int(plan_doc.get("epochs", 0)),
                     models=list(plan_doc.get("models", [])), tables=tables, runs=runs, vocab_size=vocab)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _ppl(value: float | None) -> str:
    if value is None:
        return "inf"
    return f"{value:.3g}" if value >= 1e6 else f"{value:.2f}"


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


def factor_table(view: SweepView, table: FactorTable, mixed_hardware: bool = False) -> "Table":
    from rich.table import Table

    mixed = view.mixed(table_keys(table))
    hide = mixed and not mixed_hardware  # times from different hardware are not put side by side

    def seconds(value: float | None) -> str:
        return "—" if hide and value is not None else _seconds(value)

    title = f"{view.name}: {table.factor}" + (" (mixed hardware: times hidden)" if hide else
                                              " (mixed hardware)" if mixed else "")
    t = Table(title=title, title_justify="left", show_lines=False)
    t.add_column(table.factor, justify="right", style="bold")
    t.add_column("epoch", justify="right")
    for model in table.models:
        t.add_column(f"{model} s", justify="right")
        t.add_column(f"{model} val ppl", justify="right")
    for value, keys in table.rows:
        runs = [view.runs[keys[m]] for m in table.models]
        for epoch in range(1, view.epochs + 1):
            cells = [value if epoch == 1 else "", str(epoch)]
            for run in runs:
                if epoch in run.epochs:
                    i = run.epochs.index(epoch)
                    last = i == len(run.epochs) - 1
                    cells += [seconds(run.train_seconds[i]),
                              f"[red]{_ppl(run.val_ppl[i])} diverged[/red]" if last and run.diverged
                              else f"[yellow]{_ppl(run.val_ppl[i])} not converged[/yellow]"
                              if last and run.not_converged else _ppl(run.val_ppl[i])]
                else:
                    cells += ["", _missing(run, epoch)]
            t.add_row(*cells)
        summary: dict[str, list[str]] = {"total": [], "average": [], "min / max": [], "test": []}
        for run in runs:
            colour = "yellow" if run.not_converged else "red"
            excluded = None if run.counts else f"[{colour}]{run.status}[/{colour}]" if run.epochs else "—"
            ppl = run.finite_ppl
            steady = run.steady_ppl(view.vocab_size)
            spikes = "*" if len(steady) < len(ppl) else ""  # epochs above the vocabulary size left out
            summary["total"] += [seconds(run.total_seconds) if run.epochs else "", ""]
            summary["average"] += [seconds(mean(run.train_seconds)) if run.epochs else "",
                                   excluded or (_ppl(mean(steady)) + spikes if steady else "—")]
            summary["min / max"] += ["", excluded or f"{_ppl(min(ppl))} / {_ppl(max(ppl))}"]
            summary["test"] += ["", excluded or _ppl(run.test_ppl)]
        names = list(summary)
        for name in names:
            t.add_row("", f"[dim]{name}[/dim]", *summary[name], end_section=name == names[-1])
    cells = ["all ok", ""]
    for model in table.models:
        ok = [view.runs[keys[model]] for _, keys in table.rows if view.runs[keys[model]].counts]
        cells += [seconds(mean(s for r in ok for s in r.train_seconds)) if ok else "—",
                  _ppl(mean(r.finite_ppl[-1] for r in ok)) if ok else "—"]
    t.add_row(*[f"[bold]{c}[/bold]" if c else c for c in cells])
    return t


def has_clip_stats(view: SweepView, table: FactorTable) -> bool:
    return any(f is not None for k in table_keys(table) for f in view.runs[k].clipped)


def clip_table(view: SweepView, table: FactorTable) -> "Table":
    """Beside a factor's perplexities: per epoch and model, the share of batches clipped and the largest norm.

    Its own narrow table, the factor table's rows in the same order, so neither outgrows a terminal.
    """
    from rich.table import Table

    t = Table(title=f"{view.name}: {table.factor}: batches clipped (largest pre-clip gradient norm)",
              title_justify="left", show_lines=False)
    t.add_column(table.factor, justify="right", style="bold")
    t.add_column("epoch", justify="right")
    for model in table.models:
        t.add_column(f"{model} clipped", justify="right")
    for row, (value, keys) in enumerate(table.rows):
        runs = [view.runs[keys[m]] for m in table.models]
        for epoch in range(1, view.epochs + 1):
            cells = [_clip_cell(run, run.epochs.index(epoch)) if epoch in run.epochs else _missing(run, epoch)
                     for run in runs]
            t.add_row(value if epoch == 1 else "", str(epoch), *cells,
                      end_section=epoch == view.epochs and row < len(table.rows) - 1)
    return t


def _clip_cell(run: RunSeries, i: int) -> str:
    """'100% (3.1e+04)': the share of the epoch's batches clip_grad_norm_ scaled down, and the largest norm."""
    fraction, top = run.clipped[i], run.preclip_max[i]
    if fraction is None:
        return "[dim]—[/dim]"
    return f"{fraction:.0%} ({'inf' if top is None else f'{top:.2g}'})"


def _missing(run: RunSeries, epoch: int) -> str:
    if run.status == "pending" or (run.status == "interrupted" and epoch > len(run.epochs)):
        return "[dim]not run[/dim]"
    return "[dim]stopped[/dim]" if run.status in ("diverged", "failed") else "[dim]—[/dim]"


def notes(view: SweepView, mixed_hardware: bool = False) -> list[str]:
    """What a reader must know to compare the numbers (plain lines, markup-free)."""
    lines = ["s: training seconds of the epoch (evaluation excluded); val ppl: validation perplexity. "
             "'all ok': mean epoch seconds and mean final val ppl of the runs that ended ok."]
    if any(f is not None for r in view.runs.values() for f in r.clipped):
        lines.append("clipped (max norm): the share of the epoch's batches whose gradient norm was above --clip, "
                     "so clip_grad_norm_ scaled it down, and the largest norm before clipping.")
    rule = f"above the vocabulary size {view.vocab_size}" if view.vocab_size else "above the vocabulary size"
    diverged = [r.label for r in view.runs.values() if r.diverged]
    if diverged:
        lines.append(f"diverged (NaN loss, or val ppl {rule}, worse than a uniform guess, at two epochs in a row, "
                     f"or at the last of two or more): "
                     f"{', '.join(diverged)}; stopped early and left out of every average.")
        lines += [f"{r.label}: {r.message}" for r in view.runs.values() if r.diverged and "pre-clip" in r.message]
    unconverged = [r.label for r in view.runs.values() if r.not_converged]
    if unconverged:
        lines.append(f"not converged (val ppl {rule} after its only epoch: too little evidence to call it "
                     f"diverged; give it more --epochs): {', '.join(unconverged)}; left out of every average.")
    spiked = [r.label for r in view.runs.values() if r.counts and len(r.steady_ppl(view.vocab_size)) < len(r.finite_ppl)]
    if spiked:
        lines.append(f"*: the run's average val ppl leaves out its epochs {rule} (a bad epoch it recovered from): "
                     f"{', '.join(spiked)}; min / max still show them.")
    failed = [r.label for r in view.runs.values() if r.status in ("failed", "interrupted", "pending")]
    if failed:
        lines.append(f"not finished: {', '.join(failed)} (rerun the same command to continue).")
    jobs = view.parallel_jobs
    if jobs > 1:
        threads = {r.threads for r in view.runs.values() if r.epochs}
        lines.append(f"timings from up to {jobs} runs at once on one machine ({', '.join(map(str, sorted(threads, key=str)))} "
                     "thread(s) each): compare them with each other, not with a run alone.")
    lines += _hardware_notes(view, mixed_hardware)
    for host, (count, executor) in _shared_hosts(view).items():
        lines.append(f"up to {count} runs ran at once on {host} ({executor}): they shared its CPUs and memory, "
                     "so their times are not those of a run alone.")
    return lines


def _hardware_notes(view: SweepView, mixed_hardware: bool) -> list[str]:
    lines = []
    for table in view.tables:
        groups = view.hardware(table_keys(table))
        if len(groups) < 2:
            continue
        where = "; ".join(f"{hw}: {_some(labels)}" for hw, labels in groups.items())
        if mixed_hardware:
            lines.append(f"{table.factor}: runs ran on different hardware ({where}); their times are side by side "
                         "because of --mixed-hardware: compare with care.")
        else:
            lines.append(f"{table.factor}: runs ran on different hardware ({where}); their times are hidden (—) "
                         "rather than put side by side: rerun with --mixed-hardware to show them anyway.")
    everything = view.hardware()
    if len(view.hosts) > 1 and len(everything) == 1:
        lines.append(f"runs ran on {len(view.hosts)} hosts of the same hardware ({next(iter(everything))}).")
    elif len(view.hosts) > 1 and not everything:
        lines.append(f"runs ran on different hosts ({', '.join(view.hosts)}): their times are not comparable.")
    return lines


def _some(labels: list[str], most: int = 4) -> str:
    return ", ".join(labels[:most]) + (f" and {len(labels) - most} more" if len(labels) > most else "")


def _shared_hosts(view: SweepView) -> dict[str, tuple[int, str]]:
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


def sweep_tables(view: SweepView, mixed_hardware: bool = False) -> "RenderableType":
    """Every factor's table, then the notes."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    for table in view.tables:
        parts.append(factor_table(view, table, mixed_hardware))
        if has_clip_stats(view, table):
            parts.append(clip_table(view, table))
    parts += [Text(line, style="dim") for line in notes(view, mixed_hardware)]
    return Group(*parts)
