"""Training-loop hooks for masked networks: keep masks exact, and L1 regularization of weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from netslim.errors import PruningError
from netslim.train.callbacks import Callback
from netslim.weights.masks import apply_masks, mask_gradients, prunable_layers, raw_parameter

if TYPE_CHECKING:  # pragma: no cover
    from netslim.train.trainer import Trainer


def _model_of(trainer: Any) -> nn.Module:
    model = trainer.model
    return getattr(model, "module", model)  # unwrap DDP


class MaskCallback(Callback):
    """Keeps pruned connections at exactly zero during (re)training.

    ``after_backward`` zeroes the gradients of masked entries, so momentum and Adam moments receive nothing
    from them; ``after_step`` zeroes the masked entries of the trained tensors, undoing whatever weight decay
    or stale optimizer state moved them (distiller#53: momentum re-grows masked weights).
    """

    def after_backward(self, trainer: Trainer) -> None:
        """Zero the gradients of pruned connections."""
        mask_gradients(_model_of(trainer))

    def after_step(self, trainer: Trainer) -> None:
        """Re-apply every mask to the trained tensors."""
        apply_masks(_model_of(trainer))


WeightPruner = MaskCallback


def add_l1_subgradient(model: nn.Module, strength: float) -> None:
    """Add ``strength * sign(w)`` to the gradient of every Linear/Conv weight (L1 subgradient)."""
    with torch.no_grad():
        for module in prunable_layers(model).values():
            param = raw_parameter(module, "weight")
            if param.grad is not None:
                param.grad.add_(torch.sign(param), alpha=strength)


class L1Regularization(Callback):
    """L1 regularization of Linear/Conv weights: adds ``strength * sign(w)`` to their gradients.

    Han et al. 2015 §3.1: L1 leaves more weights near zero (better accuracy right after pruning), L2 (weight
    decay) is better after retraining. Put this callback before :class:`MaskCallback` so masked gradients
    are zeroed after the penalty is added.
    """

    def __init__(self, strength: float) -> None:
        if strength < 0:
            raise PruningError(f"L1 strength must be >= 0, got {strength}")
        self.strength = strength

    def after_backward(self, trainer: Trainer) -> None:
        """Add the L1 subgradient to the weight gradients."""
        add_l1_subgradient(_model_of(trainer), self.strength)
