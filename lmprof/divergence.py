"""Did a run learn, or go wrong? One rule for every place a run is shown.

The rule is the sweep's (``lmprof sweep`` stops and marks runs by it); profile's
summary, ``show``, the report, ``compare`` and the notebook display use it too,
so a run is called the same thing everywhere.

A uniform guess over the vocabulary scores a perplexity of exactly the
vocabulary size. Validation perplexity above it means the model predicts
worse than knowing nothing:

- **diverged**: the loss became NaN or infinite, or validation perplexity is
  above the vocabulary size at two epochs in a row, or at the last of two or
  more (one bad epoch can be a start the next repairs; a GRU at lr 20 often does);
- **not converged**: the run's only epoch ended above it: too little evidence
  to say which, and no model worth averaging either.

``judge(config, metrics)`` returns a ``Judgement`` (the word, why, what to
try) or None for a run that learned. Pure data: nothing here imports torch.

    >>> judge({"model": "GRU", "lr": 20.0}, {"ntokens": 1000, "epochs": [{"val_ppl": 5400.0}]}).status
    'not converged'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence
from lmprof.record.sections import TEST_PPL, VAL_PPL, VOCAB_SIZE

DIVERGED = "diverged"
NOT_CONVERGED = "not converged"
UPSTREAM_LR = 20.0  # upstream main.py's default --lr

# Measured on a 2-core AMD EPYC VM (AVX2, torch 2.13.0+cpu, 2 threads): `lmprof train --model GRU
# --epochs 1 --max-batches 60 --lr LR --seed S` on the embedded corpus (vocabulary 7,477), S = 1111
# (upstream's default) and 1, 2, 3. At lr 20: val ppl 138,920 (seed 1111), 863, 774, 1,704; at lr 5:
# 410, 466, 367, 481.
GRU_LR_EVIDENCE = ("measured on a 2-core AMD EPYC CPU, embedded corpus, one epoch of 60 batches, 4 seeds: "
                   "GRU at lr 20 ended at val ppl 774 to 138,920 (above the vocabulary at upstream's seed 1111), "
                   "at lr 5 at 367 to 481")
GRU_SUGGESTED_LR = 5.0


@dataclass(frozen=True)
class Judgement:
    status: str  # DIVERGED or NOT_CONVERGED
    why: str  # what the numbers show
    advice: str  # what to try

    def line(self) -> str:
        """One line for a terminal: 'diverged: ...; try ...'."""
        return f"{self.status}: {self.why}. Try: {self.advice}"

    def to_dict(self) -> dict[str, str]:
        return {"status": self.status, "why": self.why, "advice": self.advice}


def above_uniform(ppl: float | None, vocab_size: int | None) -> bool:
    """NaN/inf (stored as None), or worse than a uniform guess over the vocabulary."""
    return ppl is None or not math.isfinite(ppl) or (vocab_size is not None and ppl > vocab_size)


def is_diverged(val_ppls: Sequence[float | None], vocab_size: int | None, *, final: bool) -> bool:
    """The sweep's rule, judged after the last of ``val_ppls`` (one per epoch so far).

    NaN/inf (stored as None); or worse than a uniform guess over the vocabulary
    at two epochs in a row, or at the ``final`` epoch of two or more. A run of one
    epoch above it is not judged here: it is "not converged".
    """
    last = val_ppls[-1]
    if last is None or not math.isfinite(last):
        return True
    # One epoch is too little evidence: a run whose only epoch is above it ends as "not converged".
    return above_uniform(last, vocab_size) and len(val_ppls) >= 2 and (final or above_uniform(val_ppls[-2], vocab_size))


def is_not_converged(status: str, val_ppls: Sequence[float | None], vocab_size: int | None) -> bool:
    """Ended "ok" but worse than a uniform guess: only possible after a single epoch (see is_diverged)."""
    last = val_ppls[-1] if val_ppls else None
    return status == "ok" and vocab_size is not None and last is not None and last > vocab_size


def _ppl(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "NaN/inf"
    return f"{value:,.0f}" if value < 1e9 else f"{value:.3g}"


def advice(config: Mapping[str, Any], status: str) -> str:
    """What to try: a smaller --lr (for the GRU at upstream's lr 20, what was measured here)."""
    model, lr = str(config.get("model") or ""), config.get("lr")
    if model == "GRU" and isinstance(lr, (int, float)) and lr >= UPSTREAM_LR:
        return (f"--lr {GRU_SUGGESTED_LR:g}: upstream's lr {UPSTREAM_LR:g} is often too high for the GRU here "
                f"({GRU_LR_EVIDENCE})")
    smaller = f"--lr {lr / 4:g}" if isinstance(lr, (int, float)) and lr > 0 else "a smaller --lr"
    more = "; or more --epochs/--max-batches, if a bad start may repair" if status == NOT_CONVERGED else ""
    return f"{smaller} (a step too large overshoots), or a smaller --clip{more}"


def judge(config: Mapping[str, Any], metrics: Mapping[str, Any]) -> Judgement | None:
    """The rule applied to one run's record (result.json's config and metrics); None when it learned."""
    vocab = metrics.get("ntokens") or metrics.get(VOCAB_SIZE)
    vocab = int(vocab) if isinstance(vocab, (int, float)) and vocab > 0 else None
    epochs = [e for e in metrics.get("epochs") or [] if isinstance(e, Mapping)]
    val = [_finite(e.get(VAL_PPL)) for e in epochs if VAL_PPL in e]
    uniform = (f"the vocabulary size {vocab:,} (what a uniform guess scores)" if vocab else "the vocabulary size")
    if metrics.get("status") == DIVERGED:
        said = str(metrics.get("message") or "the loss became NaN or infinite; the loop stopped")
        return Judgement(DIVERGED, said, advice(config, DIVERGED))
    if val and is_diverged(val, vocab, final=True):
        if val[-1] is None:
            why = f"validation perplexity became NaN/inf at epoch {len(val)}"
        else:
            why = f"validation perplexity {_ppl(val[-1])} at epoch {len(val)} is above {uniform}"
        return Judgement(DIVERGED, why, advice(config, DIVERGED))
    last = val[-1] if val else _finite(metrics.get(TEST_PPL))
    which = "validation" if val else "test"
    if vocab and last is not None and last > vocab and metrics.get("status", "ok") in ("ok", "interrupted"):
        why = (f"{which} perplexity {_ppl(last)} after its only epoch is {last / vocab:,.1f}× {uniform}; "
               "one epoch is too little evidence to call it diverged")
        return Judgement(NOT_CONVERGED, why, advice(config, NOT_CONVERGED))
    return None


def judge_result(result: Any) -> Judgement | None:
    """``judge`` for a RunResult (anything with ``config`` and ``metrics`` dicts)."""
    return judge(getattr(result, "config", {}) or {}, getattr(result, "metrics", {}) or {})


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
