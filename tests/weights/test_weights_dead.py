"""Dead-neuron removal on top of the channel engine: same outputs, fewer parameters."""

from __future__ import annotations

import torch
from torch import nn

import netslim
from netslim.models import create
from netslim.weights.dead import remove_dead_neurons
from netslim.weights.pruning import prune_by_amount


def test_lenet300_100_pruned_hard_loses_dead_neurons_not_accuracy(tmp_path) -> None:
    """Dead-in neurons (bias folded), dead-out neurons and starved chains go; outputs are unchanged."""
    torch.manual_seed(0)
    model = create("lenet300_100", num_classes=10, in_channels=1, input_size=28).eval()
    fc1, fc2 = model.classifier[0], model.classifier[2]
    prune_by_amount(model, 0.97, {"classifier.4": {"amount": 0.5}})
    with torch.no_grad():
        fc1.parametrizations.weight.original[:40] = 0.0  # 40 neurons without inputs (bias stays)
        fc1.parametrizations.weight[0].mask[:40] = False
        fc2.parametrizations.weight.original[:, 250:] = 0.0  # 50 fc1 neurons without outputs
        fc2.parametrizations.weight[0].mask[:, 250:] = False
    x = torch.rand(8, 1, 28, 28)
    expected = model(x)
    result = remove_dead_neurons(model, x)
    small = result.model
    torch.testing.assert_close(small(x), expected, atol=1e-5, rtol=1e-5)
    assert result.params_after < result.params_before
    assert small.classifier[0].out_features <= 300 - 90
    # the smaller model round-trips through netslim.save/load (plans are replayed)
    path = netslim.save(small, tmp_path / "small.pt")
    torch.testing.assert_close(netslim.load(path)(x), expected, atol=1e-5, rtol=1e-5)


def test_conv_channels_dead_out_removed_and_padded_constant_kept() -> None:
    """A channel no consumer reads is removed; a no-input channel feeding a padded conv with a non-zero
    constant is kept (folding would be wrong at the border), one with a zero constant is removed."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
        net[0].bias.zero_()
        net[1].running_mean.zero_()
        net[0].weight[1] = 0.0  # no inputs, BN beta 0 -> constant 0 -> removable
        net[0].weight[2] = 0.0  # no inputs, constant relu(1.0) into a padded conv -> kept
        net[3].weight[:, 4] = 0.0  # no outputs -> removable
    net.eval()
    x = torch.randn(4, 2, 8, 8)
    expected = net(x)
    result = remove_dead_neurons(net, x)
    torch.testing.assert_close(result.model(x), expected, atol=1e-5, rtol=1e-5)
    assert result.model[0].out_channels == 4 and result.model[3].in_channels == 4
