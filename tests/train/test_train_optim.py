"""Schedules (golden lists), weight-decay groups, optimizer rebuilding and config validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import netslim
from netslim.errors import NetslimError
from netslim.train import (
    TrainConfig,
    build_optimizer,
    build_scheduler,
    lr_factor,
    milestone_epochs,
    rebuild_optimizer,
)


def _factors(schedule: str, epochs: int, milestones=(0.5, 0.75)) -> list[float]:
    return [lr_factor(schedule, e, epochs, milestones) for e in range(epochs)]


def test_step_schedule_golden_lists():
    """/10 at int(0.5*E) and int(0.75*E): the 75% drop happens even when 0.75*E is fractional."""
    assert milestone_epochs(160, (0.5, 0.75)) == [80, 120]
    assert milestone_epochs(10, (0.5, 0.75)) == [5, 7]
    f = _factors("step", 10)
    assert f == pytest.approx([1, 1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01, 0.01])
    f = _factors("step", 6)  # 4.5 -> 4
    assert f == pytest.approx([1, 1, 1, 0.1, 0.01, 0.01])
    # two fractions on the same epoch both apply; a milestone never falls on epoch 0
    assert _factors("step", 2) == pytest.approx([1, 0.01])
    assert _factors("step", 1) == pytest.approx([1])


def test_cosine_and_constant_golden_lists():
    """Cosine goes 1 -> 0 over the run; constant stays 1."""
    c = math.cos(math.pi / 4)
    assert _factors("cosine", 4) == pytest.approx([1.0, 0.5 * (1 + c), 0.5, 0.5 * (1 - c)])
    assert _factors("constant", 3) == [1.0, 1.0, 1.0]


def test_scheduler_applies_factors_per_epoch():
    """The LambdaLR built for the trainer follows lr_factor when stepped once per epoch."""
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = build_scheduler(opt, "step", 4, (0.5, 0.75))
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_unknown_schedule_is_netslim_error():
    with pytest.raises(NetslimError, match="cosine"):
        lr_factor("linear", 0, 10)


class _Net(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def test_weight_decay_excludes_bn_and_bias():
    """decay_bn_and_bias=False puts BN weight/bias and Linear bias in a zero-decay group."""
    model = _Net()
    opt = build_optimizer(model, TrainConfig(weight_decay=5e-4, decay_bn_and_bias=False))
    groups = {g["netslim_group"]: g for g in opt.param_groups}
    ids = {k: {id(p) for p in g["params"]} for k, g in groups.items()}
    assert ids["decay"] == {id(model.conv.weight), id(model.fc.weight)}
    assert ids["no_decay"] == {id(model.bn.weight), id(model.bn.bias), id(model.fc.bias)}
    assert groups["decay"]["weight_decay"] == 5e-4 and groups["no_decay"]["weight_decay"] == 0.0
    one = build_optimizer(model, TrainConfig(weight_decay=5e-4))
    assert len(one.param_groups) == 1 and len(one.param_groups[0]["params"]) == 5


@pytest.mark.parametrize(
    "name, cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)]
)
def test_build_optimizer_kinds(name, cls):
    opt = build_optimizer(_Net(), TrainConfig(optimizer=name, lr=0.01, nesterov=False))
    assert type(opt) is cls and opt.param_groups[0]["lr"] == 0.01
    if name == "sgd":
        nest = build_optimizer(_Net(), TrainConfig(nesterov=True, momentum=0.8))
        assert nest.param_groups[0]["nesterov"] and nest.param_groups[0]["momentum"] == 0.8


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_rebuild_optimizer_after_replacing_a_layer(name):
    """The rebuilt optimizer covers the new Parameters and keeps every group's hyper-parameters."""
    model = _Net(8)
    cfg = TrainConfig(optimizer=name, lr=0.05, weight_decay=3e-4, decay_bn_and_bias=False, momentum=0.7)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, "step", 4)
    opt.step()
    sched.step()
    sched.step()  # lr is now 0.005 and groups carry initial_lr
    model.conv, model.bn, model.fc = nn.Conv2d(1, 5, 3, bias=False), nn.BatchNorm2d(5), nn.Linear(5, 3)
    new = netslim.rebuild_optimizer(opt, model)
    assert type(new) is type(opt)

    def settings(group):
        return {k: v for k, v in group.items() if k != "params"}

    assert [settings(g) for g in new.param_groups] == [settings(g) for g in opt.param_groups]
    new_ids = {id(p) for g in new.param_groups for p in g["params"]}
    assert new_ids == {id(p) for p in model.parameters()}
    decay = next(g for g in new.param_groups if g["netslim_group"] == "decay")
    assert {id(p) for p in decay["params"]} == {id(model.conv.weight), id(model.fc.weight)}
    assert new.param_groups[0]["lr"] == pytest.approx(0.005)
    assert new.state_dict()["state"] == {}


def test_rebuild_rejects_hand_made_groups():
    model = _Net()
    opt = torch.optim.SGD([{"params": [model.conv.weight]}, {"params": [model.fc.weight], "lr": 1.0}], lr=0.1)
    with pytest.raises(NetslimError, match="build_optimizer"):
        rebuild_optimizer(opt, model)
    single = rebuild_optimizer(torch.optim.SGD([model.conv.weight], lr=0.3, momentum=0.5), model)
    assert len(single.param_groups[0]["params"]) == 5 and single.param_groups[0]["momentum"] == 0.5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epochs": 0},
        {"lr": 0.0},
        {"optimizer": "rmsprop"},
        {"schedule": "linear"},
        {"milestones": (0.5, 1.5)},
        {"momentum": -0.1},
        {"weight_decay": -1.0},
        {"nesterov": True, "optimizer": "adam"},
        {"max_batches": 0},
        {"grad_clip": 0.0},
        {"checkpoint_every": -1},
    ],
)
def test_bad_config_values_raise_netslim_error(kwargs):
    with pytest.raises(NetslimError):
        TrainConfig(**kwargs)
