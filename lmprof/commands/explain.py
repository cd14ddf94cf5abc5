"""Classroom walkthroughs: explain a topic and run its live demonstration (no topic: list them)."""

from __future__ import annotations

import argparse
import json

from lmprof.commands.common import add_options
from lmprof.lessons import TOPICS, topic_module
from lmprof.library.explain import EXPLAIN_OPTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", nargs="?", metavar="TOPIC",
                        help=f"one of: {', '.join(TOPICS)} (leave out to list them)")
    add_options(parser, EXPLAIN_OPTIONS)


def run(args: argparse.Namespace) -> int:
    from lmprof.commands.console import make_console
    from lmprof.library.explain import demonstrate

    console = make_console()
    if args.topic is None:
        width = max(len(name) for name in TOPICS)
        for name, line in TOPICS.items():
            console.print(f"[bold]{name:<{width}}[/bold]  {line}", soft_wrap=True)  # one line each, even if long
        console.print("\nRun [bold]lmprof explain TOPIC[/bold] for the walkthrough and its live demonstration.")
        return 0
    numbers = demonstrate(args.topic, data=args.data, device=args.device, threads=args.threads)
    if args.json:
        print(json.dumps(numbers, indent=1, allow_nan=False))
        return 0
    console.print(topic_module(args.topic).render(numbers))
    return 0
