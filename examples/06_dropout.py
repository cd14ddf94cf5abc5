"""Walkthrough 6: nn.Dropout vs nn.Dropout2d, the 1/(1-p) scale, identity in eval mode.

Run:   python examples/06_dropout.py [P]           (the page: lmprof explain dropout)
Try:   P 0.2 (the model's default) and 0.8: what are the kept values?
"""

from __future__ import annotations

import sys

import torch
import torch.nn as nn

from lmprof.lessons.dropout import mean_over_draws, whole_channels


def main(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(1, 4, 3, 3)
    for layer in (nn.Dropout(p), nn.Dropout2d(p)):
        out = layer.train()(x)
        print(f"{layer.__class__.__name__}(p={p}), train mode: kept values {sorted(set(out.unique().tolist()))}, "
              f"whole channels zeroed: {whole_channels(out)}")
        for c, channel in enumerate(out[0]):
            print(f"  channel {c}: " + " / ".join(" ".join(f"{v:g}" for v in row.tolist()) for row in channel))
        print(f"  eval mode returns the input unchanged: {torch.equal(layer.eval()(x), x)}")
    print(f"mean of 100,000 ones after dropout: {mean_over_draws(p, 100_000):.4f} (expectation kept)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.5)
