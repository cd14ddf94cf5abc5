"""Memory: where one training step's bytes go, and what bptt, the batch and --tied change.

Run:   python examples/memory_bptt.py             (the page: lmprof explain memory)
Try:   a WikiText-2-sized vocabulary (33,278): which part grows, and by how much?
       then `lmprof profile --fn train --memory` to see the same figures for a whole run.
"""

from __future__ import annotations

from lmprof import RunConfig
from lmprof.lessons.memory import measure_step
from lmprof.experiments.memory_model import predicted_saved_bytes

VOCABULARY = 10_000


def main() -> None:
    base = RunConfig(emsize=200, nhid=200, bptt=35, batch_size=20)
    first = measure_step(base, VOCABULARY)
    logits = first["by_module"]["log_softmax"]
    print(f"logits of one batch: 35 x 20 x {VOCABULARY:,} x 4 B = {logits:,} B "
          f"({logits / first['saved']:.0%} of {first['saved']:,} B saved for backward)")
    for label, cfg in (("bptt 70", base.replace(bptt=70)), ("batch 40", base.replace(batch_size=40)),
                       ("tied", base.replace(tied=True))):
        step = measure_step(cfg, VOCABULARY)
        predicted = sum((predicted_saved_bytes(cfg, VOCABULARY) or {}).values())
        print(f"{label:>8}: saved {step['saved'] / first['saved']:.2f}x the base (predicted "
              f"{predicted / step['saved']:.3f} of measured), parameters {step['params']:,} B")


if __name__ == "__main__":
    main()
