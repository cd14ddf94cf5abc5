"""Two to six runs side by side (``lmprof compare``): its options, and the checked Comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from lmprof.comparison import DRIFT_MARGIN
from lmprof.errors import UsageError
from lmprof.library.options import Option, flag_option

if TYPE_CHECKING:
    from pathlib import Path

    from lmprof.comparison import Comparison
    from lmprof.record.result import RunResult

COMPARE_OPTIONS = (
    flag_option("json", "print the comparison as JSON instead of tables"),
    Option("report", "also write the comparison as one self-contained HTML page", metavar="FILE.html"),
    Option("drift", "run-to-run drift a ratio must clear for a verdict (default: this machine's, when "
                    "benchmarks/bench_compare_noise.py --save measured it; else "
                    f"{DRIFT_MARGIN}: reruns on lmprof's 2-core reference machine drifted up to 13%%)",
           type=float, metavar="FRACTION"),
)


def compare_runs(folders: Sequence["str | Path"], drift: float | None = None) -> tuple["Comparison", list["RunResult"]]:
    """The Comparison of these run folders (the first is the baseline), and the runs it read.

    ``drift`` None: this machine's measured drift, else the default (lmprof.drift).
    """
    from lmprof.comparison import compare, load_runs

    if drift is not None and not 0 <= drift < 1:
        raise UsageError(f"--drift is a fraction between 0 and 1 (0.05 = 5%), got {drift}")
    results, notes = load_runs([str(f) for f in folders])
    if not any(r.epochs or r.phases for r in results):
        raise UsageError("nothing to compare: none of these runs recorded metrics or phase times "
                         "(did they finish? lmprof profile --fn train records both)")
    return compare(results, notes, drift_margin=drift), results
