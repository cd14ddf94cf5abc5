"""lmprof's command line: parses arguments and calls one command; no logic of its own.

Each command lives in ``lmprof/commands/<name>.py`` with ``add_arguments(parser)``
and ``run(args) -> int``. Those modules import nothing heavy at the top, so
``lmprof --help`` answers without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from lmprof import __version__
from lmprof.errors import UsageError

# name -> (module, one-line help), in the order a newcomer meets them
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("lmprof.commands.train", "train the reference model exactly as upstream does"),
    "profile": ("lmprof.commands.profile", "time the training line by line and phase by phase; print the tables"),
    "show": ("lmprof.commands.show", "print a run's tables again from its folder, without training"),
    "trace": ("lmprof.commands.trace", "top operators under torch.profiler; a trace for TensorBoard and Perfetto"),
    "data": ("lmprof.commands.data", "write the embedded corpus, or download WikiText-2"),
    "sweep": ("lmprof.commands.sweep", "train a grid of configurations, resumably; tables and plots"),
    "explain": ("lmprof.commands.explain", "classroom walkthroughs: explain a topic and run its live demo"),
    "diagram": ("lmprof.commands.diagram", "draw the flow chart shaded by measured time, or the unrolled BPTT graph"),
    "report": ("lmprof.commands.report", "one self-contained HTML page of a run or sweep folder"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmprof",
        description="Where does a word-level language model's training time go? "
        "lmprof runs PyTorch's word_language_model example under four instruments "
        "(line_profiler, phase timers, torch.profiler, graphviz) and shows what they saw.",
        epilog="Start with: lmprof profile --fn train     (then: lmprof report runs/<that run>)",
    )
    parser.add_argument("--version", action="version", version=f"lmprof {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except UsageError as e:
        print(f"lmprof {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lmprof {args.command}: interrupted", file=sys.stderr)
        return 130


def main_exit() -> None:
    """The console script: exit with main()'s code."""
    sys.exit(main())
