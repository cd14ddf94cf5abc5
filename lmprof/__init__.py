"""lmprof: see where a word-level language model's training time goes, and teach it.

Public API (importing lmprof does not import torch):

    from lmprof import RunConfig, run, RunResult
    result = run(RunConfig(epochs=1, max_batches=20))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["RunConfig", "RunResult", "run", "UsageError", "__version__"]

if TYPE_CHECKING:
    from lmprof.config import RunConfig
    from lmprof.errors import UsageError
    from lmprof.result import RunResult
    from lmprof.runner import run


def __getattr__(name: str) -> Any:
    # Lazy, so that `lmprof --help` and `import lmprof` stay instant.
    if name == "RunConfig":
        from lmprof.config import RunConfig
        return RunConfig
    if name == "RunResult":
        from lmprof.result import RunResult
        return RunResult
    if name == "run":
        from lmprof.runner import run
        return run
    if name == "UsageError":
        from lmprof.errors import UsageError
        return UsageError
    raise AttributeError(f"module 'lmprof' has no attribute {name!r}")
