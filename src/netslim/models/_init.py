"""Weight initialisation used by the Network Slimming reference code, as one reusable function."""

from __future__ import annotations

import math

from torch import nn


def slimming_init(model: nn.Module, bn_init: float = 1.0, linear_std: float | None = 0.01) -> None:
    """Initialise ``model`` in place the way the Network Slimming code does.

    Convolutions get N(0, sqrt(2 / (k*k*out_channels))) weights and zero biases, BatchNorm gets
    gamma = ``bn_init`` (the paper uses 0.5) and beta = 0, Linear layers get N(0, ``linear_std``) weights and
    zero biases (``linear_std=None`` keeps PyTorch's default for Linear layers).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.constant_(m.weight, bn_init)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
