"""inference_form: fused BN, channels_last only when measured faster, same outputs; measure/CLI use it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from torch import nn

import netslim
from netslim.cli import main
from netslim.inference import ChannelsLast
from netslim.measurement.latency import Timing
from netslim.models import create


class FakeTimer:
    """NCHW first, channels_last second: returns the preset medians (tight quartiles)."""

    def __init__(self, nchw: float, nhwc: float) -> None:
        self.medians = (nchw, nhwc)

    def measure(self, fns: Sequence[Callable[[], Any]]) -> list[Timing]:
        for fn in fns:
            fn()
        return [Timing(m, 0.99 * m, 1.01 * m, 15) for m in self.medians]


def _vgg() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = create("vgg11", num_classes=10, in_channels=1, width=0.25)
    model.train()
    with torch.no_grad():  # non-trivial running statistics, so folding them matters
        for _ in range(2):
            model(torch.randn(8, 1, 28, 28))
    return model.eval(), torch.randn(2, 1, 28, 28)


@pytest.mark.parametrize(("nhwc_ms", "expect_nhwc"), [(0.7, True), (1.0, False), (1.3, False)])
def test_channels_last_only_where_measured_faster(nhwc_ms: float, expect_nhwc: bool) -> None:
    model, x = _vgg()
    form = netslim.inference_form(model, x, batch_sizes=(1, 4), timer=FakeTimer(1.0, nhwc_ms))
    assert form.channels_last == expect_nhwc == isinstance(form.model, ChannelsLast)
    assert form.fused_bn == 8 and not any(isinstance(m, nn.BatchNorm2d) for m in form.model.modules())
    assert ("channels_last" in form.describe()) == expect_nhwc and "fused BN (8 layers)" in form.describe()
    assert set(form.decisions["timings"]) == {1, 4}
    with torch.no_grad():
        torch.testing.assert_close(form.model(x), model(x), atol=1e-4, rtol=1e-4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # input untouched


def test_measure_times_the_inference_form_but_counts_the_model() -> None:
    model, x = _vgg()
    plain = netslim.measure(model, x[:1], latency=False, file_size=False)
    r = netslim.measure(
        model, x[:1], batch_sizes=(1,), repeats=3, warmup=1, file_size=False, inference_form=True
    )
    assert r["latency_form"].startswith("inference form: fused BN (8 layers)")
    assert r["flops"] == plain["flops"] and r["params"] == plain["params"]
    assert r["latency"][1]["n"] == 3


def test_cli_measure_says_latency_is_in_inference_form(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["measure", "lenet5", "--input-shape", "1", "28", "28", "--batch-sizes", "1", "--repeats", "3"]
    assert main([*args, "--no-onnxruntime"]) == 0
    assert "lenet5: latency measured in inference form: " in capsys.readouterr().out
    assert main([*args, "--no-onnxruntime", "--no-inference-form"]) == 0
    assert "inference form" not in capsys.readouterr().out


def test_bn_inside_resnet_blocks_is_folded_too() -> None:
    """BN called from a block's forward (not an nn.Sequential neighbour) is folded via torch.fx."""
    torch.manual_seed(0)
    model = create("resnet20", num_classes=10, in_channels=1, input_size=28).eval()
    x = torch.randn(2, 1, 28, 28)
    form = netslim.inference_form(model, x, channels_last=False)
    total = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert form.fused_bn == total and "torch.fx" in form.decisions["fuse_bn"]
    with torch.no_grad():
        torch.testing.assert_close(form.model(x), model(x), atol=1e-4, rtol=1e-4)


def test_exact_folded_resnet_is_fused_with_its_border_corrections_rescaled() -> None:
    """A slimmed ResNet whose convs carry exact-fold border corrections: torch.fx fuses the BN after each
    of them and the corrections are scaled by that BN, so the fused form computes the same."""
    torch.manual_seed(0)
    model = create("resnet20", num_classes=10, in_channels=1, input_size=28).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight[: m.num_features // 2] = 0
                m.bias.uniform_(0.2, 1.0)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 1, 28, 28)
    slim = netslim.apply(model, netslim.plan(model, x, 0.3), fold_beta="exact").eval()
    assert slim.netslim_plans[-1]["added_border"]
    form = netslim.inference_form(slim, x, channels_last=False)
    assert "torch.fx" in form.decisions["fuse_bn"]
    assert form.fused_bn == sum(isinstance(m, nn.BatchNorm2d) for m in slim.modules())
    with torch.no_grad():
        torch.testing.assert_close(form.model(x), slim(x), atol=1e-5, rtol=1e-5)


class RoundingTimer:
    """The first function takes 1 ms, the others ``ratios`` ms: the layout look gets (NCHW 1, channels_last
    ratios[0]), the rounding look (kept 1, rounded to 8 ratios[0], to 16 ratios[1])."""

    def __init__(self, *ratios: float) -> None:
        self.medians = (1.0, *ratios)

    def measure(self, fns: Sequence[Callable[[], Any]]) -> list[Timing]:
        for fn in fns:
            fn()
        return [Timing(m, 0.99 * m, 1.01 * m, 15) for m in self.medians[: len(fns)]]


def _odd_slimmed() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 13, 3, padding=1), nn.BatchNorm2d(13), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(13, 21, 3, padding=1), nn.BatchNorm2d(21), nn.ReLU(),
        nn.Conv2d(21, 6, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
    )  # fmt: skip
    return model.eval(), torch.randn(2, 3, 16, 16)


def test_channels_are_rounded_only_where_measured_faster_and_outputs_stay() -> None:
    model, x = _odd_slimmed()
    slower = netslim.inference_form(model, x, batch_sizes=(1,), timer=RoundingTimer(1.0, 1.0))
    assert not slower.rounded_channels and "not faster" in slower.decisions["round_channels"]
    faster = netslim.inference_form(model, x, batch_sizes=(1,), timer=RoundingTimer(0.8, 0.9))
    assert faster.rounded_channels and faster.round_to == 8 and "multiples of 8" in faster.describe()
    assert faster.channels_last  # rounded in the layout chosen first
    convs = [m for m in faster.model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 24, 6]  # the last conv feeds pooling: left alone
    assert [c.in_channels for c in convs] == [3, 16, 24]
    with torch.no_grad():
        torch.testing.assert_close(faster.model(x), model(x), atol=1e-5, rtol=1e-5)
    forced = netslim.inference_form(model, x, channels_last=False, round_to=16)
    assert [m.out_channels for m in forced.model.modules() if isinstance(m, nn.Conv2d)] == [16, 32, 6]
    kept = netslim.inference_form(model, x, channels_last=False)  # layout forced: counts not measured
    assert not kept.rounded_channels and "round_channels" not in kept.decisions


class ScriptedTimer:
    """Returns the next scripted medians on each ``measure`` call (in ms, one per function)."""

    def __init__(self, *calls: tuple[float, ...]) -> None:
        self.calls = list(calls)

    def measure(self, fns: Sequence[Callable[[], Any]]) -> list[Timing]:
        medians = self.calls.pop(0)
        assert len(medians) == len(fns)
        for fn in fns:
            fn()
        return [Timing(m, 0.99 * m, 1.01 * m, 15) for m in medians]


def test_channels_can_be_rounded_per_layer_where_each_pair_is_timed_faster() -> None:
    """Each conv feeding a conv gets its own width when that wins; the whole model is timed last."""
    model, x = _odd_slimmed()
    timer = ScriptedTimer(
        (1.0, 0.9),  # layout: channels_last wins
        (1.0, 0.8),  # pair 13 -> 21: the conv at 16 channels (8 and 16 agree) runs the pair faster
        (1.0, 1.0, 1.0),  # pair 21 -> 6: neither 24 nor 32 pays
        (1.0, 0.95, 0.95, 0.8),  # whole model: kept, all to 8, all to 16, per layer
    )
    form = netslim.inference_form(model, x, batch_sizes=(1,), timer=timer)
    assert not timer.calls
    convs = [m for m in form.model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 21, 6] and [c.in_channels for c in convs] == [3, 16, 21]
    assert form.rounded_channels and form.round_to == 0 and "rounded per layer" in form.describe()
    assert "per layer" in form.decisions["round_channels"]
    with torch.no_grad():
        torch.testing.assert_close(form.model(x), model(x), atol=1e-5, rtol=1e-5)
