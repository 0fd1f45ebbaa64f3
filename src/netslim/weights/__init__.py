"""Connection (weight) pruning after Han et al., "Learning both Weights and Connections", NIPS 2015.

* Masks: :func:`prune_by_std` (Han's rule, |w| < quality * std), :func:`prune_by_amount` (target sparsity
  per layer), :func:`prune_global` (one magnitude cut), per-layer settings by name or glob; masks are a
  ``torch.nn.utils.parametrize`` reparametrization kept exact by :class:`MaskCallback`; :func:`finalize`
  folds them into plain weights.
* Procedure: :func:`iterative_prune` (prune -> retrain rounds, dropout adjustment, L1/L2, freezing) with
  :func:`cubic_sparsity` / growing-quality schedules.
* Analysis: :func:`sensitivity_analysis`, :func:`sparsity_report`.
* Deployment: :func:`remove_dead_neurons` (physical removal via the channel engine),
  :func:`to_sparse_inference` (measured dense/sparse choice per layer on CPU).

Public names are imported lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netslim._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # masks
    "WeightMask": "netslim.weights.masks",
    "attach_mask": "netslim.weights.masks",
    "get_mask": "netslim.weights.masks",
    "is_masked": "netslim.weights.masks",
    "has_masks": "netslim.weights.masks",
    "apply_masks": "netslim.weights.masks",
    "mask_gradients": "netslim.weights.masks",
    "remove": "netslim.weights.masks",
    "finalize": "netslim.weights.masks",
    "load_masked_state_dict": "netslim.weights.masks",
    "prunable_layers": "netslim.weights.masks",
    # criteria
    "LayerSpec": "netslim.weights.pruning",
    "prune_by_std": "netslim.weights.pruning",
    "prune_by_amount": "netslim.weights.pruning",
    "prune_global": "netslim.weights.pruning",
    "prune_layers": "netslim.weights.pruning",
    "quality_for_sparsity": "netslim.weights.pruning",
    # training hooks
    "MaskCallback": "netslim.weights.callbacks",
    "WeightPruner": "netslim.weights.callbacks",
    "L1Regularization": "netslim.weights.callbacks",
    # schedules and procedure
    "cubic_sparsity": "netslim.weights.schedule",
    "retrain_dropout": "netslim.weights.schedule",
    "adjust_dropout": "netslim.weights.schedule",
    "IterativePruningConfig": "netslim.weights.procedure",
    "prune_round": "netslim.weights.procedure",
    # Han et al.'s published per-layer amounts
    "han_layer_amounts": "netslim.weights.presets",
    "iterative_prune": "netslim.weights.procedure",
    # analysis
    "sparsity_report": "netslim.weights.report",
    "format_report": "netslim.weights.report",
    "SensitivityResult": "netslim.weights.sensitivity",
    "sensitivity_analysis": "netslim.weights.sensitivity",
    "tolerated_sparsity": "netslim.weights.sensitivity",
    "layer_settings_from_sensitivity": "netslim.weights.sensitivity",
    # deployment
    "remove_dead_neurons": "netslim.weights.dead",
    "to_sparse_inference": "netslim.weights.sparse_inference",
    "SparseLinear": "netslim.weights.sparse_inference",
    "SparseConv2d": "netslim.weights.sparse_inference",
}

__all__ = [
    "IterativePruningConfig",
    "L1Regularization",
    "LayerSpec",
    "MaskCallback",
    "SensitivityResult",
    "SparseConv2d",
    "SparseLinear",
    "WeightMask",
    "WeightPruner",
    "adjust_dropout",
    "apply_masks",
    "attach_mask",
    "cubic_sparsity",
    "finalize",
    "format_report",
    "get_mask",
    "han_layer_amounts",
    "has_masks",
    "is_masked",
    "iterative_prune",
    "layer_settings_from_sensitivity",
    "load_masked_state_dict",
    "mask_gradients",
    "prunable_layers",
    "prune_by_amount",
    "prune_by_std",
    "prune_global",
    "prune_layers",
    "prune_round",
    "quality_for_sparsity",
    "remove",
    "remove_dead_neurons",
    "retrain_dropout",
    "sensitivity_analysis",
    "sparsity_report",
    "to_sparse_inference",
    "tolerated_sparsity",
]

if TYPE_CHECKING:  # pragma: no cover
    from netslim.weights.callbacks import L1Regularization, MaskCallback, WeightPruner
    from netslim.weights.dead import remove_dead_neurons
    from netslim.weights.masks import (
        WeightMask,
        apply_masks,
        attach_mask,
        finalize,
        get_mask,
        has_masks,
        is_masked,
        load_masked_state_dict,
        mask_gradients,
        prunable_layers,
        remove,
    )
    from netslim.weights.presets import han_layer_amounts
    from netslim.weights.procedure import IterativePruningConfig, iterative_prune, prune_round
    from netslim.weights.pruning import (
        LayerSpec,
        prune_by_amount,
        prune_by_std,
        prune_global,
        prune_layers,
        quality_for_sparsity,
    )
    from netslim.weights.report import format_report, sparsity_report
    from netslim.weights.schedule import adjust_dropout, cubic_sparsity, retrain_dropout
    from netslim.weights.sensitivity import (
        SensitivityResult,
        layer_settings_from_sensitivity,
        sensitivity_analysis,
        tolerated_sparsity,
    )
    from netslim.weights.sparse_inference import SparseConv2d, SparseLinear, to_sparse_inference


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
