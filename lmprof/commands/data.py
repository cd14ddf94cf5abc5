"""Write lmprof's embedded corpus to a folder, or download WikiText-2 as the PyTorch example ships it."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    s = sub.add_parser("synth", help="write the embedded synthetic corpus (train/valid/test.txt)")
    s.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    s.add_argument("--seed", type=int, default=0, help="corpus seed (the same seed gives the same bytes)")
    s.add_argument("--train-tokens", type=int, default=None, metavar="N", help="size of train.txt in tokens")
    w = sub.add_parser("wikitext-2", help="download WikiText-2 (the example's data/wikitext-2) and verify it")
    w.add_argument("--dest", required=True, metavar="DIR", help="folder to write into")
    w.add_argument("--url", default=None, help="base URL of the three files (default: the PyTorch examples repository)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(highlight=False, force_jupyter=False)
    if args.source == "synth":
        return _synth(args, console)
    return _wikitext(args, console)


def _synth(args: argparse.Namespace, console: "Console") -> int:  # type: ignore[name-defined]  # noqa: F821
    from lmprof.corpora import synth
    from lmprof.corpora.check import count_tokens
    from lmprof.errors import UsageError

    sizes = dict(synth.DEFAULT_SIZES)
    if args.train_tokens is not None:
        if args.train_tokens <= 0:
            raise UsageError(f"--train-tokens must be positive, got {args.train_tokens}")
        sizes["train"] = args.train_tokens
    try:
        folder = synth.write(args.out, args.seed, sizes)
    except OSError as e:
        raise UsageError(f"cannot write {args.out}: {e.strerror}") from None
    for split in ("train", "valid", "test"):
        console.print(f"{folder / (split + '.txt')}  {count_tokens(folder / (split + '.txt')):,} tokens")
    return 0


def _wikitext(args: argparse.Namespace, console: "Console") -> int:  # type: ignore[name-defined]  # noqa: F821
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from lmprof.corpora import wikitext

    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True, disable=not sys.stdout.isatty()) as progress:
        tasks: dict[str, int] = {}

        def report(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done)

        outcome = wikitext.download(args.dest, base_url=args.url, progress=report)
    for name, what in outcome.items():
        console.print(f"{args.dest}/{name}: {what} (git blob id {wikitext.BLOB_IDS[name][:12]})")
    return 0
