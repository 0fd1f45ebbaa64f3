"""The LeNets of Han et al., "Learning both Weights and Connections" (NIPS 2015), Table 1.

Provenance: LeNet-300-100 is a 784-300-100-10 fully connected network with ReLU (267K parameters on
1x28x28 MNIST); LeNet-5 is Caffe's MNIST LeNet (conv5x5 20 - maxpool2 - conv5x5 50 - maxpool2 -
fc 500 - ReLU - fc 10, 431K parameters), which has no ReLU after its convolutions.
Differences: the input may be any ``in_channels x input_size x input_size`` image (the first Linear's
width follows), and LeNet-300-100's hidden sizes are a ``hidden`` option. PyTorch's default initialisation
is kept (Caffe used Xavier).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from netslim.errors import NetslimError
from netslim.models._checks import check_common, positive_int
from netslim.models.registry import register_model

__all__ = ["LeNet5", "LeNetMLP"]


class LeNetMLP(nn.Module):
    """Flatten, then ``classifier``: Linear-ReLU pairs for each hidden size and a final Linear."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (N, num_classes)."""
        return self.classifier(torch.flatten(x, 1))


class LeNet5(nn.Module):
    """``features`` (two conv5x5 + max-pool stages) and ``classifier`` (fc 500 - ReLU - fc)."""

    def __init__(self, num_classes: int, in_channels: int, input_size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, kernel_size=5),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(20, 50, kernel_size=5),
            nn.MaxPool2d(2, 2),
        )
        size = ((input_size - 4) // 2 - 4) // 2  # two valid 5x5 convs, each followed by a 2x2 pool
        if size < 1:
            raise NetslimError(
                f"lenet5 needs input_size >= 16 (two 5x5 convs and two poolings), got {input_size}"
            )
        self.classifier = nn.Sequential(
            nn.Linear(50 * size * size, 500),
            nn.ReLU(inplace=True),
            nn.Linear(500, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of shape (N, num_classes)."""
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model()
def lenet300_100(
    *, num_classes: int = 10, in_channels: int = 3, input_size: int = 28, hidden: Sequence[int] = (300, 100)
) -> LeNetMLP:
    """LeNet-300-100 MLP (784-300-100-10 on MNIST, 267K parameters); hidden sizes are an option."""
    check_common(num_classes, in_channels, input_size)
    if isinstance(hidden, str | bytes) or not isinstance(hidden, Sequence) or not hidden:
        raise NetslimError(f"hidden must be a non-empty list of layer sizes, got {hidden!r}")
    sizes = [positive_int("hidden size", h) for h in hidden]
    return LeNetMLP(in_channels * input_size * input_size, sizes, num_classes)


@register_model()
def lenet5(*, num_classes: int = 10, in_channels: int = 3, input_size: int = 28) -> LeNet5:
    """Caffe LeNet-5 as pruned by Han et al. (431K parameters on 1x28x28)."""
    check_common(num_classes, in_channels, input_size)
    return LeNet5(num_classes, in_channels, input_size)
