"""Classroom walkthroughs: one module per topic, each a live demonstration plus its explanation.

Every topic module has two functions:

    demo(...) -> dict          computes the numbers now, with torch and lmprof's reference code
    render(numbers) -> rich    the explanation around those numbers (headings, code, tables)

The registry below is plain data, so listing the topics imports neither torch
nor rich; a topic's module is imported only when it is asked for.

    >>> from lmprof.lessons import TOPICS
    >>> list(TOPICS)[:3]
    ['batchify', 'get_batch', 'repackage_hidden']
"""

from __future__ import annotations

import importlib
from types import ModuleType

from lmprof.errors import UsageError, did_you_mean

# name -> one line, in the order a lesson meets them
TOPICS: dict[str, str] = {
    "batchify": "the token stream cut into columns: alphabet, then corpus",
    "get_batch": "input and target, offset by one row; a shorter last chunk",
    "repackage_hidden": "why the hidden state is detached: graph size, step time",
    "bptt": "where back-propagation through time happens, and its window",
    "tied": "tied embedding and softmax weights: counts, one tensor",
    "memory": "where a step's bytes go: logits, bptt, batch, vocabulary, --tied",
    "dropout": "Dropout vs Dropout2d masks, the 1/(1-p) scale, eval mode",
    "batchnorm": "BatchNorm's running statistics: the formula PyTorch uses",
    "perplexity": "exp(mean NLL); a uniform guess scores the vocabulary size",
    "test_set": "why a held-out test set, read once by the best checkpoint",
    "profiling": "reading line and phase tables, GPU timing, traces",
    "speed": "from the phase table to a speed-up: hypothesis, FLOPs, measurement",
    "gpu": "launch-bound or compute-bound: kernels per step, GPU busy, batch curve, one CUDA graph",
}


def topic_module(name: str) -> ModuleType:
    """The module of topic ``name`` (imported now), or a UsageError naming the valid topics."""
    name = name.replace("-", "_")  # test-set and test_set alike
    if name not in TOPICS:
        raise UsageError(f"unknown topic {name!r}{did_you_mean(name, TOPICS)}: choose one of {', '.join(TOPICS)}")
    return importlib.import_module(f"lmprof.lessons.{name}")
