"""A walkthrough's live demonstration (``lmprof explain TOPIC``): its options, and the numbers it measures."""

from __future__ import annotations

import inspect
from typing import Any

from lmprof.errors import UsageError
from lmprof.library.options import Option, compute_options, flag_option

EXPLAIN_OPTIONS = (
    flag_option("json", "print the demonstration's numbers as JSON instead of the explanation"),
    Option("data", "corpus folder for the topics that read one (default: lmprof's embedded corpus)", metavar="DIR"),
    *compute_options(),
)


def demonstrate(topic: str, *, data: str | None = None, device: str = "auto", threads: int | None = None) -> Any:
    """The topic's demonstration run with these options: its numbers (a UsageError for an unknown topic)."""
    from lmprof.lessons import topic_module
    from lmprof.library.compute import apply_compute

    module = topic_module(topic)
    takes_device = "device" in inspect.signature(module.demo).parameters
    chosen = apply_compute(device, threads, cpu_only=None if takes_device else f"the {topic} demonstration")
    options: dict[str, object] = {"device": chosen} if takes_device else {}
    if data is not None:
        if "data" not in inspect.signature(module.demo).parameters:
            raise UsageError(f"topic {topic!r} reads no corpus: leave out --data")
        options["data"] = checked_data_folder(data)
    return module.demo(**options)


def checked_data_folder(path: str) -> str:
    """--data, checked: a folder with train.txt, valid.txt and test.txt."""
    from pathlib import Path

    missing = [n for n in ("train.txt", "valid.txt", "test.txt") if not (Path(path) / n).is_file()]
    if missing:
        raise UsageError(f"--data {path} lacks {', '.join(missing)}: point it at a corpus folder "
                         "(make one with `lmprof data synth --out DIR`)")
    return path
