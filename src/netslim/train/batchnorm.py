"""Recomputing BatchNorm running statistics for the current weights ("precise BN").

A BN layer's running mean and variance are exponential averages over the last few hundred training steps,
taken while the weights moved. After a run whose weights moved fast at the end (a strong L1 term, a
rolled-back collapse), they describe an earlier network, and evaluation and the cut's beta folding, which both
use them, go wrong by points. Averaging the batch statistics of the final weights over some training batches
fixes that; it trains nothing. Unlike ``torch.optim.swa_utils.update_bn`` (a whole pass over the loader with
the whole model in training mode), it stops after a number of batches, keeps dropout off, agrees across DDP
ranks and leaves the old statistics in place when it fails.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from netslim.errors import NetslimError
from netslim.train import distributed


def recalibrate_batchnorm(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    batches: int = 100,
    device: torch.device | str | None = None,
) -> int:
    """Replace every BatchNorm layer's running mean and variance by their plain average over ``batches``
    batches of ``loader`` (the training data) passed through ``model`` as it is now; returns the number of
    batches used (0 when the model has no BatchNorm layer that tracks running statistics).

    Nothing else changes: no gradient, no weight update; the BN layers see batch statistics as in training,
    every other layer runs as in evaluation (no dropout), and the model's mode, the layers' ``momentum`` and
    ``num_batches_tracked`` are restored. Under DDP every rank must call this; the ranks' averages are
    averaged, so all ranks end with the same statistics. A loader that yields nothing raises
    :class:`NetslimError`; then, as after any failure, the old statistics are put back.
    """
    if not isinstance(batches, int) or batches < 1:
        raise NetslimError(f"batches must be an integer >= 1, got {batches!r}")
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not layers:
        return 0
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    saved = [
        (m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in layers
    ]
    modes = [(m, m.training) for m in model.modules()]
    used = 0
    try:
        model.eval()
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # None: a cumulative average, each batch weighted alike
            m.train()
        with torch.no_grad():
            for x, _ in loader:
                model(x.to(device, non_blocking=True))
                used += 1
                if used == batches:  # stop before the loader prepares a batch nobody uses
                    break
        if used == 0:
            raise NetslimError("the loader yielded no batches to recompute the BatchNorm statistics from")
        world = distributed.info().world_size
        if world > 1:
            for m in layers:
                distributed.all_reduce_sum(m.running_mean).div_(world)
                distributed.all_reduce_sum(m.running_var).div_(world)
    except BaseException:
        for m, (_, mean, var, _) in zip(layers, saved, strict=True):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
        raise
    finally:
        for m, (momentum, _, _, tracked) in zip(layers, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
        for m, mode in modes:
            m.training = mode
    return used
