"""Which connections to cut: Han's threshold rule, per-layer target sparsity and one global magnitude cut.

Vocabulary follows ``torch.nn.utils.prune`` where it fits, with one deliberate difference: ``amount`` is the
*target sparsity of the whole tensor* after the call (0.9 = 90% of the entries are zero), not a fraction of
the entries still alive, so repeated calls with a growing schedule do not compound. An ``int`` amount is the
total number of pruned entries. Masks only ever shrink: an entry pruned once stays pruned.

Per-layer settings are given as ``overrides``: a mapping from a layer name or ``fnmatch`` glob pattern
(``"features.0"``, ``"classifier.*"``) to a :class:`LayerSpec`, a dict of its fields, or ``None`` to leave
the layer unpruned. An exact name wins over patterns; among patterns the first match in mapping order wins.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from netslim.errors import PruningError
from netslim.weights.masks import attach_mask, get_mask, prunable_layers

StdMode = Literal["fixed", "recompute"]


@dataclass(frozen=True)
class LayerSpec:
    """How to prune one layer: exactly one of ``quality`` (Han: |w| < quality * std) or ``amount``.

    ``bias`` also prunes the bias with the same rule; ``skip`` leaves the layer untouched.
    """

    quality: float | None = None
    amount: float | int | None = None
    bias: bool = False
    skip: bool = False

    def __post_init__(self) -> None:
        if self.skip:
            return
        if (self.quality is None) == (self.amount is None):
            raise PruningError(f"give exactly one of quality or amount per layer, got {self}")
        if self.quality is not None and self.quality < 0:
            raise PruningError(f"quality must be >= 0, got {self.quality}")
        if isinstance(self.amount, float) and not 0.0 <= self.amount <= 1.0:
            raise PruningError(f"a float amount is a sparsity in [0, 1], got {self.amount}")
        if isinstance(self.amount, int) and self.amount < 0:
            raise PruningError(f"an int amount is a count of pruned entries (>= 0), got {self.amount}")


SpecLike = LayerSpec | Mapping[str, Any] | None


def _as_spec(value: SpecLike, default: LayerSpec) -> LayerSpec:
    if value is None:
        return LayerSpec(skip=True)
    if isinstance(value, LayerSpec):
        return value
    if isinstance(value, Mapping):
        fields = dict(value)
        if "quality" in fields or "amount" in fields:
            return LayerSpec(**{"bias": default.bias, **fields})
        return replace(default, **fields)
    raise PruningError(f"per-layer setting must be a LayerSpec, a dict or None, got {type(value).__name__}")


def resolve_specs(
    model: nn.Module,
    default: LayerSpec,
    overrides: Mapping[str, SpecLike] | None = None,
    *,
    protect_first: bool = False,
) -> dict[str, LayerSpec]:
    """Map every prunable layer name to its effective :class:`LayerSpec` (skipped layers included).

    Raises :class:`PruningError` when an override matches no prunable layer (a typo would otherwise be
    silently ignored).
    """
    layers = list(prunable_layers(model))
    if not layers:
        raise PruningError("the model has no Linear or Conv layers to prune")
    overrides = dict(overrides or {})
    for key in overrides:
        if key not in layers and not fnmatch.filter(layers, key):
            raise PruningError(f"per-layer setting {key!r} matches no prunable layer; layers are: {layers}")
    specs: dict[str, LayerSpec] = {}
    for i, name in enumerate(layers):
        if name in overrides:
            spec = _as_spec(overrides[name], default)
        else:
            match = next((k for k in overrides if fnmatch.fnmatchcase(name, k)), None)
            spec = _as_spec(overrides[match], default) if match is not None else default
        if i == 0 and protect_first and name not in overrides:
            spec = LayerSpec(skip=True)
        specs[name] = spec
    return specs


def _threshold_mask(weight: torch.Tensor, alive: torch.Tensor, threshold: float) -> torch.Tensor:
    return alive & (weight.abs() >= threshold)


def magnitude_mask(weight: torch.Tensor, alive: torch.Tensor, amount: float | int) -> torch.Tensor:
    """Keep-mask pruning the smallest |w| so that ``amount`` of ``weight`` is pruned (dead entries first).

    ``amount`` is a sparsity in [0, 1] (float) or a count of pruned entries (int); exactly that many
    entries end up False, ties broken by position.
    """
    n = weight.numel()
    k = round(amount * n) if isinstance(amount, float) else int(amount)
    if k > n:
        raise PruningError(f"amount {amount} asks to prune {k} of only {n} entries")
    k = max(k, n - int(alive.sum()))  # already-pruned entries count towards the target
    scores = weight.detach().abs().flatten().clone()
    scores[~alive.flatten()] = -1.0  # dead entries are chosen first
    mask = torch.ones(n, dtype=torch.bool, device=weight.device)
    if k > 0:
        mask[torch.topk(scores, k, largest=False).indices] = False
    return mask.view_as(weight)


def _layer_std(module: nn.Module, name: str, std_mode: StdMode) -> float:
    wm = get_mask(module, name)
    weight = getattr(module, name).detach()
    alive = wm.mask if wm is not None else torch.ones_like(weight, dtype=torch.bool)
    if std_mode == "fixed" and wm is not None and not torch.isnan(wm.std):
        return float(wm.std)
    survivors = weight[alive]
    std = float(survivors.std()) if survivors.numel() > 1 else 0.0
    if std_mode == "fixed":
        attach_mask(module, name).std.fill_(std)
    return std


@torch.no_grad()
def _prune_tensor(module: nn.Module, name: str, spec: LayerSpec, std_mode: StdMode) -> None:
    weight = getattr(module, name).detach()
    wm = get_mask(module, name)
    alive = wm.mask if wm is not None else torch.ones_like(weight, dtype=torch.bool)
    if spec.quality is not None:
        mask = _threshold_mask(weight, alive, spec.quality * _layer_std(module, name, std_mode))
    else:
        assert spec.amount is not None
        mask = magnitude_mask(weight, alive, spec.amount)
    attach_mask(module, name, mask)


def prune_layers(
    model: nn.Module,
    default: LayerSpec,
    overrides: Mapping[str, SpecLike] | None = None,
    *,
    protect_first: bool = False,
    std_mode: StdMode = "fixed",
) -> dict[str, float]:
    """Prune each prunable layer by its resolved spec; returns ``{layer: weight sparsity}`` after the call.

    ``std_mode="fixed"`` computes the std of a layer's weights at its first threshold prune and reuses it
    (as Caffe's reference code and Distiller do); ``"recompute"`` uses the std of the surviving weights each
    call, so the threshold grows as small weights disappear.
    """
    specs = resolve_specs(model, default, overrides, protect_first=protect_first)
    return apply_specs(model, specs, std_mode=std_mode)


def apply_specs(
    model: nn.Module, specs: Mapping[str, LayerSpec], *, std_mode: StdMode = "fixed"
) -> dict[str, float]:
    """Prune the named layers by their (already resolved) specs; returns ``{layer: sparsity}``."""
    if std_mode not in ("fixed", "recompute"):
        raise PruningError(f"std_mode must be 'fixed' or 'recompute', got {std_mode!r}")
    layers = prunable_layers(model)
    result: dict[str, float] = {}
    for name, spec in specs.items():
        module = layers[name]
        if not spec.skip:
            _prune_tensor(module, "weight", spec, std_mode)
            if spec.bias and getattr(module, "bias", None) is not None:
                _prune_tensor(module, "bias", spec, std_mode)
        w = module.weight.detach()
        result[name] = float((w == 0).sum()) / w.numel()
    return result


def prune_by_std(
    model: nn.Module,
    quality: float,
    overrides: Mapping[str, SpecLike] | None = None,
    *,
    protect_first: bool = False,
    bias: bool = False,
    std_mode: StdMode = "fixed",
) -> dict[str, float]:
    """Han et al. 2015: in each layer remove connections with |w| < quality * std(layer weights).

    Returns ``{layer: sparsity}``. See :func:`prune_layers` for ``std_mode`` and the module docstring for
    ``overrides``.
    """
    return prune_layers(
        model,
        LayerSpec(quality=quality, bias=bias),
        overrides,
        protect_first=protect_first,
        std_mode=std_mode,
    )


def prune_by_amount(
    model: nn.Module,
    amount: float | int,
    overrides: Mapping[str, SpecLike] | None = None,
    *,
    protect_first: bool = False,
    bias: bool = False,
) -> dict[str, float]:
    """Prune every layer to the same target sparsity ``amount`` (smallest |w| first); returns sparsities."""
    return prune_layers(model, LayerSpec(amount=amount, bias=bias), overrides, protect_first=protect_first)


@torch.no_grad()
def prune_global(
    model: nn.Module,
    amount: float | int,
    *,
    layers: list[str] | None = None,
    protect_first: bool = False,
) -> dict[str, float]:
    """One magnitude cut over the weights of all (or the named) layers together.

    Like ``torch.nn.utils.prune.global_unstructured`` with L1: exactly ``amount`` of all the selected
    weights end up zero (ties broken by position). Returns ``{layer: sparsity}``. A layer may be emptied
    entirely; check the result (Han's per-layer rule cannot do that).
    """
    all_layers = prunable_layers(model)
    names = list(all_layers) if layers is None else list(layers)
    unknown = [n for n in names if n not in all_layers]
    if unknown:
        raise PruningError(f"unknown layers {unknown}; prunable layers are {list(all_layers)}")
    if protect_first and names and names[0] == next(iter(all_layers)):
        names = names[1:]
    if not names:
        raise PruningError("no layers left to prune")
    weights = [all_layers[n].weight.detach() for n in names]
    alive = []
    for n, w in zip(names, weights):
        wm = get_mask(all_layers[n], "weight")
        alive.append(wm.mask if wm is not None else torch.ones_like(w, dtype=torch.bool))
    flat_w = torch.cat([w.flatten() for w in weights])
    flat_alive = torch.cat([a.flatten() for a in alive])
    flat_mask = magnitude_mask(flat_w, flat_alive, amount)
    start = 0
    result: dict[str, float] = {}
    for n, w in zip(names, weights):
        mask = flat_mask[start : start + w.numel()].view_as(w)
        start += w.numel()
        attach_mask(all_layers[n], "weight", mask)
        result[n] = 1.0 - float(mask.sum()) / mask.numel()
    return result


def quality_for_sparsity(weight: torch.Tensor, sparsity: float) -> float:
    """The Han quality parameter q for which |w| < q * std(w) prunes about ``sparsity`` of ``weight``."""
    w = weight.detach().flatten().float()
    std = float(w.std())
    if std == 0.0 or sparsity <= 0.0:
        return 0.0
    ordered = w.abs().sort().values
    k = round(sparsity * w.numel())
    threshold = float(ordered[-1]) * (1 + 1e-6) + 1e-12 if k >= w.numel() else float(ordered[k])
    return threshold / std
