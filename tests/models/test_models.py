"""The model zoo: registry behaviour, every model's forward/backward on MNIST- and CIFAR-shaped inputs,
published parameter counts, options (cfg, width, bn_init, depth) and the ``netslim models`` command."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from netslim.cli import main
from netslim.errors import NetslimError, UnknownNameError
from netslim.models import MODELS, Registry, create, create_from_recipe, list_models, register_model

ALL_MODELS = list_models()
INPUTS = [pytest.param(1, 28, id="1x28x28"), pytest.param(3, 32, id="3x32x32")]
NUM_CLASSES = 7  # not 10, so a hard-coded classifier width would show


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_on_meta(name: str, **kwargs: object) -> int:
    """Parameter count without allocating or initialising weights."""
    with torch.device("meta"):
        return n_params(create(name, **kwargs))


@pytest.fixture(scope="module")
def built() -> dict[tuple[str, int, int], nn.Module]:
    """Cache of zoo models, so each big network is built once per module."""
    return {}


def get_model(cache: dict, name: str, in_channels: int, input_size: int) -> nn.Module:
    key = (name, in_channels, input_size)
    if key not in cache:
        torch.manual_seed(0)
        cache[key] = create(name, num_classes=NUM_CLASSES, in_channels=in_channels, input_size=input_size)
    return cache[key]


def test_zoo_has_every_family() -> None:
    expected = {
        "vgg11",
        "vgg13",
        "vgg16",
        "vgg19",
        "preresnet",
        "preresnet164",
        "resnet",
        "resnet20",
        "resnet56",
        "resnet110",
        "densenet",
        "densenet40",
        "lenet300_100",
        "lenet5",
        "alexnet_small",
        "vgg16_fc",
        "mobilenetv2",
    }
    assert expected <= set(ALL_MODELS)
    assert list_models("vgg1?") == ["vgg11", "vgg13", "vgg16", "vgg19"]


@pytest.mark.parametrize("in_channels,input_size", INPUTS)
@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_backward(built: dict, name: str, in_channels: int, input_size: int) -> None:
    model = get_model(built, name, in_channels, input_size).train()
    x = torch.randn(2, in_channels, input_size, input_size)
    out = model(x)
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()
    nn.functional.cross_entropy(out, torch.tensor([0, NUM_CLASSES - 1])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reached {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fx_traceable_and_standard_layers(built: dict, name: str) -> None:
    """The channel-dependency tracer needs plain PyTorch graphs: symbolic tracing must reproduce the model."""
    model = get_model(built, name, 3, 32).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))
    called = {n.target for n in traced.graph.nodes if n.op == "call_function"}
    assert all(getattr(f, "__module__", "").startswith(("torch", "_operator")) for f in called), called


@pytest.mark.parametrize("name", ALL_MODELS)
def test_recipe_round_trips_through_json(built: dict, name: str) -> None:
    model = get_model(built, name, 1, 28)
    recipe = json.loads(json.dumps(model.netslim_recipe))
    expected_kwargs = {"num_classes": NUM_CLASSES, "in_channels": 1, "input_size": 28}
    assert recipe == {"name": name, "kwargs": expected_kwargs}
    with torch.device("meta"):
        assert n_params(create(recipe["name"], **recipe["kwargs"])) == n_params(model)
        assert n_params(create_from_recipe(recipe)) == n_params(model)


def test_recipe_keeps_options_as_json() -> None:
    model = create("vgg11", num_classes=3, cfg=(8, "M", 16), width=2.0, bn_init=0.5)
    assert model.netslim_recipe == {
        "name": "vgg11",
        "kwargs": {"num_classes": 3, "in_channels": 3, "cfg": [8, "M", 16], "width": 2.0, "bn_init": 0.5},
    }
    rebuilt = create_from_recipe(json.loads(json.dumps(model.netslim_recipe)))
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]


@pytest.mark.parametrize(
    "name,kwargs,published",
    [
        ("vgg19", {}, 20.04e6),  # Network Slimming Table 1, CIFAR-10
        ("preresnet164", {}, 1.70e6),  # Network Slimming Table 1
        ("densenet40", {}, 1.02e6),  # Network Slimming Table 1
        ("resnet20", {}, 0.27e6),  # He et al. 2016, Table 6
        ("resnet56", {}, 0.85e6),  # He et al. 2016, Table 6
        ("lenet300_100", {"in_channels": 1, "input_size": 28}, 267e3),  # Han et al. 2015, Table 1
        ("lenet5", {"in_channels": 1, "input_size": 28}, 431e3),  # Han et al. 2015, Table 1
    ],
)
def test_published_parameter_counts(name: str, kwargs: dict, published: float) -> None:
    assert count_on_meta(name, num_classes=10, **kwargs) == pytest.approx(published, rel=0.01)


def test_exact_counts_of_han_lenets() -> None:
    # 784*300+300 + 300*100+100 + 100*10+10; 20*25+20 + 50*20*25+50 + 800*500+500 + 500*10+10
    assert count_on_meta("lenet300_100", in_channels=1, input_size=28) == 266_610
    assert count_on_meta("lenet5", in_channels=1, input_size=28) == 431_080


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        create("vgg20")
    message = str(info.value)
    assert "vgg20" in message
    assert all(name in message for name in ALL_MODELS)
    assert isinstance(info.value, KeyError)


def test_duplicate_registration_raises() -> None:
    registry = Registry("widget")

    @registry.register("tiny")
    def tiny(*, num_classes: int = 10) -> nn.Module:
        """A tiny test model."""
        return nn.Linear(4, num_classes)

    assert registry.names() == ["tiny"] and "tiny" in registry
    assert registry.get("tiny").summary == "A tiny test model."
    assert registry.get("tiny").accepted_kwargs() == ["num_classes"]
    with pytest.raises(NetslimError, match="already registered"):
        registry.register("tiny")(tiny)
    with pytest.raises(NetslimError, match="already registered"):
        register_model("vgg19")(tiny)
    assert MODELS.get("vgg19").builder is not tiny


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("preresnet", {"depth": 50}, "9\\*n\\+2"),
        ("resnet", {"depth": 21}, "6\\*n\\+2"),
        ("resnet", {"depth": 2}, "6\\*n\\+2"),
        ("densenet", {"depth": 41}, "3\\*n\\+4"),
        ("densenet", {"growth": 0}, "growth"),
        ("densenet", {"compression": 0}, "compression"),
        ("vgg19", {"width": 0}, "width"),
        ("resnet20", {"width": -1.0}, "width"),
        ("mobilenetv2", {"width": 0}, "width"),
        ("vgg11", {"cfg": [64, "X"]}, "cfg entries"),
        ("vgg11", {"cfg": []}, "cfg"),
        ("vgg11", {"cfg": ["M"]}, "at least one convolution"),
        ("vgg19", {"input_size": 8}, "input_size >= 16"),
        ("lenet5", {"input_size": 12}, "input_size >= 16"),
        ("lenet300_100", {"hidden": []}, "hidden"),
        ("alexnet_small", {"dropout": 1.5}, "dropout"),
        ("vgg19", {"num_classes": 0}, "num_classes"),
        ("vgg19", {"bn_init": float("nan")}, "bn_init"),
        ("vgg19", {"bogus": 1}, "does not take bogus; it accepts: num_classes, in_channels, input_size"),
        ("vgg19", {"cfg": {64}}, "JSON-serializable"),
    ],
)
def test_invalid_options_raise_clear_errors(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(NetslimError, match=match):
        create(name, **kwargs)


def conv_widths(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_vgg_cfg_and_width_set_channels() -> None:
    model = create("vgg11", cfg=[8, "M", 16, 16], num_classes=5)
    assert conv_widths(model) == [8, 16, 16]
    assert model.classifier.in_features == 16 and model.classifier.out_features == 5
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)

    full = conv_widths(create("vgg19"))
    assert conv_widths(create("vgg19", width=0.5)) == [c // 2 for c in full]
    assert conv_widths(create("vgg11", width=0.001)) == [1] * 8  # never below one channel
    assert sum(isinstance(m, nn.MaxPool2d) for m in create("vgg19").modules()) == 4


def test_width_scales_other_families() -> None:
    assert conv_widths(create("resnet20", width=0.5))[0] == 8
    assert create("resnet20", width=0.5).fc.in_features == 32
    assert create("preresnet", depth=11, width=2.0).fc.in_features == 512
    assert count_on_meta("mobilenetv2", width=0.5) < count_on_meta("mobilenetv2")
    assert count_on_meta("alexnet_small", width=0.5) < count_on_meta("alexnet_small")


def test_bn_init_sets_every_gamma() -> None:
    models = [
        create("vgg11", bn_init=0.5),
        create("preresnet", depth=11, bn_init=0.5),
        create("resnet20", bn_init=0.5),
        create("densenet", depth=10, bn_init=0.5),
        create("mobilenetv2", width=0.25, bn_init=0.5),
        create("alexnet_small", width=0.25, hidden=16, batch_norm=True, bn_init=0.5),
        create("vgg16_fc", width=0.25, bn_init=0.5),
    ]
    for model in models:
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns, type(model).__name__
        for bn in bns:
            assert torch.all(bn.weight == 0.5) and torch.all(bn.bias == 0)
    default = create("vgg11")
    assert all(torch.all(m.weight == 1.0) for m in default.modules() if isinstance(m, nn.BatchNorm2d))


def test_vgg_uses_paper_initialisation() -> None:
    torch.manual_seed(0)
    model = create("vgg11")
    conv = model.features[0]
    assert conv.bias is None
    expected = math.sqrt(2.0 / (3 * 3 * conv.out_channels))
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.1)
    assert model.classifier.weight.std().item() == pytest.approx(0.01, rel=0.2)
    assert torch.all(model.classifier.bias == 0)


def test_preresnet164_structure() -> None:
    model = create("preresnet164")
    blocks = [m for m in model.modules() if type(m).__name__ == "PreActBottleneck"]
    assert len(blocks) == 54
    projections = [b.downsample for b in blocks if b.downsample is not None]
    assert len(projections) == 3 and all(isinstance(p, nn.Conv2d) for p in projections)
    assert blocks[0].conv3.out_channels == 4 * blocks[0].conv1.out_channels
    assert model.fc.in_features == 256
    assert not any("select" in name for name, _ in model.named_modules())


def test_resnet_projection_shortcuts_couple_channels() -> None:
    model = create("resnet56")
    shortcuts = [m.shortcut for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert len(shortcuts) == 27
    projections = [s for s in shortcuts if isinstance(s, nn.Sequential)]
    assert len(projections) == 2
    assert all(isinstance(p[0], nn.Conv2d) and isinstance(p[1], nn.BatchNorm2d) for p in projections)


def test_densenet40_structure() -> None:
    model = create("densenet40")
    layers = [m for m in model.modules() if type(m).__name__ == "DenseLayer"]
    assert len(layers) == 36 and all(m.conv1.out_channels == 12 for m in layers)
    assert model.trans1.conv1.in_channels == model.trans1.conv1.out_channels == 16 + 12 * 12
    assert model.fc.in_features == 16 + 3 * 12 * 12
    assert create("densenet40", stem_channels=24).fc.in_features == 24 + 3 * 12 * 12
    assert create("densenet", depth=10, growth=4, compression=0.5).conv1.out_channels == 8


def test_fc_heads_keep_dropout_modules() -> None:
    alex = create("alexnet_small", dropout=0.3)
    kinds = [type(m) for m in alex.classifier]
    assert kinds == [nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Linear]
    assert all(m.p == 0.3 for m in alex.classifier if isinstance(m, nn.Dropout))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in alex.modules())

    vgg = create("vgg16_fc", dropout=0.25)
    kinds = [type(m) for m in vgg.classifier]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert vgg.classifier[0].in_features == 512 and vgg.classifier[-1].out_features == 10
    assert [m.p for m in vgg.classifier if isinstance(m, nn.Dropout)] == [0.25, 0.25]
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.features) == 13


def test_lenets_follow_input_shape() -> None:
    assert create("lenet300_100", in_channels=1, input_size=28).classifier[0].in_features == 784
    assert create("lenet300_100", input_size=32).classifier[0].in_features == 3 * 32 * 32
    assert create("lenet5", in_channels=1, input_size=28).classifier[0].in_features == 50 * 4 * 4
    assert create("lenet5", input_size=32).classifier[0].in_features == 50 * 5 * 5
    mlp = create("lenet300_100", in_channels=1, hidden=[500, 300])  # the slimming paper's MNIST MLP
    assert [m.out_features for m in mlp.classifier if isinstance(m, nn.Linear)] == [500, 300, 10]


def test_mobilenetv2_blocks() -> None:
    model = create("mobilenetv2")
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17 and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    residual = [m for m in model.modules() if getattr(m, "use_residual", False)]
    assert len(residual) == 10
    assert model.classifier[-1].in_features == 1280
    assert any(isinstance(m, nn.ReLU6) for m in model.modules())


def test_cli_lists_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ALL_MODELS)
    assert f"{count_on_meta('vgg19'):,}" in out


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "lenet*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["lenet300_100", "lenet5"]
    assert rows[1]["params"] == {
        "3x32x32": count_on_meta("lenet5", in_channels=3, input_size=32),
        "1x28x28": 431_080,
    }


def test_cli_pattern_without_match(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "nothing*"]) == 2
    assert "no model matches" in capsys.readouterr().err
