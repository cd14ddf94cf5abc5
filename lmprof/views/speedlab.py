"""Views of a speedlab Ladder: the terminal ladder, and an HTML page with its two figures.

The tables are lmprof compare's ``Grid`` (plain strings), so the terminal
(``rich_grid``) and the page (``compare.html.j2``'s table) show the same
cells. The figures (speed-up per variant; speed-up against the ppl
difference) are matplotlib SVGs embedded as <img> data: URIs, as the report
embeds its figures. Nothing here prints or trains.

    >>> Console(width=160).print(ladder_view(ladder))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lmprof.comparison import BASELINE, FASTER, NOISE, SLOWER
from lmprof.experiments.speedlab.ladder import CLOSE, DIVERGED, FAILED, HELPS, HURTS, NO_GAIN, REFERENCE, SKIPPED, Ladder, Row
from lmprof.views.compare import Grid, interval, times

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import RenderableType

    from lmprof.views.html import Page

TEMPLATE = "speedlab.html.j2"
VERDICT_CLASS = {HELPS: "faster", HURTS: "slower", NO_GAIN: "noise", SKIPPED: "noise", DIVERGED: "slower",
                 FAILED: "slower",
                 FASTER: "faster", SLOWER: "slower", NOISE: "noise"}
VERDICT_STYLE = {HELPS: "bold green", HURTS: "bold red", NO_GAIN: "dim", SKIPPED: "dim", DIVERGED: "bold red",
                 FAILED: "bold red",
                 BASELINE: "dim"}


def _num(v: float | None, digits: int = 0) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def _share(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def _seconds(v: float | None) -> str:
    from lmprof.views.format import duration

    return "—" if v is None else duration(v)


def _range(bounds: list[float] | None) -> str:
    return "—" if not bounds else f"{bounds[0]:.2f}–{bounds[1]:.2f}"


def measured(ladder: Ladder) -> list[Row]:
    return [r for r in ladder.rows if r.status not in (SKIPPED, FAILED)]


def speed_grid(ladder: Ladder) -> Grid:
    rows = []
    for r in measured(ladder):
        one_off = r.compile_seconds if r.compile_seconds is not None else (r.setup_seconds or None)
        rows.append([r.name, _num(r.tokens_per_s), times(r.speedup), _range(r.speedup_range),
                     interval(r.speedup_interval), r.speed_verdict or "—",
                     _gflops(r, "forward"), _gflops(r, "backward"), _seconds(one_off), _share(r.floor_ratio)])
    columns = ["variant", "tokens/s", "×ref", "repeats", "95% interval", "speed", "fwd GFLOP/s (peak)",
               "bwd GFLOP/s (peak)", "setup/compile", "% floor"]
    peak = ladder.peak.get("gflops")
    caption = (f"Warm batches of the budget (the first batch is left out; its extra cost, in the first repeat, is the "
               f"compile column; setup: the threads probe). "
               f"×ref: the median over {ladder.repeats} repeats of tokens/s over the reference's in the same repeat; "
               f"repeats: slowest–fastest; the interval bootstraps every warm batch's time per token. speed says "
               f"faster or slower only beyond the {ladder.drift_margin:.0%} run-to-run drift (lmprof compare's rule). "
               f"% peak: of this machine's float32 matmul peak ({_num(peak, 1)} GFLOP/s), matmul FLOPs only. "
               + floor_caption(ladder))
    return Grid("speed", "Speed", columns, rows, [False] + [True] * 4 + [False] + [True] * 4, caption, [5])


def floor_note(floor: dict[str, Any]) -> str:
    """One line for the ladder: the floor's time per step and what it is (lmprof.experiments.speedlab.floor)."""
    from lmprof.views.format import duration

    kernels = floor.get("kernels_per_step")
    count = f", {kernels:,.0f} kernels per step" if kernels else ""
    return (f"{floor.get('kind', 'kernel')} floor: {duration(floor.get('seconds'))} per step, "
            f"{floor.get('what', '')}{count} (batch {floor.get('batch_size')}, {floor.get('steps')} profiled steps)")


def floor_caption(ladder: Ladder) -> str:
    """The floor row's words: what the floor is, its time per step, how to read % floor."""
    f = ladder.floor
    if not f:
        return "% floor: not measured."
    cpu = (" On a CPU the profiler's own cost sits inside the operators' times, so a fast row can read under "
           "100%: read it as a comparison, not a wall." if f.get("kind") == "operator" else "")
    return (f"{floor_note(f)[0].upper()}{floor_note(f)[1:]}. % floor: a row's time per token over the floor's "
            "(100%: nothing left but the kernels; the rest is launches, Python and waiting)." + cpu)


def floor_line(ladder: Ladder) -> str:
    """The row under the ladder: the floor and the fastest row against it."""
    f = ladder.floor
    if not f:
        return ""
    timed = [r for r in measured(ladder) if r.floor_ratio]
    best = min(timed, key=lambda r: r.floor_ratio or 0.0, default=None)
    closest = f"; closest: {best.name} at {best.floor_ratio:.0%} of it" if best and best.floor_ratio else ""
    return f"{floor_note(f)}{closest}"


def _gflops(row: Row, phase: str) -> str:
    value = row.gflops.get(phase)
    return "—" if value is None else f"{value:,.0f} ({_share(row.share_of_peak.get(phase))})"


def quality_grid(ladder: Ladder) -> Grid:
    rows = []
    for r in measured(ladder):
        losses = {"bitwise equal": "bitwise"}.get(r.losses, r.losses)
        losses += f" ({r.max_loss_diff:.0e})" if r.losses == "close" and r.max_loss_diff else ""
        rows.append([r.name, str(r.batch_size or "—"), _num(r.lr, 2), _num(r.val_ppl, 2),
                     "—" if r.ppl_diff is None or r.name == REFERENCE else f"{r.ppl_diff:+.2f}", losses or "—",
                     _seconds(r.time_to_quality), times(r.time_to_quality_speedup), r.verdict])
    columns = ["variant", "batch", "lr", "val ppl", "Δ ppl", "losses", "time to quality", "×sooner",
               "verdict"]
    target = "—" if ladder.target_ppl is None else f"{ladder.target_ppl:.2f}"
    caption = (f"val ppl on the first {ladder.valid_tokens:,} validation tokens after {ladder.budget_tokens:,} "
               f"training tokens. Time to quality: training seconds (plus setup and compile, evaluation left out) "
               f"until the val ppl first reaches the reference's {target}, checked every {ladder.eval_every_batches} "
               f"reference batches' worth of tokens; a variant short of it trains on to {ladder.overtime:g}x the "
               f"budget. losses: the training losses batch by batch against the reference's (bitwise equal, close: within "
               f"{CLOSE:.0e}, or changed).")
    return Grid("quality", "Quality and time to quality", columns, rows,
                [False, True, True, True, True, False, True, True, False], caption, [8])


def verdict_grid(ladder: Ladder) -> Grid:
    rows = [[r.name, r.verdict_line] for r in ladder.rows]
    return Grid("verdicts", "Verdicts", ["variant", "verdict"], rows, [False, False])


def why_grid(ladder: Ladder) -> Grid:
    rows = [[r.name, r.summary, r.why] for r in ladder.rows if r.name != REFERENCE]
    return Grid("why", "The variants: what each changes, and why it should help", ["variant", "change", "why"],
                rows, [False, False, False])


def header(ladder: Ladder) -> str:
    c, env = ladder.config, ladder.environment
    where = env.get("gpu") or env.get("cpu") or env.get("device", "?")
    return (f"{c.get('model')} emsize {c.get('emsize')} nhid {c.get('nhid')} nlayers {c.get('nlayers')} "
            f"bptt {c.get('bptt')} batch {c.get('batch_size')} · budget {ladder.budget_batches} batches "
            f"({ladder.budget_tokens:,} tokens{_from_seconds(ladder)}) · {ladder.repeats} repeats, interleaved · {where}, "
            f"{env.get('threads')} threads, torch {env.get('torch')} · {ladder.wall_seconds:.0f} s in all")


def _from_seconds(ladder: Ladder) -> str:
    s = ladder.budget_seconds
    return f", what the reference trained in {s:g} s" if isinstance(s, (int, float)) and s > 0 else ""


def closing(ladder: Ladder) -> list[str]:
    """The best set and its time-to-quality ratio, or why there is none."""
    combos = [r for r in ladder.rows if len(r.members) > 1 and r.status == "measured"]
    lines = [floor_line(ladder)] if ladder.floor else []
    for r in combos:
        lines.append(f"best combination {r.name}: reaches the reference's ppl "
                     f"{times(r.time_to_quality_speedup)} sooner ({_seconds(r.time_to_quality)}), "
                     f"{times(r.speedup)} tokens/s")
    return lines + [f"note: {n}" for n in ladder.notes]


def ladder_grids(ladder: Ladder) -> list[Grid]:
    return [speed_grid(ladder), quality_grid(ladder), verdict_grid(ladder)]


# --- the terminal ------------------------------------------------------------------------------
def ladder_view(ladder: Ladder) -> "RenderableType":
    """What ``lmprof speedlab`` prints: the header, the two tables, a verdict per variant, the best set."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from lmprof.views.compare import rich_grid

    parts: list[Any] = [Text(header(ladder), style="bold"), Text("")]
    for grid in ladder_grids(ladder)[:2]:
        table = rich_grid(grid)
        if isinstance(table, Table):  # cells whole (a narrow terminal cuts the table, not the words)
            for column in table.columns:
                column.no_wrap = True
            table.columns[0].min_width = max(len(r[0]) for r in grid.rows)
        parts += [table, Text("")]
    verdicts = Table(title="Verdicts", title_justify="left", title_style="bold", show_header=False, box=None,
                     padding=(0, 1, 0, 0))
    verdicts.add_column(no_wrap=True)
    verdicts.add_column()
    for r in ladder.rows:
        verdicts.add_row(Text(r.name, style=VERDICT_STYLE.get(r.verdict, "")), r.verdict_line)
    parts += [verdicts, Text("")]
    parts += [Text(line, style="yellow" if line.startswith("note") else "bold") for line in closing(ladder)]
    return Group(*parts)


# --- figures -------------------------------------------------------------------------------------
def _figure(title: str) -> tuple["Figure", Any]:
    from lmprof.views.plots import new_figure

    return new_figure(title, size=(8.5, 4.2))


def speedup_figure(ladder: Ladder) -> "Figure":
    """Bars: tokens/s and time to quality, each over the reference's (1 = the reference)."""
    rows = [r for r in measured(ladder) if r.name != REFERENCE]
    fig, ax = _figure("Speed-up over the reference (higher is better)")
    ys = range(len(rows))
    tps = [r.speedup or 0.0 for r in rows]
    ttq = [r.time_to_quality_speedup or 0.0 for r in rows]
    ax.barh([y - 0.2 for y in ys], tps, height=0.38, color="#8fb3d9", label="tokens/s")
    errs = [[max(0.0, (r.speedup or 0) - r.speedup_range[0]) if r.speedup_range else 0 for r in rows],
            [max(0.0, r.speedup_range[1] - (r.speedup or 0)) if r.speedup_range else 0 for r in rows]]
    ax.errorbar(tps, [y - 0.2 for y in ys], xerr=errs, fmt="none", ecolor="#335", capsize=2, lw=0.8)
    ax.barh([y + 0.2 for y in ys], ttq, height=0.38, color="#2c7a4b", label="time to quality")
    for y, r in zip(ys, rows):
        if r.time_to_quality_speedup is None:
            ax.text(0.02, y + 0.2, "never reached", va="center", fontsize=8, color="#b3261e")
    ax.axvline(1.0, color="#444", lw=1)
    ax.set_yticks(list(ys), [r.name for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("× the reference (error bars: slowest–fastest repeat)")
    ax.legend(loc="upper right", fontsize=8)  # the large bars (adaptive, combinations) sit low
    return fig


def scatter_figure(ladder: Ladder) -> "Figure":
    """Points: tokens/s speed-up against the ppl difference after the same budget."""
    rows = [r for r in measured(ladder) if r.name != REFERENCE and r.speedup is not None and r.ppl_diff is not None]
    fig, ax = _figure("Speed-up vs quality after the same tokens")
    colours = {HELPS: "#2c7a4b", HURTS: "#b3261e", NO_GAIN: "#777"}
    same_ppl: dict[float, list[Row]] = {}  # bitwise-equal variants share a ppl: one label for the cluster
    for r in rows:
        ax.scatter([r.ppl_diff], [r.speedup], color=colours.get(r.verdict, "#777"), s=36, zorder=3)
        same_ppl.setdefault(round(r.ppl_diff or 0.0, 2), []).append(r)
    for group in same_ppl.values():
        top = max(group, key=lambda r: r.speedup or 0.0)
        ax.annotate(", ".join(r.name for r in group), (top.ppl_diff, top.speedup), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.axhline(1.0, color="#444", lw=1)
    ax.axvline(0.0, color="#444", lw=1)
    ax.set_xlabel("val ppl − the reference's (left is better)")
    ax.set_ylabel("tokens/s × the reference")
    return fig


def svg_text(fig: "Figure") -> str:
    import io

    out = io.StringIO()
    fig.savefig(out, format="svg")
    return out.getvalue()


# --- the page ----------------------------------------------------------------------------------
def speedlab_page(ladder: Ladder) -> "Page":
    import base64

    from lmprof.views.html import Page, Section, image_html as _image

    def image(fig: "Figure", name: str) -> str:  # an <img> with a data: URI, as the report embeds a figure
        return _image("svg+xml", base64.b64encode(svg_text(fig).encode("utf-8")).decode("ascii"), name)

    figures = {"speedup": image(speedup_figure(ladder), "speedup.svg"),
               "speedup_vs_ppl": image(scatter_figure(ladder), "speedup_vs_ppl.svg")}
    sections = [Section(f"sl-{g.id}", g.title, data={"grid": g, "verdict_class": VERDICT_CLASS})
                for g in ladder_grids(ladder)]
    sections.insert(0, Section("plots", "Speed-up and quality", data={"figures": figures}))
    sections.append(Section("sl-why", "The variants", data={"grid": why_grid(ladder), "verdict_class": {}}))
    notes = closing(ladder)
    if notes:
        sections.append(Section("cmp-notes", "Best set and notes", data={"notes": notes}))
    env = ladder.environment
    headline = [("target ppl", _num(ladder.target_ppl, 2)), ("budget", f"{ladder.budget_tokens:,} tokens"),
                ("repeats", str(ladder.repeats)), ("machine", str(env.get("gpu") or env.get("cpu"))),
                ("threads", str(env.get("threads"))), ("torch", str(env.get("torch")))]
    return Page(title="lmprof speedlab", subtitle=header(ladder), kind="speedlab", headline=headline,
                sections=sections)


def speedlab_html(ladder: Ladder) -> str:
    """The ladder as one self-contained HTML page, in the report's style."""
    from lmprof.views.html import render

    return render(speedlab_page(ladder), TEMPLATE)
