"""Classroom speed lab: the decoder dominates; does shrinking it make training faster, honestly?

Run:   python examples/speedlab_decoder.py          (about a minute here; the ladder's folder under runs/)
Then:  lmprof speedlab --budget-batches 100          (every variant, 3 interleaved repeats)

Ask the class, before the table appears:
- "The phase table says forward and backward are nearly the whole step. Which matrix product
  is most of them?" (Count: the decoder, nhid x vocabulary per token; the line below prints its share.)
- "An adaptive softmax computes full scores only for frequent words. Predict its speed-up from
  the FLOPs." (Then compare with the measured tokens/s: what do FLOPs not count?)
- "It is a different model. Is it faster if it learns worse?" (Time to quality decides: the
  seconds until its validation perplexity reaches the reference's.)
- "fused-loss merges log_softmax and the NLL. Why is it within noise on a CPU?"
  (cross_entropy runs the same two kernels there.)
"""

from __future__ import annotations

import os

from rich.console import Console

from lmprof import RunConfig
from lmprof.corpora import synth
from lmprof.lessons.speed import decoder_share
from lmprof.reference.data import Corpus
from lmprof.experiments.speedlab.ladder import run_ladder
from lmprof.views.speedlab import ladder_view

BATCHES = 30  # a short budget: enough warm batches for a median and a few quality checks
BATCHES = int(os.environ.get("LMPROF_EXAMPLE_BATCHES", BATCHES))  # the test suite's short run (tests/test_examples.py)


def main() -> None:
    cfg = RunConfig(device="cpu")
    ntokens = len(Corpus(str(synth.default_corpus())).dictionary)
    print(f"decoder share of forward FLOPs: {decoder_share(cfg, ntokens):.0%} "
          f"(nhid {cfg.nhid} x {ntokens:,} words against two LSTM layers)")
    ladder = run_ladder(cfg, variants=["fused-loss", "adaptive-softmax"], budget_batches=BATCHES, repeats=1,
                        eval_every=5, combine=False)
    Console(width=132).print(ladder_view(ladder))


if __name__ == "__main__":
    main()
