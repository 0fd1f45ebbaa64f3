"""Convolutional nets with a large fully connected head, the kind Han et al. (NIPS 2015) prune.

Provenance: ``alexnet_small`` follows the AlexNet layout (Krizhevsky et al. 2012: five convolutions with
64-192-384-256-256 channels and max-pools after the 1st, 2nd and 5th, then a
Dropout-FC-ReLU-Dropout-FC-ReLU-FC head),
resized for 32x32 inputs: 3x3 convolutions with stride 1 and a ``hidden``-wide head (default 1024 instead of
4096). ``vgg16_fc`` is VGG-16 (Simonyan & Zisserman 2015) with BatchNorm, sized for CIFAR as is common
(FC 512-512 instead of 4096-4096; the 3-FC head of [H15]'s VGG-16 experiment is kept). Its pools use
``ceil_mode`` so that 28x28 inputs survive five of them.
The FC heads keep every ``nn.Dropout`` as its own module in an ``nn.Sequential`` named ``classifier``, so
Han's dropout adjustment (D_r = D_o * sqrt(C_r / C_o)) can find and change them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from netslim.models._checks import (
    check_common,
    finite_float,
    pooled_size,
    positive_float,
    positive_int,
    probability,
    scale_channels,
)
from netslim.models._init import slimming_init
from netslim.models.registry import register_model
from netslim.models.vgg import VGG_CFGS, last_channels, make_features, normalize_cfg

__all__ = ["VGG16FC", "AlexNetSmall"]

ALEXNET_CHANNELS = (64, 192, 384, 256, 256)
ALEXNET_POOL_AFTER = {0, 1, 4}


def _alexnet_features(in_channels: int, widths: list[int], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for i, out in enumerate(widths):
        layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        if i in ALEXNET_POOL_AFTER:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        channels = out
    return nn.Sequential(*layers)


def _fc_head(
    in_features: int, hidden: int, num_classes: int, dropout: float, *, dropout_first: bool
) -> nn.Sequential:
    """FC-ReLU twice then the output FC, each hidden FC with a Dropout before it (AlexNet) or after its ReLU
    (VGG); every Dropout its own module, as Han's dropout adjustment needs."""
    layers: list[nn.Module] = []
    for fan_in in (in_features, hidden):
        fc = [nn.Linear(fan_in, hidden), nn.ReLU(inplace=True)]
        layers += [nn.Dropout(dropout), *fc] if dropout_first else [*fc, nn.Dropout(dropout)]
    return nn.Sequential(*layers, nn.Linear(hidden, num_classes))


class _FCHeadNet(nn.Module):
    """``features``, flatten, ``classifier``."""

    features: nn.Sequential
    classifier: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (N, num_classes)."""
        return self.classifier(torch.flatten(self.features(x), 1))


class AlexNetSmall(_FCHeadNet):
    """``features`` (5 convs, 3 pools), flatten, ``classifier`` (Dropout-FC-ReLU-Dropout-FC-ReLU-FC)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        input_size: int,
        width: float,
        hidden: int,
        dropout: float,
        batch_norm: bool,
    ) -> None:
        super().__init__()
        widths = [scale_channels(c, width) for c in ALEXNET_CHANNELS]
        self.features = _alexnet_features(in_channels, widths, batch_norm)
        size = pooled_size("alexnet_small", input_size, len(ALEXNET_POOL_AFTER))
        self.classifier = _fc_head(widths[-1] * size * size, hidden, num_classes, dropout, dropout_first=True)


class VGG16FC(_FCHeadNet):
    """VGG-16-BN ``features`` (5 pools), flatten, ``classifier`` (FC-ReLU-Dropout-FC-ReLU-Dropout-FC)."""

    def __init__(
        self, num_classes: int, in_channels: int, input_size: int, width: float, hidden: int, dropout: float
    ) -> None:
        super().__init__()
        cfg = [*normalize_cfg(VGG_CFGS[16], width), "M"]
        self.features = make_features(cfg, in_channels, ceil_mode=True)
        size = pooled_size("vgg16_fc", input_size, cfg.count("M"), ceil=True)
        features = last_channels(cfg) * size * size
        self.classifier = _fc_head(features, hidden, num_classes, dropout, dropout_first=False)


def _build(
    cls: type[_FCHeadNet],
    num_classes: int,
    in_channels: int,
    input_size: int,
    width: float,
    hidden: int,
    dropout: float,
    bn_init: float,
    **extra: Any,
) -> Any:
    """``cls`` built from checked arguments and initialised as the slimming recipe does (BN scales
    ``bn_init``, default linear init)."""
    check_common(num_classes, in_channels, input_size)
    width, hidden = positive_float("width", width), positive_int("hidden", hidden)
    model = cls(num_classes, in_channels, input_size, width, hidden, probability("dropout", dropout), **extra)
    slimming_init(model, finite_float("bn_init", bn_init), linear_std=None)
    return model


@register_model()
def alexnet_small(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    hidden: int = 1024,
    dropout: float = 0.5,
    batch_norm: bool = False,
    bn_init: float = 1.0,
) -> AlexNetSmall:
    """CIFAR-sized AlexNet: 5 convs (BN optional) and a 3-layer FC head with dropout."""
    args = (num_classes, in_channels, input_size, width, hidden, dropout, bn_init)
    return _build(AlexNetSmall, *args, batch_norm=bool(batch_norm))


@register_model()
def vgg16_fc(
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    hidden: int = 512,
    dropout: float = 0.5,
    bn_init: float = 1.0,
) -> VGG16FC:
    """VGG-16 with BN and a 3-layer FC head (512-512) with dropout, for Han-style pruning on CIFAR."""
    return _build(VGG16FC, num_classes, in_channels, input_size, width, hidden, dropout, bn_init)
