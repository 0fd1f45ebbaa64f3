"""CIFAR ResNet (post-activation basic blocks) from He et al., "Deep Residual Learning" (CVPR 2016), §4.2.

Provenance: depth = 6n+2; a 3x3 stem conv to 16 channels, three stages of n basic blocks
(``conv3x3-BN-ReLU-conv3x3-BN``, add, ReLU) with 16/32/64 channels, global average pooling, one linear
classifier. ResNet-20/56/110 have 0.27M/0.85M/1.7M parameters in the paper.
Differences: the paper's CIFAR nets use zero-padding identity shortcuts (option A); here a shortcut whose
shape changes is a 1x1 conv + BN projection (option B), so the block's output channels are coupled through
the add exactly as the pruning engine must handle them. This adds a few thousand parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from netslim.models._checks import check_common, depth_blocks, finite_float, positive_float, scale_channels
from netslim.models._init import slimming_init
from netslim.models.registry import register_model

__all__ = ["BasicBlock", "ResNet", "make_stages"]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (identity, or 1x1 conv + BN when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(residual branch + shortcut)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def make_stages(
    block: Callable[[int, int, int], nn.Module],
    in_planes: int,
    widths: Sequence[int],
    blocks_per_stage: int,
    expansion: int = 1,
) -> tuple[list[nn.Sequential], int]:
    """One ``nn.Sequential`` of ``block(in_planes, planes, stride)`` per width; each stage after the first
    starts with stride 2. Returns the stages and the channel count they output (last width x expansion)."""
    stages = []
    for i, planes in enumerate(widths):
        blocks = []
        for b in range(blocks_per_stage):
            blocks.append(block(in_planes, planes, 2 if i > 0 and b == 0 else 1))
            in_planes = planes * expansion
        stages.append(nn.Sequential(*blocks))
    return stages, in_planes


class ResNet(nn.Module):
    """Stem conv-BN-ReLU, three stages of basic blocks, global pooling, ``fc``."""

    def __init__(self, blocks_per_stage: int, num_classes: int, in_channels: int, width: float = 1.0) -> None:
        super().__init__()
        widths = [scale_channels(c, width) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages, in_planes = make_stages(BasicBlock, widths[0], widths, blocks_per_stage)
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (N, num_classes)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(x, 1))


@register_model()
def resnet(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    depth: int = 56,
    width: float = 1.0,
    bn_init: float = 1.0,
) -> ResNet:
    """CIFAR ResNet of depth 6n+2 with basic blocks.

    ``input_size`` is accepted for a uniform interface and unused (global pooling).
    """
    check_common(num_classes, in_channels, input_size)
    n = depth_blocks("resnet", depth, per_block=2, extra=2)
    model = ResNet(n, num_classes, in_channels, positive_float("width", width))
    slimming_init(model, finite_float("bn_init", bn_init))
    return model


def _fixed_depth(depth: int, summary: str) -> Callable[..., ResNet]:
    """A zoo builder for ResNet-``depth``; each gets its own explicit signature for the registry to read."""

    def builder(
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        width: float = 1.0,
        bn_init: float = 1.0,
    ) -> ResNet:
        return resnet(
            num_classes=num_classes,
            in_channels=in_channels,
            input_size=input_size,
            depth=depth,
            width=width,
            bn_init=bn_init,
        )

    builder.__name__ = builder.__qualname__ = f"resnet{depth}"
    builder.__doc__ = summary
    return register_model()(builder)


resnet20 = _fixed_depth(20, "CIFAR ResNet-20 (3 basic blocks per stage).")
resnet56 = _fixed_depth(56, "CIFAR ResNet-56 (9 basic blocks per stage).")
resnet110 = _fixed_depth(110, "CIFAR ResNet-110 (18 basic blocks per stage).")
