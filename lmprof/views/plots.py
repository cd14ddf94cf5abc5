"""Matplotlib figures of a sweep: validation perplexity and training time per epoch, ppl vs time.

Each figure has one line (or point) per configuration; a diverged run is
drawn in red with an x where it stopped and "(diverged)" in its legend
entry, and the vocabulary size (a uniform guess's perplexity) is a dotted
line on the perplexity plot. When the runs ran on different hardware, the two
timing figures draw no runs and say why, unless ``mixed_hardware=True``
(then their titles say so). Figures are built on ``matplotlib.figure.Figure``
with the Agg canvas (no pyplot, no global state, no display); ``save``
writes PNG and SVG atomically.

    >>> figures = sweep_figures(view)              # doctest: +SKIP
    >>> save(figures["val_ppl"], folder / "val_ppl")  # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmprof.fsutil import write_bytes_atomic
from lmprof.record.sections import VAL_PPL
from lmprof.record.sweep_summary import RunSeries, SweepView

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURES = (VAL_PPL, "epoch_time", "ppl_vs_time")  # file stems; the first is named after the key it plots
FORMATS = ("png", "svg")
RUN_GID = "run:"  # gid of every artist that stands for one configuration (tests count them)
_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D")


def new_figure(title: str, size: tuple[float, float] = (9.5, 5.0)) -> tuple["Figure", "Axes"]:
    """One titled, gridded axes on an off-screen figure (no pyplot state): every lmprof plot starts here."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _setting_index(view: SweepView, run: RunSeries) -> int:
    """Runs of one setting (e.g. nhid=400) share a colour, whatever the model."""
    settings = list(dict.fromkeys(r.label.removeprefix(r.model) for r in view.runs.values()))
    return settings.index(run.label.removeprefix(run.model))


def _style(view: SweepView, run: RunSeries) -> dict[str, Any]:
    """One colour per setting, one line style and marker per model; red x for a diverged run."""
    import matplotlib

    model_index = view.models.index(run.model) if run.model in view.models else 0
    tab10 = matplotlib.colormaps["tab10"]
    palette = [tab10(i) for i in range(10) if i != 3]  # tab10's red: kept for diverged runs
    colour = palette[_setting_index(view, run) % len(palette)]
    style: dict[str, Any] = {"color": colour, "linestyle": _LINESTYLES[model_index % len(_LINESTYLES)],
                             "marker": _MARKERS[model_index % len(_MARKERS)], "markersize": 4, "gid": RUN_GID + run.key,
                             "label": run.label + (" (diverged)" if run.diverged else
                                                   " (not converged)" if run.not_converged else "")}
    if run.diverged:
        style.update(color="tab:red", marker="x", markersize=8, alpha=0.8)
    return style


def _legend(ax: "Axes") -> None:
    if not ax.get_legend_handles_labels()[0]:
        return  # nothing measured yet
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def val_ppl_figure(view: SweepView) -> "Figure":
    fig, ax = new_figure(f"{view.name}: validation perplexity per epoch (log scale)")
    for run in view.runs.values():
        points = [(e, p) for e, p in zip(run.epochs, run.val_ppl) if p is not None]
        ax.plot([e for e, _ in points], [p for _, p in points], **_style(view, run))
    if view.vocab_size:
        ax.axhline(view.vocab_size, color="grey", linestyle=":", linewidth=1,
                   label=f"vocabulary size {view.vocab_size} (uniform guess);\n"
                         "above it at two epochs in a row,\nor at the last of two or more = diverged;\n"
                         "after a single epoch = not converged")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation perplexity")
    ax.set_xticks(range(1, max(view.epochs, 1) + 1))
    _legend(ax)
    return fig


def _refuse_mixed(view: SweepView, ax: "Axes", mixed_hardware: bool) -> bool:
    """Runs from different hardware: say so on the axes and draw no run (True), unless allowed."""
    groups = view.hardware()
    if len(groups) < 2 or mixed_hardware:
        return False
    kinds = "\n".join(f"{hw}: {len(labels)} run(s)" for hw, labels in groups.items())
    ax.text(0.5, 0.5, f"not drawn: these runs ran on different hardware\n{kinds}\n"
                      "rerun with --mixed-hardware to draw their times side by side",
            ha="center", va="center", transform=ax.transAxes, fontsize=9)
    return True


def epoch_time_figure(view: SweepView, mixed_hardware: bool = False) -> "Figure":
    """Training seconds per epoch (left) beside ms per 1,000 training tokens (right, when recorded).

    Epoch seconds compare runs that train on the same tokens; a bptt or batch size change, or
    --max-batches, changes how many, so the right panel puts every run on one scale: time per token.
    """
    cut = " (epochs cut by --max-batches: compare per token, right)" if view.max_batches else ""
    fig, ax = new_figure(f"{view.name}: training seconds per epoch{cut}" + _parallel_note(view, mixed_hardware),
                         size=(12.0, 5.0))
    per_token = any(run.ms_per_1k_tokens for run in view.runs.values())
    right = None
    if per_token:
        grid = fig.add_gridspec(1, 2)
        ax.set_subplotspec(grid[0])
        right = fig.add_subplot(grid[1])
        right.grid(True, alpha=0.3)
        right.set_title("ms per 1,000 training tokens (= 10^6 / tokens/s)", loc="left", fontsize=10)
    refused = _refuse_mixed(view, ax, mixed_hardware)
    if right is not None and refused:
        _refuse_mixed(view, right, mixed_hardware)
    if refused:
        return fig
    for run in view.runs.values():
        ax.plot(run.epochs, run.train_seconds, **_style(view, run))
        if right is not None:
            points = [(e, 1e6 * s / t) for e, s, t in zip(run.epochs, run.train_seconds, run.tokens) if t]
            if points:
                style = {**_style(view, run), "gid": None, "label": None}
                right.plot([p[0] for p in points], [p[1] for p in points], **style)
    for axes, label in ((ax, "training seconds"), *(((right, "ms per 1k tokens"),) if right is not None else ())):
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.set_xticks(range(1, max(view.epochs, 1) + 1))
        axes.set_ylim(bottom=0)
    if right is not None and ax.get_legend_handles_labels()[0]:  # one legend, right of both panels
        right.legend(*ax.get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                     frameon=False)
    else:
        _legend(ax)
    return fig


def ppl_vs_time_figure(view: SweepView, mixed_hardware: bool = False) -> "Figure":
    """Each run's total training time against its last validation perplexity: lower left is better."""
    fig, ax = new_figure(f"{view.name}: last validation perplexity vs total training time"
                          + _parallel_note(view, mixed_hardware))
    if _refuse_mixed(view, ax, mixed_hardware):
        return fig
    for run in view.runs.values():
        if not run.finite_ppl:
            continue
        style = _style(view, run)
        ax.scatter([run.total_seconds], [run.finite_ppl[-1]], color=style["color"], marker=style["marker"],
                   s=60 if run.diverged else 30, label=style["label"], gid=style["gid"])
        ax.annotate(run.label, (run.total_seconds, run.finite_ppl[-1]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel("total training seconds")
    ax.set_ylabel("last validation perplexity")
    _legend(ax)
    return fig


def _parallel_note(view: SweepView, mixed_hardware: bool = False) -> str:
    jobs = view.parallel_jobs
    note = f"\n(up to {jobs} runs at once on one machine: compare within this sweep only)" if jobs > 1 else ""
    kinds = len(view.hardware())
    if kinds > 1 and mixed_hardware:
        note += f"\n(mixed hardware: {kinds} kinds, drawn side by side because of --mixed-hardware)"
    return note


def sweep_figures(view: SweepView, mixed_hardware: bool = False) -> dict[str, "Figure"]:
    """name -> Figure, for every name in FIGURES."""
    return {VAL_PPL: val_ppl_figure(view), "epoch_time": epoch_time_figure(view, mixed_hardware),
            "ppl_vs_time": ppl_vs_time_figure(view, mixed_hardware)}


def run_artists(fig: "Figure") -> list[Any]:
    """The lines and points that stand for configurations (one per run)."""
    ax = fig.axes[0]
    return [a for a in [*ax.get_lines(), *ax.collections] if (a.get_gid() or "").startswith(RUN_GID)]


def save(fig: "Figure", base: str | Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write ``base.png`` and ``base.svg`` (atomically); return their paths."""
    paths = []
    for fmt in formats:
        buffer = io.BytesIO()
        # No date in the SVG: the same sweep gives the same file.
        fig.savefig(buffer, format=fmt, dpi=120, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(write_bytes_atomic(Path(f"{base}.{fmt}"), buffer.getvalue()))
    return paths
