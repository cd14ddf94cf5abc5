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


def device_choice_note(device: str, accel: bool) -> str:
    """When upstream's --accel and an explicit --device are both given, which one won (the explicit one), in words."""
    if not accel or device == "auto":
        return ""
    return (f"--device {device} and --accel both given: --device {device} wins (an explicit device is never "
            "overridden; --accel means --device auto)")


def set_launch_blocking() -> None:
    """--sync blocking: CUDA reads CUDA_LAUNCH_BLOCKING once, when it starts in this process.

    Set it now, or refuse in one line where CUDA is already running (a notebook that used the GPU):
    a run recorded as blocking that was not would show launch times as kernel times.
    """
    import os
    import sys

    torch = sys.modules.get("torch")  # not imported yet: CUDA cannot have started
    started = torch is not None and torch.cuda.is_initialized()
    if started and os.environ.get("CUDA_LAUNCH_BLOCKING") != "1":
        raise UsageError("--sync blocking: CUDA has already started in this process, and it reads "
                         "CUDA_LAUNCH_BLOCKING only when it starts; restart the notebook kernel (or run lmprof "
                         "profile --sync blocking from a shell) and profile before anything uses the GPU")
    os.environ["CUDA_LAUNCH_BLOCKING"] = "1"


def setting(default: Any, help: str, *, flag: str | None = None, metavar: str | None = None,
            choices: tuple[str, ...] | None = None, upstream: bool = True, cli: bool = True) -> Any:
    """A RunConfig field and its command-line flag: the one place a setting is described.

    ``flag``: the flag's spelling when it is not ``--name`` (upstream's own, e.g.
    ``--log-interval``); ``upstream``: one of upstream's flags (False: lmprof's own);
    ``cli``: False for a setting no flag sets. ``lmprof.library.options.run_options``
    reads these; the CLI's flags and the API's keyword checks are both built from it.
    """
    return dataclasses.field(default=default, metadata={
        "help": help, "flag": flag, "metavar": metavar, "choices": choices, "upstream": upstream, "cli": cli})


@dataclass
class RunConfig:
    # --- upstream's flags, upstream's defaults (word_language_model/main.py) ---
    data: str | None = setting(None, "corpus folder with train.txt, valid.txt, test.txt "
                                     "(default: lmprof's embedded corpus)")
    model: str = setting("LSTM", "type of network (RNN_TANH, RNN_RELU, LSTM, GRU, Transformer)")
    emsize: int = setting(200, "size of word embeddings")
    nhid: int = setting(200, "number of hidden units per layer")  # the feed-forward size for the Transformer
    nlayers: int = setting(2, "number of layers")
    lr: float = setting(20.0, "initial learning rate")
    clip: float = setting(0.25, "gradient clipping")  # the max global norm
    epochs: int = setting(40, "upper epoch limit")
    batch_size: int = setting(20, "batch size", metavar="N")  # training columns; evaluation uses 10
    bptt: int = setting(35, "sequence length")  # steps unrolled per batch
    dropout: float = setting(0.2, "dropout applied to layers (0 = no dropout)")
    tied: bool = setting(False, "tie the word embedding and softmax weights")
    seed: int = setting(1111, "random seed")
    log_interval: int = setting(200, "report interval", flag="--log-interval", metavar="N")  # in batches
    save: str | None = setting(None, "path to save the final model (default: model.pt in the run folder)")
    nhead: int = setting(2, "the number of heads in the encoder/decoder of the transformer model")
    dry_run: bool = setting(False, "verify the code and the model", flag="--dry-run")  # one batch per epoch
    use_optimizer: bool = setting(False, "use AdamW instead of plain SGD", flag="--use-optimizer")
    accel: bool = setting(False, "use an accelerator when present (same as --device auto)")
    # --- lmprof's own ---
    max_batches: int | None = setting(None, "stop each epoch's training after N batches (quick runs)",
                                      metavar="N", upstream=False)
    out: str | None = setting(None, "run folder (default: runs/<command>-<model>-<time>)", metavar="DIR",
                              upstream=False)
    device: str = setting("auto", "auto: the accelerator when present, else cpu", choices=DEVICES, upstream=False)
    threads: int | None = setting(None, "torch CPU threads (default: torch's choice for this machine)",
                                  metavar="N", upstream=False)
    sample_every: int | None = setting(None, "expensive instruments (lines, components, memory, grad-stats, CUDA "
                                             "phase events) watch one training batch in K, the others run bare; 0: "
                                             "every batch (default: 16 on CUDA, 0 elsewhere)", metavar="K",
                                       upstream=False)
    synth_seed: int = setting(0, "seed of the embedded corpus (when data is None)", upstream=False, cli=False)

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
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not -(2**63) <= self.seed < 2**64:
            raise UsageError(f"--seed must be a whole number from -2**63 to 2**64 - 1 (what torch.manual_seed "
                             f"takes), got {self.seed}")
        if self.sample_every is not None and (isinstance(self.sample_every, bool) or
                                              not isinstance(self.sample_every, int) or self.sample_every < 0):
            raise UsageError(f"--sample-every must be 0 (every batch) or a positive integer, got {self.sample_every}")
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

    @classmethod
    def flag_fields(cls) -> list[dataclasses.Field[Any]]:
        """The fields a command-line flag sets, upstream's first (in upstream's order), then lmprof's."""
        return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", False)]

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)
