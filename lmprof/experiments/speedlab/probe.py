"""Before the ladder: one tiny training step of each variant, so a variant this machine cannot run is skipped.

oneDNN has no bfloat16 LSTM on a CPU without AVX512-BF16 or AMX: on such a
CPU the bf16 variant raises at its first forward ("could not create a
primitive descriptor for the LSTM forward propagation primitive"). Found
here, it becomes a skipped row with that one line, and the other variants are
measured; a failure that only shows later in the ladder becomes a "failed"
row (``ladder._interleaved``), never a lost ladder.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from lmprof.config import RunConfig
from lmprof.experiments.speedlab.variants import Variant, build_setup, forward_step

if TYPE_CHECKING:
    import torch

TINY_ROWS, TINY_COLUMNS = 3, 2  # the tiny batch: 2 time steps (3 rows: input and target) x 2 columns


def one_line(error: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters, control characters dropped."""
    lines = str(error).strip().splitlines()
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""  # oneDNN adds a sentence on ONEDNN_VERBOSE
    text = f"{type(error).__name__}: {first}".strip().rstrip(":")
    text = "".join(c for c in text if c.isprintable())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def where(device: "torch.device") -> str:
    return {"cpu": "CPU", "cuda": "GPU", "mps": "Mac GPU"}.get(device.type, device.type)


def probe(cfg: RunConfig, device: "torch.device", ntokens: int, train_ids: "torch.Tensor",
          variant: Variant) -> str:
    """"" when one tiny step (build, forward, loss, backward) of ``variant`` runs here; else why not, in one line.

    The random streams are forked, so the ladder's numbers do not depend on whether a probe ran.
    """
    import torch

    from lmprof.reference.loop import batchify, get_batch

    if not variant.probe:
        return ""
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            setup = build_setup(cfg, device, ntokens, train_ids, train_ids[:64], [variant])
            source = batchify(setup.train_ids[:TINY_ROWS * TINY_COLUMNS], TINY_COLUMNS, device)
            data, targets = get_batch(source, 0, TINY_ROWS - 1)
            with ExitStack() as stack:
                for context in setup.contexts:
                    stack.enter_context(context())
                setup.model.train()
                loss = setup.criterion(forward_step(setup.model, data, setup.cfg), targets)
                loss.backward()
    except Exception as e:  # noqa: BLE001  (any failure here means: this machine cannot run the variant)
        return f"one tiny step raised {one_line(e)}"
    return ""


def skip_line(reason: str, device: "torch.device") -> str:
    """The verdict line of a variant the probe found unable to run: skipped on this CPU: why."""
    return f"skipped on this {where(device)}: {reason}"


def probe_all(cfg: RunConfig, device: "torch.device", ntokens: int, train_ids: "torch.Tensor",
              variants: list[Variant]) -> dict[str, str]:
    """name -> why it cannot run here, for each variant whose tiny step failed."""
    failed = {}
    for v in variants:
        reason = probe(cfg, device, ntokens, train_ids, v)
        if reason:
            failed[v.name] = reason
    return failed
