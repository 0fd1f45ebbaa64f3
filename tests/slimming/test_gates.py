"""Channel gates for nets without BatchNorm: placed where exact, penalized, cut, folded and removed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netslim
import netslim.io
from netslim.errors import PruningError
from netslim.slimming.gates import ChannelGate, GatedLayer, add_channel_gates

# the ConvNeXt-style net's LayerNorm is an op the trace does not follow: warned about, and expected here
pytestmark = pytest.mark.filterwarnings("ignore:netslim. op:UserWarning")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (ConvNeXt's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pw1 = nn.Conv2d(dim, 4 * dim, 1)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(4 * dim, dim, 1)
        self.scale = nn.Parameter(torch.full((1, dim, 1, 1), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.pw2(self.act(self.pw1(self.norm(self.dw(x)))))


class ConvNeXtStyle(nn.Module):
    def __init__(self, dim: int = 6, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 4, stride=4), LayerNorm2d(dim))
        self.blocks = nn.Sequential(ConvNeXtBlock(dim), ConvNeXtBlock(dim))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dim, 16), nn.GELU(), nn.Linear(16, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.e1 = nn.Conv2d(squeeze, expand, 1)
        self.e3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], 1)


def squeezenet_style(classes: int = 5) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        Fire(16, 4, 8),
        Fire(16, 6, 12),
        nn.MaxPool2d(2, ceil_mode=True),
        Fire(24, 6, 12),
        nn.Dropout(0.5),
        nn.Conv2d(24, classes, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def plain_net(classes: int = 5) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 12, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(12, 16, 3, padding=1),
        nn.SiLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 20, 3),
        nn.Sigmoid(),
        nn.Flatten(),
        nn.Linear(20 * 14 * 14, 24),
        nn.ReLU(),
        nn.Linear(24, classes),
    )


NETS = {"convnext": ConvNeXtStyle, "squeezenet": squeezenet_style, "plain": plain_net}


def _zero_gates(model: nn.Module, frac: float = 0.4, seed: int = 0) -> int:
    """Random gate values in [0.5, 1.5] with ``frac`` of each gate's channels at exactly 0; returns #zeros."""
    g = torch.Generator().manual_seed(seed)
    zeros = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ChannelGate):
                n = m.gate.numel()
                m.gate.copy_(0.5 + torch.rand(n, generator=g))
                k = round(frac * n)
                m.gate[torch.randperm(n, generator=g)[:k]] = 0
                zeros += k
    return zeros


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("name", sorted(NETS))
def test_gated_cut_is_exact_and_leaves_no_gates(name) -> None:
    torch.manual_seed(0)
    model = NETS[name]().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain_out = model(x)
    report = add_channel_gates(model, x)
    assert report.gated and all(isinstance(model.get_submodule(n), GatedLayer) for n in report.gated)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain_out)  # gates at 1 change nothing
    zeros = _zero_gates(model)
    total = sum(m.gate.numel() for m in model.modules() if isinstance(m, ChannelGate))
    with torch.no_grad():
        gated_out = model(x)
    result = netslim.slim(model, x, ratio=zeros / total)
    small = result.model.eval()
    assert result.plan.pruned_channels == zeros
    assert not any(isinstance(m, ChannelGate | GatedLayer) for m in small.modules())
    assert not any("gate" in n for n, _ in small.named_parameters())
    assert result.params_after < result.params_before
    with torch.no_grad():
        assert _rel(small(x), gated_out) <= 1e-4
    # the plan record names the plain layers, so a fresh ungated instance replays it (netslim.load)
    assert not any(".gate" in k or ".layer" in k for k in small.netslim_plans[-1]["layers"])
    torch.manual_seed(0)
    fresh = NETS[name]()
    replayed = netslim.io.replay_plans(fresh, small.netslim_plans)
    replayed.load_state_dict(small.state_dict())


def test_convnext_style_reports_the_channel_norm() -> None:
    model = ConvNeXtStyle()
    report = add_channel_gates(model, torch.randn(1, 3, 32, 32))
    assert sorted(report.gated) == ["blocks.0.pw1", "blocks.1.pw1", "head.2"]
    for layer in ("stem.0", "blocks.0.dw", "blocks.1.pw2"):
        assert "normalized together by" in report.skipped[layer], report.skipped[layer]
    assert "model output" in report.skipped["head.4"]


def test_sparsity_penalizes_gates_and_gated_models_round_trip(tmp_path) -> None:
    model = plain_net()
    x = torch.randn(2, 3, 32, 32)
    report = add_channel_gates(model, x)
    sparsity = netslim.BNSparsity(model, s=0.1, hist_file=None)
    assert sparsity.names == [f"{n}.gate" for n in report.gated]
    model(x).sum().backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters() if n.endswith("gate.gate")}
    sparsity.apply_()
    for n, p in model.named_parameters():
        if n.endswith("gate.gate"):
            torch.testing.assert_close(p.grad, before[n] + 0.1 * torch.sign(p.detach()))
    _zero_gates(model)
    path = netslim.save(model, tmp_path / "gated.pt")
    again = netslim.load(path, model=plain_net()).eval()
    assert isinstance(again.get_submodule(report.gated[0]), GatedLayer)
    torch.testing.assert_close(again(x), model.eval()(x))


def test_no_gate_place_raises() -> None:
    with pytest.raises(PruningError, match="no conv/linear output"):
        add_channel_gates(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 8, 8))


NORM_FREE_FILE = """
from torch import nn


def build(num_classes=10, in_channels=1):
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, num_classes),
    )
"""


def test_cli_slim_gates_on_a_norm_free_user_model(tmp_path, capsys) -> None:
    from helpers import write_tiny_mnist
    from netslim.cli import main
    from netslim.io import read_checkpoint

    (tmp_path / "nofree.py").write_text(NORM_FREE_FILE)
    data = write_tiny_mnist(tmp_path / "data", n_train=160, n_test=32)
    run = tmp_path / "run"
    code = main(
        [
            "slim",
            "--model",
            f"{tmp_path / 'nofree.py'}:build",
            "--gates",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            str(data),
            "--val-size",
            "32",
            "--batch-size",
            "32",
            "--no-progress",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--max-batches",
            "2",
            "--ratio",
            "0.5",
            "--finetune-epochs",
            "1",
            "--no-latency",
            "--no-plots",
            "--no-plain-cut",
            "--run-dir",
            str(run),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "channel gates: 2 layers gated" in out
    assert read_checkpoint(run / "sparse.pt").meta["gates"] == ["0", "3"]
    assert isinstance(netslim.load(run / "sparse.pt")[0], GatedLayer)
    final = netslim.load(run / "finetuned.pt")
    assert not any(isinstance(m, ChannelGate | GatedLayer) for m in final.modules())
    assert final[0].out_channels + final[3].out_channels == 12  # half of the 24 gated channels
    # `netslim prune` on the gated checkpoint: plans by the gates, folds them away
    assert main(["prune", str(run / "sparse.pt"), "--ratio", "0.25", "-o", str(tmp_path / "p.pt")]) == 0
    pruned = netslim.load(tmp_path / "p.pt")
    assert not any(isinstance(m, ChannelGate | GatedLayer) for m in pruned.modules())
    assert pruned[0].out_channels + pruned[3].out_channels == 18


def test_gating_twice_adds_nothing_and_keeps_the_model() -> None:
    model = plain_net()
    x = torch.randn(1, 3, 32, 32)
    first = add_channel_gates(model, x)
    with pytest.raises(PruningError, match="no conv/linear output"):
        add_channel_gates(model, x)  # every gateable layer already has its gate
    assert [n for n, m in model.named_modules() if isinstance(m, GatedLayer)] == first.gated
