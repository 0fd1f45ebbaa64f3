"""Cut readiness: plan() records how clean the cut is and warns once when it reaches into the bulk."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import netslim
from netslim.slimming.plan import PruningPlan
from netslim.slimming.readiness import CutReadiness, CutReadinessWarning


def net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 3),
    ).eval()


X = torch.zeros(1, 1, 8, 8)


def sparsified(dead_per_layer: int = 11, seed: int = 0) -> nn.Sequential:
    """A net whose ``dead_per_layer`` weakest channels per BN have |gamma| ~ 1e-5 of the others."""
    model = net(seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (model[1], model[4]):
            live = 0.5 + torch.rand(16, generator=g)
            live[:dead_per_layer] = 1e-5 * torch.rand(dead_per_layer, generator=g)
            bn.weight.copy_(live * torch.sign(torch.randn(16, generator=g)))
    return model


def plan_quietly(model: nn.Module, ratio: float) -> tuple[PruningPlan, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = netslim.plan(model, X, ratio)
    return p, [w for w in caught if issubclass(w.category, CutReadinessWarning)]


def test_untrained_net_warns_once_with_advice() -> None:
    p, caught = plan_quietly(net(), 0.5)  # every gamma is 1.0: the cut is pure bulk
    assert len(caught) == 1
    text = str(caught[0].message)
    assert "\n" not in text and "--l1 auto" in text and "lower ratio" in text and "longer" in text
    assert caught[0].filename == __file__, "the warning points at the caller of plan()"
    r = p.readiness
    assert r is not None and r.in_bulk
    assert r.near_zero_share == 0.0 and r.threshold_ratio == pytest.approx(1.0)
    # equal gammas go in position order: the whole first layer, less the one channel it must keep
    assert r.removed_share == pytest.approx(15 / 32) and r.removed_mass == pytest.approx(15 / 32)


def test_sparsified_net_does_not_warn_and_reports_a_clean_cut() -> None:
    model = sparsified()  # 22 of 32 channels (69%) near zero
    for ratio in (0.3, 0.6, 22 / 32 - 1e-9):
        p, caught = plan_quietly(model, ratio)
        assert caught == [], ratio
        r = p.readiness
        assert r is not None and not r.in_bulk
        assert r.near_zero_share == pytest.approx(22 / 32)
        assert r.threshold_ratio < 1e-3 and r.removed_mass < 1e-4
    # one channel more than the sparsified ones: the cut now takes a live channel
    p, caught = plan_quietly(model, 23 / 32)
    assert len(caught) == 1 and p.readiness is not None and p.readiness.in_bulk


def test_readiness_survives_json_and_old_plans_still_load() -> None:
    p, _ = plan_quietly(sparsified(), 0.5)
    again = PruningPlan.from_json(p.to_json())
    assert again.readiness == p.readiness
    old = p.to_dict()
    del old["readiness"]  # a plan written before readiness existed
    assert PruningPlan.from_dict(old).readiness is None
    assert isinstance(CutReadiness.from_dict({**p.readiness.to_dict(), "future_key": 1}), CutReadiness)


def test_summary_shows_the_readiness_line_and_slim_warns_once() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = netslim.slim(net(), X, ratio=0.5)
    assert sum(issubclass(w.category, CutReadinessWarning) for w in caught) == 1
    assert "cut readiness:" in result.summary() and "reaches into the bulk" in result.summary()
    assert "cut readiness:" in netslim.slim(sparsified(), X, ratio=0.5).summary()
    assert result.to_dict()["plan"]["readiness"]["in_bulk"] is True


def test_warning_class_is_public() -> None:
    assert netslim.CutReadinessWarning is CutReadinessWarning
    assert issubclass(CutReadinessWarning, UserWarning)
    assert "CutReadinessWarning" in netslim.__all__
