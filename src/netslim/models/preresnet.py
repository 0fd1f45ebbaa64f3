"""Pre-activation ResNet with bottleneck blocks (ResNet-164) as used by Network Slimming.

Provenance: He et al., "Identity Mappings in Deep Residual Networks" (ECCV 2016) for CIFAR, in the form of
the Network Slimming reference code (NS-PT ``models/preresnet.py``): depth = 9n+2, three stages of n
bottlenecks ``bn1-relu-conv1x1 - bn2-relu-conv3x3(stride) - bn3-relu-conv1x1(planes*4)`` with a bias-free
1x1 convolution (no BN) as the projection shortcut on the raw block input, then ``bn-relu``, global average
pooling and a linear classifier. ResNet-164 has 1.70M parameters on CIFAR-10 (paper Table 1).
Differences: no ``channel_selection`` layers (netslim's pruning engine handles the BN shared by the
residual stream itself), global instead of 8x8 average pooling, gamma starts at ``bn_init`` (paper: 0.5),
and a ``width`` multiplier scales the 16/32/64 stage widths.
"""

from __future__ import annotations

import torch
from torch import nn

from netslim.models._checks import check_common, depth_blocks, finite_float, positive_float, scale_channels
from netslim.models._init import slimming_init
from netslim.models.registry import register_model
from netslim.models.resnet import make_stages

__all__ = ["PreActBottleneck", "PreResNet"]

EXPANSION = 4


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: three BN-ReLU-conv steps added to the (projected) input."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * EXPANSION
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block output: residual branch plus the identity or projected input."""
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class PreResNet(nn.Module):
    """Stem conv, three stages of pre-activation bottlenecks, final BN-ReLU, global pool, ``fc``."""

    def __init__(self, blocks_per_stage: int, num_classes: int, in_channels: int, width: float = 1.0) -> None:
        super().__init__()
        widths = [scale_channels(c, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=False)
        stages, in_planes = make_stages(PreActBottleneck, widths[0], widths, blocks_per_stage, EXPANSION)
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (N, num_classes)."""
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = self.pool(self.relu(self.bn(x)))
        return self.fc(torch.flatten(x, 1))


@register_model()
def preresnet(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    depth: int = 164,
    width: float = 1.0,
    bn_init: float = 1.0,
) -> PreResNet:
    """Pre-activation bottleneck ResNet of depth 9n+2 (CIFAR).

    ``input_size`` is accepted for a uniform interface and unused (global pooling).
    """
    check_common(num_classes, in_channels, input_size)
    n = depth_blocks("preresnet", depth, per_block=3, extra=2)
    model = PreResNet(n, num_classes, in_channels, positive_float("width", width))
    slimming_init(model, finite_float("bn_init", bn_init))
    return model


@register_model()
def preresnet164(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    bn_init: float = 1.0,
) -> PreResNet:
    """Pre-activation ResNet-164 of Network Slimming: 18 bottlenecks per stage, 1.70M parameters."""
    return preresnet(
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        depth=164,
        width=width,
        bn_init=bn_init,
    )
