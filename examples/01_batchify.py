"""Walkthrough 1: batchify cuts the token stream into independent columns.

Run:   python examples/01_batchify.py [BSZ]        (the page: lmprof explain batchify)
Try:   BSZ 3 or 6. Which letter pairs are lost at the seams? How many tokens are dropped?
"""

from __future__ import annotations

import sys

import torch

from lmprof.corpora import synth
from lmprof.lessons.batchify import ALPHABET, as_letters, corpus_shape
from lmprof.reference.data import Corpus
from lmprof.reference.loop import batchify


def main(bsz: int) -> None:
    matrix = batchify(torch.arange(len(ALPHABET)), bsz)
    print(f"batchify(a..x, bsz={bsz}) -> shape {tuple(matrix.shape)}; read each column downwards")
    rows = as_letters(matrix)
    for row in rows:
        print("   " + " ".join(row))
    seams = [f"{rows[-1][j]}->{rows[0][j + 1]}" for j in range(len(rows[0]) - 1)]
    print(f"pairs never seen (the seams): {', '.join(seams)}")
    print(f"tokens dropped: {len(ALPHABET) - matrix.numel()}")

    corpus = Corpus(str(synth.default_corpus()))  # the embedded corpus lmprof trains on by default
    shape = corpus_shape(corpus.train.numel(), 20)
    print(f"\nembedded corpus: {shape['tokens']:,} training tokens -> batchify(train, 20) = "
          f"{shape['rows']:,} rows x {shape['columns']} columns, {shape['dropped_tokens']} tokens dropped")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
