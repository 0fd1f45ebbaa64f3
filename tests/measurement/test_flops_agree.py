"""One FLOP counter: slim, multipass and measure agree, and slim runs no forward the user did not ask for."""

from __future__ import annotations

import torch
from torch import nn

import netslim
from netslim.models import create
from netslim.slimming.multipass import default_measure


def _readme_vgg() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = create("vgg11", num_classes=10, in_channels=1, width=0.25)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.0, 1.0)
    return model, torch.randn(1, 1, 28, 28)


def _count_forwards(model: nn.Module) -> list[int]:
    calls = [0]

    def hook(module: nn.Module, args: tuple) -> None:
        calls[0] += 1

    model.register_forward_pre_hook(hook)  # deep copies made by the engine keep the hook
    return calls


def test_slim_flops_equal_measure_for_the_readme_vgg11() -> None:
    model, x = _readme_vgg()
    result = netslim.slim(model, x, ratio=0.7)
    before = netslim.measure(model, x, latency=False, file_size=False)
    after = netslim.measure(result.model, x, latency=False, file_size=False)
    assert result.flops_before == before["flops"] == 12_024_832  # 2 x MACs, README convention
    assert result.flops_after == after["flops"]
    assert result.params_before == before["params"] and result.params_after == after["params"]
    assert f"{before['flops']:,}" in result.summary()
    assert default_measure(result.model, x) == {"params": after["params"], "flops": after["flops"]}


def test_slim_runs_no_extra_forward_passes() -> None:
    model, x = _readme_vgg()
    calls = _count_forwards(model)
    plan = netslim.plan(model, x, 0.7)
    netslim.apply(model, plan)
    engine_calls = calls[0]
    calls[0] = 0
    result = netslim.slim(model, x, ratio=0.7)
    assert calls[0] == engine_calls
    # counting is lazy: one forward of the slimmed model on first access, none after
    assert result.flops_after == result.flops_after > 0
    assert calls[0] == engine_calls + 1
