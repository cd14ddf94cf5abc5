"""Flags shared by every command that trains: upstream's, then lmprof's own."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from lmprof.config import RunConfig

_DEFAULTS = RunConfig()


# The flag's type from the field's annotation (a string: config.py uses postponed annotations).
_TYPES = {"str": str, "str | None": str, "int": int, "int | None": int, "float": float}
_COMPUTE = ("device", "threads")  # spelled the same on every command that computes, trained or not


def add_flag(parser: "argparse._ActionsContainer", field: "dataclasses.Field[Any]", default: Any = None) -> None:
    """One RunConfig field as its flag: the spelling, help, metavar and choices its metadata gives."""
    meta = field.metadata
    flag = meta["flag"] or "--" + (field.name if meta["upstream"] else field.name.replace("_", "-"))
    value = field.default if default is None else default
    if field.type == "bool":
        parser.add_argument(flag, dest=field.name, action="store_true", help=meta["help"])
        return
    parser.add_argument(flag, dest=field.name, type=_TYPES[str(field.type)], default=value, help=meta["help"],
                        **{k: meta[k] for k in ("metavar", "choices") if meta[k] is not None})


def add_run_flags(parser: argparse.ArgumentParser, *, epochs: int | None = None) -> None:
    """Upstream's flags (names and defaults as in word_language_model/main.py) plus lmprof's, from RunConfig."""
    fields = [f for f in RunConfig.flag_fields() if f.name not in _COMPUTE]
    up = parser.add_argument_group("upstream flags (word_language_model/main.py)")
    for field in (f for f in fields if f.metadata["upstream"]):
        add_flag(up, field, epochs if field.name == "epochs" else None)
    up.add_argument("--onnx-export", type=str, default="", metavar="PATH",
                    help="path to export the final model in onnx format (refused here unless torch.onnx can "
                         "run: it needs the onnxscript package)")
    own = parser.add_argument_group("lmprof flags")
    for field in (f for f in fields if not f.metadata["upstream"]):
        add_flag(own, field)
    own.add_argument("--force", action="store_true",
                     help="let --out name a folder that already holds a run: lmprof's files there are removed first")
    add_compute_flags(own)


def add_compute_flags(parser: "argparse._ActionsContainer") -> None:
    """--device and --threads, spelled the same on every command that computes."""
    for field in RunConfig.flag_fields():
        if field.name in _COMPUTE:
            add_flag(parser, field)


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
    return RunConfig(**{f.name: getattr(args, f.name) for f in RunConfig.flag_fields()}).validate()


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
    """[GradStatsInstrument()] when --grad-stats was given, else nothing."""
    if not getattr(args, "grad_stats", False):
        return []
    from lmprof.instrument.gradients import GradStatsInstrument

    return [GradStatsInstrument()]


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
