"""Walkthrough 3: without repackage_hidden the autograd graph, its saved bytes and the step time grow every batch.

Run:   python examples/03_repackage_hidden.py      (the page: lmprof explain repackage_hidden)
Try:   more steps, or nlayers 1: how many nodes does each batch add?
"""

from __future__ import annotations

import torch

from lmprof.lessons.repackage_hidden import train_steps
from lmprof.reference.loop import batchify
from lmprof.reference.model import RNNModel

STEPS, BPTT, BATCH, NTOKENS, SIZE = 10, 10, 8, 200, 32


def fresh_model() -> RNNModel:
    torch.manual_seed(0)
    return RNNModel("LSTM", NTOKENS, SIZE, SIZE, 2, dropout=0.0)


def main() -> None:
    torch.manual_seed(0)
    source = batchify(torch.randint(NTOKENS, ((STEPS * BPTT + 1) * BATCH,)), BATCH)
    train_steps(fresh_model(), source, BPTT, 1, detach=True)  # warm-up
    kept = train_steps(fresh_model(), source, BPTT, STEPS, detach=True)
    grown = train_steps(fresh_model(), source, BPTT, STEPS, detach=False, retain_graph=True)
    # saved: the bytes autograd holds for backward (lmprof profile --memory counts them the same way)
    print("step   nodes  saved KiB  ms (repackage)   nodes  saved KiB  ms (no repackage, retain_graph=True)")
    for a, b in zip(kept, grown):
        print(f"{a['step']:4d} {a['graph_nodes']:7d} {a['saved_bytes'] / 1024:10.1f} {a['seconds'] * 1e3:7.1f}        "
              f"{b['graph_nodes']:7d} {b['saved_bytes'] / 1024:10.1f} {b['seconds'] * 1e3:7.1f}")
    try:
        train_steps(fresh_model(), source, BPTT, 2, detach=False)
    except RuntimeError as e:
        print(f"\nwithout repackage and without retain_graph, batch 2 fails:\n  RuntimeError: {str(e)[:95]}...")


if __name__ == "__main__":
    main()
