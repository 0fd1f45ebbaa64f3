"""Beta folding into zero-padded convolutions: the default folds the spatial mean of a removed channel's
contribution (least-squares best constant); "interior" is exact away from the borders; both beat the
plain cut."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netslim
from netslim.slimming.api import masked_model


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 5, 3, padding=1, stride=2),
    )
    bn = net[1]
    bn.weight.data = torch.tensor([1.0, 0.0, 0.8, 0.0, 0.9, 0.0, 1.1, 0.7])  # three channels off
    bn.bias.data = torch.linspace(0.2, 1.5, 8)  # nonzero betas: removed channels output relu(beta)
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 1.5)
    return net.eval()


X = torch.randn(4, 3, 9, 9, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def outputs() -> dict[str, torch.Tensor]:
    net = _net()
    plan = netslim.plan(net, X, ratio=3 / 8)
    assert plan.layers["1"]["after"] == 5
    with torch.no_grad():
        out = {"masked": masked_model(net, plan, zero_beta=False)(X)}
        for mode in (True, "interior", False):
            out[str(mode)] = netslim.apply(net, plan, fold_beta=mode)(X)
    return out


def test_mean_fold_has_zero_mean_error_per_channel_and_least_squares(outputs):
    err = {k: outputs[k] - outputs["masked"] for k in ("True", "interior", "False")}
    torch.testing.assert_close(err["True"].mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-5, rtol=0)
    mse = {k: float(e.pow(2).mean()) for k, e in err.items()}
    assert mse["True"] <= mse["interior"] + 1e-9
    assert mse["True"] < mse["False"]


def test_interior_fold_is_exact_away_from_the_borders(outputs):
    inner = (..., slice(1, -1), slice(1, -1))
    torch.testing.assert_close(outputs["interior"][inner], outputs["masked"][inner], atol=1e-5, rtol=1e-5)


def test_bad_fold_mode_is_refused():
    net = _net()
    plan = netslim.plan(net, X, ratio=3 / 8)
    with pytest.raises(netslim.errors.PruningError, match="fold_beta"):
        netslim.apply(net, plan, fold_beta="sideways")
