"""profiling: how to read lmprof's line and phase tables, why GPU timing needs care, what a trace adds."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from rich.console import RenderableType

from lmprof.explain import TOPICS
from lmprof.explain.page import code, page, prose, section, table
from lmprof.phases import STEP_PHASES, UNCOVERED


def demo(max_batches: int = 30, size: int = 64, bptt: int = 35, batch_size: int = 20,
         train_tokens: int = 22_000) -> dict[str, Any]:
    """Train a tiny model for ``max_batches`` batches under the phase timer; return the phase table."""
    from lmprof.config import RunConfig
    from lmprof.corpora import synth
    from lmprof.instrument.recorders import PhaseTimer
    from lmprof.runner import run

    with tempfile.TemporaryDirectory(prefix="lmprof-explain-") as tmp:
        corpus = synth.write(Path(tmp) / "corpus", sizes={"train": train_tokens, "valid": 800, "test": 800})
        cfg = RunConfig(data=str(corpus), emsize=size, nhid=size, epochs=1, max_batches=max_batches,
                        bptt=bptt, batch_size=batch_size, device="cpu")
        result = run(cfg, command="explain", instruments=[PhaseTimer()], log=lambda line: None,
                     run_dir=Path(tmp) / "run")
    phases = [{k: row[k] for k in ("name", "label", "calls", "seconds", "share")} for row in result.phases]
    step = [row for row in phases if row["name"] in STEP_PHASES]
    step_total = sum(row["seconds"] for row in step)
    return {
        "config": {"model": cfg.model, "emsize": size, "nhid": size, "nlayers": cfg.nlayers, "bptt": bptt,
                   "batch_size": batch_size, "batches": max_batches, "train_tokens": train_tokens},
        "device": result.environment.get("device"),
        "clock": result.phase_summary.get("clock"),
        "wall_seconds": result.phase_summary.get("wall_seconds"),
        "train_coverage": result.phase_summary.get("train_coverage"),
        "phases": phases,
        "step_shares": {row["name"]: row["seconds"] / step_total if step_total > 0 else 0.0 for row in step},
        "slowest_step_phase": max(step, key=lambda row: row["seconds"])["name"] if step else None,
    }


def render(numbers: dict[str, Any]) -> RenderableType:
    c = numbers["config"]
    shares = numbers["step_shares"]
    rows = [(r["label"] if r["name"] != UNCOVERED else UNCOVERED, str(r["calls"] or ""),
             f"{r['seconds'] * 1000:.1f}", f"{r['share']:.1%}",
             f"{shares[r['name']]:.1%}" if r["name"] in shares else "") for r in numbers["phases"]]
    slowest = numbers["slowest_step_phase"]
    coverage = numbers["train_coverage"]
    coverage_text = f"{coverage:.1%}" if coverage is not None else "an unknown share"
    return page(
        "profiling", TOPICS["profiling"],
        section("A phase table: where a run's time goes"),
        prose(f"""
            The reference loop marks each part of its work with `with phase("backward"): ...`;
            a phase timer adds up the time inside each mark. Live now: a tiny {c['model']} (nhid
            {c['nhid']}, bptt {c['bptt']}, batch {c['batch_size']}) trained for {c['batches']} batches
            on {numbers['device']}, clock: {numbers['clock']}:
        """),
        table(f"phases of one short run, {numbers['wall_seconds']:.2f} s wall",
              ["phase", "calls", "ms", "share of run", "share of step"], rows,
              right=["calls", "ms", "share of run", "share of step"]),
        prose(f"""
            - **calls**: how often the phase ran; per-step phases run once per batch ({c['batches']}).
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
        section("A line table: where a function's time goes"),
        prose("""
            `lmprof profile --fn train` runs line_profiler over the chosen functions. Each row is
            one source line: **hits** (how many times it ran: the `get_batch` line once per
            batch), **time** (total over all hits), **per hit**, and **% time** of the function.
            Read it top-down for the hottest lines, then ask why: a line with many hits and a small
            per-hit time is a loop overhead; one hit with a large time is real work.
            `python -m line_profiler lines.lprof` reads the saved file again.
        """),
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
        section("What a torch.profiler trace adds"),
        prose("""
            Lines and phases say **where in the program** time goes; a trace (`lmprof trace`)
            says **which operators and kernels** spend it: every `aten::` operator with its
            input shapes, CPU and GPU timelines side by side (gaps where the GPU starves),
            memory allocated per operator, and the phases as named spans around them. Open it in
            TensorBoard (`tensorboard --logdir runs/<name>/trace`) or in Perfetto.
        """),
    )
