"""``%load_ext lmprof``: the ``%lmprof`` line magic, which takes exactly the command line's arguments.

    %load_ext lmprof
    %lmprof profile --fn train --max-batches 50      # runs here, in the kernel; shows the run
    %lmprof diagram bptt --bptt 3                    # shows the SVG
    %lmprof explain tied

IPython is imported only here, when the extension loads.
"""

from __future__ import annotations

from typing import Any


def lmprof_magic(line: str) -> Any:
    """Run ``lmprof LINE`` in this kernel and return what it made, which the notebook displays.

    A usage mistake prints the command line's one-line message, not a traceback.
    """
    from lmprof.api import run_magic

    try:
        return run_magic(line)
    except ValueError as e:
        print(f"%lmprof: {e}")
        return None


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext lmprof``."""
    ipython.register_magic_function(lmprof_magic, magic_kind="line", magic_name="lmprof")
