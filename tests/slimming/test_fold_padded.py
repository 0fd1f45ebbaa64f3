"""Beta folding into zero-padded convolutions: the default folds the spatial mean of a removed channel's
contribution (least-squares best constant); "interior" is exact away from the borders; both beat the
plain cut."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import netslim
from netslim.slimming.api import folding_error, masked_model


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


# --------------------------------------------------------------------------- the exact fold (BorderFold)


def _zoo(name: str, **kwargs: object) -> nn.Module:
    """A zoo net with half of every BN's channels switched off (gamma 0, beta kept), in eval mode."""
    from netslim.models import create

    torch.manual_seed(0)
    net = create(name, num_classes=10, in_channels=1, input_size=16, **kwargs)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight[torch.randperm(m.num_features, generator=gen)[: m.num_features // 2]] = 0
                m.bias.uniform_(-0.5, 1.0, generator=gen)
                m.running_mean.uniform_(-0.5, 0.5, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
    return net.eval()


def _max_err(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        ya, yb = a(x), b(x)
    return float((ya - yb).abs().max() / yb.abs().max())


@pytest.mark.parametrize(
    "name, kwargs", [("vgg11", {"width": 0.25}), ("preresnet", {"depth": 20, "width": 0.25})]
)
def test_exact_fold_computes_what_the_masked_net_computes_at_any_input_size(name, kwargs):
    # a 16x16 input leaves 2x2 and 1x1 maps in VGG-11: almost every output position is a border
    net = _zoo(name, **kwargs)
    x = torch.randn(2, 1, 16, 16)
    plan = netslim.plan(net, x, ratio=0.4)
    masked = masked_model(net, plan, zero_beta=False).eval()
    exact = netslim.apply(net, plan, fold_beta="exact").eval()
    assert exact.netslim_plans[-1]["added_border"]
    for size in (16, 24, 20):
        y = torch.randn(3, 1, size, size)
        assert _max_err(exact, masked, y) < 1e-5
    assert _max_err(netslim.apply(net, plan).eval(), masked, x) > 1e-3  # what the mean fold leaves
    assert folding_error(net, plan, x)["folded_exact"] < 1e-5


def test_exact_fold_survives_save_load_a_second_cut_bn_fusion_and_channel_rounding(tmp_path):
    from netslim.fuse import fuse_bn
    from netslim.inference import round_channels

    net = _zoo("vgg11", width=0.25)
    x = torch.randn(2, 1, 16, 16)
    first = netslim.apply(net, netslim.plan(net, x, ratio=0.4), fold_beta="exact").eval()
    path = netslim.save(first, tmp_path / "slim.pt")
    loaded = netslim.load(path).eval()
    assert any(k.endswith("netslim_border.kernel") for k in loaded.state_dict())
    assert _max_err(loaded, first, x) < 1e-6
    # multi-pass: a net with border folds is traced and cut again, still exactly
    with torch.no_grad():
        for m in loaded.modules():
            if isinstance(m, nn.BatchNorm2d) and m.num_features > 2:
                m.weight[:1] = 0
    plan = netslim.plan(loaded, x, ratio=0.1)
    masked = masked_model(loaded, plan, zero_beta=False).eval()
    second = netslim.apply(loaded, plan, fold_beta="exact").eval()
    assert _max_err(second, masked, x) < 1e-5
    again = netslim.load(netslim.save(second, tmp_path / "twice.pt")).eval()
    assert _max_err(again, second, x) < 1e-6
    fused = fuse_bn(second)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert _max_err(fused, second, x) < 1e-5
    rounded, padded = round_channels(fuse_bn(second), 8)
    assert padded > 0 and _max_err(rounded, second, x) < 1e-5


def test_exact_fold_trains_and_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    from netslim.export import export_onnx, max_abs_diff

    net = _zoo("vgg11", width=0.25)
    x = torch.randn(4, 1, 16, 16)
    slim = netslim.apply(net, netslim.plan(net, x, ratio=0.4), fold_beta="exact").train()
    slim(x).logsumexp(1).mean().backward()  # the border fold is a buffer: the conv's weights still learn
    assert all(p.grad is not None for p in slim.parameters() if p.requires_grad)
    slim.eval()
    path = export_onnx(slim, tmp_path / "slim.onnx", x[:1])
    assert max_abs_diff(slim, path, x) < 1e-4


def test_bad_fold_mode_in_a_slimming_config_is_refused():
    from netslim.pipelines.slimming import SlimmingConfig

    with pytest.raises(netslim.errors.NetslimError, match="fold_beta"):
        SlimmingConfig(fold_beta="sideways")


def test_a_cut_whose_mean_fold_moves_the_outputs_is_named_and_an_exact_one_is_not(capsys):
    from netslim.pipelines.slimming import FoldDriftWarning, check_fold

    net = _net()  # its output is the 5x5 map of a padded conv: the mean fold moves it by about 20%
    plan = netslim.plan(net, X, ratio=3 / 8)
    mean = netslim.apply(net, plan).train()
    with pytest.warns(FoldDriftWarning, match="--fold-beta exact"):
        notes = check_fold(net, plan, mean, X[:1], True)
    assert len(notes) == 1 and "\n" not in notes[0]
    assert check_fold(net, plan, mean, X[:1], "mean", say=print) == notes  # the same line, printed
    assert capsys.readouterr().out == f"warning: {notes[0]}\n"
    assert mean.training  # the check ran in eval mode and gave the net back as it was
    exact = netslim.apply(net, plan, fold_beta="exact")
    assert check_fold(net, plan, exact, X[:1], "exact") == []
    assert check_fold(net, plan, netslim.apply(net, plan, fold_beta=False), X[:1], False) == []  # as asked


def test_a_mean_fold_that_barely_moves_the_outputs_is_not_named():
    from netslim.pipelines.slimming import check_fold
    from netslim.slimming.api import fold_drift

    net = _zoo("preresnet", depth=20, width=0.25)  # logits: the border errors average out
    x = torch.zeros(1, 1, 16, 16)
    plan = netslim.plan(net, x, ratio=0.4)
    mean = netslim.apply(net, plan)
    inputs = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert 0 < fold_drift(net, plan, mean, inputs) < 0.05
    assert check_fold(net, plan, mean, x, True) == []
