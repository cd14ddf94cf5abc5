"""tied: the decoder reuses the embedding matrix; one Parameter, counted once, trained by both ends."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from rich.console import RenderableType

from lmprof.config import RunConfig
from lmprof.lessons import TOPICS
from lmprof.lessons.page import excerpt, page, prose, section, table
from lmprof.reference.model import RNNModel

WIKITEXT2_VOCABULARY = 33_278  # words in WikiText-2 as the PyTorch example tokenizes it (train+valid+test)


def parameter_count(model: nn.Module) -> int:
    """Parameters as the optimizer sees them: ``parameters()`` yields a shared tensor once."""
    return sum(p.numel() for p in model.parameters())


def counts(ntokens: int, cfg: RunConfig) -> dict[str, int]:
    """Parameter counts of the reference RNNModel for ``cfg``, untied and tied, built now."""
    untied = RNNModel(cfg.model, ntokens, cfg.emsize, cfg.nhid, cfg.nlayers, cfg.dropout, tie_weights=False)
    tied = RNNModel(cfg.model, ntokens, cfg.emsize, cfg.nhid, cfg.nlayers, cfg.dropout, tie_weights=True)
    return {
        "ntokens": ntokens,
        "untied": parameter_count(untied),
        "tied": parameter_count(tied),
        "embedding": untied.encoder.weight.numel(),
        "rnn": sum(p.numel() for p in untied.rnn.parameters()),
        "decoder_weight": untied.decoder.weight.numel(),
        "decoder_bias": untied.decoder.bias.numel(),
    }


def shared_tensor_proof(ntokens: int = 50, size: int = 16) -> dict[str, Any]:
    """Evidence that a tied model holds one tensor: identity, storage, and a gradient from both uses."""
    torch.manual_seed(0)
    model = RNNModel("LSTM", ntokens, size, size, 1, dropout=0.0, tie_weights=True)
    enc, dec = model.encoder.weight, model.decoder.weight
    with torch.no_grad():
        before = float(dec[3, 0])
        enc[3, 0] += 1.0  # write through the encoder ...
        seen_by_decoder = float(dec[3, 0]) - before  # ... read through the decoder
    data = torch.randint(ntokens, (5, 2))
    output, _ = model(data, model.init_hidden(2))
    nn.NLLLoss()(output, torch.randint(ntokens, (10,))).backward()
    names = [name for name, _ in model.named_parameters()]
    return {
        "same_object": dec is enc,
        "same_storage": dec.data_ptr() == enc.data_ptr(),
        "write_through_encoder_seen_by_decoder": seen_by_decoder,
        "named_parameters_has_decoder_weight": "decoder.weight" in names,
        "one_grad_tensor": dec.grad is enc.grad and enc.grad is not None,
        # tokens never fed in still get a gradient: through the decoder (every word is scored)
        "rows_with_gradient": int((enc.grad.abs().sum(dim=1) > 0).sum()) if enc.grad is not None else 0,
        "rows_fed_as_input": int(data.unique().numel()),
    }


def demo(data: str | None = None) -> dict[str, Any]:
    """Counts for the default configuration on the corpus, and for WikiText-2's vocabulary."""
    from lmprof.prepare import read_corpus

    cfg = RunConfig()  # emsize 200, nhid 200, 2-layer LSTM: upstream's defaults
    vocabulary = len(read_corpus(data).dictionary)
    try:
        RNNModel(cfg.model, 100, 200, 300, cfg.nlayers, tie_weights=True)
        mismatch_error = None
    except ValueError as e:
        mismatch_error = str(e)
    return {
        "config": {"model": cfg.model, "emsize": cfg.emsize, "nhid": cfg.nhid, "nlayers": cfg.nlayers},
        "corpus": {"data": "embedded corpus" if data is None else data, **counts(vocabulary, cfg)},
        "wikitext2": counts(WIKITEXT2_VOCABULARY, cfg),
        "proof": shared_tensor_proof(),
        "mismatch_error": mismatch_error,
    }


def render(numbers: dict[str, Any]) -> RenderableType:
    cfg, corpus, wiki, proof = numbers["config"], numbers["corpus"], numbers["wikitext2"], numbers["proof"]

    def column(c: dict[str, Any]) -> list[str]:
        return [f"{c['ntokens']:,}", f"{c['embedding']:,}", f"{c['rnn']:,}",
                f"{c['decoder_weight']:,} + {c['decoder_bias']:,}", f"{c['untied']:,}", f"{c['tied']:,}",
                f"{c['untied'] - c['tied']:,} ({(c['untied'] - c['tied']) / c['untied']:.0%})"]

    labels = ["vocabulary (ntokens)", "embedding ntokens x emsize", f"{cfg['model']} ({cfg['nlayers']} layers)",
              "decoder weight + bias", "total, untied", "total, --tied", "saved by tying"]
    rows = [(label, a, b) for label, a, b in zip(labels, column(corpus), column(wiki))]
    return page(
        "tied", TOPICS["tied"],
        section("The code (lmprof/reference/model.py)"),
        excerpt(RNNModel.__init__, "self.encoder = ", "self.encoder = "),
        excerpt(RNNModel.__init__, "self.decoder = ", "self.decoder.weight = self.encoder.weight"),
        prose("""
            The embedding turns a word id into a vector (one row per word); the decoder scores
            every word against the last hidden state (again one row per word). Tying makes them
            the **same rows**: a word is scored by how close the hidden state comes to its
            embedding. Press & Wolf (2016) and Inan et al. (2016) found it lowers perplexity
            while removing one of the model's two largest matrices.
        """),
        section(f"Live: parameter counts, {cfg['model']} emsize {cfg['emsize']}, nhid {cfg['nhid']}"),
        table(None, ["", corpus["data"], "WikiText-2"], rows, right=[corpus["data"], "WikiText-2"]),
        prose(f"""
            Counted with `sum(p.numel() for p in model.parameters())` on models built now.
            Tying removes exactly the decoder's weight, `ntokens x nhid`; its bias stays. With
            WikiText-2's {wiki['ntokens']:,} words that is {wiki['decoder_weight']:,} parameters,
            nearly half the model: the two vocabulary matrices dwarf the
            {wiki['rnn']:,} of the LSTM itself.
        """),
        section("Live: proof that it is one tensor"),
        table(None, ["check", "result"], [
            ("model.decoder.weight is model.encoder.weight", str(proof["same_object"])),
            ("same memory (data_ptr)", str(proof["same_storage"])),
            ("add 1 through the encoder; the decoder sees", f"+{proof['write_through_encoder_seen_by_decoder']:g}"),
            ("one .grad tensor for both", str(proof["one_grad_tensor"])),
            ("rows with a gradient / rows fed as input", f"{proof['rows_with_gradient']} / {proof['rows_fed_as_input']}"),
        ]),
        prose("""
            `parameters()` yields the shared tensor once, so it is counted, clipped and updated
            once. Its gradient is the sum of both uses: rows of words that were never input
            still move, because the decoder scores every word at every step.
        """),
        section("Why nhid must equal emsize"),
        prose(f"""
            The embedding is `ntokens x emsize`, the decoder weight `ntokens x nhid`: one tensor
            can be both only if `nhid == emsize`. Built with emsize 200, nhid 300, the model says:
            `{numbers['mismatch_error']}` (and `lmprof train --tied` checks it before it starts).
        """),
    )
