"""lmprof's command line: parses arguments and calls one command; no logic of its own.

Each command lives in ``lmprof/commands/<name>.py`` with ``add_arguments(parser)``
and ``run(args) -> int``: a thin adapter that builds its flags from the options
its library function declares (``lmprof.library``), calls that function, and
prints what it returns with the views. Those modules import nothing heavy at
the top, so ``lmprof --help`` answers without importing torch. The Python API
(``lmprof.api``) is the other face over the same library; neither calls the other.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from typing import Any, Sequence

from lmprof.version import __version__
from lmprof.errors import UsageError, interrupted_exit_status, stop_requests_as_interrupts
from lmprof.library.options import error_line, invalid_choice, unrecognized

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
    "gradflow": ("lmprof.commands.gradflow", "measure the gradient flowing back through time, per layer and step"),
    "compare": ("lmprof.commands.compare", "what changed between runs, phase by phase and line by line, with noise"),
    "speedlab": ("lmprof.commands.speedlab", "measure well-known speed-ups against the reference: speed, quality, time to quality"),
    "pack": ("lmprof.commands.pack", "one hand-in bundle of a run: JSON only, with this machine's calibration"),
    "class": ("lmprof.commands.classroom", "a whole class of bundles: cohorts, distributions, misconceptions flagged"),
}


# A write that fails for one of these is the disk's or the folder's fault, not lmprof's: one line, exit 2.
FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
STORAGE_ERRORS = FULL_OR_READ_ONLY | {errno.EACCES, errno.EPERM, errno.EIO}
# A received folder whose flow.svg is a folder (or whose member path runs through a file): its fault too.
STORAGE_ERRORS |= {errno.EISDIR, errno.ENOTDIR, errno.ELOOP}


class Parser(argparse.ArgumentParser):
    """argparse, with each subcommand refusing its own unknown flags and suggesting the closest.

    Its messages come from lmprof.library.options, where the API's keyword checks find the same ones.
    """

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:  # here, in the subcommand that got them: its usage, not the top level's
            self.error(unrecognized(extras, self._option_string_actions))
        return parsed, extras

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            raise argparse.ArgumentError(action, invalid_choice(value, action.choices))

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(2, error_line(self.prog, message) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    from lmprof.commands.console import guarded_stdout, say_library_notes

    say_library_notes(args)  # a library's repeated warnings, said once in lmprof's words
    try:
        # guarded: a closed pipe (`| head -1`) stops the printing, never the measuring
        with stop_requests_as_interrupts(), guarded_stdout():  # SIGTERM stops as cleanly as Ctrl-C
            return int(module.run(args) or 0)
    except UsageError as e:
        from lmprof.safe_files import visible  # the message may quote a stranger's file

        print(error_line(f"lmprof {args.command}", visible(str(e))), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lmprof {args.command}: interrupted", file=sys.stderr)
        return interrupted_exit_status()
    except OSError as e:
        if e.errno not in STORAGE_ERRORS:
            raise
        target = e.filename2 or e.filename  # an atomic write's rename names the temp file first, the target second
        where = f" {target}" if target else ""
        verb = "cannot write" if e.errno in FULL_OR_READ_ONLY else "cannot use"
        print(error_line(f"lmprof {args.command}", f"{verb}{where}: {e.strerror}"), file=sys.stderr)
        return 2
    finally:
        say_reading_notes(args.command)


def say_reading_notes(command: str) -> None:
    """One line on stderr for each file that loading cut to its caps (lmprof.record.result.READING_NOTES)."""
    result_module = sys.modules.get("lmprof.record.result")
    notes = getattr(result_module, "READING_NOTES", [])
    for note in dict.fromkeys(notes):
        print(f"lmprof {command}: note: {note}", file=sys.stderr)
    notes.clear()


def main_exit() -> None:
    """The console script: exit with main()'s code."""
    sys.exit(main())
