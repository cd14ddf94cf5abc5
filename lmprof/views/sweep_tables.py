"""A sweep's tables, as the homework laid them out: one per varied factor, models side by side.

Each table shows, for every value of the factor, each model's training
seconds and validation perplexity per epoch, then the run's total and
average time, average and min / max perplexity, and test perplexity. A
diverged run (NaN loss, or validation perplexity above the vocabulary size at two epochs in a row or the last)
says so in its cells and is left out of every average; the last row of a
table averages the runs that ended ok. ``summary_rows`` gives the same
figures as plain data (summary.csv, in ``lmprof.record.sweep_summary``).

Honest timings: a run's *hardware* is its GPU, or its CPU model and thread
count. When the runs of one table ran on different hardware, the table
says so and hides their times (a '—'), so they are not read side by side,
unless ``mixed_hardware=True`` (``--mixed-hardware``); perplexities are
shown either way. Runs that shared a host at the same time are noted too.

Input is the sweep's data model, ``lmprof.record.sweep_summary.SweepView``
(``sweep_view(plan_doc, rows)`` from sweep.json and results.jsonl).
"""

from __future__ import annotations

from statistics import mean
from typing import TYPE_CHECKING, Any

from lmprof.record.sweep_summary import FactorTable, RunSeries, SweepView, shared_hosts, table_keys

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _ppl(value: float | None) -> str:
    if value is None:
        return "inf"
    return f"{value:.3g}" if value >= 1e6 else f"{value:.2f}"


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


def has_speed(view: SweepView, table: FactorTable) -> bool:
    return any(view.runs[k].tokens_per_s for k in table_keys(table))


def speed_table(view: SweepView, table: FactorTable, mixed_hardware: bool = False) -> "Table":
    """Beside a factor's epoch seconds: each run's training tokens per second and ms per 1,000 tokens.

    Epoch seconds compare only runs that train on the same tokens; a bptt or batch size change (or
    --max-batches, which cuts every epoch at N batches of bptt x batch tokens) changes how many, so
    speed is read here, per token.
    """
    from rich.table import Table

    hide = view.mixed(table_keys(table)) and not mixed_hardware
    t = Table(title=f"{view.name}: {table.factor}: training speed (tokens/s · ms per 1k tokens)",
              title_justify="left", show_lines=False)
    t.add_column(table.factor, justify="right", style="bold")
    for model in table.models:
        t.add_column(f"{model} tokens/s", justify="right")
        t.add_column(f"{model} ms/1k tok", justify="right")
    for value, keys in table.rows:
        cells = [value]
        for model in table.models:
            run = view.runs[keys[model]]
            rate, per_1k = run.tokens_per_s, run.ms_per_1k_tokens
            cells += ["—", "—"] if hide and rate else [f"{rate:,.0f}" if rate else "", f"{per_1k:.1f}" if per_1k else ""]
        t.add_row(*cells)
    return t


def cut_note(view: SweepView) -> str | None:
    """When --max-batches cut the epochs: each 'epoch' retrains on the same first batches; read speed per token."""
    cuts = sorted(set(view.max_batches.values()))
    if not cuts:
        return None
    counts = " / ".join(str(c) for c in cuts)
    return (f"epochs cut by --max-batches {counts}: every 'epoch' trains on the same first {counts} batches of the "
            "corpus (not a pass over it), and runs with another bptt or batch size process a different number of "
            "tokens in those batches: compare tokens/s or ms per 1k tokens, not epoch seconds.")


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
             "'all ok': mean epoch seconds and mean final val ppl of the runs that ended ok. "
             "tokens/s: training tokens over training seconds, every epoch."]
    cut = cut_note(view)
    if cut:
        lines.append(cut)
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
    for host, (count, executor) in shared_hosts(view).items():
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


def sweep_tables(view: SweepView, mixed_hardware: bool = False) -> "RenderableType":
    """Every factor's table, then the notes."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    for table in view.tables:
        parts.append(factor_table(view, table, mixed_hardware))
        if has_speed(view, table):
            parts.append(speed_table(view, table, mixed_hardware))
        if has_clip_stats(view, table):
            parts.append(clip_table(view, table))
    parts += [Text(line, style="dim") for line in notes(view, mixed_hardware)]
    return Group(*parts)
