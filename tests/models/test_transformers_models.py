"""Third-party CNN families: a cut of channels whose BN gamma and beta are zero changes no output.

Each Hugging Face ``transformers`` CNN that builds offline from a config (random weights, small sizes) and a
detector-style model (BN backbone + feature pyramid, a dict of three maps) gets ~40% of the channels of every
scorable group zeroed by hand (gamma = beta = 0 in all its BatchNorms); ``netslim.slim`` at exactly that
ratio must remove those channels and leave every output unchanged (relative error <= 1e-5).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netslim
from netslim.slimming.channel_groups import analyze
from netslim.slimming.gates import add_channel_gates
from netslim.slimming.tracing import output_tensors

_BN = nn.modules.batchnorm._BatchNorm


def zero_and_cut(model: nn.Module, x: torch.Tensor, frac: float = 0.4, seed: int = 0) -> dict[str, float]:
    """Zero ``frac`` of each scorable group's BN channels, slim at that ratio; returns what was checked."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    mods = dict(model.named_modules())
    with torch.no_grad():
        for m in model.modules():  # non-trivial statistics and affine values for the kept channels
            if isinstance(m, _BN) and m.weight is not None:
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(torch.rand(n, generator=gen) - 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = analyze(model, x)
    groups = [g for g in graph.groups if g.scorable]
    assert groups, "no scorable channel group"
    zeroed = 0
    with torch.no_grad():
        for g in groups:
            k = min(round(frac * g.size), g.size - 1)
            chans = torch.randperm(g.size, generator=gen)[:k]
            for mem in g.members:
                if mem.role in ("norm", "select"):
                    sel = mem.positions[torch.isin(mem.channels, chans)]
                    mods[mem.fqn].weight[sel] = 0
                    mods[mem.fqn].bias[sel] = 0
            zeroed += k
    total = sum(g.size for g in groups)
    with torch.no_grad():
        ref = output_tensors(model(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = netslim.slim(model, x, ratio=zeroed / total)
    with torch.no_grad():
        out = output_tensors(result.model.eval()(x))
    assert len(out) == len(ref) and all(a.shape == b.shape for a, b in zip(out, ref))
    errors = [float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)) for a, b in zip(out, ref)]
    assert result.plan.pruned_channels == zeroed > 0
    assert result.params_after < result.params_before
    assert max(errors) <= 1e-5, errors
    return {"outputs": len(ref), "max_rel_err": max(errors), "pruned": zeroed, "total": total}


# ---- a detector-style model: BN backbone + feature pyramid with three outputs ----
def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 8, 2)
        self.c3 = nn.Sequential(conv_bn(8, 16, 2), conv_bn(16, 16))
        self.c4 = nn.Sequential(conv_bn(16, 24, 2), conv_bn(24, 24))
        self.c5 = nn.Sequential(conv_bn(24, 32, 2), conv_bn(32, 32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3 = self.c3(self.stem(x))
        c4 = self.c4(c3)
        return c3, c4, self.c5(c4)


class FPN(nn.Module):
    """Lateral 1x1 conv + BN per level, top-down nearest upsampling and add, a 3x3 conv per output."""

    def __init__(self, channels: tuple[int, ...] = (16, 24, 32), width: int = 16) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, width, 1, bias=False), nn.BatchNorm2d(width)) for c in channels
        )
        self.out = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in channels)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        lat = [layer(f) for layer, f in zip(self.lateral, feats)]
        merged = [lat[-1]]
        for f in reversed(lat[:-1]):
            merged.insert(0, f + F.interpolate(merged[0], size=f.shape[-2:], mode="nearest"))
        return [conv(F.relu(m)) for conv, m in zip(self.out, merged)]


class Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.fpn = FPN()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        p3, p4, p5 = self.fpn(self.backbone(x))
        return {"p3": p3, "p4": p4, "p5": p5}


@dataclass
class Heads:
    boxes: torch.Tensor
    scores: torch.Tensor


class DetectorWithHeads(Detector):
    """Returns a dataclass (not a registered pytree) of two tensors built from every level."""

    def __init__(self) -> None:
        super().__init__()
        self.box = nn.Conv2d(16, 4, 1)
        self.cls = nn.Conv2d(16, 3, 1)

    def forward(self, x: torch.Tensor) -> Heads:  # type: ignore[override]
        levels = super().forward(x).values()
        boxes = torch.cat([self.box(p).flatten(2) for p in levels], 2)
        return Heads(boxes, torch.cat([self.cls(p).flatten(2) for p in levels], 2))


def test_detector_style_dict_of_three_maps() -> None:
    torch.manual_seed(0)
    checked = zero_and_cut(Detector(), torch.randn(2, 3, 64, 64))
    assert checked["outputs"] == 3


def test_detector_with_dataclass_outputs_keeps_its_heads() -> None:
    torch.manual_seed(0)
    checked = zero_and_cut(DetectorWithHeads(), torch.randn(2, 3, 64, 64))
    assert checked["outputs"] == 2


# ---- transformers CNNs ------------------------------------------------------------------------------------
transformers = pytest.importorskip("transformers")


def _hf() -> dict[str, Callable[[], nn.Module]]:
    t = transformers
    small = {"hidden_sizes": [8, 16], "depths": [1, 1], "num_labels": 3, "output_hidden_states": True}
    return {
        "resnet-bottleneck": lambda: t.ResNetForImageClassification(
            t.ResNetConfig(embedding_size=8, layer_type="bottleneck", **small)
        ),
        "resnet-basic": lambda: t.ResNetForImageClassification(
            t.ResNetConfig(embedding_size=8, layer_type="basic", **small)
        ),
        "regnet": lambda: t.RegNetForImageClassification(
            t.RegNetConfig(embedding_size=8, groups_width=4, **small)
        ),
        "mobilenet_v1": lambda: t.MobileNetV1ForImageClassification(
            t.MobileNetV1Config(depth_multiplier=0.25, num_labels=3, image_size=32)
        ),
        "mobilenet_v2": lambda: t.MobileNetV2ForImageClassification(
            t.MobileNetV2Config(depth_multiplier=0.25, num_labels=3, image_size=32, output_hidden_states=True)
        ),
        "efficientnet": lambda: t.EfficientNetForImageClassification(
            t.EfficientNetConfig(
                width_coefficient=0.1, depth_coefficient=0.1, hidden_dim=128, image_size=32, num_labels=3
            )
        ),
        "mobilevit": lambda: t.MobileViTForImageClassification(
            t.MobileViTConfig(
                image_size=32,
                hidden_sizes=[16, 24, 32],
                neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
                num_labels=3,
            )
        ),
        "hgnet_v2": lambda: t.HGNetV2ForImageClassification(
            t.HGNetV2Config(
                stem_channels=[3, 8, 8],
                stage_in_channels=[8, 16],
                stage_mid_channels=[8, 8],
                stage_out_channels=[16, 32],
                stage_num_blocks=[1, 1],
                stage_downsample=[False, True],
                stage_downsample_strides=[2, 2],
                stage_light_block=[False, True],
                stage_kernel_size=[3, 3],
                stage_numb_of_layers=[2, 2],
                hidden_sizes=[16, 32],
                depths=[1, 1],
                num_labels=3,
            )
        ),
        "swiftformer": lambda: t.SwiftFormerForImageClassification(
            t.SwiftFormerConfig(depths=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32], num_labels=3)
        ),
        "levit": lambda: t.LevitForImageClassification(
            t.LevitConfig(
                image_size=32,
                hidden_sizes=[16, 24, 32],
                num_attention_heads=[1, 2, 2],
                depths=[1, 1, 1],
                key_dim=[8, 8, 8],
                num_labels=3,
            )
        ),
        "textnet": lambda: t.TextNetForImageClassification(
            t.TextNetConfig(stem_out_channels=8, hidden_sizes=[8, 8, 16, 16, 32], num_labels=3)
        ),
        "mobilevitv2": lambda: t.MobileViTV2ForImageClassification(
            t.MobileViTV2Config(image_size=64, width_multiplier=0.25, num_labels=3)
        ),
        # backbones for detectors: a tuple of three feature maps
        "resnet-backbone": lambda: t.ResNetBackbone(
            t.ResNetConfig(
                embedding_size=8,
                hidden_sizes=[8, 16, 24],
                depths=[1, 1, 1],
                out_features=["stage1", "stage2", "stage3"],
            )
        ),
        "rt_detr_resnet-backbone": lambda: t.RTDetrResNetBackbone(
            t.RTDetrResNetConfig(
                embedding_size=8,
                hidden_sizes=[8, 16, 24],
                depths=[1, 1, 1],
                out_features=["stage1", "stage2", "stage3"],
            )
        ),
        "mobilenet_v2-deeplabv3": lambda: t.MobileNetV2ForSemanticSegmentation(
            t.MobileNetV2Config(depth_multiplier=0.25, image_size=32, num_labels=3)
        ),
    }


HF = _hf()
INPUT_SIZE = {"mobilevitv2": 64}


@pytest.mark.parametrize("family", sorted(HF))
def test_transformers_cnn_cut_of_zeroed_bn_channels_is_exact(family) -> None:
    torch.manual_seed(0)
    try:
        model = HF[family]()
    except AttributeError as exc:  # an older transformers without this family
        pytest.skip(f"transformers {transformers.__version__} lacks {family}: {exc}")
    size = INPUT_SIZE.get(family, 32)
    checked = zero_and_cut(model, torch.randn(2, 3, size, size))
    if family.endswith("-backbone"):
        assert checked["outputs"] == 3


@pytest.mark.parametrize("family", ["convnext", "convnextv2", "bit"])
def test_transformers_families_without_batchnorm_are_refused_with_a_reason(family) -> None:
    t = transformers
    small = {"hidden_sizes": [8, 16], "depths": [1, 1], "num_labels": 3}
    model = {
        "convnext": lambda: t.ConvNextForImageClassification(t.ConvNextConfig(num_stages=2, **small)),
        "convnextv2": lambda: t.ConvNextV2ForImageClassification(t.ConvNextV2Config(num_stages=2, **small)),
        "bit": lambda: t.BitForImageClassification(t.BitConfig(embedding_size=8, num_groups=2, **small)),
    }[family]().eval()
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(netslim.errors.PruningError, match="no conv/linear output") as info:
        add_channel_gates(model, x)
    assert (
        "normalized together by" in str(info.value)
        or "not understood" in str(info.value)
        or "unknown op" in str(info.value)
    )


def test_transformers_poolformer_is_cut_exactly_through_gates() -> None:
    """PoolFormer has GroupNorm only: its MLP hidden channels get gates; a 40% gate cut is exact."""
    from netslim.slimming.gates import ChannelGate, GatedLayer

    t = transformers
    torch.manual_seed(0)
    model = t.PoolFormerForImageClassification(
        t.PoolFormerConfig(
            num_encoder_blocks=2,
            patch_sizes=[7, 3],
            strides=[4, 2],
            padding=[2, 1],
            hidden_sizes=[8, 16],
            depths=[1, 1],
            num_labels=3,
        )
    ).eval()
    x = torch.randn(2, 3, 32, 32)
    report = add_channel_gates(model, x)
    assert len(report.gated) == 2 and all(n.endswith("mlp.conv1") or "conv1" in n for n in report.gated)
    assert any("normalized together by" in why for why in report.skipped.values())
    gen = torch.Generator().manual_seed(0)
    zeros = total = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ChannelGate):
                n = m.gate.numel()
                m.gate.copy_(0.5 + torch.rand(n, generator=gen))
                m.gate[torch.randperm(n, generator=gen)[: round(0.4 * n)]] = 0
                zeros, total = zeros + round(0.4 * n), total + n
        ref = model(x).logits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = netslim.slim(model, x, ratio=zeros / total).model.eval()
    assert not any(isinstance(m, ChannelGate | GatedLayer) for m in small.modules())
    with torch.no_grad():
        out = small(x).logits
    assert float((out - ref).abs().max() / ref.abs().max()) <= 1e-4
