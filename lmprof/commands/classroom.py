"""The whole class at once: cohorts by machine, distributions, misconceptions flagged (``lmprof class``).

    lmprof class handins/                                      every bundle in the folder
    lmprof class handins/ --expect assignment.toml --report class.html --csv grades.csv
    lmprof class a.zip b.zip runs/mine --json

Runs are grouped by the kind of device they trained on (a GPU by name, a CPU
by family and instruction set); each cohort's speeds, phase shares,
perplexities and memory are shown as quantiles (p10 · median · p90), and
calibrated speeds put every machine on one scale. Eight detectors flag what
the numbers give away (a forgotten repackage_hidden, a GPU left idle, a
diverged run, ...), each with one line of evidence. A bundle that is broken
or hostile costs one line; the rest of the class is still shown.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="BUNDLE_OR_FOLDER",
                        help="bundles (lmprof pack), run folders, or folders holding them")
    parser.add_argument("--expect", metavar="assignment.toml", default=None,
                        help="the assignment's flags (model = \"LSTM\", nhid = 200, epochs = 6, seed = 1111, ...): "
                             "runs whose flags differ are flagged")
    parser.add_argument("--report", metavar="FILE.html", default=None, help="also write the class dashboard page")
    parser.add_argument("--csv", metavar="FILE", default=None, help="also write one row per run (a gradebook, pandas)")
    parser.add_argument("--json", action="store_true", help="print the class as JSON instead of tables")


def _write(target: str, text: str, flag: str) -> None:
    from pathlib import Path

    from lmprof.errors import UsageError
    from lmprof.fsutil import write_text_atomic

    try:
        write_text_atomic(Path(target), text)
    except OSError as e:
        raise UsageError(f"cannot write {target}: {e.strerror}: choose another {flag}") from None


def run(args: argparse.Namespace) -> int:
    from lmprof.classroom.summary import class_summary, load_expect
    from lmprof.errors import UsageError

    expect = load_expect(args.expect) if args.expect else None
    summary = class_summary(args.inputs, expect)
    if not summary.rows:
        import sys

        from lmprof.safe_files import visible

        for line in summary.refused:
            print(f"lmprof class: refused: {visible(line)}", file=sys.stderr)
        raise UsageError(f"no run could be read ({len(summary.refused)} refused)" if summary.refused else
                         "no bundle or run folder found in " + " ".join(args.inputs) +
                         ": give bundles (lmprof pack) or folders holding them")
    if args.csv:
        _write(args.csv, summary.to_csv(), "--csv")
    if args.report:
        from lmprof.views.class_page import class_html

        _write(args.report, class_html(summary), "--report")
    if args.json:
        print(summary.to_json())
        return 0
    from lmprof.commands.console import make_console
    from lmprof.views.class_terminal import class_view

    console = make_console()
    console.print(class_view(summary))
    for flag, target in (("page", args.report), ("CSV", args.csv)):
        if target:
            console.print(f"{flag}: {target}", highlight=False, markup=False, soft_wrap=True)
    return 0
