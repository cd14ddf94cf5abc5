"""Classroom comparison: LSTM vs GRU, the same size, phase by phase, with arithmetic's prediction beside the clock.

Run:   python examples/compare_lstm_gru.py            (about 20 s here; folders under runs/compare-lstm-gru/)
Then:  lmprof compare runs/compare-lstm-gru/LSTM runs/compare-lstm-gru/GRU --report lstm-gru.html
       lmprof diagram flow --from runs/compare-lstm-gru/LSTM --vs runs/compare-lstm-gru/GRU

Ask the class, before the table appears:
- "A GRU has 3 gates, an LSTM 4. How much less arithmetic in the forward pass?"
  (The recurrent matmuls are 3/4; the decoder, the same for both, dilutes it.)
- "Will the forward time shrink by the same factor?" (Compare FLOPs and time:
  where they part, overheads and kernel choice speak, not arithmetic.)
- "Which phases should not change at all?" (get_batch, clip, the update's loop:
  check that they say within noise.)
- "Why is the GRU's perplexity so much worse after the same 40 batches?"
  (Upstream's learning rate of 20 suits the LSTM; the GRU overshoots with it.
  Try lr 5: `lmprof profile --fn train --model GRU --lr 5 --max-batches 40`.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from _comparing import profile  # the short profile the three comparisons share
from lmprof.comparison import compare
from lmprof.views.compare import compare_view


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/compare-lstm-gru")
    runs = [profile(out / model, model=model) for model in ("LSTM", "GRU")]
    comparison = compare(runs)
    Console(width=120).print(compare_view(comparison))
    for row in comparison.flops:
        print(f"{row.phase} FLOPs GRU/LSTM: {row.flop_ratios[1]:.2f}×, time: {row.time_ratios[1]:.2f}×")
    print(f"\nagain, as a page: lmprof compare {out / 'LSTM'} {out / 'GRU'} --report lstm-gru.html")


if __name__ == "__main__":
    main()
