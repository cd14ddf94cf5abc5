"""Walkthrough 8: perplexity is exp(mean NLL); a uniform model scores the vocabulary size.

Run:   python examples/08_perplexity.py            (the page: lmprof explain perplexity)
Try:   max_batches=100 below: how far under the vocabulary size does validation go?
"""

from __future__ import annotations

import tempfile

from lmprof import RunConfig, run
from lmprof.corpora import synth
from lmprof.lessons.perplexity import uniform_perplexity


def main() -> None:
    for V in (10, 1000, 33_278):
        print(f"uniform model over {V:,} words: perplexity {uniform_perplexity(V):,.2f}")
    with tempfile.TemporaryDirectory() as folder:
        # a short training run through lmprof's public API, on a small sample of the embedded corpus
        corpus = synth.write(f"{folder}/corpus", sizes={"train": 30_000, "valid": 3_000, "test": 3_000})
        result = run(RunConfig(data=str(corpus), epochs=1, max_batches=30, emsize=32, nhid=32, device="cpu"),
                     command="example", log=lambda line: None, run_dir=f"{folder}/run")
    epoch = result.epochs[-1]
    print(f"sample corpus, vocabulary {result.metrics['ntokens']:,}: after {epoch['batches']} batches "
          f"valid ppl {epoch['val_ppl']:.1f}, test ppl {result.metrics['test_ppl']:.1f}")


if __name__ == "__main__":
    main()
