"""A sweep's tables, as the homework laid them out: one per varied factor, models side by side.

Each table shows, for every value of the factor, each model's training
seconds and validation perplexity per epoch, then the run's total and
average time, average and min / max perplexity, and test perplexity. A
diverged run (NaN loss, or validation perplexity above the vocabulary size)
says so in its cells and is left out of every average; the last row of a
table averages the runs that ended ok. ``summary_rows`` gives the same
figures as plain data (summary.csv).

Input is plain data: ``sweep_view(plan_doc, rows)`` from sweep.json and the
rows of results.jsonl (see ``lmprof.sweep.store``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from statistics import mean
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table


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
    test_ppl: float | None = None
    nparams: int | None = None
    jobs: int = 1  # runs at once when it was measured
    threads: int | None = None
    host: str | None = None

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def counts(self) -> bool:
        """Does it enter averages? Only runs that ended ok."""
        return self.status == "ok"

    @property
    def total_seconds(self) -> float:
        return sum(self.train_seconds)

    @property
    def finite_ppl(self) -> list[float]:
        return [p for p in self.val_ppl if p is not None]


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
            series.jobs = max(series.jobs, int(row.get("jobs") or 1))
            series.threads = row.get("threads")
            if series.status == "pending":
                series.status = "interrupted"  # epochs but no end (yet)
        elif row.get("kind") == "run":
            series.status = str(row.get("status"))
            series.message = str(row.get("message") or "")
            series.test_ppl, series.nparams, series.host = row.get("test_ppl"), row.get("nparams"), row.get("host")
            vocab = row.get("vocab_size") or vocab
    for series in runs.values():
        order = sorted(range(len(series.epochs)), key=series.epochs.__getitem__)
        for name in ("epochs", "train_seconds", "val_ppl"):
            values = getattr(series, name)
            setattr(series, name, [values[i] for i in order])
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
    """One row per table, value and model: the figures of the summary lines (summary.csv)."""
    out = []
    for table in view.tables:
        for value, keys in table.rows:
            for model in table.models:
                run = view.runs[keys[model]]
                ok = run.counts and run.finite_ppl
                out.append({
                    "factor": table.factor, "value": value, "model": model, "run": run.label,
                    "status": run.status, "epochs": len(run.epochs),
                    "total_seconds": round(run.total_seconds, 4) if run.epochs else None,
                    "avg_epoch_seconds": round(mean(run.train_seconds), 4) if run.epochs else None,
                    "min_val_ppl": min(run.finite_ppl) if ok else None,
                    "max_val_ppl": max(run.finite_ppl) if ok else None,
                    "avg_val_ppl": mean(run.finite_ppl) if ok else None,
                    "final_val_ppl": run.val_ppl[-1] if ok else None,
                    "test_ppl": run.test_ppl if run.counts else None,
                    "nparams": run.nparams, "parallel_jobs": run.jobs, "threads": run.threads,
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


def factor_table(view: SweepView, table: FactorTable) -> "Table":
    from rich.table import Table

    t = Table(title=f"{view.name}: {table.factor}", title_justify="left", show_lines=False)
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
                    last_of_diverged = run.diverged and i == len(run.epochs) - 1
                    cells += [_seconds(run.train_seconds[i]),
                              f"[red]{_ppl(run.val_ppl[i])} diverged[/red]" if last_of_diverged
                              else _ppl(run.val_ppl[i])]
                else:
                    cells += ["", _missing(run, epoch)]
            t.add_row(*cells)
        summary: dict[str, list[str]] = {"total": [], "average": [], "min / max": [], "test": []}
        for run in runs:
            excluded = None if run.counts else f"[red]{run.status}[/red]" if run.epochs else "—"
            ppl = run.finite_ppl
            summary["total"] += [_seconds(run.total_seconds) if run.epochs else "", ""]
            summary["average"] += [_seconds(mean(run.train_seconds)) if run.epochs else "",
                                   excluded or _ppl(mean(ppl))]
            summary["min / max"] += ["", excluded or f"{_ppl(min(ppl))} / {_ppl(max(ppl))}"]
            summary["test"] += ["", excluded or _ppl(run.test_ppl)]
        names = list(summary)
        for name in names:
            t.add_row("", f"[dim]{name}[/dim]", *summary[name], end_section=name == names[-1])
    cells = ["all ok", ""]
    for model in table.models:
        ok = [view.runs[keys[model]] for _, keys in table.rows if view.runs[keys[model]].counts]
        cells += [_seconds(mean(s for r in ok for s in r.train_seconds)) if ok else "—",
                  _ppl(mean(r.finite_ppl[-1] for r in ok)) if ok else "—"]
    t.add_row(*[f"[bold]{c}[/bold]" if c else c for c in cells])
    return t


def _missing(run: RunSeries, epoch: int) -> str:
    if run.status == "pending" or (run.status == "interrupted" and epoch > len(run.epochs)):
        return "[dim]not run[/dim]"
    return "[dim]stopped[/dim]" if run.status in ("diverged", "failed") else "[dim]—[/dim]"


def notes(view: SweepView) -> list[str]:
    """What a reader must know to compare the numbers (plain lines, markup-free)."""
    lines = ["s: training seconds of the epoch (evaluation excluded); val ppl: validation perplexity. "
             "'all ok': mean epoch seconds and mean final val ppl of the runs that ended ok."]
    diverged = [r.label for r in view.runs.values() if r.diverged]
    if diverged:
        rule = f"above the vocabulary size {view.vocab_size}" if view.vocab_size else "above the vocabulary size"
        lines.append(f"diverged (NaN loss, or val ppl {rule}, worse than a uniform guess): "
                     f"{', '.join(diverged)}; stopped early and left out of every average.")
    failed = [r.label for r in view.runs.values() if r.status in ("failed", "interrupted", "pending")]
    if failed:
        lines.append(f"not finished: {', '.join(failed)} (rerun the same command to continue).")
    jobs = view.parallel_jobs
    if jobs > 1:
        threads = {r.threads for r in view.runs.values() if r.epochs}
        lines.append(f"timings from up to {jobs} runs at once on one machine ({', '.join(map(str, sorted(threads, key=str)))} "
                     "thread(s) each): compare them with each other, not with a run alone.")
    if len(view.hosts) > 1:
        lines.append(f"runs ran on different hosts ({', '.join(view.hosts)}): their times are not comparable.")
    return lines


def sweep_tables(view: SweepView) -> "RenderableType":
    """Every factor's table, then the notes."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [factor_table(view, table) for table in view.tables]
    parts += [Text(line, style="dim") for line in notes(view)]
    return Group(*parts)
