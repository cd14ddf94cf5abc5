"""How often does clip_grad_norm_ step in? The pre-clip gradient norm of short real runs, per kind.

Run:   python examples/gradflow_clip.py             (the same as: lmprof train --grad-stats ...)
Predict first: at upstream's lr 20 and --clip 0.25, what share of an LSTM's batches is clipped? A ReLU RNN's?
Try:   --clip 1.0 (edit CLIP below), or lr 5: does the share fall?
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from lmprof.config import RunConfig
from lmprof.instrument.gradients import GradStatsInstrument, clip_summary
from lmprof.runner import run

CLIP = 0.25


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("LSTM", "RNN_TANH", "RNN_RELU"):
            cfg = RunConfig(model=kind, emsize=64, nhid=64, epochs=2, max_batches=30, clip=CLIP)
            result = run(cfg, instruments=[GradStatsInstrument()], log=lambda line: None, run_dir=Path(tmp) / kind)
            for e in result.gradients["epochs"]:
                print(f"{kind:<9} epoch {e['epoch']}: pre-clip norm median {e['preclip_norm_median']:.3g}, "
                      f"max {e['preclip_norm_max']:.3g}; clipped {e['clipped_fraction']:.0%} of {e['batches']} batches")
            print(f"{kind:<9} {result.status}; worst: {clip_summary(result.gradients)}")


if __name__ == "__main__":
    main()
