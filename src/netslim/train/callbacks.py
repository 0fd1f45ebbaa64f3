"""Extension points of the training loop.

Pruning code plugs into :class:`netslim.train.Trainer` through these hooks instead of editing the loop:

* ``after_backward``: gradients exist and are already *unscaled* (mixed precision), the optimizer has not
  stepped yet. Network Slimming adds its ``s * sign(gamma)`` subgradient here.
* ``after_step``: the optimizer has stepped. Weight pruning re-applies its masks here.
* ``on_epoch_end``: after validation; a callback may add entries to ``metrics`` (they are logged) and write
  files (only when ``trainer.is_main``).

* ``training_loss``: may replace the training loss (knowledge distillation does). It returns per-sample
  losses of shape ``(N,)``, or None to leave the loss to the next callback (default: cross-entropy). It runs
  inside the forward pass's autocast region, so a model it calls computes in the same precision; the
  trainer sums the losses and divides by the global batch size, which keeps DDP updates exact.

Callbacks with state implement ``state_dict``/``load_state_dict``; the trainer stores that state in its
checkpoints so a resumed run continues exactly (e.g. a decaying sparsity rate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from netslim.train.trainer import Trainer


class Callback:
    """Base class with no-op hooks; override the ones you need."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once before the first epoch (also after a resume)."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Called at the start of every training epoch."""

    def training_loss(
        self, trainer: Trainer, logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor | None:
        """Per-sample training losses ``(N,)`` for this batch, or None for the default (cross-entropy)."""
        return None

    def after_backward(self, trainer: Trainer) -> None:
        """Called after ``loss.backward()`` (gradients unscaled) and before ``optimizer.step()``."""

    def after_step(self, trainer: Trainer) -> None:
        """Called after ``optimizer.step()``."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """Called after validation; may add JSON-serializable entries to ``metrics``."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Called once after the last epoch."""

    def state_dict(self) -> dict[str, Any]:
        """State saved in the trainer's checkpoint (tensors and plain Python values only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
