"""CIFAR-style VGG as used by Network Slimming (Liu et al., ICCV 2017, arXiv:1708.06519).

Provenance: the paper's VGGNet is the NS-PT ``models/vgg.py`` network: 3x3 convolutions (padding 1, no bias)
each followed by BatchNorm and ReLU, 2x2 max-pools at the ``'M'`` entries of a cfg list, then average
pooling and ONE linear classifier (VGG-19: 20.04M parameters on CIFAR-10, paper Table 1).
Differences: pooling before the classifier is global (``AdaptiveAvgPool2d(1)``) instead of a fixed 2x2
average, so any input size works; BN gamma starts at 1.0 unless ``bn_init=0.5`` (the paper's value) is
passed; a ``width`` multiplier scales every cfg entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from netslim.errors import NetslimError
from netslim.models._checks import check_common, finite_float, pooled_size, positive_float, scale_channels
from netslim.models._init import slimming_init
from netslim.models.registry import register_model

__all__ = ["VGG", "VGG_CFGS", "make_features", "normalize_cfg"]

CfgEntry = int | str

# channel counts per 3x3 conv; "M" = 2x2 max-pool. The last block has no pool (global pooling follows).
VGG_CFGS: dict[int, list[CfgEntry]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


def normalize_cfg(cfg: Sequence[object], width: float = 1.0) -> list[CfgEntry]:
    """Validate a VGG cfg list (positive ints and ``'M'``) and scale its channels by ``width``."""
    if isinstance(cfg, str) or not isinstance(cfg, Sequence) or not cfg:
        raise NetslimError(f"cfg must be a non-empty list of channel counts and 'M', got {cfg!r}")
    out: list[CfgEntry] = []
    for item in cfg:
        if item == "M":
            out.append("M")
        elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
            out.append(scale_channels(item, width))
        else:
            raise NetslimError(f"cfg entries must be positive ints or 'M', got {item!r} in {list(cfg)!r}")
    if not any(isinstance(c, int) for c in out):
        raise NetslimError(f"cfg needs at least one convolution (a positive int), got {list(cfg)!r}")
    return out


def make_features(cfg: Sequence[CfgEntry], in_channels: int, ceil_mode: bool = False) -> nn.Sequential:
    """The conv3x3-BN-ReLU / max-pool stack a cfg list (see :func:`normalize_cfg`) describes."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
        elif not isinstance(item, int):
            raise NetslimError(f"cfg entries must be positive ints or 'M', got {item!r}; see normalize_cfg")
        else:
            layers += [
                nn.Conv2d(channels, item, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(item),
                nn.ReLU(inplace=True),
            ]
            channels = item
    return nn.Sequential(*layers)


def last_channels(cfg: Sequence[CfgEntry]) -> int:
    """The channel count of the last convolution in a cfg list."""
    return [c for c in cfg if isinstance(c, int)][-1]


class VGG(nn.Module):
    """``features`` (conv-BN-ReLU stacks and pools), global average pooling, one ``classifier`` Linear."""

    def __init__(self, cfg: Sequence[CfgEntry], num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.cfg = list(cfg)
        self.features = make_features(cfg, in_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last_channels(cfg), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (N, num_classes)."""
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _build(
    depth: int,
    num_classes: int,
    in_channels: int,
    input_size: int,
    cfg: Sequence[object] | None,
    width: float,
    bn_init: float,
) -> VGG:
    check_common(num_classes, in_channels, input_size)
    width = positive_float("width", width)
    cfg_list = normalize_cfg(VGG_CFGS[depth] if cfg is None else cfg, width)
    pooled_size(f"vgg{depth}", input_size, cfg_list.count("M"))
    model = VGG(cfg_list, num_classes, in_channels)
    slimming_init(model, finite_float("bn_init", bn_init))
    return model


def _fixed_depth(depth: int, summary: str) -> Callable[..., VGG]:
    """A zoo builder for VGG-``depth``; each gets its own explicit signature for the registry to read."""

    def builder(
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        cfg: Sequence[object] | None = None,
        width: float = 1.0,
        bn_init: float = 1.0,
    ) -> VGG:
        return _build(depth, num_classes, in_channels, input_size, cfg, width, bn_init)

    builder.__name__ = builder.__qualname__ = f"vgg{depth}"
    builder.__doc__ = summary
    return register_model()(builder)


_CIFAR_STYLE = "CIFAR style: global pooling and one linear classifier."
vgg11 = _fixed_depth(11, f"VGG-11 (8 conv-BN-ReLU layers), {_CIFAR_STYLE}")
vgg13 = _fixed_depth(13, f"VGG-13 (10 conv-BN-ReLU layers), {_CIFAR_STYLE}")
vgg16 = _fixed_depth(16, f"VGG-16 (13 conv-BN-ReLU layers), {_CIFAR_STYLE}")
vgg19 = _fixed_depth(
    19, "VGG-19 (16 conv-BN-ReLU layers) of Network Slimming: 20.04M parameters on CIFAR-10."
)
