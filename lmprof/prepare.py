"""prepare(cfg): what every driver does before it trains, in one place.

The runner, the speed lab, gradient flow, the sweep worker and the lessons
all start a run the same way: check the config, find the corpus (the
embedded one when ``--data`` is not given) and check it fits the batch
shapes, choose the device, set the thread count. ``prepare`` does those
steps, in that order, and returns a ``Prepared``; a bad flag reads the same
one line whichever driver met it. The model and the batches come from the
``Prepared`` as upstream's main.py makes them: ``torch.manual_seed(seed)``,
then the reference's ``build_model`` (``seeded_model``), so a driver that
builds its own model starts from the reference's weights.

    >>> p = prepare(RunConfig(emsize=16, nhid=16))      # doctest: +SKIP
    >>> p.device, p.ntokens                             # doctest: +SKIP
    (device(type='cpu'), 10000)
    >>> model, train_data = p.model(), p.batches("train", p.cfg.batch_size)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lmprof.config import RunConfig
from lmprof.corpora.check import CorpusSize, check_corpus
from lmprof.errors import UsageError

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from lmprof.reference.data import Corpus


def corpus_folder(data: str | Path | None, synth_seed: int = 0) -> Path:
    """``data``, or the embedded corpus's folder when it is None (written on first use)."""
    from lmprof.corpora import synth

    return Path(data) if data else synth.default_corpus(synth_seed)


def read_corpus(data: str | Path | None = None) -> "Corpus":
    """The reference Corpus of ``data`` (the embedded corpus when None), unchecked: a lesson reads any size."""
    from lmprof.reference.data import Corpus

    return Corpus(str(corpus_folder(data)))


def checked_corpus(cfg: RunConfig) -> tuple[Path, CorpusSize]:
    """The corpus folder and its splits' token counts, checked against the run's batch shapes (one line if not)."""
    path = corpus_folder(cfg.data, cfg.synth_seed)
    return path, check_corpus(path, cfg.batch_size, cfg.bptt, cfg.eval_batch_size)


def resolve_device(cfg: RunConfig) -> "torch.device":
    """--device as a torch.device: auto picks CUDA, then MPS, then the CPU; a device not here is one line."""
    import torch

    # --accel is upstream's "use an accelerator": it means --device auto, and never overrides an explicit device
    want = cfg.device
    if want == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if want == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    if want == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: no MPS device is available here (use --device cpu or auto)")
    return torch.device(want)


def seeded_model(cfg: RunConfig, ntokens: int, device: "torch.device") -> "nn.Module":
    """The reference model as upstream's main.py makes it: ``torch.manual_seed(seed)``, then build.

    (main.py reads the corpus between the two; reading it draws no random numbers, so the weights
    are the same.)"""
    import torch

    from lmprof.reference.loop import build_model

    torch.manual_seed(cfg.seed)
    return build_model(cfg, ntokens, device)


@dataclass
class Prepared:
    """A checked run, ready to train: its config, device and corpus; the model and batches on request."""

    cfg: RunConfig  # validated
    device: "torch.device"
    data_path: Path  # the corpus folder (the embedded corpus when cfg.data is None)
    size: CorpusSize  # its splits' token counts, checked against batch_size, bptt and eval_batch_size
    _corpus: "Corpus | None" = field(default=None, repr=False)

    def corpus(self) -> "Corpus":
        """The reference Corpus of data_path, read on first use (seconds on WikiText-2), then kept."""
        if self._corpus is None:
            from lmprof.reference.data import Corpus

            self._corpus = Corpus(str(self.data_path))
        return self._corpus

    @property
    def ntokens(self) -> int:
        """Words in the corpus's dictionary: the model's vocabulary."""
        return len(self.corpus().dictionary)

    def model(self, cfg: RunConfig | None = None) -> "nn.Module":
        """``seeded_model`` for this run (or for ``cfg``, a variation of it) on this run's device."""
        return seeded_model(cfg or self.cfg, self.ntokens, self.device)

    def batches(self, split: str, bsz: int) -> "torch.Tensor":
        """One split ("train", "valid", "test") batchified into ``bsz`` columns on this run's device."""
        from lmprof.reference.loop import batchify

        return batchify(getattr(self.corpus(), split), bsz, self.device)


def prepare(cfg: RunConfig) -> Prepared:
    """Check ``cfg``, its corpus and its device, and set its thread count; UsageError (one line) for what is wrong.

    Nothing is written and no model is built: a bad flag costs nothing. The corpus is read on first use.
    """
    import torch

    cfg.validate()
    data_path, size = checked_corpus(cfg)
    device = resolve_device(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return Prepared(cfg, device, data_path, size)
