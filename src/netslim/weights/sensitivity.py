"""Per-layer pruning sensitivity (Han et al. 2015 §5, Fig. 6) and per-layer settings derived from it.

Each prunable layer is pruned on its own to a sweep of sparsities (smallest |w| first, no retraining), the
model is evaluated, and the layer's weights are restored before the next step, so the model leaves the sweep
bit-identical. The curves show which layers tolerate pruning; :func:`tolerated_sparsity` turns them into
per-layer sparsities (or Han quality parameters) for a tolerated accuracy drop.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netslim.errors import PruningError
from netslim.weights.masks import get_mask, prunable_layers, raw_parameter
from netslim.weights.pruning import magnitude_mask, quality_for_sparsity


def sparsity_sweep(step: float = 0.05, max_sparsity: float = 0.95) -> list[float]:
    """Sparsities ``0, step, 2*step, ... <= max_sparsity`` (rounded to 6 decimals)."""
    if not 0.0 < step <= 1.0 or not 0.0 <= max_sparsity < 1.0:
        raise PruningError(
            f"need 0 < step <= 1 and 0 <= max_sparsity < 1, got step={step}, max={max_sparsity}"
        )
    count = int(max_sparsity / step + 1e-9)
    return [round(i * step, 6) for i in range(count + 1)]


@dataclass
class SensitivityResult:
    """Accuracy of the model with one layer pruned at a time: ``rows`` of ``{layer, sparsity, accuracy}``."""

    baseline: float
    rows: list[dict[str, Any]] = field(default_factory=list)

    def curves(self) -> dict[str, list[tuple[float, float]]]:
        """``{layer: [(sparsity, accuracy), ...]}`` in sweep order."""
        out: dict[str, list[tuple[float, float]]] = {}
        for r in self.rows:
            out.setdefault(r["layer"], []).append((r["sparsity"], r["accuracy"]))
        return out


@torch.no_grad()
def _prune_in_place(module: nn.Module, sparsity: float) -> None:
    raw = raw_parameter(module, "weight")
    wm = get_mask(module, "weight")
    alive = wm.mask if wm is not None else torch.ones_like(raw, dtype=torch.bool)
    raw.masked_fill_(~magnitude_mask(module.weight.detach(), alive, sparsity), 0.0)


def sensitivity_analysis(
    model: nn.Module,
    evaluate_fn: Callable[[nn.Module], float],
    sparsities: Sequence[float] | None = None,
    layers: Sequence[str] | None = None,
    progress: Callable[[str, float, float], None] | None = None,
) -> SensitivityResult:
    """Sweep ``sparsities`` (default 0..0.95 step 0.05) for each layer alone; returns the accuracy table.

    ``evaluate_fn(model) -> float`` is the validation metric (higher is better). ``progress(layer,
    sparsity, accuracy)`` is called after each evaluation. Masked layers are pruned further from their
    current mask (already pruned entries count towards the sparsity). Weights are restored exactly.
    """
    all_layers = prunable_layers(model)
    names = list(all_layers) if layers is None else list(layers)
    unknown = [n for n in names if n not in all_layers]
    if unknown:
        raise PruningError(f"unknown layers {unknown}; prunable layers are {list(all_layers)}")
    grid = list(sparsity_sweep() if sparsities is None else sparsities)
    result = SensitivityResult(baseline=float(evaluate_fn(model)))
    for name in names:
        module = all_layers[name]
        raw = raw_parameter(module, "weight")
        saved = raw.detach().clone()
        try:
            for s in grid:
                _prune_in_place(module, s)
                acc = float(evaluate_fn(model))
                result.rows.append({"layer": name, "sparsity": s, "accuracy": acc})
                if progress is not None:
                    progress(name, s, acc)
                with torch.no_grad():
                    raw.copy_(saved)
        finally:
            with torch.no_grad():
                raw.copy_(saved)
    return result


def tolerated_sparsity(result: SensitivityResult, max_drop: float) -> dict[str, float]:
    """Per layer, the largest swept sparsity up to which accuracy stays >= ``baseline - max_drop``.

    The sweep stops at the first sparsity that drops too far (later recoveries are noise, not headroom).
    """
    if max_drop < 0:
        raise PruningError(f"max_drop must be >= 0, got {max_drop}")
    floor = result.baseline - max_drop
    out: dict[str, float] = {}
    for layer, curve in result.curves().items():
        best = 0.0
        for s, acc in sorted(curve):
            if acc < floor:
                break
            best = s
        out[layer] = best
    return out


def layer_settings_from_sensitivity(
    model: nn.Module, result: SensitivityResult, max_drop: float, *, as_quality: bool = True
) -> dict[str, dict[str, float]]:
    """Per-layer overrides for :mod:`netslim.weights.pruning` from a tolerated accuracy drop.

    With ``as_quality`` each layer gets ``{"quality": q}``, the Han quality parameter that prunes its
    tolerated sparsity on the current weights; otherwise ``{"amount": sparsity}``. Layers that tolerate no
    pruning get ``{"amount": 0.0}``.
    """
    layers = prunable_layers(model)
    out: dict[str, dict[str, float]] = {}
    for name, s in tolerated_sparsity(result, max_drop).items():
        if s <= 0.0 or not as_quality:
            out[name] = {"amount": s}
        else:
            out[name] = {"quality": quality_for_sparsity(layers[name].weight, s)}
    return out


def write_sensitivity_csv(result: SensitivityResult, path: str | os.PathLike[str]) -> Path:
    """Write ``layer,sparsity,accuracy`` rows (plus a ``baseline`` row at sparsity 0); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["layer", "sparsity", "accuracy"])
        writer.writeheader()
        writer.writerow({"layer": "baseline", "sparsity": 0.0, "accuracy": result.baseline})
        writer.writerows(result.rows)
    return path


def plot_sensitivity(result: SensitivityResult, path: str | os.PathLike[str]) -> Path:
    """Draw one accuracy-vs-sparsity line per layer (like Han et al. Fig. 6) to a PNG; returns the path.

    Uses :func:`netslim.plots.sensitivity_curves` (needs matplotlib: ``pip install 'netslim[plots]'``).
    """
    from netslim.plots import sensitivity_curves

    title = f"Pruning sensitivity, one layer at a time (unpruned: {result.baseline:.4g})"
    return sensitivity_curves(result.curves(), path, title=title)
