"""Walkthrough 7: which running-statistics formula does nn.BatchNorm2d really use?

Run:   python examples/07_batchnorm.py             (the page: lmprof explain batchnorm)
Try:   momentum=0.5, or momentum=None (a cumulative average): predict the buffers first.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def main() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)  # momentum 0.1; weight 1, bias 0; running_mean 0, running_var 1
    m = bn.momentum
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    before_mean, before_var = bn.running_mean.clone(), bn.running_var.clone()
    bn.train()(x)
    batch_mean = x.mean(dim=(0, 2, 3))  # per channel, over N x H x W
    batch_var = x.var(dim=(0, 2, 3), unbiased=True)
    pytorch = (1 - m) * before_mean + m * batch_mean  # running = (1 - momentum) * running + momentum * batch
    swapped = m * before_mean + (1 - m) * batch_mean
    print(f"running_mean buffer:                {bn.running_mean.tolist()}")
    print(f"(1 - momentum) * running + m * mean: {pytorch.tolist()}")
    print(f"momentum * running + (1 - m) * mean: {swapped.tolist()}")
    print(f"running_var matches the unbiased variance: "
          f"{torch.allclose(bn.running_var, (1 - m) * before_var + m * batch_var)}")


if __name__ == "__main__":
    main()
