"""Gradient flow through time: tables and the plot of dLoss_T/dh_t against steps back from the loss.

Reads a ``GradientFlow`` (``lmprof.experiments.gradient_flow``) and returns rich
tables and a matplotlib figure; never prints, never trains.

    >>> figure = flow_figure(flow)            # doctest: +SKIP
    >>> save(figure, folder / "gradflow")     # doctest: +SKIP  (gradflow.png and gradflow.svg)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from lmprof.experiments.gradient_flow import GradientFlow, decay_factor, steps_until
from lmprof.record.sections import CLIPPED_FRACTION, PRECLIP_NORM_MAX, PRECLIP_NORM_MEDIAN

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import RenderableType

    from lmprof.experiments.gradient_draws import FlowDraws

STATE_NAMES = {"h": "dL/dh", "c": "dL/dc"}
SHARE = 0.01  # "how many steps back until the gradient is 1% of the last step's"


def series(flow: GradientFlow) -> Iterator[tuple[str, str, int, list[float]]]:
    """(kind, state, layer, norms t = 1..T) for every curve, in the order measured."""
    for kind, states in flow.curves.items():
        for state, layers in states.items():
            for layer, norms in enumerate(layers, start=1):
                yield kind, state, layer, norms


def series_label(kind: str, state: str, layer: int) -> str:
    return f"{kind} {STATE_NAMES.get(state, state)} layer {layer}"


def summary_rows(flow: GradientFlow) -> list[dict[str, Any]]:
    """Per curve: the mean decay factor per step, steps back until 1% of the last step, share at t = 1."""
    return [{"kind": kind, "state": state, "layer": layer, "decay": decay_factor(norms),
             "steps_to_1pct": steps_until(norms, SHARE), "first_share": norms[0] / norms[-1] if norms[-1] else None,
             "last": norms[-1]}
            for kind, state, layer, norms in series(flow)]


def step_rows(flow: GradientFlow, kind: str) -> list[dict[str, Any]]:
    """One row per time step t: steps back, and per state and layer the norm and its ratio to t = T."""
    states = flow.curves[kind]
    steps = len(next(iter(states.values()))[0])
    rows = []
    for t in range(1, steps + 1):
        row: dict[str, Any] = {"t": t, "back": steps - t}
        for state, layers in states.items():
            for layer, norms in enumerate(layers, start=1):
                row[f"{state}{layer}"] = (norms[t - 1], norms[t - 1] / norms[-1] if norms[-1] else None)
        rows.append(row)
    return rows


def step_table(flow: GradientFlow, kind: str, state: str | None = None) -> "RenderableType":
    """|dLoss_T/d state_t| per step t, one column pair (norm, ÷ last) per layer; one state per table
    (h, then c), so the table keeps to 80 columns and numbers wrap whole, never cut."""
    from rich.table import Table

    states = flow.curves[kind]
    shown = [state] if state else list(states)
    name = " and ".join(STATE_NAMES.get(s, s) for s in shown)
    table = Table(title=f"{kind}: |{name}| per step t (mean over {flow.batches} batches)",
                  title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("t", justify="right", no_wrap=True)
    table.add_column("back", justify="right", style="dim", no_wrap=True)
    for s in shown:
        for layer in range(1, len(states[s]) + 1):
            table.add_column(f"{STATE_NAMES.get(s, s)} L{layer}", justify="right", no_wrap=True)
            table.add_column("÷ last", justify="right", style="dim", no_wrap=True)
    for row in step_rows(flow, kind):
        cells = [str(row["t"]), str(row["back"])]
        for key, (norm, ratio) in ((k, v) for k, v in row.items() if k not in ("t", "back")):
            if key.rstrip("0123456789") in shown:
                cells += [f"{norm:.2e}", "" if ratio is None else f"{ratio:.2g}"]
        table.add_row(*cells)
    return table


def _steps_text(steps: "list[int | None]", bptt: int) -> str:
    """'9 (8–10)': median and range over draws; a draw that never fell below 1% reads '> T-1'."""
    from lmprof.experiments.gradient_draws import median_steps

    beyond = f"> {bptt - 1}"

    def one(value: "int | float | None") -> str:
        return beyond if value is None else f"{value:g}"

    if len(steps) == 1:
        return one(steps[0])
    known = [s for s in steps if s is not None]
    low = one(min(known)) if known else beyond
    high = beyond if None in steps else one(max(known))
    return one(median_steps(steps)) + ("" if low == high else f" ({low}–{high})")


def _decay_text(decays: list[float]) -> str:
    import math
    import statistics

    finite = [d for d in decays if math.isfinite(d)]
    if not finite:
        return "—"
    middle = statistics.median(finite)
    return f"{middle:.3f}" + ("" if len(finite) == 1 else f" ({min(finite):.3f}–{max(finite):.3f})")


def draws_rows(draws: "FlowDraws") -> list[dict[str, str]]:
    """The summary as text, one row per kind, state and layer: what `gradflow` and `explain bptt` both print."""
    return [{"kind": f["kind"], "state": STATE_NAMES.get(f["state"], f["state"]), "layer": str(f["layer"]),
             "decay": _decay_text(f["decay"]), "steps": _steps_text(f["steps_to_1pct"], draws.bptt)}
            for f in draws.figures()]


def draws_table(draws: "FlowDraws") -> "RenderableType":
    """How far back the gradient reaches: median (range) over the draws' seeds."""
    from rich.table import Table

    seeds = draws.seeds
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"{len(seeds)} draws, seeds {seeds[0]}–{seeds[-1]}"
    table = Table(title=f"How far back the gradient reaches (bptt {draws.bptt}, loss at the last step; "
                        f"median (range) of {which})", title_justify="left", show_edge=False, pad_edge=False)
    for name, justify in (("model", "left"), ("gradient", "left"), ("layer", "right"),
                          ("decay per step", "right"), ("steps to 1%", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in draws_rows(draws):
        table.add_row(row["kind"], row["state"], row["layer"], row["decay"], row["steps"])
    return table


def summary_table(flow: GradientFlow) -> "RenderableType":
    """One draw's summary (a GradientFlow alone): decay per step, steps to 1%, t=1 ÷ t=T."""
    from rich.table import Table

    table = Table(title=f"How far back the gradient reaches (bptt {flow.config['bptt']}, loss at the last step)",
                  title_justify="left", show_edge=False, pad_edge=False)
    for name, justify in (("model", "left"), ("gradient", "left"), ("layer", "right"),
                          ("decay per step", "right"), ("steps to 1%", "right"), ("t=1 ÷ t=T", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in summary_rows(flow):
        reach = row["steps_to_1pct"]
        table.add_row(row["kind"], STATE_NAMES.get(row["state"], row["state"]), str(row["layer"]),
                      f"{row['decay']:.3f}", f"> {flow.config['bptt'] - 1}" if reach is None else str(reach),
                      "" if row["first_share"] is None else f"{row['first_share']:.1e}")
    return table


DECAY_NOTE = ("decay per step: (|g at t=1| ÷ |g at t=T|)^(1/(T-1)); below 1 the gradient vanishes going back, "
              "above 1 it explodes. steps to 1%: steps back until the gradient is below 1% of the last step's.")


def flow_view(flow: "GradientFlow | FlowDraws") -> "RenderableType":
    """The step tables (mean over the draws), one per kind and state, then the summary with its spread."""
    from rich.console import Group
    from rich.text import Text

    from lmprof.experiments.gradient_draws import FlowDraws

    draws = flow if isinstance(flow, FlowDraws) else None
    mean = draws.mean_flow() if draws else flow
    assert isinstance(mean, GradientFlow)
    parts: list[Any] = []
    for kind, states in mean.curves.items():
        for state in states:
            parts += [step_table(mean, kind, state), Text("")]
    parts.append(draws_table(draws) if draws else summary_table(mean))
    parts.append(Text(DECAY_NOTE, style="dim"))
    return Group(*parts)


def flow_figure(flow: GradientFlow) -> "Figure":
    """Norm against steps back from the loss, log scale: one line per kind and layer (c dashed)."""
    import matplotlib

    from lmprof.views.plots import new_figure

    cfg = flow.config
    trained = "trained weights" if cfg.get("trained") else "at initialisation"
    fig, ax = new_figure(f"Gradient flow through time: |dLoss_T / dh_t| by steps back from the loss\n"
                          f"bptt {cfg['bptt']}, {cfg['nlayers']} layer(s), nhid {cfg['nhid']}, {trained}, "
                          f"mean of {flow.batches} batches" + (f" and {len(cfg['seeds'])} seeds"
                                                               if len(cfg.get("seeds") or []) > 1 else ""))
    tab10 = matplotlib.colormaps["tab10"]
    kinds = list(flow.curves)
    layer_styles = ("-", "-.", ":", (0, (5, 1)))
    for kind, state, layer, norms in series(flow):
        back = list(range(len(norms) - 1, -1, -1))  # t = 1 is T-1 steps back
        style = {"color": tab10(kinds.index(kind) % 10), "linewidth": 2.0 if state == "h" else 1.2,
                 "linestyle": layer_styles[(layer - 1) % len(layer_styles)], "marker": "o" if state == "h" else "",
                 "markersize": 3, "alpha": 1.0 if state == "h" else 0.55}
        ax.plot(back, norms, label=series_label(kind, state, layer), gid=f"flow:{kind}:{state}:{layer}", **style)
    ax.set_yscale("log")
    ax.set_xlabel("steps back from the loss (0: the last step, t = T)")
    ax.set_ylabel("gradient norm (log scale)")
    ax.set_xlim(left=-0.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def clip_rows(gradients: dict[str, Any]) -> list[dict[str, str]]:
    """result.json's gradients section, one row per epoch, as text: median and max norm, % clipped."""
    def norm(value: float | None) -> str:
        return "inf" if value is None or value == float("inf") else f"{value:.3g}"

    return [{"epoch": str(e["epoch"]), "batches": str(e.get("batches", "?")),
             "median": norm(e.get(PRECLIP_NORM_MEDIAN)), "max": norm(e.get(PRECLIP_NORM_MAX)),
             "clipped": f"{e[CLIPPED_FRACTION]:.0%}" if CLIPPED_FRACTION in e else "?"}
            for e in gradients.get("epochs", [])]


def clip_lines(gradients: dict[str, Any]) -> list[str]:
    """One line per epoch for the terminal: 'epoch 1: pre-clip norm median 0.248, max 5.31; clipped 48% of 143 batches'."""
    clip = gradients.get("clip")
    return [f"epoch {r['epoch']}: pre-clip gradient norm median {r['median']}, max {r['max']}; "
            f"clipped {r['clipped']} of {r['batches']} batches (--clip {clip})" for r in clip_rows(gradients)]
