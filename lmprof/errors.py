"""Errors a user can cause. The CLI prints them as one line and exits with 2."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input: a flag, a folder, a file. The message says what to do."""


class LossNotFinite(Exception):
    """Training produced a NaN or infinite loss; raised by the reference loop."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__(
            f"loss became NaN or infinite at epoch {epoch}, batch {batch}: "
            "training stopped (try a smaller --lr or --clip)"
        )
        self.epoch = epoch
        self.batch = batch
