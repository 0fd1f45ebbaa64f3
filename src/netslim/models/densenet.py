"""DenseNet for CIFAR without bottlenecks (DenseNet-40, k=12) as used by Network Slimming.

Provenance: Huang et al., "Densely Connected Convolutional Networks" (CVPR 2017) as used by Network
Slimming (NS-PT ``models/densenet.py``): a 3x3 stem conv, three dense blocks of (depth-4)/3 layers
``BN-ReLU-conv3x3(k)`` whose outputs are concatenated to their inputs, transitions ``BN-ReLU-conv1x1 -
avgpool2`` between blocks, then ``BN-ReLU``, global average pooling and a linear classifier.
Stem width: Huang et al. use 16 channels without compression and 2k with it (DenseNet-BC). With 16,
DenseNet-40 has 1,019,722 parameters on CIFAR-10, the 1.02M of the Network Slimming paper (Table 1); a
2k = 24-channel stem (``stem_channels=24``) gives 1,059,298.
Differences: no ``channel_selection`` layers, global instead of 8x8 average pooling, gamma starts at
``bn_init`` (paper: 0.5); ``compression`` < 1 shrinks transitions as in DenseNet-BC (default 1: none).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from netslim.errors import NetslimError
from netslim.models._checks import check_common, depth_blocks, finite_float, positive_int
from netslim.models._init import slimming_init
from netslim.models.registry import register_model

__all__ = ["DenseLayer", "DenseNet", "Transition"]


class DenseLayer(nn.Module):
    """``BN-ReLU-conv3x3`` producing ``growth`` new channels, concatenated after the input channels."""

    def __init__(self, in_planes: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, growth, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The input with ``growth`` new channels appended."""
        return torch.cat([x, self.conv1(self.relu(self.bn1(x)))], dim=1)


class Transition(nn.Module):
    """``BN-ReLU-conv1x1`` then 2x2 average pooling between dense blocks."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The compressed, spatially halved feature map (odd sizes round down)."""
        return F.avg_pool2d(self.conv1(self.relu(self.bn1(x))), 2)


class DenseNet(nn.Module):
    """Stem conv, dense blocks ``dense1..3`` with transitions ``trans1..2``, final BN-ReLU, pool, ``fc``."""

    def __init__(
        self,
        layers_per_block: int,
        growth: int,
        num_classes: int,
        in_channels: int,
        compression: float = 1.0,
        stem_channels: int = 16,
    ) -> None:
        super().__init__()
        planes = stem_channels
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        for i in range(3):
            layers = []
            for _ in range(layers_per_block):
                layers.append(DenseLayer(planes, growth))
                planes += growth
            blocks.append(nn.Sequential(*layers))
            if i < 2:
                out_planes = max(1, math.floor(planes * compression))
                blocks.append(Transition(planes, out_planes))
                planes = out_planes
        self.dense1, self.trans1, self.dense2, self.trans2, self.dense3 = blocks
        self.bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (N, num_classes)."""
        x = self.trans1(self.dense1(self.conv1(x)))
        x = self.dense3(self.trans2(self.dense2(x)))
        x = self.pool(self.relu(self.bn(x)))
        return self.fc(torch.flatten(x, 1))


@register_model()
def densenet(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    depth: int = 40,
    growth: int = 12,
    compression: float = 1.0,
    stem_channels: int | None = None,
    bn_init: float = 1.0,
) -> DenseNet:
    """CIFAR DenseNet of depth 3n+4 without bottlenecks.

    ``input_size`` is accepted for a uniform interface and unused (global pooling).

    ``stem_channels`` defaults to Huang et al.'s choice: 16, or 2*growth when ``compression`` < 1.
    """
    check_common(num_classes, in_channels, input_size)
    n = depth_blocks("densenet", depth, per_block=1, extra=4)
    positive_int("growth", growth)
    if isinstance(compression, bool) or not isinstance(compression, int | float) or not 0 < compression <= 1:
        raise NetslimError(f"compression must be a number in (0, 1], got {compression!r}")
    if stem_channels is None:
        stem_channels = 16 if compression == 1 else 2 * growth
    model = DenseNet(
        n, growth, num_classes, in_channels, float(compression), positive_int("stem_channels", stem_channels)
    )
    slimming_init(model, finite_float("bn_init", bn_init))
    return model


@register_model()
def densenet40(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    stem_channels: int = 16,
    bn_init: float = 1.0,
) -> DenseNet:
    """DenseNet-40 (k=12, 12 layers per block, no compression) of Network Slimming: 1.02M parameters."""
    return densenet(
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        depth=40,
        growth=12,
        stem_channels=stem_channels,
        bn_init=bn_init,
    )
