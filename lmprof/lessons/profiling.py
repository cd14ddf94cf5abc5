"""profiling: how to read lmprof's phase, component and line tables, why GPU timing needs care, what a trace adds."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from rich.console import RenderableType

from lmprof.lessons import TOPICS
from lmprof.lessons.page import code, page, prose, section, table
from lmprof.phases import STEP_PHASES, UNCOVERED
from lmprof.record.sections import TRAIN_COVERAGE, TRAIN_TOKENS, WALL_SECONDS


# Headers over two lines, so that at 80 columns the phase names keep one line and every number its cell.
PHASE_COLUMNS = ["phase", "calls", "ms", "median\nms/step", "share\nof run", "share\nof step"]
COMPONENT_COLUMNS = ["component", "forward\nms", "backward\nms", "share\nof step"]


def demo(max_batches: int = 30, size: int = 64, bptt: int = 35, batch_size: int = 20,
         train_tokens: int = 22_000, warmup: int = 5) -> dict[str, Any]:
    """Train a tiny model for ``max_batches`` batches under the phase and component timers.

    The first ``warmup`` steps (first-call allocations, caches) are left out of the
    medians and of the component table.
    """
    from lmprof.config import RunConfig
    from lmprof.corpora import synth
    from lmprof.instrument.components import ComponentInstrument
    from lmprof.instrument.recorders import PhaseInstrument
    from lmprof.runner import run
    from lmprof.record.derived import component_rows

    with tempfile.TemporaryDirectory(prefix="lmprof-explain-") as tmp:
        corpus = synth.write(Path(tmp) / "corpus", sizes={"train": train_tokens, "valid": 800, "test": 800})
        cfg = RunConfig(data=str(corpus), emsize=size, nhid=size, epochs=1, max_batches=max_batches,
                        bptt=bptt, batch_size=batch_size, device="cpu")
        warmup = max(0, min(warmup, max_batches - 1))
        result = run(cfg, command="explain", instruments=[PhaseInstrument(), ComponentInstrument(warmup=warmup)],
                     log=lambda line: None, run_dir=Path(tmp) / "run")
    phases = [{k: row[k] for k in ("name", "label", "calls", "seconds", "share")} for row in result.phases]
    for phase, row in zip(phases, result.phases):
        measured = row.get("samples", [])[warmup:]
        phase["median_seconds"] = statistics.median(measured) if measured else None
    step = [row for row in phases if row["name"] in STEP_PHASES]
    step_total = sum(row["seconds"] for row in step)
    return {
        "config": {"model": cfg.model, "emsize": size, "nhid": size, "nlayers": cfg.nlayers, "bptt": bptt,
                   "batch_size": batch_size, "batches": max_batches, TRAIN_TOKENS: train_tokens},
        "device": result.environment.get("device"),
        "clock": result.phase_summary.get("clock"),
        WALL_SECONDS: result.phase_summary.get(WALL_SECONDS),
        TRAIN_COVERAGE: result.phase_summary.get(TRAIN_COVERAGE),
        "phases": phases,
        "step_shares": {row["name"]: row["seconds"] / step_total if step_total > 0 else 0.0 for row in step},
        "slowest_step_phase": max(step, key=lambda row: row["seconds"])["name"] if step else None,
        "warmup": warmup,
        "components": [{k: r[k] for k in ("name", "label", "forward", "backward", "share")}
                       for r in component_rows(result)],
        "ntokens": result.metrics.get("ntokens", 0),
    }


def render(numbers: dict[str, Any]) -> RenderableType:
    return page("profiling", TOPICS["profiling"], *phase_part(numbers), *components_part(numbers), *line_part(),
                *gpu_part(), *trace_part())


def phase_part(numbers: dict[str, Any]) -> list[RenderableType]:
    """The live run's phase table, and how to read each column."""
    c = numbers["config"]
    shares = numbers["step_shares"]
    rows = [(r["label"] if r["name"] != UNCOVERED else UNCOVERED, str(r["calls"] or ""),
             f"{r['seconds'] * 1000:.1f}",
             f"{r['median_seconds'] * 1000:.2f}" if r.get("median_seconds") is not None else "",
             f"{r['share']:.1%}",
             f"{shares[r['name']]:.1%}" if r["name"] in shares else "") for r in numbers["phases"]]
    slowest = numbers["slowest_step_phase"]
    coverage = numbers[TRAIN_COVERAGE]
    coverage_text = f"{coverage:.1%}" if coverage is not None else "an unknown share"
    return [
        section("A phase table: where a run's time goes"),
        prose(f"""
            The reference loop marks each part of its work with `with phase("backward"): ...`;
            a phase timer adds up the time inside each mark. Live now: a tiny {c['model']} (nhid
            {c['nhid']}, bptt {c['bptt']}, batch {c['batch_size']}) trained for {c['batches']} batches
            on {numbers['device']}, clock: {numbers['clock']}:
        """),
        table(f"phases of one short run, {numbers[WALL_SECONDS]:.2f} s wall",
              PHASE_COLUMNS, rows, right=PHASE_COLUMNS[1:]),
        prose(f"""
            - **calls**: how often the phase ran; per-step phases run once per batch ({c['batches']}).
            - **median ms/step**: the typical step, after {numbers['warmup']} warm-up steps left out (the
              first steps pay for allocations and caches); a median ignores the odd slow step.
            - **share of run**: of the whole wall time, including reading the corpus, building the
              model and evaluating. In a short run those one-off phases loom large; in a real
              epoch of thousands of batches the step phases dominate.
            - **share of step**: the same time split over the phases of a training step only.
              The largest here: **{slowest}**. `loss.backward()` usually costs about as much as
              the forward pass or more: it runs the unrolled graph backwards and computes a
              gradient for every weight.
            - **{UNCOVERED}**: loop bookkeeping between the marks; small when the marks cover the
              loop (here they explain {coverage_text} of train()'s time).
        """),
        prose("`lmprof profile --fn train` prints this table for a real run, beside its line tables."),
    ]


def components_part(numbers: dict[str, Any]) -> list[RenderableType]:
    """The component table of the live run, and why the decoder and the backward pass cost what they do."""
    rows = numbers.get("components") or []
    if not rows:
        return []
    c, ntokens = numbers["config"], numbers["ntokens"]
    by_name = {r["name"]: r for r in rows}
    cells = [(r["label"], f"{r['forward'] * 1000:.3f}", f"{r['backward'] * 1000:.3f}", f"{r['share']:.1%}")
             for r in rows]
    # Multiply-adds per token: the decoder maps nhid numbers to a score for every word of the
    # vocabulary; each LSTM layer computes 4 gates from its input and its previous hidden state.
    decoder_macs = c["nhid"] * ntokens
    rnn_macs = sum(4 * c["nhid"] * ((c["emsize"] if layer == 0 else c["nhid"]) + c["nhid"])
                   for layer in range(c["nlayers"]))
    heavy = max((r for r in rows if not r["name"].startswith("(")), key=lambda r: r["forward"] + r["backward"])
    ratios = [f"{name} {by_name[name]['backward'] / by_name[name]['forward']:.1f}×" for name in ("decoder", "rnn")
              if name in by_name and by_name[name]["forward"] > 0]
    return [
        section("A component table: where a training step's time goes inside the model"),
        prose(f"""
            `--components` times each part of the model, forward and backward, per training step
            (mean after {numbers['warmup']} warm-up steps), the same run as above:
        """),
        table("components of one training step", COMPONENT_COLUMNS, cells, right=COMPONENT_COLUMNS[1:]),
        prose(f"""
            - The heaviest here: **{heavy['label']}**. The decoder turns each token's {c['nhid']} hidden
              numbers into a score for every one of the {ntokens:,} words: {decoder_macs:,} multiply-adds
              per token, against {rnn_macs:,} for the whole {c['nlayers']}-layer {c['model']}
              (4 gates × nhid × (input + nhid) per layer). A large vocabulary makes the decoder and its
              log_softmax the bulk of a step; a small one leaves the RNN on top.
            - **Backward costs about twice forward** for a matrix product: forward computes `y = W x`
              once, backward computes two products of the same size, `dW = dy xᵀ` and `dx = Wᵀ dy`.
              Here backward/forward: {', '.join(ratios) or 'not measured'}.
            - Backward runs the components in reverse (loss → log_softmax → decoder → ... → encoder).
              Each backward time is measured between gradient hooks on the components' outputs, so it
              includes accumulating the weights' `.grad`.
            - `lmprof diagram flow --from RUN` draws these times inside the forward and backward boxes.
        """),
    ]


def line_part() -> list[RenderableType]:
    """line_profiler's table, read top-down."""
    return [
        section("A line table: where a function's time goes"),
        prose("""
            `lmprof profile --fn train` runs line_profiler over the chosen functions. Each row is
            one source line: **hits** (how many times it ran: the `get_batch` line once per
            batch), **time** (total over all hits), **per hit**, and **% time** of the function.
            Read it top-down for the hottest lines, then ask why: a line with many hits and a small
            per-hit time is a loop overhead; one hit with a large time is real work.
            `python -m line_profiler lines.lprof` reads the saved file again.
        """),
    ]


def gpu_part() -> list[RenderableType]:
    """Why a host clock misleads on a GPU, and what the phase timer does instead."""
    return [
        section("On a GPU: launch time is not run time"),
        code("""
            output, hidden = model(data, hidden)  # returns as soon as the kernels are queued
            loss = criterion(output, targets)
            loss.backward()                       # queues more kernels, returns
            total_loss += loss.item()             # waits for the GPU: all the time lands here
        """),
        prose("""
            CUDA work is asynchronous: the host queues kernels and moves on. A host clock around
            each line then measures launch cost, and the GPU's time is charged to the next line
            that waits (usually `loss.item()`). A line profile on a GPU therefore needs
            **blocking mode** (`CUDA_LAUNCH_BLOCKING=1`; `lmprof profile --sync blocking`): every
            launch waits for its kernel, so each line's time includes its work (and the run is
            slower). The phase timer needs no blocking: on CUDA it records CUDA events at each
            phase boundary and reads them once at the end, so GPU time lands in the phase that
            launched it.
        """),
    ]


def trace_part() -> list[RenderableType]:
    """What torch.profiler's trace adds to lines and phases."""
    return [
        section("What a torch.profiler trace adds"),
        prose("""
            Lines and phases say **where in the program** time goes; a trace (`lmprof trace`)
            says **which operators and kernels** spend it: every `aten::` operator with its
            input shapes, CPU and GPU timelines side by side (gaps where the GPU starves),
            memory allocated per operator, and the phases as named spans around them. Open it in
            TensorBoard (`tensorboard --logdir runs/<name>/trace`) or in Perfetto.
        """),
    ]
