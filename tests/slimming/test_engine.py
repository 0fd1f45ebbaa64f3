"""Tracing, coupling groups, surgery, selection layers, plan replay and the public API."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netslim.errors import PruningError, TracingError
from netslim.slimming import (
    ChannelSelect,
    PruningPlan,
    apply,
    build_groups,
    masked_model,
    plan,
    plan_from_keep,
    slim,
)
from test_engine_models import REPLICAS, randomize_bn

X = torch.randn(2, 3, 16, 16)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def groups_by_name(model: nn.Module) -> dict:
    return {g.name: g for g in build_groups(model, X)}


def close(a: nn.Module, b: nn.Module, x: torch.Tensor = X) -> bool:
    with torch.no_grad():
        ya, yb = a.eval()(x), b.eval()(x)
    return float((ya - yb).abs().max()) <= 1e-5 * float(ya.abs().max())


def test_vgg_groups_flatten_and_output_pinned() -> None:
    g = groups_by_name(REPLICAS["vgg"]())
    assert not g["<input>"].prunable and not g["classifier.3"].prunable
    assert g["classifier.3"].reason == "model output"
    last = g["features.7"]  # 16 channels -> adaptive pool 2x2 -> flatten -> 64 features
    fc_in = next(m for m in last.members if m.fqn == "classifier.0" and m.role == "in")
    assert fc_in.positions.numel() == 64
    assert fc_in.channels.tolist() == torch.arange(16).repeat_interleave(4).tolist()
    assert last.scorable and set(last.layers()) == {"features.7", "features.8", "classifier.0"}


def test_residual_add_couples_branches() -> None:
    g = groups_by_name(REPLICAS["resnet"]())["stem.0"]
    norms = set(g.layers("norm"))
    assert {"stem.1", "layer1.0.bn2", "layer1.1.bn2"} <= norms
    assert g.scorable and g.size == 8


def test_preactivation_uses_selection_and_keeps_trunk() -> None:
    model = randomize_bn(REPLICAS["preresnet"]())
    g = groups_by_name(model)
    assert not g["layer1.0.conv3"].prunable and "channel selection" in g["layer1.0.conv3"].reason
    assert g["layer1.0.bn1"].layers("select") == ["layer1.0.bn1"]
    p = plan(model, X, 0.5)
    small = apply(model, p)
    sel = small.layer1[0].bn1.netslim_select
    assert isinstance(sel, ChannelSelect) and not list(sel.parameters())
    assert "layer1.0.bn1.netslim_select.index" in small.state_dict()
    assert small.layer1[0].conv3.out_channels == model.layer1[0].conv3.out_channels  # trunk untouched
    assert small.layer1[0].bn1.num_features == sel.index.numel() < 8


def test_densenet_concat_offsets() -> None:
    g = groups_by_name(REPLICAS["densenet"]())
    assert not g["block1.0.conv"].prunable
    # block1.1.bn reads the concat [conv1 (8) | block1.0.conv (4)]: one selection group per part,
    # the second part sits at offset 8 of block1.1.conv's input
    first, second = g["block1.1.bn"], g["block1.1.bn[8:12]"]
    assert first.layers("select") == second.layers("select") == ["block1.1.bn"]
    conv_in = next(m for m in second.members if m.fqn == "block1.1.conv")
    assert conv_in.positions.tolist() == [8, 9, 10, 11] and conv_in.channels.tolist() == [0, 1, 2, 3]


def test_depthwise_and_grouped() -> None:
    g = groups_by_name(REPLICAS["mobilenetv2"]())["blocks.0.conv.0"]
    assert g.layers("dw") == ["blocks.0.conv.3"]
    assert set(g.layers("norm")) == {"blocks.0.conv.1", "blocks.0.conv.4"}

    class Grouped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(8, 8, 3, groups=4, bias=False), nn.BatchNorm2d(8), nn.ReLU())
            self.fc = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.b(self.a(x)).mean((2, 3)))

    gs = groups_by_name(Grouped())
    assert not gs["a.0"].prunable and "grouped" in gs["a.0"].reason
    # the grouped conv's output stays; the BN after it reads its kept channels through a selection
    assert "b.0" not in gs and gs["b.1"].layers("select") == ["b.1"]


def test_squeeze_excitation_coupled() -> None:
    g = groups_by_name(REPLICAS["senet"]())["se.conv"]
    assert {"se.conv", "se.fc2"} <= set(g.layers("out")) and "se.fc1" in g.layers("in")


def test_unknown_op_warns_and_freezes() -> None:
    class Rolls(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3, bias=False)
            self.bn = nn.BatchNorm2d(6)
            self.conv2 = nn.Conv2d(6, 6, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(6)
            self.fc = nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.roll(F.relu(self.bn(self.conv(x))), 1, dims=1)
            return self.fc(F.relu(self.bn2(self.conv2(x))).mean((2, 3)))

    model = randomize_bn(Rolls())
    with pytest.warns(UserWarning, match="'roll' in module '<model>'"):
        g = groups_by_name(model)
    assert not g["conv"].prunable and "roll" in g["conv"].reason
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = plan(model, X, 0.5)
    assert p.layers["conv"]["out_keep"] is None and p.layers["conv2"]["out_keep"] is not None
    assert close(masked_model(model, p), apply(model, p, fold_beta=False))


def test_python_control_flow_and_dict_inputs() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 6, 6, 3, padding=1) for i in range(3))
            self.bns = nn.ModuleList(nn.BatchNorm2d(6) for _ in range(3))
            self.fc = nn.Linear(6, 2)

        def forward(self, image: torch.Tensor, depth: int = 2) -> torch.Tensor:
            for i in range(depth + (1 if image.shape[-1] > 8 else 0)):
                image = F.relu(self.bns[i](self.convs[i](image)))
            return self.fc(image.flatten(2).mean(-1))

    model = randomize_bn(Branchy())
    p = plan(model, {"image": X, "depth": 2}, 0.5)
    assert p.layers["convs.2"]["out_keep"] is not None
    with torch.no_grad():
        ref, out = masked_model(model, p)(X), apply(model, p, fold_beta=False)(X)
    assert torch.allclose(ref, out, atol=1e-5)


def test_tracing_error() -> None:
    with pytest.raises(TracingError, match="could not be run"):
        build_groups(REPLICAS["vgg"](), torch.randn(2, 5, 16, 16))


def test_apply_copies_records_and_replays(tmp_path) -> None:
    model = randomize_bn(REPLICAS["preresnet"]())
    model.netslim_recipe = {"name": "x", "kwargs": {}}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = plan(model, X, 0.5)
    small = apply(model, p)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert small.netslim_recipe == model.netslim_recipe and len(small.netslim_plans) == 1
    text = json.dumps(small.netslim_plans)
    replayed = apply(REPLICAS["preresnet"](), PruningPlan.from_dict(json.loads(text)[0]), fold_beta=False)
    assert {k: v.shape for k, v in replayed.state_dict().items()} == {
        k: v.shape for k, v in small.state_dict().items()
    }
    replayed.load_state_dict(small.state_dict())
    assert close(small, replayed)
    inplace = apply(model, p, inplace=True)
    assert inplace is model and model.layer1[0].bn1.num_features < 8


def test_second_pass_composes_selection() -> None:
    model = randomize_bn(REPLICAS["preresnet"](), seed=3)
    first = apply(model, plan(model, X, 0.4), fold_beta=False)
    randomize_bn(first, seed=4)
    p2 = plan(first, X, 0.4)
    second = apply(first, p2, fold_beta=False)
    assert close(masked_model(first, p2), second)
    assert len(second.netslim_plans) == 2
    replayed = REPLICAS["preresnet"]()
    for d in second.netslim_plans:
        replayed = apply(replayed, PruningPlan.from_dict(d), fold_beta=False)
    replayed.load_state_dict(second.state_dict())
    assert close(second, replayed)


def test_plan_str_json_and_summary() -> None:
    model = randomize_bn(REPLICAS["vgg"]())
    result = slim(model, X, 0.5)
    text = str(result.plan)
    assert "features.1" in text and "->" in text and "largest safe ratio" in text
    assert PruningPlan.from_json(result.plan.to_json()).to_dict() == result.plan.to_dict()
    assert "params" in result.summary() and "FLOPs" in result.summary()
    assert result.params_after < result.params_before and result.flops_after < result.flops_before
    json.dumps(result.to_dict())


def test_plan_from_keep() -> None:
    model = randomize_bn(REPLICAS["resnet"]())
    groups = build_groups(model, X)
    trunk = next(g for g in groups if g.name == "stem.0")
    p = plan_from_keep(model, X, {trunk.index: [0, 2, 5], "layer2.0.conv1": [1]})
    small = apply(model, p, fold_beta=False)
    assert small.stem[0].out_channels == 3 and small.layer1[1].conv2.out_channels == 3
    assert small.layer2[0].conv1.out_channels == 1
    fixed = next(g for g in groups if not g.prunable and g.name == "fc")
    with pytest.raises(PruningError, match="cannot be pruned"):
        plan_from_keep(model, X, {fixed.index: [0]})
    with pytest.raises(PruningError, match="keep must list"):
        plan_from_keep(model, X, {trunk.index: []})


def test_onnx_export_of_selected_model(tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    model = randomize_bn(REPLICAS["densenet"]())
    small = apply(model, plan(model, X, 0.5)).eval()
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(small, (X,), str(path), dynamo=False)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Gather" in ops


def test_plan_for_another_model_is_refused() -> None:
    p = plan(randomize_bn(REPLICAS["vgg"]()), X, 0.5)
    with pytest.raises(PruningError, match="does not fit"):
        apply(REPLICAS["resnet"](), p)
    model = randomize_bn(REPLICAS["vgg"]())
    empty = plan(model, X, 0.0)
    assert empty.is_empty() and close(model, apply(model, empty))


def test_top_level_names() -> None:
    import netslim

    model = randomize_bn(REPLICAS["mobilenetv2"]())
    result = netslim.slim(model, X, 0.3)
    assert isinstance(result.plan, netslim.PruningPlan) and close(
        masked_model(model, result.plan, zero_beta=False), result.model
    )
