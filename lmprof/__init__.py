"""lmprof: see where a word-level language model's training time goes, and teach it.

Public API (importing lmprof does not import torch). The commands as functions,
each returning an object that displays itself in a notebook:

    import lmprof
    run = lmprof.profile(fn=["train"], max_batches=50)   # RunResult: tables in a notebook
    lmprof.load("runs/demo")                             # a run folder's RunResult
    lmprof.compare(run, "runs/other")                    # Comparison: what changed, with verdicts
    lmprof.diagram.flow(run); lmprof.diagram.bptt(bptt=3)  # SVG in a notebook, .save(path)
    lmprof.explain("tied")                               # the walkthrough and its numbers
    lmprof.sweep(models=["LSTM", "GRU"], vary={"nhid": [32, 64]}, epochs=1)
    lmprof.pack(run, "alice.zip")                        # a hand-in bundle for lmprof class

These live in lmprof.api, which calls the same library functions as the command
line (lmprof.library), never the command line itself. Flags take upstream's
names with underscores (batch_size, max_batches); a wrong name or value raises
ValueError with the line the command line prints for it. In IPython,
``%load_ext lmprof`` adds ``%lmprof ARGS``, the command line in the kernel (see
lmprof.magic). The composition itself: ``run(RunConfig(...), instruments=[...])``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lmprof.version import __version__
__all__ = ["RunConfig", "RunResult", "run", "UsageError", "__version__", "train", "profile", "trace", "load",
           "sweep", "compare", "diagram", "explain", "pack", "load_ipython_extension"]
_API = ("train", "profile", "trace", "load", "sweep", "compare", "diagram", "explain", "pack")

if TYPE_CHECKING:
    from lmprof.config import RunConfig
    from lmprof.errors import UsageError
    from lmprof.record.result import RunResult
    from lmprof.runner import run
    from lmprof.api import compare, diagram, explain, load, pack, profile, sweep, trace, train
    from lmprof.magic import load_ipython_extension


def __getattr__(name: str) -> Any:
    # Lazy, so that `lmprof --help` and `import lmprof` stay instant.
    if name == "RunConfig":
        from lmprof.config import RunConfig
        return RunConfig
    if name == "RunResult":
        import lmprof.views.notebook  # noqa: F401  (registers its notebook display)
        from lmprof.record.result import RunResult
        return RunResult
    if name == "run":
        from lmprof.runner import run
        return run
    if name in _API:
        from lmprof import api
        return getattr(api, name)
    if name == "load_ipython_extension":
        from lmprof.magic import load_ipython_extension
        return load_ipython_extension
    if name == "UsageError":
        from lmprof.errors import UsageError
        return UsageError
    raise AttributeError(f"module 'lmprof' has no attribute {name!r}")
