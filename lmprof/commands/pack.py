"""Pack a run folder into one hand-in bundle: a zip of JSON, with this machine's calibration.

    lmprof pack runs/profile-LSTM-20261204-120000                 -> runs/profile-LSTM-20261204-120000.zip
    lmprof pack runs/profile-LSTM-20261204-120000 --out alice.zip --anonymize

The bundle holds result.json (its line tables included), the machine's
environment, and a calibration (its matmul peak and one fixed tiny reference
step, a second or two to measure) so an instructor can put runs from a
laptop and a GPU on one scale. No checkpoint, no trace, no pickle; at most
2 MiB. ``lmprof class`` reads a folder of them; ``lmprof show`` and
``lmprof report`` open one like a run folder.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="the run folder to hand in (lmprof profile, train or trace wrote it)")
    parser.add_argument("--out", metavar="FILE.zip", default=None,
                        help="where to write the bundle (default: beside the folder, RUN.zip)")
    parser.add_argument("--anonymize", action="store_true",
                        help="replace host and user names and paths by stable hashes (host-1c9e4b2a07)")


def run(args: argparse.Namespace) -> int:
    from lmprof.classroom.bundle import pack

    path = pack(args.run, args.out, anonymize=args.anonymize)
    size = path.stat().st_size
    print(f"{path}  ({size / 1024:,.0f} KiB: result, line tables, environment, calibration"
          f"{'; anonymized' if args.anonymize else ''})")
    return 0
