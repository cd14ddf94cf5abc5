"""Walkthrough 2: get_batch gives bptt rows as input and the same rows one later as target.

Run:   python examples/02_get_batch.py [BPTT]      (the page: lmprof explain get_batch)
Try:   BPTT 3 and 5: how many batches per epoch, and how long is the last one?
"""

from __future__ import annotations

import sys

import torch

from lmprof.lessons.batchify import ALPHABET, as_letters
from lmprof.lessons.get_batch import chunks
from lmprof.reference.loop import batchify


def main(bptt: int) -> None:
    source = batchify(torch.arange(len(ALPHABET)), 4)
    print(f"the alphabet matrix {tuple(source.shape)}, bptt {bptt}:")
    for i, data, target in chunks(source, bptt):
        data_rows = " / ".join(" ".join(r) for r in as_letters(data))
        target_flat = " ".join(as_letters(target.view(1, -1))[0])
        print(f"  i={i}: data [{data_rows}]  target [{target_flat}]  (seq_len {data.size(0)})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
