"""Whole-pipeline properties of `netslim.slim` on zoo models: any ratio in [0, 1) works and empties no layer,
and a slimmed model (channel selections included) survives deepcopy and save/load unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import netslim
from netslim.models import create

ZOO = {
    "vgg": ("vgg11", {"width": 0.125}),
    "preresnet": ("preresnet", {"depth": 11, "width": 0.5}),
    "densenet": ("densenet", {"depth": 10, "growth": 4}),
    "resnet": ("resnet20", {"width": 0.25}),
    "mobilenetv2": ("mobilenetv2", {"width": 0.25}),
}
X = torch.randn(2, 3, 32, 32)


def _random_bn(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) ** 3  # many small gammas, as after sparsity training
            m.bias.data = torch.randn(n, generator=g) * 0.1
            m.running_mean = torch.randn(n, generator=g) * 0.1
            m.running_var = torch.rand(n, generator=g) + 0.5
    return model.eval()


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {key: _random_bn(create(name, **kw), i) for i, (key, (name, kw)) in enumerate(ZOO.items())}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(ZOO)), ratio=st.floats(0.0, 0.999, exclude_max=False))
def test_any_ratio_below_one_prunes_without_emptying_a_layer(models, key, ratio):
    model = models[key]
    result = netslim.slim(model, X, ratio=ratio)
    for m in result.model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear | nn.BatchNorm2d):
            assert all(s > 0 for s in m.weight.shape)
    out = result.model(X)
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("key", ["preresnet", "densenet"])
def test_slimmed_preactivation_model_survives_deepcopy_and_save_load(models, key, tmp_path):
    slimmed = netslim.slim(models[key], X, ratio=0.5).model.eval()
    expected = slimmed(X)
    torch.testing.assert_close(copy.deepcopy(slimmed)(X), expected, rtol=0, atol=0)
    netslim.save(slimmed, tmp_path / "m.pt")
    torch.testing.assert_close(netslim.load(tmp_path / "m.pt")(X), expected, rtol=1e-6, atol=1e-6)
