"""memory: where a training step's bytes go, and how bptt, batch size, vocabulary and --tied change them."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from rich.console import RenderableType

from lmprof.config import RunConfig
from lmprof.lessons import TOPICS
from lmprof.lessons.page import code, page, prose, section, table
from lmprof.experiments import memory_model
from lmprof.instrument.memory import MemoryRecorder, param_bytes
from lmprof.phases import listening, phase
from lmprof.prepare import seeded_model
from lmprof.views.format import size

BASE = {"model": "LSTM", "emsize": 200, "nhid": 200, "nlayers": 2, "bptt": 35, "batch_size": 20, "dropout": 0.2}
VOCABULARY = 10_000
WIKITEXT2_VOCABULARY = 33_278
# (what changes, overrides, vocabulary): each row changes one thing of the base
VARIANTS: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("base: LSTM, bptt 35, batch 20", {}, VOCABULARY),
    ("bptt 70", {"bptt": 70}, VOCABULARY),
    ("batch 40", {"batch_size": 40}, VOCABULARY),
    ("WikiText-2's vocabulary", {}, WIKITEXT2_VOCABULARY),
    ("--tied", {"tied": True}, VOCABULARY),
    ("GRU", {"model": "GRU"}, VOCABULARY),
    ("RNN_TANH", {"model": "RNN_TANH"}, VOCABULARY),
)


def measure_step(cfg: RunConfig, ntokens: int, seed: int = 0) -> dict[str, Any]:
    """One training step of the reference model, watched by the memory instrument's recorder."""
    model = seeded_model(cfg.replace(seed=seed), ntokens, torch.device("cpu"))
    model.train()
    data = torch.randint(ntokens, (cfg.bptt + 1, cfg.batch_size))
    recorder = MemoryRecorder()
    recorder.install()
    try:
        with listening(recorder):
            hidden = model.init_hidden(cfg.batch_size)
            with phase("forward"):
                output, hidden = model(data[:-1], hidden)
            with phase("loss"):
                loss = nn.NLLLoss()(output, data[1:].reshape(-1))
            with phase("backward"):
                loss.backward()
    finally:
        recorder.uninstall()
        recorder.proc.close()
    return {"saved": recorder.batch_saved[-1], "by_module": recorder.by_role, "params": param_bytes(model),
            "grads": recorder.grad_bytes}


def demo() -> dict[str, Any]:
    rows = []
    for label, overrides, ntokens in VARIANTS:
        cfg = RunConfig(**{**BASE, **overrides})
        measured = measure_step(cfg, ntokens)
        predicted = memory_model.predicted_saved_bytes(cfg, ntokens) or {}
        rows.append({"label": label, "config": cfg.to_dict(), "ntokens": ntokens, **measured,
                     "predicted": sum(predicted.values()), "predicted_by_module": predicted,
                     "predicted_params": memory_model.predicted_param_bytes(cfg, ntokens)})
    return {"rows": rows, "threads": torch.get_num_threads(), "torch": torch.__version__}


def render(numbers: dict[str, Any]) -> RenderableType:
    rows = numbers["rows"]
    base, bptt2, batch2, wiki, tied = rows[:5]
    by = base["by_module"]
    logits = by.get("log_softmax", 0)
    return page(
        "memory", TOPICS["memory"],
        section("Four kinds of bytes"),
        prose("""
            A training step holds **parameters** (the weights), **gradients** (one per weight, after
            `backward`), **optimizer state** (AdamW: two more per weight; plain SGD: none) and
            **saved activations**: the tensors that `forward` keeps so that `backward` can use them.
            The first three are fixed by the model; the last grows with the batch. lmprof counts
            saved activations exactly with `torch.autograd.graph.saved_tensors_hooks`: every tensor an
            operation saves passes through a pack hook, and each storage counts once.
        """),
        section(f"Live: one step of {base['label']}, vocabulary {base['ntokens']:,}"),
        table(None, ["part", "measured", "predicted", "share"],
              [(name, size(b), size(base["predicted_by_module"].get(name, 0)), f"{b / base['saved']:.1%}")
               for name, b in by.items()], right=["measured", "predicted", "share"]),
        prose(f"""
            Parameters {size(base['params'])}, gradients {size(base['grads'])}; saved activations
            {size(base['saved'])}. The largest part is the **logits**: `log_softmax` saves its output,
            bptt x batch rows of one float per word of the vocabulary:
            {BASE['bptt']} x {BASE['batch_size']} x {base['ntokens']:,} x 4 B = {size(logits)},
            {logits / base['saved']:.0%} of the saved bytes here. The rnn keeps each layer's input and,
            per time step, what its cells need for backward.
        """),
        section("What changes them: measured, beside the model"),
        table(None, ["change", "saved activations", "predicted", "pred / meas", "parameters"],
              [(r["label"], size(r["saved"]), size(r["predicted"]), f"{r['predicted'] / r['saved']:.3f}",
                size(r["params"])) for r in rows],
              right=["saved activations", "predicted", "pred / meas", "parameters"]),
        prose(f"""
            What the numbers show: doubling bptt multiplies the saved bytes by
            {bptt2['saved'] / base['saved']:.2f} and doubling the batch by {batch2['saved'] / base['saved']:.2f}
            (every term is per token of the batch). WikiText-2's vocabulary multiplies them by
            {wiki['saved'] / base['saved']:.2f}, nearly all of it logits. `--tied` leaves the activations
            as they were ({size(tied['saved'])}) and saves {size(base['params'] - tied['params'])} of
            parameters: the decoder's own vocabulary x nhid weight ({base['ntokens']:,} x 200 x 4 B).
            The prediction (`lmprof/experiments/memory_model.py`) is exact for GRU and RNN_TANH; for the
            LSTM, PyTorch on CPU calls oneDNN, whose workspace the model fits (within 2% here).
        """),
        section("In a run"),
        code("lmprof profile --fn train --memory      # memory beside time; lmprof show and report keep it"),
        prose(f"""
            `--memory` adds a peak RSS column to the phase table (on a GPU: allocated and peak), and
            the parts above for the run's own config. On a GPU, `--memory-snapshot` also writes
            `memory_snapshot.pickle`, which https://pytorch.org/memory_viz draws. Measured now with
            torch {numbers['torch']} on {numbers['threads']} thread(s).
        """),
    )
