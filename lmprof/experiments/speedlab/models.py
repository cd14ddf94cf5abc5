"""The models some variants train: the reference model's own modules, rewired at the end.

Each wraps (or reuses) the reference ``RNNModel``'s encoder, rnn and dropout,
and keeps its interface (``forward(input, hidden)``, ``init_hidden``), so the
reference ``train()`` and ``evaluate()`` run them unchanged. This module
imports torch; ``variants`` imports it inside the changes that use it, so
reading the ladder's list of variants (``lmprof speedlab --help``) does not.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from lmprof.config import RunConfig
from lmprof.reference.model import Hidden, RNNModel


def rnn_body(model: RNNModel, input: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
    """The reference RNNModel's forward up to (not including) the decoder."""
    emb = model.drop(model.encoder(input))
    output, hidden = model.rnn(emb, hidden)
    return model.drop(output), hidden


class LogitsRNN(nn.Module):
    """The reference model's own modules, with forward ending at the decoder's logits (no log_softmax).

    What differs from the reference: only the last line of forward; the
    criterion then applies log_softmax and the NLL in one ``F.cross_entropy``.
    """

    def __init__(self, inner: RNNModel) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        output, hidden = rnn_body(self.inner, input, hidden)
        return self.inner.decoder(output).view(-1, self.inner.ntoken), hidden

    def init_hidden(self, bsz: int) -> Hidden:
        return self.inner.init_hidden(bsz)


class AdaptiveRNN(nn.Module):
    """The reference RNN body (encoder, rnn, dropout) with an adaptive softmax in place of the decoder.

    A different model: the decoder's ntokens x nhid matrix becomes a small head
    (the frequent words and one entry per tail cluster) plus smaller tail
    projections, so it has other parameters and other numbers.
    """

    def __init__(self, body: RNNModel, head: nn.AdaptiveLogSoftmaxWithLoss) -> None:
        super().__init__()
        del body.decoder  # the head below replaces it: no ntokens x nhid matrix is left in the model
        self.body = body
        self.head = head

    def forward(self, input: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        output, hidden = rnn_body(self.body, input, hidden)
        return output.view(-1, output.size(-1)), hidden  # features; the criterion applies the head

    def init_hidden(self, bsz: int) -> Hidden:
        return self.body.init_hidden(bsz)


class AdaptiveLoss(nn.Module):
    """criterion(features, targets): the adaptive softmax's mean NLL (its parameters live in the model)."""

    def __init__(self, model: AdaptiveRNN) -> None:
        super().__init__()
        self.model = [model]  # a list: not a submodule, so the criterion owns no parameters

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = self.model[0].head(features, targets).loss
        return loss


def adaptive_model(cfg: RunConfig, ntokens: int, cutoffs: list[int]) -> AdaptiveRNN:
    """An AdaptiveRNN of the run's sizes (built in the reference body's order, then the head)."""
    body = RNNModel(cfg.model, ntokens, cfg.emsize, cfg.nhid, cfg.nlayers, cfg.dropout, False)
    head = nn.AdaptiveLogSoftmaxWithLoss(cfg.nhid, ntokens, cutoffs, div_value=4.0)
    return AdaptiveRNN(body, head)


class AutocastModel(nn.Module):
    """Runs the reference model's forward under bfloat16 autocast; returns float32 output and hidden state.

    What differs from the reference: matrix products (and the LSTM) compute in
    bfloat16; the log_softmax and the loss stay float32 (autocast's own rule).
    """

    def __init__(self, inner: nn.Module, device_type: str) -> None:
        super().__init__()
        self.inner = inner
        self.device_type = device_type

    def forward(self, input: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            output, hidden = self.inner(input, hidden)
        return output.float(), _as_float(hidden)

    def init_hidden(self, bsz: int) -> Any:
        return self.inner.init_hidden(bsz)


def _as_float(hidden: Hidden) -> Hidden:
    if isinstance(hidden, torch.Tensor):
        return hidden.float()
    h, c = hidden  # the LSTM's pair
    return h.float(), c.float()
