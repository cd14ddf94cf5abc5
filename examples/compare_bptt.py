"""Classroom comparison: a bptt window of 35 vs 70 time steps, batch by batch and token by token.

Run:   python examples/compare_bptt.py               (about 30 s here; folders under runs/compare-bptt/)
Then:  lmprof compare runs/compare-bptt/bptt35 runs/compare-bptt/bptt70 --report bptt.html

Ask the class, before the table appears:
- "Twice the window: how much longer is one batch's forward? Its backward?"
  (Twice the steps, twice the FLOPs: the FLOP rows say 2.00x. Does the clock agree?)
- "Which phases do not care about the window?" (clip and update touch the
  parameters, whose size does not depend on bptt: within noise.)
- "Per batch it is slower. Per token?" (The tokens/s row: a batch of 70 steps
  carries twice the tokens. Where does the time per token go down, and why?)
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from _comparing import profile  # the short profile the three comparisons share
from lmprof.comparison import compare
from lmprof.views.compare import compare_view


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/compare-bptt")
    runs = [profile(out / f"bptt{bptt}", bptt=bptt) for bptt in (35, 70)]
    comparison = compare(runs)
    Console(width=120).print(compare_view(comparison))
    for row in comparison.flops:
        print(f"{row.phase} FLOPs bptt 70 / bptt 35: {row.flop_ratios[1]:.2f}×, time: {row.time_ratios[1]:.2f}×")
    print(f"\nagain, as a page: lmprof compare {out / 'bptt35'} {out / 'bptt70'} --report bptt.html")


if __name__ == "__main__":
    main()
