"""batchnorm: per-channel batch statistics in training, running statistics in evaluation.

PyTorch updates ``running = (1 - momentum) * running + momentum * batch_stat``
with momentum 0.1, the new batch weighing 0.1. Some course notes write the
momentum on the old value instead; the demo computes both and compares them
with the module's own buffers, so the class sees which one PyTorch does.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
from rich.console import RenderableType

from lmprof.lessons import TOPICS
from lmprof.lessons.page import code, page, prose, section, table

FORMULA = "running = (1 - momentum) * running + momentum * batch_stat"
SWAPPED = "running = momentum * running + (1 - momentum) * batch_stat"


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@torch.no_grad()  # statistics only: nothing here is trained
def demo(channels: int = 3, batch: int = 4, height: int = 5, width: int = 5, steps: int = 3,
         means: Sequence[float] = (2.0, -1.0, 0.5), stds: Sequence[float] = (3.0, 0.5, 1.0),
         seed: int = 0) -> dict[str, Any]:
    """Feed ``steps`` batches to a fresh BatchNorm2d; test three update rules against its buffers."""
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(channels)
    m = bn.momentum
    assert m is not None
    initial = {"weight": bn.weight.tolist(), "bias": bn.bias.tolist(), "running_mean": bn.running_mean.tolist(),
               "running_var": bn.running_var.tolist(), "momentum": m, "eps": bn.eps}
    shift = torch.tensor(means[:channels]).view(1, -1, 1, 1)
    scale = torch.tensor(stds[:channels]).view(1, -1, 1, 1)
    records = []
    for step in range(1, steps + 1):
        x = torch.randn(batch, channels, height, width) * scale + shift
        mean_before, var_before = bn.running_mean.clone(), bn.running_var.clone()
        out = bn.train()(x)
        # statistics per channel, over N x H x W
        batch_mean = x.mean(dim=(0, 2, 3))
        var_unbiased = x.var(dim=(0, 2, 3), unbiased=True)
        var_biased = x.var(dim=(0, 2, 3), unbiased=False)
        normalised = (x - batch_mean.view(1, -1, 1, 1)) / torch.sqrt(var_biased.view(1, -1, 1, 1) + bn.eps)
        records.append({
            "step": step,
            "batch_mean": batch_mean.tolist(),
            "batch_var_unbiased": var_unbiased.tolist(),
            "batch_var_biased": var_biased.tolist(),
            "running_mean": bn.running_mean.tolist(),
            "running_var": bn.running_var.tolist(),
            "error_pytorch_formula": max(max_diff(bn.running_mean, (1 - m) * mean_before + m * batch_mean),
                                         max_diff(bn.running_var, (1 - m) * var_before + m * var_unbiased)),
            "error_swapped_formula": max(max_diff(bn.running_mean, m * mean_before + (1 - m) * batch_mean),
                                         max_diff(bn.running_var, m * var_before + (1 - m) * var_unbiased)),
            "error_biased_variance": max_diff(bn.running_var, (1 - m) * var_before + m * var_biased),
            "train_output_error": max_diff(out, normalised),  # weight 1, bias 0: plain normalisation
            "train_output_mean": out.mean(dim=(0, 2, 3)).tolist(),
            "train_output_var_biased": out.var(dim=(0, 2, 3), unbiased=False).tolist(),
        })
    x = torch.randn(batch, channels, height, width) * scale + shift
    frozen = bn.running_mean.clone()
    out = bn.eval()(x)
    expected = ((x - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
                * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
    return {
        "shape": [batch, channels, height, width],
        "values_per_channel": batch * height * width,
        "initial": initial,
        "steps": records,
        "num_batches_tracked": int(bn.num_batches_tracked),
        "eval": {"output_error": max_diff(out, expected),
                 "running_stats_unchanged": bool(torch.equal(frozen, bn.running_mean))},
    }


def render(numbers: dict[str, Any]) -> RenderableType:
    ini, steps, last = numbers["initial"], numbers["steps"], numbers["steps"][-1]
    m = ini["momentum"]
    n = numbers["values_per_channel"]
    N, C, H, W = numbers["shape"]
    step_rows = [(str(r["step"]), f"{r['error_pytorch_formula']:.1e}", f"{r['error_swapped_formula']:.3f}",
                  f"{r['error_biased_variance']:.1e}") for r in steps]
    channel_rows = [(str(c), f"{last['batch_mean'][c]:.4f}", f"{last['running_mean'][c]:.4f}",
                     f"{last['batch_var_unbiased'][c]:.4f}", f"{last['batch_var_biased'][c]:.4f}",
                     f"{last['running_var'][c]:.4f}") for c in range(C)]
    return page(
        "batchnorm", TOPICS["batchnorm"],
        section("What BatchNorm2d keeps"),
        prose(f"""
            A fresh `nn.BatchNorm2d({C})` starts with weight (gamma) {ini['weight']} and bias
            (beta) {ini['bias']}, so at first it only normalises; running_mean {ini['running_mean']},
            running_var {ini['running_var']}; momentum {m}, eps {ini['eps']:g}. Statistics are **per
            channel**, taken over N x H x W: here a batch of shape ({N}, {C}, {H}, {W}) gives
            {n} values per channel.
        """),
        section("The running-statistics update PyTorch performs"),
        code(f"""
            # in train mode, after each batch, per channel:
            {FORMULA}
            # batch_stat: the mean, and the UNBIASED variance (divides by n - 1 = {n - 1})
        """),
        prose(f"""
            Some course notes write it the other way round (`{SWAPPED}`). Which one does the
            module do? Below, {len(steps)} batches go through a fresh module, and each rule is
            computed by hand and compared with the module's buffers (largest absolute difference):
        """),
        table(None, ["batch", "(1 - momentum) * running + ...", "swapped", "with biased var"], step_rows,
              right=["batch", "(1 - momentum) * running + ...", "swapped", "with biased var"]),
        prose(f"""
            Only `{FORMULA}` with the unbiased variance matches (to float rounding). With momentum
            {m} the new batch weighs {m} and the history {1 - m:g}: the running mean forgets slowly.
            (Keras' `momentum=0.99` is the other convention: the weight of the history.)
        """),
        table(f"after batch {last['step']}, per channel", ["channel", "batch mean", "running_mean",
              "var (n-1)", "var (n)", "running_var"], channel_rows,
              right=["batch mean", "running_mean", "var (n-1)", "var (n)", "running_var"]),
        section("Train vs eval"),
        prose(f"""
            - **train**: each batch is normalised with its **own** mean and **biased** variance
              (divides by n): output = (x - mean) / sqrt(var_n + eps) * weight + bias. Checked:
              largest error {last['train_output_error']:.1e}; output means per channel
              {', '.join(f'{v:.1e}' for v in last['train_output_mean'])}, variances
              {', '.join(f'{v:.4f}' for v in last['train_output_var_biased'])}.
            - **eval**: the running statistics replace the batch's, so one example gives the same
              answer whatever batch it comes in. Checked: largest error
              {numbers['eval']['output_error']:.1e}; running stats unchanged by an eval forward:
              {numbers['eval']['running_stats_unchanged']}. `num_batches_tracked` counted
              {numbers['num_batches_tracked']} training batches.
        """),
        prose("""
            The language model of this course uses no BatchNorm (recurrent nets normalise
            poorly over a batch); it appears here because the same train/eval switch governs
            dropout: `model.train()` and `model.eval()` change both.
        """),
    )
