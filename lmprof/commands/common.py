"""Flags shared by every command that trains: upstream's, then lmprof's own."""

from __future__ import annotations

import argparse
from typing import Any

from lmprof.config import DEVICES, RunConfig

_DEFAULTS = RunConfig()


def add_run_flags(parser: argparse.ArgumentParser, *, epochs: int | None = None) -> None:
    """Upstream's flags (names and defaults as in word_language_model/main.py) plus lmprof's."""
    d = _DEFAULTS
    up = parser.add_argument_group("upstream flags (word_language_model/main.py)")
    up.add_argument("--data", type=str, default=None,
                    help="corpus folder with train.txt, valid.txt, test.txt (default: lmprof's embedded corpus)")
    up.add_argument("--model", type=str, default=d.model,
                    help="type of network (RNN_TANH, RNN_RELU, LSTM, GRU, Transformer)")
    up.add_argument("--emsize", type=int, default=d.emsize, help="size of word embeddings")
    up.add_argument("--nhid", type=int, default=d.nhid, help="number of hidden units per layer")
    up.add_argument("--nlayers", type=int, default=d.nlayers, help="number of layers")
    up.add_argument("--lr", type=float, default=d.lr, help="initial learning rate")
    up.add_argument("--clip", type=float, default=d.clip, help="gradient clipping")
    up.add_argument("--epochs", type=int, default=epochs or d.epochs, help="upper epoch limit")
    up.add_argument("--batch_size", type=int, default=d.batch_size, metavar="N", help="batch size")
    up.add_argument("--bptt", type=int, default=d.bptt, help="sequence length")
    up.add_argument("--dropout", type=float, default=d.dropout, help="dropout applied to layers (0 = no dropout)")
    up.add_argument("--tied", action="store_true", help="tie the word embedding and softmax weights")
    up.add_argument("--seed", type=int, default=d.seed, help="random seed")
    up.add_argument("--log-interval", type=int, default=d.log_interval, metavar="N", help="report interval")
    up.add_argument("--save", type=str, default=None,
                    help="path to save the final model (default: model.pt in the run folder)")
    up.add_argument("--nhead", type=int, default=d.nhead,
                    help="the number of heads in the encoder/decoder of the transformer model")
    up.add_argument("--dry-run", action="store_true", help="verify the code and the model")
    up.add_argument("--use-optimizer", action="store_true", help="use AdamW instead of plain SGD")
    up.add_argument("--accel", action="store_true", help="use an accelerator when present (same as --device auto)")
    up.add_argument("--onnx-export", type=str, default="", metavar="PATH",
                    help="path to export the final model in onnx format (refused here unless torch.onnx can "
                         "run: it needs the onnxscript package)")
    own = parser.add_argument_group("lmprof flags")
    own.add_argument("--max-batches", type=int, default=None, metavar="N",
                     help="stop each epoch's training after N batches (quick runs)")
    own.add_argument("--out", type=str, default=None, metavar="DIR",
                     help="run folder (default: runs/<command>-<model>-<time>)")
    own.add_argument("--force", action="store_true",
                     help="let --out name a folder that already holds a run: lmprof's files there are removed first")
    add_compute_flags(own)


def add_compute_flags(parser: "argparse._ActionsContainer") -> None:
    """--device and --threads, spelled the same on every command that computes."""
    parser.add_argument("--device", choices=DEVICES, default=_DEFAULTS.device,
                        help="auto: the accelerator when present, else cpu")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch CPU threads (default: torch's choice for this machine)")


def apply_compute_flags(args: argparse.Namespace, *, cpu_only: str | None = None) -> "Any":
    """Set torch's thread count from --threads; return the torch.device that --device names.

    ``cpu_only``: what runs on the CPU whatever the device (a drawing, a demo); asking
    for an accelerator by name there is refused in one line rather than ignored.
    """
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        from lmprof.errors import UsageError

        raise UsageError(f"--threads must be 1 or more, got {threads}")
    from lmprof.runner import resolve_device

    device = resolve_device(RunConfig(device=getattr(args, "device", _DEFAULTS.device)))
    if cpu_only and device.type != "cpu":
        if getattr(args, "device", "auto") != "auto":
            from lmprof.errors import UsageError

            raise UsageError(f"--device {args.device}: {cpu_only} runs on the CPU here; use --device cpu")
        import torch

        device = torch.device("cpu")
    if threads:
        import torch

        torch.set_num_threads(threads)
    return device


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig that these flags describe (validated)."""
    if getattr(args, "onnx_export", ""):
        refuse_onnx_export()
    return RunConfig(
        data=args.data, model=args.model, emsize=args.emsize, nhid=args.nhid, nlayers=args.nlayers,
        lr=args.lr, clip=args.clip, epochs=args.epochs, batch_size=args.batch_size, bptt=args.bptt,
        dropout=args.dropout, tied=args.tied, seed=args.seed, log_interval=args.log_interval,
        save=args.save, nhead=args.nhead, dry_run=args.dry_run, use_optimizer=args.use_optimizer,
        accel=args.accel, max_batches=args.max_batches, out=args.out, device=args.device,
        threads=args.threads,
    ).validate()


def refuse_onnx_export() -> None:
    """Upstream's --onnx-export calls torch.onnx.export, which in this torch needs onnxscript (and onnx).

    Refused before anything trains, so no run is lost to a failure at its very end.
    """
    import importlib.util

    from lmprof.errors import UsageError

    missing = [name for name in ("onnxscript", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"--onnx-export: torch.onnx.export needs {' and '.join(missing)}, not installed here "
                         f"(pip install {' '.join(missing)}); nothing was trained")
    raise UsageError("--onnx-export: lmprof does not export ONNX itself; export the saved model.pt with "
                     "torch.onnx.export as upstream's export_onnx() does")


def add_report_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", action="store_true",
                        help="also write report.html into the folder (the page `lmprof report` makes)")


def add_grad_stats_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--grad-stats", action="store_true",
                        help="also record the gradient norm before clipping, per epoch: median, max and the "
                             "fraction of batches clip_grad_norm_ scaled down")


def grad_stats_instruments(args: argparse.Namespace) -> list["Any"]:
    """[GradStats()] when --grad-stats was given, else nothing."""
    if not getattr(args, "grad_stats", False):
        return []
    from lmprof.instrument.gradients import GradStats

    return [GradStats()]


def add_memory_flags(parser: argparse.ArgumentParser, *, operators: bool = False) -> None:
    group = parser.add_argument_group("memory")
    group.add_argument("--memory", action="store_true",
                       help="also record where the bytes go: saved activations per batch and by module, "
                            "parameter/gradient/optimizer bytes, peak RSS (CUDA: allocated and peak) per phase"
                            + ("; and the memory each operator allocates, in the trace" if operators else ""))
    group.add_argument("--memory-snapshot", action="store_true",
                       help="CUDA only: with --memory, record the allocator's history and write "
                            "memory_snapshot.pickle (open it at https://pytorch.org/memory_viz)")


def memory_instruments(args: argparse.Namespace, cfg: RunConfig) -> list["Any"]:
    """[MemoryInstrument] when --memory (or --memory-snapshot) was given, else nothing."""
    snapshot = getattr(args, "memory_snapshot", False)
    if not (getattr(args, "memory", False) or snapshot):
        return []
    from lmprof.instrument.memory import MemoryInstrument

    if snapshot:
        from lmprof.errors import UsageError
        from lmprof.runner import resolve_device

        device = resolve_device(cfg)
        if device.type != "cuda":
            raise UsageError(f"--memory-snapshot records the CUDA allocator's history, and this run is on "
                             f"{device.type}: use --memory (saved activations and RSS per phase), or a GPU")
    return [MemoryInstrument(snapshot=snapshot)]


def add_components_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--components", action="store_true",
                        help="also time each model component (encoder, rnn, decoder, ...), forward and backward")
