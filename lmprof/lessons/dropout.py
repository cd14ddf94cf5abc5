"""dropout: random masks in train mode, scaled by 1/(1-p) so the expectation is kept; identity in eval."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from rich.console import RenderableType

from lmprof.config import RunConfig
from lmprof.lessons import TOPICS
from lmprof.lessons.page import excerpt, number, page, prose, section, table
from lmprof.reference.model import RNNModel


def channel_masks(out: torch.Tensor) -> list[list[list[float]]]:
    """Output of a (1, C, H, W) map as plain nested lists, one H x W grid per channel."""
    return [[[round(float(v), 6) for v in row] for row in channel] for channel in out[0]]


def whole_channels(out: torch.Tensor) -> bool:
    """True when every channel is either all zero or all kept."""
    zero = out[0] == 0
    return bool(all(z.all() or not z.any() for z in zero))


def mean_over_draws(p: float, draws: int) -> float:
    """Mean of ``draws`` ones after dropout in train mode: the expectation dropout preserves."""
    return float(nn.Dropout(p).train()(torch.ones(draws)).mean())


def demo(p: float = 0.5, channels: int = 6, size: int = 3, draws: int = 100_000, seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)
    feature_map = torch.ones(1, channels, size, size)  # N x C x H x W: a one-image batch of ones
    elementwise, by_channel = nn.Dropout(p), nn.Dropout2d(p)
    out1, out2 = elementwise.train()(feature_map), by_channel.train()(feature_map)
    eval1, eval2 = elementwise.eval()(feature_map), by_channel.eval()(feature_map)
    lm_p = RunConfig().dropout
    return {
        "p": p,
        "scale": 1 / (1 - p),
        "shape": list(feature_map.shape),
        "dropout": {"values": sorted({float(v) for v in out1.unique()}), "masks": channel_masks(out1),
                    "kept_fraction": float((out1 != 0).float().mean()), "whole_channels": whole_channels(out1)},
        "dropout2d": {"values": sorted({float(v) for v in out2.unique()}), "masks": channel_masks(out2),
                      "kept_fraction": float((out2 != 0).float().mean()), "whole_channels": whole_channels(out2),
                      "channels_kept": [bool(c.any()) for c in out2[0] != 0]},
        "eval_is_identity": {"dropout": bool(torch.equal(eval1, feature_map)),
                             "dropout2d": bool(torch.equal(eval2, feature_map))},
        "expectation": {"draws": draws, "mean": mean_over_draws(p, draws),
                        "standard_error": (p / (1 - p) / draws) ** 0.5},
        "language_model": {"p": lm_p, "scale": 1 / (1 - lm_p), "mean": mean_over_draws(lm_p, draws)},
    }


def _grid(channel: list[list[float]]) -> str:
    return " / ".join(" ".join(f"{v:g}" for v in row) for row in channel)


def render(numbers: dict[str, Any]) -> RenderableType:
    p, scale = numbers["p"], numbers["scale"]
    d1, d2, e, lm = numbers["dropout"], numbers["dropout2d"], numbers["expectation"], numbers["language_model"]
    rows = [(str(c), _grid(a), _grid(b)) for c, (a, b) in enumerate(zip(d1["masks"], d2["masks"]))]
    return page(
        "dropout", TOPICS["dropout"],
        section("Where the language model drops"),
        excerpt(RNNModel.forward, "emb = self.drop", "output = self.drop"),
        prose(f"""
            `self.drop` is `nn.Dropout(p)` with `--dropout` (default {lm['p']}): on the embeddings
            and on the RNN's output; `nn.LSTM(..., dropout=p)` also drops between its layers.
            Below, both kinds of dropout with p = {p} on a feature map of ones, shape
            {tuple(numbers['shape'])} (N x C x H x W), drawn now in train mode:
        """),
        table(f"train mode, p = {p}; rows of each channel split by /",
              ["channel", "nn.Dropout", "nn.Dropout2d"], rows, right=["channel"]),
        prose(f"""
            - **`nn.Dropout`** zeroes single elements, each with probability p: kept
              {d1['kept_fraction']:.0%} here, scattered inside every channel.
            - **`nn.Dropout2d`** zeroes **whole channels** (each H x W map is kept or dropped
              as one; whole channels: {d2['whole_channels']}, kept: {sum(d2['channels_kept'])} of
              {len(d2['channels_kept'])}). For images, neighbouring pixels are correlated, so
              dropping single pixels removes little information; dropping a feature map does.
            - Kept units are not 1 but **{number(scale)} = 1/(1-p)**: values seen
              {', '.join(f'{v:g}' for v in d1['values'])}.
        """),
        section("Why scale by 1/(1-p): the expectation is kept"),
        table(None, ["", "value"], [
            (f"mean of {e['draws']:,} ones after Dropout(p={p})", f"{e['mean']:.4f}  (1 ± {e['standard_error']:.4f})"),
            (f"the model's p = {lm['p']}: scale, mean", f"{number(lm['scale'])}, {lm['mean']:.4f}"),
            ("eval mode: Dropout output == input", str(numbers["eval_is_identity"]["dropout"])),
            ("eval mode: Dropout2d output == input", str(numbers["eval_is_identity"]["dropout2d"])),
        ]),
        prose("""
            A unit survives with probability 1-p and is multiplied by 1/(1-p), so on average it
            is unchanged: the next layer sees the same expected input in training as in
            evaluation, where dropout does nothing (`model.eval()` in `evaluate()`, `model.train()`
            in `train()`). Forgetting `model.eval()` makes validation noisy and worse.
        """),
    )
