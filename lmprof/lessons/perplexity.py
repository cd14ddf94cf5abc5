"""perplexity: exp of the mean negative log-likelihood per token; a uniform guess scores the vocabulary size."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from rich.console import RenderableType

from lmprof.config import RunConfig
from lmprof.lessons import TOPICS
from lmprof.lessons.page import excerpt, page, prose, section, table
from lmprof.lessons.tied import WIKITEXT2_VOCABULARY
from lmprof.reference.loop import batchify, evaluate, main, perplexity


def perplexity_of(log_probs: torch.Tensor, targets: torch.Tensor) -> float:
    """exp(mean NLL): ``log_probs`` (tokens, vocabulary) from log_softmax, ``targets`` (tokens,)."""
    return perplexity(float(F.nll_loss(log_probs, targets)))


def uniform_perplexity(vocabulary: int, tokens: int = 64, seed: int = 0) -> float:
    """A model that gives every word 1/V: its perplexity on any text."""
    g = torch.Generator().manual_seed(seed)
    log_probs = F.log_softmax(torch.zeros(tokens, vocabulary, dtype=torch.float64), dim=1)  # exact to print
    return perplexity_of(log_probs, torch.randint(vocabulary, (tokens,), generator=g))


def unigram_log_probs(train: torch.Tensor, vocabulary: int) -> torch.Tensor:
    """log p(word) from training counts, add-one smoothed so unseen words keep some probability."""
    counts = torch.bincount(train, minlength=vocabulary).double() + 1
    return (counts / counts.sum()).log()


@torch.no_grad()
def demo(data: str | None = None, vocabularies: Sequence[int] = (10, 1000, WIKITEXT2_VOCABULARY),
         eval_tokens: int = 2000, size: int = 32, seed: int = 0) -> dict[str, Any]:
    """Uniform models, then a unigram model and an untrained LSTM on the corpus' validation text."""
    from lmprof.prepare import read_corpus, seeded_model

    corpus = read_corpus(data)
    V = len(corpus.dictionary)
    valid = corpus.valid[:eval_tokens]
    # unigram: the same probabilities at every position, whatever came before
    token_log_probs = unigram_log_probs(corpus.train, V)[valid]
    unigram_nll = float(-token_log_probs.mean())
    # an untrained LSTM, scored by the reference evaluate() as training scores it each epoch
    cfg = RunConfig(emsize=size, nhid=size, nlayers=2, dropout=0.0, seed=seed)
    model = seeded_model(cfg, V, torch.device("cpu"))
    lstm_loss = evaluate(model, batchify(valid, cfg.eval_batch_size), cfg, nn.NLLLoss(), V)
    return {
        "uniform": [{"vocabulary": v, "perplexity": uniform_perplexity(v)} for v in vocabularies],
        "corpus": {
            "data": "embedded corpus" if data is None else data,
            "vocabulary": V,
            "eval_tokens": int(valid.numel()),
            "uniform_loss": math.log(V),
            "uniform_perplexity": float(V),
            "unigram_loss": unigram_nll,
            "unigram_perplexity": perplexity(unigram_nll),
            # the arithmetic mean of 1/p: not perplexity, and far larger (one rare word dominates)
            "unigram_mean_inverse_probability": float((-token_log_probs).exp().mean()),
            "untrained_lstm_loss": lstm_loss,
            "untrained_lstm_perplexity": perplexity(lstm_loss),
        },
        "loss_to_perplexity": [{"loss": x, "perplexity": perplexity(x)} for x in (4.0, 5.0, 6.0, 7.0)],
    }


def render(numbers: dict[str, Any]) -> RenderableType:
    c = numbers["corpus"]
    return page(
        "perplexity", TOPICS["perplexity"],
        section("The definition"),
        prose("""
            The model outputs `log_softmax` scores: a log-probability for every word. The loss is
            `nn.NLLLoss()`, the **mean negative log-likelihood** of the true next words, in nats.
            Perplexity is `exp(mean NLL)`: the geometric mean of 1/p(true word). A perplexity of
            100 means the model is as unsure as if it picked uniformly among 100 words each time.
            The training log prints both:
        """),
        excerpt(main, "end of epoch", "val_loss,"),
        table(None, ["loss (nats)", "perplexity"],
              [(f"{r['loss']:.2f}", f"{r['perplexity']:.2f}") for r in numbers["loss_to_perplexity"]],
              right=["loss (nats)", "perplexity"]),
        section("Live: a uniform model scores the vocabulary size"),
        table(None, ["vocabulary V", "loss = ln V", "perplexity"],
              [(f"{u['vocabulary']:,}", f"{math.log(u['vocabulary']):.4f}", f"{u['perplexity']:,.2f}")
               for u in numbers["uniform"]], right=["vocabulary V", "loss = ln V", "perplexity"]),
        prose("""
            Every word gets probability 1/V, so NLL = ln V at every token and perplexity = V,
            whatever the text. That is the baseline any model must beat; a run whose perplexity
            is above the vocabulary size has learned nothing (or diverged).
        """),
        section(f"Live: on the {c['data']} (validation, first {c['eval_tokens']:,} tokens)"),
        table(None, ["model", "loss", "perplexity"], [
            ("uniform over the vocabulary", f"{c['uniform_loss']:.3f}", f"{c['uniform_perplexity']:,.0f}"),
            ("untrained LSTM (reference evaluate())", f"{c['untrained_lstm_loss']:.3f}",
             f"{c['untrained_lstm_perplexity']:,.0f}"),
            ("unigram: word counts of train.txt", f"{c['unigram_loss']:.3f}", f"{c['unigram_perplexity']:,.0f}"),
        ], right=["loss", "perplexity"]),
        prose(f"""
            An untrained LSTM (small random weights) is nearly uniform, so it scores close to
            V = {c['vocabulary']:,}. Merely knowing how often each word occurs brings that down to
            {c['unigram_perplexity']:,.0f}; everything below that is what context buys. Note it is
            exp of the **mean** log: the arithmetic mean of 1/p over the same tokens is
            {c['unigram_mean_inverse_probability']:,.0f}, dominated by a few rare words.
        """),
        section("Why the test set is reported separately"),
        prose("""
            Validation perplexity steers training: after each epoch the best model is kept and
            the learning rate is divided by 4 when validation stops improving. Decisions made by
            looking at the validation set fit it a little, so its number is optimistic. The test
            set is touched **once**, after training, by the saved best model: it is the honest
            estimate to report. (A sweep that picks nhid by validation, then quotes validation,
            makes the same mistake on a larger scale.) `lmprof explain test_set` shows it live.
        """),
    )
