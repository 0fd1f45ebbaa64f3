"""The slimmed model computes exactly what the masked original computes (eval mode)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from netslim.errors import PruningError
from netslim.slimming import apply, folding_error, masked_model, plan
from test_engine_models import REPLICAS, randomize_bn

TOL = 1e-5


@pytest.fixture(autouse=True)
def _one_thread():
    # intra-op threads thrash on a loaded 2-core machine (100x slower convolutions)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


def check_structure(model: nn.Module, x: torch.Tensor, ratio: float, **kw: object) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = plan(model, x, ratio, **kw)
    assert not [w for w in caught if "not understood" in str(w.message)]  # every op of the zoo is known
    assert p.pruned_channels > 0
    small = apply(model, p, fold_beta=False).eval()
    ref = masked_model(model, p, zero_beta=True).eval()
    with torch.no_grad():
        assert rel_err(ref(x), small(x)) < TOL
    n_small = sum(t.numel() for t in small.parameters())
    assert n_small < sum(t.numel() for t in model.parameters())


@pytest.mark.parametrize("name", sorted(REPLICAS))
@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_replicas_structure_exact(name: str, ratio: float) -> None:
    torch.manual_seed(0)
    model = randomize_bn(REPLICAS[name](), seed=1)
    check_structure(model, torch.randn(2, 3, 16, 16), ratio)


ZOO_SMALL = {
    "vgg11": {"width": 0.25},
    "vgg13": {"width": 0.25},
    "vgg16": {"width": 0.25},
    "vgg19": {"width": 0.25},
    "vgg16_fc": {"width": 0.25},
    "preresnet": {"depth": 20},
    "densenet": {"depth": 13, "growth": 4},
    "resnet": {"depth": 8},
    "mobilenetv2": {"width": 0.25},
}


def _zoo() -> list[str]:
    try:
        from netslim.models import list_models
    except ImportError:  # zoo not available: the replicas above cover the architectures
        return []
    return [n for n in list_models() if n in ZOO_SMALL or n.startswith(("lenet", "alexnet"))]


@pytest.mark.parametrize("name", _zoo())
def test_zoo_structure_exact(name: str) -> None:
    from netslim.models import create

    torch.manual_seed(0)
    model = randomize_bn(create(name, **ZOO_SMALL.get(name, {})), seed=2)
    size = 28 if name.startswith("lenet") else 32
    x = torch.randn(2, 3, size, size)
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        with pytest.raises(PruningError, match="no BatchNorm"):
            plan(model, x, 0.5)
        return
    check_structure(model, x, 0.5)


@pytest.mark.parametrize(("name", "kw"), [("vgg19", {}), ("preresnet164", {}), ("densenet40", {})])
def test_full_size_zoo_exact(name: str, kw: dict) -> None:
    models = pytest.importorskip("netslim.models")
    if name not in models.list_models():
        pytest.skip(f"{name} not in the zoo")
    torch.manual_seed(0)
    model = randomize_bn(models.create(name, **kw), seed=3)
    check_structure(model, torch.randn(1, 3, 32, 32), 0.6)


class Unpadded(nn.Module):
    """Every consumer of a prunable channel is a 1x1/unpadded conv or a linear layer: folding is exact."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 12, 3)  # has a bias, unpadded
        self.b2 = nn.BatchNorm2d(12)
        self.c3 = nn.Conv2d(12, 10, 1, bias=False)  # bias-free, followed by BN: fold into running_mean
        self.b3 = nn.BatchNorm2d(10)
        self.fc1 = nn.Linear(10 * 16, 16, bias=False)  # bias-free, followed by BN1d
        self.bn4 = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 5, bias=False)  # bias-free, not followed by BN: gains a bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.b1(self.c1(x)))
        x = nn.functional.leaky_relu(self.b2(self.c2(x)), 0.1)
        x = nn.functional.max_pool2d(torch.sigmoid(self.b3(self.c3(x))), 2)
        x = self.fc1(x.flatten(1))
        return self.fc2(nn.functional.silu(self.bn4(x)))


@pytest.mark.parametrize("model_fn", [Unpadded, REPLICAS["mobilenetv2"]])
def test_beta_folding_exact(model_fn: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model = randomize_bn(model_fn(), seed=4)
    x = torch.randn(3, 3, 12, 12)
    p = plan(model, x, 0.5)
    small = apply(model, p).eval()
    ref = masked_model(model, p, zero_beta=False).eval()
    with torch.no_grad():
        assert rel_err(ref(x), small(x)) < TOL
    errs = folding_error(model, p, x)
    assert errs["folded"] < TOL < errs["plain_cut"]


def test_folded_bias_is_recorded_and_replayed() -> None:
    torch.manual_seed(0)
    model = randomize_bn(Unpadded(), seed=5)
    x = torch.randn(2, 3, 12, 12)
    p = plan(model, x, 0.5, layer_ratios={"bn4": 0.5})
    small = apply(model, p)
    assert small.netslim_plans[-1]["added_bias"] == ["fc2"]
    assert small.fc2.bias is not None and model.fc2.bias is None
    from netslim.slimming import PruningPlan

    replayed = apply(Unpadded(), PruningPlan.from_dict(small.netslim_plans[-1]), fold_beta=False)
    shapes = {k: v.shape for k, v in small.state_dict().items()}
    assert shapes == {k: v.shape for k, v in replayed.state_dict().items()}


def test_padded_folding_beats_plain_cut() -> None:
    torch.manual_seed(0)
    model = randomize_bn(REPLICAS["vgg"](), seed=6)
    x = torch.randn(2, 3, 16, 16)
    errs = folding_error(model, plan(model, x, 0.5), x)
    assert 0 <= errs["folded"] < errs["plain_cut"]
