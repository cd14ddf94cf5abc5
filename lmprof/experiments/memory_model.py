"""The bytes a training step needs, predicted from the config alone (no torch).

Saved activations are what autograd keeps from forward for backward. For the
recurrent models on a CPU, per batch of T = bptt steps and B = batch columns
(E = emsize, H = nhid, V = vocabulary, L = nlayers, 4 bytes a float):

    embedding    the batch's token ids                        T·B·8
    dropout      its noise tensor, after the embedding and    T·B·(E + H)·4   (dropout > 0)
                 after the rnn (a float per element on CPU)
    rnn          each layer's input T·B·in·4, the initial hidden state,
                 and per kind:
                 RNN_TANH/RELU  h_t of every step              T·B·H·4 per layer
                 GRU            gates and h_t of every step    (7T - 1)·B·H·4 per layer
                 LSTM           oneDNN's output, last h and c and its workspace
                                (T+1)·B·(9H + 6·max(in, H))·4 (fitted: within 2% here)
                 plus, between layers, the dropout noise        T·B·H·4
    decoder      its input (the dropped rnn output)           T·B·H·4
    log_softmax  its output, the logits                       T·B·V·4
    loss         NLLLoss's total weight (the targets are the batch's ids again)

The logits term is usually the largest: T·B·V floats. `tied` changes no
activation; it removes the decoder's own V x H weight (V·E·4 bytes) from
the parameters.
"""

from __future__ import annotations

from typing import Any

FLOAT = 4
INDEX = 8
RNN_KINDS = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def lstm_workspace(bptt: int, batch: int, n_in: int, nhid: int) -> int:
    """oneDNN's LSTM training workspace for one layer (gates and states); a fit to torch 2.13 on CPU."""
    return FLOAT * (bptt + 1) * batch * (9 * nhid + 6 * max(n_in, nhid))


def rnn_layer_bytes(kind: str, bptt: int, batch: int, n_in: int, nhid: int) -> int:
    T, B, H = bptt, batch, nhid
    inputs = T * B * n_in * FLOAT
    if kind == "LSTM":
        return inputs + T * B * H * FLOAT + 2 * B * H * FLOAT + lstm_workspace(T, B, n_in, H)
    if kind == "GRU":
        return inputs + (7 * T - 1) * B * H * FLOAT
    return inputs + T * B * H * FLOAT


def predicted_saved_bytes(cfg: Any, ntokens: int) -> dict[str, int] | None:
    """Predicted saved-activation bytes per training batch, by part of the model; None for the Transformer."""
    kind = cfg["model"] if isinstance(cfg, dict) else cfg.model
    if kind not in RNN_KINDS:
        return None
    get = (lambda k: cfg[k]) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k))
    T, B, E, H, L, V = get("bptt"), get("batch_size"), get("emsize"), get("nhid"), get("nlayers"), ntokens
    dropout = get("dropout") > 0
    hidden_states = 2 if kind == "LSTM" else 1
    rnn = hidden_states * L * B * H * FLOAT  # the initial hidden state, one (L, B, H) tensor each
    for layer in range(L):
        n_in = E if layer == 0 else H
        if layer > 0 and dropout:
            rnn += T * B * H * FLOAT  # the dropout noise between layers
        # Without dropout, a layer's input is the previous layer's output, which the LSTM already saved.
        rnn += rnn_layer_bytes(kind, T, B, n_in, H)
        if layer > 0 and not dropout and kind == "LSTM":
            rnn -= T * B * H * FLOAT
    parts = {
        "embedding": T * B * INDEX,
        "dropout": T * B * (E + H) * FLOAT if dropout else 0,
        "rnn": rnn,
        # without dropout the decoder reads the rnn output itself, which the LSTM has saved already
        "decoder": 0 if (not dropout and kind == "LSTM") else T * B * H * FLOAT,
        "log_softmax": T * B * V * FLOAT,
        "loss": FLOAT,
    }
    return {k: v for k, v in parts.items() if v}


def predicted_param_bytes(cfg: Any, ntokens: int) -> int | None:
    """Parameter bytes: embedding, rnn weights and biases, decoder (its weight shared when tied)."""
    kind = cfg["model"] if isinstance(cfg, dict) else cfg.model
    if kind not in RNN_KINDS:
        return None
    get = (lambda k: cfg[k]) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k))
    E, H, L, V, tied = get("emsize"), get("nhid"), get("nlayers"), ntokens, get("tied")
    G = GATES[kind]
    rnn = sum(G * H * ((E if layer == 0 else H) + H) + 2 * G * H for layer in range(L))
    decoder = (0 if tied else H * V) + V
    return (V * E + rnn + decoder) * FLOAT


def available_bytes() -> int | None:
    """Memory this machine can give now: MemAvailable on Linux, else the physical total; None if unknown."""
    import os

    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def too_large(cfg: Any, ntokens: int) -> str | None:
    """Why the model ``cfg`` describes cannot be trained here, before torch allocates it; None when it fits.

    A received run folder's config may say emsize = nhid = 10**6 (32 GB): the parameters, their
    gradients and the saved activations of one step are predicted and weighed against free memory.
    """
    params = predicted_param_bytes(cfg, ntokens)
    saved = predicted_saved_bytes(cfg, ntokens)
    if params is None:
        return None
    need = 3 * params + sum((saved or {}).values())  # weights, gradients, one more copy in flight; activations
    have = available_bytes()
    if have is None or need <= have:
        return None
    return (f"this model needs about {need / 2**30:,.1f} GiB (parameters, gradients, one step's activations) "
            f"and this machine has {have / 2**30:,.1f} GiB free")
