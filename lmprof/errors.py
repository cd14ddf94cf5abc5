"""Errors a user can cause, and how a stop request reaches the code.

The CLI prints a UsageError as one line and exits with 2. SIGTERM is turned
into ``Terminated``, a KeyboardInterrupt, so every place that keeps its
measurements on Ctrl-C keeps them on SIGTERM too.
"""

from __future__ import annotations

import difflib
import signal
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

INTERRUPTED_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: the same clean stop, a different exit status."""


_last_signal: int | None = None  # the stop request this process received, if any


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest choice, ignoring case and - versus _; '' when none is close."""
    options = list(choices)
    by_key = {_key(c): c for c in options}
    if _key(word) in by_key:
        return f" (did you mean {by_key[_key(word)]}?)"
    close = difflib.get_close_matches(_key(word), list(by_key), n=1, cutoff=0.6)
    return f" (did you mean {by_key[close[0]]}?)" if close else ""


def _key(word: str) -> str:
    return word.lower().replace("-", "_")


def interrupted_exit_status() -> int:
    """130 after Ctrl-C, 143 after SIGTERM (the status a shell gives a process the signal killed)."""
    return INTERRUPTED_EXIT.get(signal.Signals(_last_signal or signal.SIGINT), 130)


def note_interrupt(signum: int) -> None:
    global _last_signal
    _last_signal = signum


@contextmanager
def stop_requests_as_interrupts() -> Iterator[None]:
    """Within the block, SIGINT raises KeyboardInterrupt and SIGTERM raises Terminated.

    Both are remembered for ``interrupted_exit_status``. Outside the main
    thread (where handlers cannot be set) the block runs unchanged.
    """
    def on_int(signum: int, frame: Any) -> None:
        note_interrupt(signum)
        raise KeyboardInterrupt

    def on_term(signum: int, frame: Any) -> None:
        note_interrupt(signum)
        raise Terminated

    try:
        previous = {signal.SIGINT: signal.signal(signal.SIGINT, on_int),
                    signal.SIGTERM: signal.signal(signal.SIGTERM, on_term)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
