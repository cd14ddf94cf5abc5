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

from _comparing import profile  # the short profile the three comparisons share
from lmprof.comparison import compare
from lmprof.views.compare import compare_view


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
