"""Sensitivity analysis: rows per layer x sparsity, exact weight restore, derived settings, CSV/PNG."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from netslim.errors import PruningError
from netslim.weights.masks import get_mask
from netslim.weights.pruning import prune_by_amount
from netslim.weights.sensitivity import (
    SensitivityResult,
    layer_settings_from_sensitivity,
    plot_sensitivity,
    sensitivity_analysis,
    sparsity_sweep,
    tolerated_sparsity,
    write_sensitivity_csv,
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 10), nn.Linear(10, 4)
    )


def test_sweep_grid() -> None:
    """Default grid is 0..0.95 in steps of 0.05 (20 points)."""
    grid = sparsity_sweep()
    assert len(grid) == 20 and grid[0] == 0.0 and grid[-1] == 0.95 and grid[1] == 0.05
    with pytest.raises(PruningError):
        sparsity_sweep(step=0.0)


def test_sweep_rows_and_exact_restore(tmp_path) -> None:
    """One row per layer x sparsity; the evaluated model is really pruned; weights identical afterwards."""
    model = _model()
    prune_by_amount(model, 0.3, {"0": None})  # a masked layer is handled too
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 1, 6, 6)
    ref = model(x).detach()
    seen_sparsity: list[float] = []

    def evaluate(m: nn.Module) -> float:
        seen_sparsity.append(float((m[3].weight == 0).float().mean()))
        return float(-(m(x).detach() - ref).abs().mean())  # 0 when unchanged, negative otherwise

    grid = [0.0, 0.5, 0.9]
    result = sensitivity_analysis(model, evaluate, grid)
    assert [(r["layer"], r["sparsity"]) for r in result.rows] == [
        (l, s) for l in ("0", "3", "4") for s in grid
    ]
    assert result.baseline == 0.0
    assert seen_sparsity[4:7] == pytest.approx([0.3, 0.5, 0.9], abs=1 / 480)  # layer "3" at 0, .5, .9
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:  # bit-identical (the cached std is NaN for amount-pruned layers)
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0, equal_nan=True)
    assert torch.equal(get_mask(model[3]).mask, before["3.parametrizations.weight.0.mask"])

    csv_path = write_sensitivity_csv(result, tmp_path / "s.csv")
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 1 + 9 and rows[0]["layer"] == "baseline"
    png = plot_sensitivity(result, tmp_path / "s.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tolerated_sparsity_and_derived_settings() -> None:
    """The largest sparsity before the first drop beyond max_drop; converted to quality or amount."""
    result = SensitivityResult(baseline=0.90)
    for layer, accs in {"0": [0.90, 0.85, 0.80], "3": [0.90, 0.895, 0.70], "4": [0.90, 0.90, 0.90]}.items():
        result.rows += [{"layer": layer, "sparsity": s, "accuracy": a} for s, a in zip([0.0, 0.5, 0.9], accs)]
    assert tolerated_sparsity(result, 0.01) == {"0": 0.0, "3": 0.5, "4": 0.9}
    model = _model()
    settings = layer_settings_from_sensitivity(model, result, 0.01)
    assert settings["0"] == {"amount": 0.0} and set(settings["3"]) == {"quality"}
    assert layer_settings_from_sensitivity(model, result, 0.01, as_quality=False)["4"] == {"amount": 0.9}
