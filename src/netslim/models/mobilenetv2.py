"""MobileNetV2 for CIFAR-sized inputs.

Provenance: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (CVPR 2018), Table 2:
a 32-channel 3x3 stem, inverted residual blocks (expand 1x1 - depthwise 3x3 - linear project 1x1, BN after
each conv, ReLU6 after the first two) with the (t, c, n, s) settings of the paper, a residual add when the
stride is 1 and the channel count is unchanged, a 1x1 conv to 1280 channels, global pooling, dropout, FC.
Differences: the stem and the second stage use stride 1 instead of 2 (the usual CIFAR adaptation, so a
32x32 input ends at 4x4), and channel counts scaled by ``width`` are rounded to multiples of 8 as in the
paper's reference implementation.
"""

from __future__ import annotations

import torch
from torch import nn

from netslim.models._checks import check_common, finite_float, positive_float, probability
from netslim.models._init import slimming_init
from netslim.models.registry import register_model

__all__ = ["InvertedResidual", "MobileNetV2"]

# (expansion t, output channels c, repeats n, first stride s); strides of the stem and stage 2 set to 1
SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, at least ``divisor`` and >= 90% of value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    """Expand 1x1 (skipped when t=1) - depthwise 3x3 - linear 1x1 projection, plus the input if shape kept."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = [] if expansion == 1 else _conv_bn(in_ch, hidden, 1)
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden)
        layers += _conv_bn(hidden, out_ch, 1, act=False)
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The projected features, with the input added when the block keeps the shape."""
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """``features`` (stem, inverted residuals, 1x1 conv to ``last_channels``), pool, ``classifier``."""

    def __init__(self, num_classes: int, in_channels: int, width: float, dropout: float) -> None:
        super().__init__()
        channels = make_divisible(32 * width)
        last_channels = make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [nn.Sequential(*_conv_bn(in_channels, channels, 3))]
        for t, c, n, s in SETTINGS:
            out = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        layers.append(nn.Sequential(*_conv_bn(channels, last_channels, 1)))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (N, num_classes)."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model()
def mobilenetv2(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    dropout: float = 0.2,
    bn_init: float = 1.0,
) -> MobileNetV2:
    """MobileNetV2 (CIFAR variant, stride-1 stem).

    ``input_size`` is accepted for a uniform interface and unused (global pooling).
    """
    check_common(num_classes, in_channels, input_size)
    model = MobileNetV2(
        num_classes, in_channels, positive_float("width", width), probability("dropout", dropout)
    )
    slimming_init(model, finite_float("bn_init", bn_init))
    return model
