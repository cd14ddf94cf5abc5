"""Measure a ladder of well-known speed-ups against the reference, with the quality cost kept honest.

    lmprof speedlab --budget-batches 100                 every variant this device can run, 3 repeats
    lmprof speedlab --device cuda --budget-seconds 3     on a GPU (the default there): 3 s of reference training
    lmprof speedlab --variants foreach,bf16 --repeats 5  a few, more repeats
    lmprof speedlab --json                               the ladder as one JSON object, a row per variant

Upstream's flags pick the baseline. The reference (lmprof/reference/, unchanged)
and each variant train for the same token budget from the same seed and data,
interleaved and repeated; each is judged on tokens/s and on time to quality:
the seconds until its validation ppl reaches the reference's. The run folder
holds ladder.json, speedlab.html, and one result.json per variant that
``lmprof compare`` opens (e.g. lmprof compare DIR/reference DIR/bf16).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lmprof.commands.common import add_run_flags
    from lmprof.experiments.speedlab import ladder

    lab = parser.add_argument_group("speedlab")
    lab.add_argument("--variants", default=None, metavar="A,B,...",
                     help="variants to measure, comma-separated (default: all that apply to the device): "
                          + ", ".join(v.name for v in _variants()))
    budget = lab.add_mutually_exclusive_group()
    budget.add_argument("--budget-batches", type=int, default=None, metavar="N",
                        help="training budget in the reference's batches (default 100 on a CPU)")
    budget.add_argument("--budget-seconds", type=float, default=None, metavar="S",
                        help="training budget in seconds: the reference trains S seconds, and the tokens it saw "
                             f"are every variant's budget (default on CUDA: {ladder.GPU_BUDGET_SECONDS:g})")
    budget.add_argument("--budget-tokens", type=int, default=None, metavar="N", help="training budget in tokens")
    lab.add_argument("--repeats", type=int, default=None, metavar="K",
                     help=f"times each is trained, interleaved (default {ladder.REPEATS}; "
                          f"{ladder.GPU_REPEATS} on CUDA with the time budget)")
    lab.add_argument("--eval-every", type=int, default=ladder.EVAL_EVERY, metavar="M",
                     help=f"quality check every M reference batches' worth of tokens (default {ladder.EVAL_EVERY})")
    lab.add_argument("--valid-tokens", type=int, default=ladder.VALID_TOKENS, metavar="N",
                     help=f"the validation slice every variant is judged on (default {ladder.VALID_TOKENS})")
    lab.add_argument("--overtime", type=float, default=ladder.OVERTIME, metavar="F",
                     help="a variant short of the reference's ppl at the budget trains on up to F x the budget "
                          f"(default {ladder.OVERTIME:g})")
    lab.add_argument("--no-combine", action="store_true", help="skip the round that combines the variants that helped")
    lab.add_argument("--json", action="store_true", help="print the ladder as JSON on standard output")
    add_run_flags(parser, epochs=1)


def _variants() -> list["object"]:
    from lmprof.experiments.speedlab.variants import VARIANTS

    return list(VARIANTS)


def run(args: argparse.Namespace) -> int:
    import sys

    from lmprof.commands.common import config_from_args
    from lmprof.errors import UsageError
    from lmprof.fsutil import write_text_atomic
    from lmprof.runner import default_run_dir, prepare_run_dir
    from lmprof.experiments.speedlab.ladder import check_options, choose, run_ladder

    cfg = config_from_args(args)
    if args.max_batches or args.dry_run:  # the budget decides how long each variant trains
        raise UsageError("speedlab trains each variant for --budget-batches or --budget-tokens; "
                         "--max-batches and --dry-run do not apply here")
    names = [n.strip() for n in args.variants.split(",") if n.strip()] if args.variants else None
    choose(names)  # an unknown name fails before anything trains
    repeats = args.repeats if args.repeats is not None else 1  # None: the device decides (run_ladder)
    check_options(cfg, repeats, args.eval_every, args.valid_tokens, args.overtime)
    for flag, value in (("--budget-batches", args.budget_batches), ("--budget-tokens", args.budget_tokens)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if args.budget_seconds is not None and not (0 < args.budget_seconds < 10 ** 6):  # also refuses nan, inf
        raise UsageError(f"--budget-seconds must be a positive number of seconds, got {args.budget_seconds:g}")
    folder = prepare_run_dir(cfg.out or default_run_dir("speedlab", cfg), force=args.force)

    def progress(line: str) -> None:
        print(f"speedlab: {line}", file=sys.stderr, flush=True)

    ladder = run_ladder(cfg, variants=names, budget_batches=args.budget_batches, budget_tokens=args.budget_tokens,
                        budget_seconds=args.budget_seconds, repeats=args.repeats, eval_every=args.eval_every,
                        valid_tokens=args.valid_tokens,
                        overtime=args.overtime, combine=not args.no_combine, progress=progress)
    write_text_atomic(folder / "ladder.json", ladder.to_json() + "\n")
    from lmprof.experiments.speedlab.ladder import run_results

    for name, result in run_results(ladder).items():
        result.save(folder / name)
    from lmprof.views.speedlab import ladder_view, speedlab_html

    write_text_atomic(folder / "speedlab.html", speedlab_html(ladder))
    status = 0
    if ladder.interrupted:
        from lmprof.errors import interrupted_exit_status

        status = interrupted_exit_status()  # after the files: what finished is kept
    if args.json:
        print(ladder.to_json())
        return status
    from lmprof.commands.console import make_console, print_files

    console = make_console()
    if not console.is_terminal:  # a log file does not wrap: the ladder's rows whole rather than folded at 80
        console.width = max(console.width, 132)
    console.print(ladder_view(ladder))
    print_files(console, Path(folder), {"ladder": "ladder.json", "page": "speedlab.html",
                                        "runs": "reference"})
    return status
