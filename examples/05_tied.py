"""Walkthrough 5: tying the embedding and the decoder: one tensor, counted once.

Run:   python examples/05_tied.py                  (the page: lmprof explain tied)
Try:   emsize 650 (the example's "medium" model): what share does tying save?
"""

from __future__ import annotations

from lmprof import RunConfig
from lmprof.lessons.tied import WIKITEXT2_VOCABULARY, counts, shared_tensor_proof


def main() -> None:
    for cfg in (RunConfig(), RunConfig(emsize=650, nhid=650)):
        c = counts(WIKITEXT2_VOCABULARY, cfg)
        print(f"{cfg.model} emsize {cfg.emsize} nhid {cfg.nhid}, vocabulary {c['ntokens']:,}: "
              f"untied {c['untied']:,}, tied {c['tied']:,} parameters "
              f"(saves {(c['untied'] - c['tied']) / c['untied']:.0%})")
    proof = shared_tensor_proof()
    print(f"decoder.weight is encoder.weight: {proof['same_object']}; "
          f"a write through one is seen by the other: +{proof['write_through_encoder_seen_by_decoder']:g}")


if __name__ == "__main__":
    main()
