"""Pruning criteria: Han's threshold rule, per-layer amount, global amount, per-layer settings, report."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netslim.errors import PruningError
from netslim.weights.masks import get_mask
from netslim.weights.pruning import (
    LayerSpec,
    prune_by_amount,
    prune_by_std,
    prune_global,
    quality_for_sparsity,
    resolve_specs,
)
from netslim.weights.report import format_report, sparsity_report


def _set(module: nn.Module, values: list[list[float]]) -> None:
    with torch.no_grad():
        module.weight.copy_(torch.tensor(values))


def test_han_threshold_golden_case() -> None:
    """|w| < q*std(w) is pruned. By hand: mean 0.075, sum of squared deviations 42.215, sample std
    sqrt(42.215 / 7) = 2.45575, so q = 0.5 gives threshold 1.2279."""
    lin = nn.Linear(4, 2)
    _set(lin, [[-4.0, -2.0, -1.0, 0.5], [1.0, 2.0, 4.0, 0.1]])
    std = torch.tensor([-4.0, -2.0, -1.0, 0.5, 1.0, 2.0, 4.0, 0.1]).std().item()
    assert std == pytest.approx(2.45575, abs=1e-4)
    prune_by_std(nn.Sequential(lin), quality=0.5)
    assert get_mask(lin).mask.tolist() == [[True, True, False, False], [False, True, True, False]]
    assert float(get_mask(lin).std) == pytest.approx(std)


def test_han_fixed_vs_recomputed_std() -> None:
    """Fixed std reuses the first statistic; recompute uses the survivors' std (a larger threshold)."""
    values = [[0.1, 0.2, 0.3, 0.4, 1.0, 2.0, 3.0, 4.0]]
    fixed, recomputed = nn.Linear(8, 1), nn.Linear(8, 1)
    _set(fixed, values)
    _set(recomputed, values)
    for mode, layer in (("fixed", fixed), ("recompute", recomputed)):
        prune_by_std(nn.Sequential(layer), 0.3, std_mode=mode)
        prune_by_std(nn.Sequential(layer), 0.3, std_mode=mode)
    std_all = torch.tensor(values).std().item()  # 1.4448 -> threshold 0.433: prunes 0.1..0.4
    assert float(get_mask(fixed).std) == pytest.approx(std_all)
    assert int(get_mask(fixed).mask.sum()) == 4
    # survivors [1,2,3,4] std 1.291 -> threshold 0.387: nothing more. Second round of recompute keeps 4.
    assert int(get_mask(recomputed).mask.sum()) == 4
    prune_by_std(nn.Sequential(recomputed), 0.9, std_mode="recompute")  # 1.162 -> prunes 1.0
    assert get_mask(recomputed).mask.tolist() == [[False] * 5 + [True] * 3]


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))


def test_per_layer_amount_exact_counts_and_no_compounding() -> None:
    """amount is the tensor's total sparsity: 0.5 then 0.75 gives 75%, not 87.5%."""
    net = _net()
    prune_by_amount(net, 0.5)
    for i, n in ((0, 200), (2, 600), (4, 150)):
        assert int((net[i].weight == 0).sum()) == n // 2
    prune_by_amount(net, 0.75)
    assert [int((net[i].weight == 0).sum()) for i in (0, 2, 4)] == [150, 450, round(0.75 * 150)]


def test_global_amount_exact_count_and_single_threshold() -> None:
    """Exactly amount * total weights are cut, and every kept |w| >= every cut |w| across layers."""
    net = _net()
    dense = {i: net[i].weight.detach().abs().clone() for i in (0, 2, 4)}
    prune_global(net, 0.6)
    total = sum(w.numel() for w in dense.values())
    cut = sum(int((~get_mask(net[i]).mask).sum()) for i in dense)
    assert cut == round(0.6 * total)
    max_cut = max(float(dense[i][~get_mask(net[i]).mask].max()) for i in dense)
    min_kept = min(float(dense[i][get_mask(net[i]).mask].min()) for i in dense)
    assert max_cut <= min_kept


def test_pattern_settings_and_protect_first() -> None:
    """Exact names win over globs, None skips a layer, protect_first leaves layer 0 dense."""
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)))
    net.add_module("classifier", nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.Linear(4, 2)))
    specs = resolve_specs(
        net,
        LayerSpec(amount=0.5),
        {"classifier.*": {"amount": 0.9}, "classifier.2": None, "features.1": {"quality": 0.1}},
        protect_first=True,
    )
    assert specs["features.0"].skip
    assert specs["features.1"] == LayerSpec(quality=0.1)
    assert specs["classifier.1"] == LayerSpec(amount=0.9)
    assert specs["classifier.2"].skip
    with pytest.raises(PruningError, match="matches no prunable layer"):
        resolve_specs(net, LayerSpec(amount=0.5), {"classifer.*": None})
    with pytest.raises(PruningError, match="exactly one"):
        LayerSpec(amount=0.5, quality=1.0)


def test_bias_pruning_is_optional() -> None:
    """Biases are untouched by default and masked with bias=True."""
    net = _net()
    prune_by_amount(net, 0.5)
    assert get_mask(net[0], "bias") is None
    prune_by_amount(net, 0.5, bias=True)
    assert int((net[0].bias == 0).sum()) == 10


def test_quality_for_sparsity_inverts_the_rule() -> None:
    """The derived quality prunes the requested share of a layer."""
    lin = nn.Linear(50, 40)
    q = quality_for_sparsity(lin.weight, 0.7)
    prune_by_std(nn.Sequential(lin), q)
    assert float((lin.weight == 0).float().mean()) == pytest.approx(0.7, abs=1e-3)


def test_sparsity_report_counts_and_conv_flops_with_padding() -> None:
    """Weights kept and exact per-sample MACs (padding excluded) for a conv and a linear layer."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].weight[1] = 0.0  # second filter fully zero
        net[2].weight.fill_(1.0)
        net[2].weight[:, :16] = 0.0
        net[0].bias.fill_(1.0)  # every conv output is non-zero, so the linear layer's inputs are all non-zero
    rows = sparsity_report(net, torch.randn(5, 1, 4, 4))
    conv, lin, total = rows
    # 4x4 output, 3x3 kernel with padding 1: 4 corners x4 + 8 edges x6 + 4 inner x9 = 100 MACs per filter
    assert conv["macs"] == 200 and conv["macs_kept"] == 100 and conv["kept_pct"] == 50.0
    assert conv["flops"] == 400 and conv["flops_kept"] == 200  # 2 FLOPs per multiply-accumulate
    assert lin["macs"] == 96 and lin["macs_kept"] == 48
    assert total["weights"] == 18 + 96 and total["kept"] == 9 + 48
    assert "| 0 | 18 | 50.0 | 100.0 | 50.0 |" in format_report(rows)


def test_flops_kept_discounts_zero_input_activations_like_han() -> None:
    """A MAC counts only when its weight AND its input activation are non-zero, averaged over the batch."""
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        net[0].bias.zero_()
        net[2].weight.fill_(1.0)
        net[2].weight[0, 0] = 0.0
    # sample 1: hidden = relu(1, -1, 0) = (1, 0, 0); sample 2: relu(-2, 2, 3) = (0, 2, 3)
    x = torch.tensor([[1.0, 0.0, 5.0, 5.0], [-2.0, 3.0, 1.0, 1.0]])
    rows = {r["name"]: r for r in sparsity_report(net, x)}
    first, second = rows["0"], rows["2"]
    assert first["macs"] == 12 and first["macs_kept_weights"] == 3
    # non-zero weights on inputs 0, 0, 1: sample 1 has input 1 == 0 -> 2 MACs, sample 2 -> 3 MACs
    assert first["macs_kept"] == pytest.approx(2.5)
    assert second["act_kept_pct"] == pytest.approx(50.0)  # 3 of the 6 hidden activations are non-zero
    # second layer: weight (0,0) pruned; sample 1 inputs (1,0,0) -> 1 MAC; sample 2 inputs (0,2,3) -> 4 MACs
    assert second["macs_kept"] == pytest.approx(2.5) and second["macs_kept_weights"] == 5
    assert rows["total"]["flops_kept"] == pytest.approx(2 * 5.0)
