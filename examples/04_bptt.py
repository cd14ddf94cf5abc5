"""Walkthrough 4: back-propagation through time is loss.backward() over one unrolled window.

Run:   python examples/04_bptt.py                  (the page: lmprof explain bptt)
Then:  lmprof diagram bptt --bptt 4                (the unrolled graph, drawn)
Try:   a GRU or RNN_TANH model: does the gradient horizon change?
"""

from __future__ import annotations

import torch

from lmprof.lessons.bptt import gradient_reach, one_window, unfused
from lmprof.reference.model import RNNModel


def main(model_kind: str = "LSTM") -> None:
    torch.manual_seed(0)
    model = RNNModel(model_kind, 100, 32, 32, 1, dropout=0.0)
    stream = torch.randint(100, (41, 4))
    with unfused():  # step by step, so every time step is a node of the graph
        print(f"{model_kind}: one window forward + backward")
        for bptt in (5, 10, 20, 40):
            w = one_window(model, stream[:bptt], stream[1:bptt + 1].reshape(-1))
            print(f"  bptt {bptt:2d}: {w['graph_nodes']:4d} graph nodes, "
                  f"{w['saved_bytes'] / 1024:6.1f} KiB saved for backward")
        reach = gradient_reach(model, stream[:17], detach=True)
    print("gradient of the window's last loss w.r.t. each input (bptt 8):")
    print("  " + "  ".join(f"{g:.1e}" for g in reach["this_window"]))
    print(f"  previous window (after repackage_hidden): {reach['previous_window']}")


if __name__ == "__main__":
    main()
