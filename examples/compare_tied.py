"""Classroom comparison: untied vs tied embedding and decoder weights, the same model otherwise.

Run:   python examples/compare_tied.py               (about 20 s here; folders under runs/compare-tied/)
Then:  lmprof compare runs/compare-tied/untied runs/compare-tied/tied --report tied.html

Ask the class, before the table appears:
- "Tying removes a whole ntokens x nhid matrix. How much faster will a step be?"
  (Look at the FLOPs: the decoder still multiplies by the same matrix, now shared,
  so the arithmetic is the same; the phases should say within noise.)
- "Then what does tying buy?" (Parameters and memory: the parameters row; and
  often a better perplexity for the same size: the ppl rows.)
- "Which phase could still change?" (update and clip touch every parameter
  tensor once: one matrix fewer to clip and update.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from lmprof import RunConfig, RunResult, run
from lmprof.compare import compare
from lmprof.instrument.flops import AchievedFlops
from lmprof.instrument.recorders import PhaseTimer
from lmprof.views.compare import compare_view

BATCHES = 40  # enough batches for a median and its interval; one epoch on the embedded corpus


def profile(folder: Path, **changes: object) -> RunResult:
    """A short run under the phase timer and FLOP counter: what `lmprof profile` records, minus line times."""
    cfg = RunConfig(epochs=1, max_batches=BATCHES, device="cpu", **changes)  # type: ignore[arg-type]
    return run(cfg, command="profile", instruments=[PhaseTimer(), AchievedFlops()], log=lambda line: None,
               run_dir=folder, force=True)  # a second run of the example replaces its own folders


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/compare-tied")
    runs = [profile(out / name, tied=tied) for name, tied in (("untied", False), ("tied", True))]
    comparison = compare(runs)
    Console(width=120).print(compare_view(comparison))
    untied, tied = (int(r.metrics["nparams"]) for r in runs)
    print(f"parameters: untied {untied:,}, tied {tied:,} ({untied - tied:,} fewer)")
    print(f"\nagain, as a page: lmprof compare {out / 'untied'} {out / 'tied'} --report tied.html")


if __name__ == "__main__":
    main()
