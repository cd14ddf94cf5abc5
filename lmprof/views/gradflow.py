"""Gradient flow through time: tables and the plot of dLoss_T/dh_t against steps back from the loss.

Reads a ``GradientFlow`` (``lmprof.instrument.gradients``) and returns rich
tables and a matplotlib figure; never prints, never trains.

    >>> figure = flow_figure(flow)            # doctest: +SKIP
    >>> save(figure, folder / "gradflow")     # doctest: +SKIP  (gradflow.png and gradflow.svg)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from lmprof.instrument.gradients import GradientFlow, decay_factor, steps_until

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import RenderableType

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


def step_table(flow: GradientFlow, kind: str) -> "RenderableType":
    from rich.table import Table

    states = flow.curves[kind]
    table = Table(title=f"{kind}: |dLoss_T/d state_t| per step (mean over {flow.batches} batches)",
                  title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("t", justify="right")
    table.add_column("back", justify="right", style="dim")
    for state, layers in states.items():
        for layer in range(1, len(layers) + 1):
            table.add_column(f"{STATE_NAMES.get(state, state)} L{layer}", justify="right")
            table.add_column("÷ last", justify="right", style="dim")
    for row in step_rows(flow, kind):
        cells = [str(row["t"]), str(row["back"])]
        for key, (norm, ratio) in ((k, v) for k, v in row.items() if k not in ("t", "back")):
            cells += [f"{norm:.2e}", "" if ratio is None else f"{ratio:.2g}"]
        table.add_row(*cells)
    return table


def summary_table(flow: GradientFlow) -> "RenderableType":
    from rich.table import Table

    table = Table(title=f"How far back the gradient reaches (bptt {flow.config['bptt']}, loss at the last step)",
                  title_justify="left", show_edge=False, pad_edge=False)
    for name, justify in (("model", "left"), ("gradient", "left"), ("layer", "right"),
                          ("decay per step", "right"), ("steps to 1%", "right"), ("t=1 ÷ t=T", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in summary_rows(flow):
        reach = row["steps_to_1pct"]
        table.add_row(row["kind"], STATE_NAMES.get(row["state"], row["state"]), str(row["layer"]),
                      f"{row['decay']:.3f}", f"> {flow.config['bptt'] - 1}" if reach is None else str(reach),
                      "" if row["first_share"] is None else f"{row['first_share']:.1e}")
    return table


def flow_view(flow: GradientFlow) -> "RenderableType":
    """The step tables, one per kind, then the summary."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    for kind in flow.curves:
        parts += [step_table(flow, kind), Text("")]
    parts.append(summary_table(flow))
    parts.append(Text("decay per step: (|g at t=1| ÷ |g at t=T|)^(1/(T-1)); below 1 the gradient vanishes "
                      "going back, above 1 it explodes.", style="dim"))
    return Group(*parts)


def flow_figure(flow: GradientFlow) -> "Figure":
    """Norm against steps back from the loss, log scale: one line per kind and layer (c dashed)."""
    import matplotlib

    from lmprof.views.plots import new_figure

    cfg = flow.config
    trained = "trained weights" if cfg.get("trained") else "at initialisation"
    fig, ax = new_figure(f"Gradient flow through time: |dLoss_T / dh_t| by steps back from the loss\n"
                          f"bptt {cfg['bptt']}, {cfg['nlayers']} layer(s), nhid {cfg['nhid']}, {trained}, "
                          f"mean of {flow.batches} batches")
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

    return [{"epoch": str(e["epoch"]), "batches": str(e["batches"]), "median": norm(e.get("preclip_norm_median")),
             "max": norm(e.get("preclip_norm_max")), "clipped": f"{e['clipped_fraction']:.0%}"}
            for e in gradients.get("epochs", [])]


def clip_lines(gradients: dict[str, Any]) -> list[str]:
    """One line per epoch for the terminal: 'epoch 1: pre-clip norm median 0.248, max 5.31; clipped 48% of 143 batches'."""
    clip = gradients.get("clip")
    return [f"epoch {r['epoch']}: pre-clip gradient norm median {r['median']}, max {r['max']}; "
            f"clipped {r['clipped']} of {r['batches']} batches (--clip {clip})" for r in clip_rows(gradients)]
