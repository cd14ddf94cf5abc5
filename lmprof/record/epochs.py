"""The runner's listener on the reference loop: each epoch's record, kept in result.json as the epoch ends.

``reference.loop.main`` reads like upstream's epoch loop and only reports
(``Watch``); this keeps the books: each epoch's training seconds and tokens,
its validation loss, the run's status, and its test loss.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from lmprof.errors import LossNotFinite
from lmprof.record.derived import epoch_record, with_validation
from lmprof.record.result import RunResult
from lmprof.record.sections import BATCHES, EPOCH
from lmprof.reference.loop import Watch, perplexity, tokens_seen


class EpochRecords(Watch):
    def __init__(self, result: RunResult, folder: Path, bptt: int,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.result, self.folder, self.bptt, self.on_epoch = result, folder, bptt, on_epoch
        self.status, self.message = "ok", ""
        self.test_loss: float | None = None
        self.test_ppl: float | None = None
        self.ntokens = self.nparams = self.train_tokens = 0
        self._train_data: torch.Tensor | None = None
        self._train_start = 0.0
        self._epoch: dict[str, Any] = {}

    def built(self, model: nn.Module, ntokens: int, train_data: torch.Tensor) -> None:
        self.ntokens, self.nparams = ntokens, sum(p.numel() for p in model.parameters())
        self._train_data = train_data

    def training(self, epoch: int) -> None:
        self._train_start = time.perf_counter()

    def trained(self, epoch: int, lr: float, batches: int) -> None:
        seconds = time.perf_counter() - self._train_start
        assert self._train_data is not None
        tokens = tokens_seen(self._train_data, self.bptt, batches)
        self.train_tokens += tokens
        self._epoch = epoch_record(epoch, lr, batches, tokens, seconds)

    def validated(self, val_loss: float) -> None:
        """The epoch's record saved (an interrupted run keeps every finished epoch), then told; a NaN stops the run."""
        record = with_validation(self._epoch, val_loss, perplexity(val_loss))
        self.result.metrics["epochs"].append(record)
        self.result.save(self.folder)
        if self.on_epoch is not None:
            self.on_epoch(record)
        if not math.isfinite(val_loss):
            raise LossNotFinite(record[EPOCH], record[BATCHES] - 1)

    def stopped(self, status: str, message: str = "") -> None:
        self.status, self.message = status, message

    def tested(self, test_loss: float) -> None:
        self.test_loss, self.test_ppl = test_loss, perplexity(test_loss)
