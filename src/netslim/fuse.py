"""Fold inference-mode BatchNorm into the convolution (or linear layer) that feeds it.

In eval mode ``BN(conv(x)) = s * conv(x) + t`` per channel, with ``s = gamma / sqrt(running_var + eps)`` and
``t = beta - s * running_mean``, so the BN disappears into the conv's weight and bias: one memory-bound pass
over the activations less per layer, same outputs up to float rounding. Only pairs that are adjacent in an
``nn.Sequential`` are folded (there the conv's output reaches nothing but the BN); anything else is left as
it is. The result is for inference and export: a fused model no longer matches its ``netslim_recipe``, so
checkpoint the unfused one.

Example::

    fused = fuse_bn(slimmed)          # a new eval-mode model; ``slimmed`` is untouched
    (fused(x) - slimmed.eval()(x)).abs().max()   # ~1e-6
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from netslim.errors import NetslimError
from netslim.slimming.border import get_border, scale_border

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _foldable(layer: nn.Module, norm: nn.Module) -> bool:
    if type(norm) not in _NORMS or norm.running_mean is None or norm.running_var is None:
        return False
    if parametrize.is_parametrized(layer):  # weight masks live on .parametrizations; finalize them first
        return False
    if isinstance(layer, _CONVS):  # a ConvNd feeds a BatchNormNd only, with one scale per output channel
        same_dims = _NORMS.index(type(norm)) + 1 == len(layer.kernel_size)
        return same_dims and layer.out_channels == norm.num_features
    return (
        isinstance(layer, nn.Linear)
        and isinstance(norm, nn.BatchNorm1d)
        and (layer.out_features == norm.num_features)
    )


def _fold(layer: nn.Module, norm: nn.Module) -> nn.Module:
    if isinstance(layer, nn.Linear):
        return fuse_linear_bn_eval(layer, norm)  # type: ignore[arg-type]
    fused = fuse_conv_bn_eval(layer, norm, transpose=isinstance(layer, nn.modules.conv._ConvTransposeNd))
    rescale_border(fused, norm)
    return fused


def rescale_border(conv: nn.Module, norm: nn.Module) -> None:
    """After ``norm`` was fused into ``conv``: scale ``conv``'s exact-fold border correction (if any) by the
    BatchNorm's per-channel scale, which now applies to it too (:mod:`netslim.slimming.border`)."""
    if get_border(conv) is not None:
        scale = torch.rsqrt(norm.running_var + norm.eps)  # type: ignore[operator]
        scale_border(conv, scale if norm.weight is None else norm.weight.detach() * scale)


def _pairs(model: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """(sequential, conv name, BN name) for each foldable adjacent pair; a Sequential subclass with its own
    ``forward`` may not run its children in order, so only plain-forward Sequentials count."""
    pairs = []
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential) or type(seq).forward is not nn.Sequential.forward:
            continue
        names = list(seq._modules)
        for prev, name in itertools.pairwise(names):
            layer, norm = seq._modules[prev], seq._modules[name]
            if layer is not None and norm is not None and _foldable(layer, norm):
                pairs.append((seq, prev, name))
    return pairs


def fuse_bn(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every BatchNorm that directly follows a conv/linear layer in an ``nn.Sequential`` into it.

    Returns the model in eval mode (a deep copy unless ``inplace``), with each folded BN replaced by
    ``nn.Identity`` so module indices stay the same. BNs without running statistics, or not preceded by a
    matching conv/linear in the same ``Sequential``, are kept, and so are BNs after a layer with a
    parametrized (weight-masked) weight. Raises :class:`NetslimError` if ``model`` is
    not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise NetslimError(f"fuse_bn needs an nn.Module, got {type(model).__name__}; pass the model itself")
    out = model if inplace else copy.deepcopy(model)
    out.eval()
    for seq, prev, name in _pairs(out):
        seq._modules[prev] = _fold(seq._modules[prev], seq._modules[name])  # type: ignore[arg-type]
        seq._modules[name] = nn.Identity()
    return out


def count_foldable(model: nn.Module) -> int:
    """How many BatchNorm layers :func:`fuse_bn` would fold into the layer before them."""
    return len(_pairs(model))
