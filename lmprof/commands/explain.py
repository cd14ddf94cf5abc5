"""Classroom walkthroughs: explain a topic and run its live demonstration (no topic: list them)."""

from __future__ import annotations

import argparse
import inspect
import json

from lmprof.commands.common import add_compute_flags
from lmprof.lessons import TOPICS, topic_module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", nargs="?", metavar="TOPIC",
                        help=f"one of: {', '.join(TOPICS)} (leave out to list them)")
    parser.add_argument("--json", action="store_true",
                        help="print the demonstration's numbers as JSON instead of the explanation")
    parser.add_argument("--data", type=str, default=None, metavar="DIR",
                        help="corpus folder for the topics that read one (default: lmprof's embedded corpus)")
    add_compute_flags(parser)


def run(args: argparse.Namespace) -> int:
    from lmprof.commands.console import make_console

    console = make_console()
    if args.topic is None:
        width = max(len(name) for name in TOPICS)
        for name, line in TOPICS.items():
            console.print(f"[bold]{name:<{width}}[/bold]  {line}", soft_wrap=True)  # one line each, even if long
        console.print("\nRun [bold]lmprof explain TOPIC[/bold] for the walkthrough and its live demonstration.")
        return 0
    topic = topic_module(args.topic)
    from lmprof.commands.common import apply_compute_flags

    takes_device = "device" in inspect.signature(topic.demo).parameters
    device = apply_compute_flags(args, cpu_only=None if takes_device else f"the {args.topic} demonstration")
    options: dict[str, object] = {"device": device} if takes_device else {}
    if args.data is not None:
        if "data" not in inspect.signature(topic.demo).parameters:
            from lmprof.errors import UsageError

            raise UsageError(f"topic {args.topic!r} reads no corpus: leave out --data")
        options["data"] = _corpus_folder(args.data)
    numbers = topic.demo(**options)
    if args.json:
        print(json.dumps(numbers, indent=1, allow_nan=False))
        return 0
    console.print(topic.render(numbers))
    return 0


def _corpus_folder(path: str) -> str:
    from pathlib import Path

    from lmprof.errors import UsageError

    missing = [n for n in ("train.txt", "valid.txt", "test.txt") if not (Path(path) / n).is_file()]
    if missing:
        raise UsageError(f"--data {path} lacks {', '.join(missing)}: point it at a corpus folder "
                         "(make one with `lmprof data synth --out DIR`)")
    return path
