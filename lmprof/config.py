"""RunConfig: every flag of the upstream example, with its default, plus lmprof's own.

The CLI builds one from arguments; library users build one directly:

    >>> from lmprof import RunConfig
    >>> RunConfig(epochs=1, max_batches=20).bptt
    35
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lmprof.errors import UsageError, did_you_mean

RNN_KINDS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
MODEL_KINDS = RNN_KINDS + ("Transformer",)
# PyTorch warns at every model built when a one-layer RNN gets dropout (it drops between layers only);
# a sweep builds several models, so the same warning came out again and again. The CLI says it once.
DROPOUT_WARNING = "dropout option adds dropout after all but last recurrent layer"
# Upstream's TransformerEncoder (not batch_first) makes torch hint at a faster inference path: advice
# about upstream's code, which lmprof runs as written, so it is left unsaid.
NESTED_TENSOR_HINT = "enable_nested_tensor is True, but self.use_nested_tensor is False"
# With --repeat, torch.profiler warns that each cycle's events are cleared: lmprof's trace adds up each
# cycle's operator averages as it ends (instrument/trace.py), so nothing is lost and the warning misleads.
PROFILER_CYCLE_WARNING = "Warning: Profiler clears events at the end of each cycle"


def quiet_library_warnings() -> None:
    """Silence the library warnings that lmprof's CLI says once in its own words, or need not say."""
    import warnings

    warnings.filterwarnings("ignore", message=DROPOUT_WARNING, category=UserWarning)
    warnings.filterwarnings("ignore", message=NESTED_TENSOR_HINT, category=UserWarning)
    warnings.filterwarnings("ignore", message=PROFILER_CYCLE_WARNING, category=UserWarning)


DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class RunConfig:
    # --- upstream's flags, upstream's defaults ---
    data: str | None = None  # corpus folder (train/valid/test.txt); None: lmprof's embedded corpus
    model: str = "LSTM"  # RNN_TANH, RNN_RELU, LSTM, GRU or Transformer
    emsize: int = 200  # size of word embeddings
    nhid: int = 200  # hidden units per layer (feed-forward size for the Transformer)
    nlayers: int = 2  # number of layers
    lr: float = 20.0  # initial learning rate
    clip: float = 0.25  # gradient clipping (max global norm)
    epochs: int = 40  # upper epoch limit
    batch_size: int = 20  # training columns; evaluation uses 10
    bptt: int = 35  # sequence length: steps unrolled per batch
    dropout: float = 0.2  # dropout applied to layers (0 = no dropout)
    tied: bool = False  # tie the word embedding and softmax weights
    seed: int = 1111  # random seed
    log_interval: int = 200  # report interval, in batches
    save: str | None = None  # where to save the best model; None: model.pt in the run folder
    nhead: int = 2  # heads in the Transformer's attention
    dry_run: bool = False  # stop each epoch after one batch
    use_optimizer: bool = False  # AdamW instead of plain SGD
    accel: bool = False  # upstream's switch for an accelerator; lmprof: same as --device auto
    # --- lmprof's own ---
    max_batches: int | None = None  # stop each epoch's training after this many batches
    out: str | None = None  # the run folder; None: runs/<command>-<model>-<time>
    device: str = "auto"  # auto (accelerator if present, else cpu), cpu, cuda, mps
    threads: int | None = None  # torch CPU threads; None: torch's default
    synth_seed: int = 0  # seed of the embedded corpus (when data is None)

    eval_batch_size = 10  # upstream's constant (not a flag)

    def validate(self) -> "RunConfig":
        """Raise UsageError naming the first bad value; return self when all is well."""
        if self.model not in MODEL_KINDS:
            raise UsageError(
                f"unknown --model {self.model!r}{did_you_mean(str(self.model), MODEL_KINDS)}: "
                f"choose one of {', '.join(MODEL_KINDS)}"
            )
        for name in ("emsize", "nhid", "nlayers", "epochs", "batch_size", "bptt", "log_interval", "nhead"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                flag = "--" + name.replace("log_interval", "log-interval")
                raise UsageError(f"{flag} must be a positive integer, got {value}")
        if not 0 < self.lr < 3.4e38:  # the update multiplies float32 gradients by lr
            raise UsageError(f"--lr must be positive and below 3.4e38 (float32's largest), got {self.lr}")
        if not self.clip > 0:
            raise UsageError(f"--clip must be positive, got {self.clip}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.max_batches is not None and self.max_batches <= 0:
            raise UsageError(f"--max-batches must be a positive integer, got {self.max_batches}")
        if self.threads is not None and self.threads <= 0:
            raise UsageError(f"--threads must be a positive integer, got {self.threads}")
        if self.device not in DEVICES:
            raise UsageError(f"unknown --device {self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.tied and self.model in RNN_KINDS and self.nhid != self.emsize:
            raise UsageError(
                f"--tied needs --nhid equal to --emsize (got nhid {self.nhid}, emsize {self.emsize})"
            )
        if self.model == "Transformer" and self.emsize % self.nhead:
            raise UsageError(
                f"--emsize ({self.emsize}) must be divisible by --nhead ({self.nhead}) for the Transformer"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """Build from a dict, ignoring keys this version does not know (older/newer files)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)
