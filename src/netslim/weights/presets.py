"""Per-layer pruning amounts published by Han et al. 2015 (Tables 1-5), as settings for netslim's zoo models.

Han et al. report the share of weights each layer keeps after pruning and retraining (Tables 2-5) and the
overall compression rate (Table 1). :func:`han_layer_amounts` turns them into per-layer target sparsities
(``{layer: {"amount": s}}``, the ``overrides`` of :class:`netslim.weights.IterativePruningConfig`) for a zoo
model, matching the paper's layers to the model's Conv and Linear layers in order. For the LeNets the
amounts reproduce the paper's 12x; ``netslim prune-weights --preset han`` uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from netslim.errors import NetslimError
from netslim.weights.masks import prunable_layers


@dataclass(frozen=True)
class HanTable:
    """The weights kept % per layer (conv layers, then FC layers, in order) and Table 1's overall rate."""

    conv: tuple[float, ...]
    fc: tuple[float, ...]
    rate: float | None  # Table 1's compression rate, when the zoo model has the paper's layer sizes


# Han et al. 2015, Tables 2-5: weights kept per layer (%); Table 1: overall rate.
HAN_TABLES: dict[str, HanTable] = {
    "lenet300_100": HanTable(conv=(), fc=(8, 9, 26), rate=12.0),
    "lenet5": HanTable(conv=(66, 12), fc=(8, 19), rate=12.0),
    # the zoo's AlexNet and VGG-16 are CIFAR-sized: the per-layer shares carry over, the overall rate does not
    "alexnet_small": HanTable(conv=(84, 38, 35, 37, 37), fc=(9, 9, 25), rate=None),
    "vgg16_fc": HanTable(conv=(58, 22, 34, 36, 53, 24, 42, 32, 27, 34, 35, 29, 36), fc=(4, 4, 23), rate=None),
}

PRESETS = ("han",)


def han_kept_fractions(model: nn.Module, name: str | None = None) -> dict[str, float]:
    """Han et al.'s share of weights kept (0-1) for each prunable layer of zoo model ``name``.

    ``name`` defaults to the model's zoo recipe. For the LeNets, whose layers have the paper's sizes, the
    per-layer shares are scaled so the whole network reaches Table 1's rate: the tables' percentages are
    rounded, and for LeNet-5 they add up to 8.4% of the weights (11.9x) where Table 1 gives 431K -> 36K
    (12x); LeNet-300-100's shares already reach 12x and stay as they are.

    Raises:
        NetslimError: the paper has no table for the model, or its layers do not match the table.
    """
    name = name or (getattr(model, "netslim_recipe", None) or {}).get("name")
    table = HAN_TABLES.get(name or "")
    if table is None:
        raise NetslimError(
            f"Han et al. publish per-layer amounts for {', '.join(HAN_TABLES)} only, not {name!r}; "
            "give --quality, --target-sparsity, --layer-settings or --sensitivity instead"
        )
    layers = prunable_layers(model)
    convs = [n for n, m in layers.items() if not isinstance(m, nn.Linear)]
    fcs = [n for n, m in layers.items() if isinstance(m, nn.Linear)]
    if len(convs) != len(table.conv) or len(fcs) != len(table.fc):
        raise NetslimError(
            f"{name}: the paper's table has {len(table.conv)} conv and {len(table.fc)} FC layers, the model "
            f"has {len(convs)} and {len(fcs)}; the preset fits the zoo's default architecture only"
        )
    kept = {n: pct / 100.0 for n, pct in zip(convs + fcs, table.conv + table.fc)}
    if table.rate is None:
        return kept
    sizes = {n: layers[n].weight.numel() for n in kept}
    total = sum(sizes.values())
    kept_weights = sum(kept[n] * sizes[n] for n in kept)
    goal = total / table.rate - len(kept)  # the paper's per-layer counts are rounded: half a weight each
    scale = min(1.0, goal / kept_weights)
    return {n: frac * scale for n, frac in kept.items()}


def han_layer_amounts(model: nn.Module, name: str | None = None) -> dict[str, dict[str, float]]:
    """Per-layer settings ``{layer: {"amount": sparsity}}`` that prune ``model`` as Han et al. did."""
    return {n: {"amount": 1.0 - kept} for n, kept in han_kept_fractions(model, name).items()}
