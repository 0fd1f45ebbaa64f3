"""fuse_bn: folded models compute what the eval-mode unfused model computes (to 1e-5)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from netslim.errors import NetslimError
from netslim.fuse import count_foldable, fuse_bn


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so folding has something to fold."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) + 0.1)
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))
    return model


def _net() -> nn.Module:
    torch.manual_seed(0)
    return _randomize_bn(
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 5, 3, padding=1, groups=1, bias=True),
            nn.BatchNorm2d(5),
            nn.ReLU(),
            nn.ConvTranspose2d(5, 4, 2, stride=2),
            nn.BatchNorm2d(4),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, 6),
            nn.BatchNorm1d(6),
            nn.Linear(6, 3),
        )
    )


def test_fused_matches_unfused_and_removes_every_bn() -> None:
    model = _net()
    x = torch.randn(4, 3, 12, 12)
    fused = fuse_bn(model)
    assert count_foldable(model) == 4
    assert not any(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in fused.modules())
    assert not fused.training
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model.eval()(x), atol=1e-5, rtol=1e-5)


def test_original_is_untouched_unless_inplace() -> None:
    model = _net().train()
    before = copy.deepcopy(model.state_dict())
    fuse_bn(model)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    same = fuse_bn(model, inplace=True)
    assert same is model and count_foldable(model) == 0


def test_slimmed_vgg_fuses_exactly() -> None:
    from netslim.models import create
    from netslim.slimming import api

    torch.manual_seed(1)
    model = _randomize_bn(create("vgg11", num_classes=10, in_channels=3, width=0.25)).eval()
    x = torch.randn(2, 3, 32, 32)
    slim = api.apply(model, api.plan(model, x[:1], 0.5)).eval()
    fused = fuse_bn(slim)
    assert count_foldable(slim) == 8 and count_foldable(fused) == 0
    with torch.no_grad():
        torch.testing.assert_close(fused(x), slim(x), atol=1e-5, rtol=1e-5)


def test_unfoldable_layers_are_kept() -> None:
    class Shuffled(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self[0](self[1](x))  # BN runs first: folding it into the conv would be wrong

    no_stats = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False))
    mismatch = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm1d(4))
    shuffled = Shuffled(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
    masked = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))

    class Keep(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return w

    parametrize.register_parametrization(masked[0], "weight", Keep())
    for model in (no_stats, mismatch, shuffled, masked):
        assert count_foldable(model) == 0
        assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fuse_bn(model).modules())


def test_rejects_non_module() -> None:
    with pytest.raises(NetslimError, match=r"nn\.Module"):
        fuse_bn("vgg19")  # type: ignore[arg-type]
