"""BorderFold: the exact beta fold for zero-padded convolutions (``netslim.apply(..., fold_beta="exact")``).

A removed channel with gamma = 0 outputs a constant ``c``; the conv that reads it adds
``sum_taps W * c`` in the interior of its output, but less at the borders, where some taps read the zero
padding. No single bias is exact there (the default fold uses the spatial mean). The exact contribution is
the conv of a map of ones with the kernel ``K[o] = sum_i W[o, i] * c_i`` (one input channel), whatever the
input size. The exact fold puts the interior value ``K[o].sum()`` into the conv's bias as the other folds
do, and attaches a :class:`BorderFold` holding ``K`` to the conv as the child ``netslim_border``; a forward
hook adds ``conv(ones, K) - K.sum()``, which is zero away from the borders. The conv keeps its class and
name (its state dict gains ``<conv>.netslim_border.kernel``), the correction is a one-channel conv on a
batch of one, and it runs inside the conv's call, so tracing a slimmed model again (multi-pass) sees an
ordinary conv.

Layers that rebuild a conv must carry the correction: :func:`slice_border` (output channels cut),
:func:`scale_border` (a BatchNorm fused into the conv), :func:`copy_border` (a conv rebuilt wider).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BORDER_ATTR = "netslim_border"
_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class BorderFold(nn.Module):
    """The border part of removed constant input channels' contribution to a zero-padded conv's output."""

    def __init__(self, conv: nn.modules.conv._ConvNd, kernel: torch.Tensor | None = None) -> None:
        super().__init__()
        dims = len(conv.kernel_size)
        shape = (conv.out_channels, 1, *conv.kernel_size)
        if kernel is None:
            kernel = torch.zeros(shape, dtype=conv.weight.dtype, device=conv.weight.device)
        self.register_buffer("kernel", kernel.detach().clone().reshape(shape))
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self._conv = _CONV_FN[dims]

    def forward(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out`` (the conv's output for input ``x``) plus the border correction."""
        k = self.kernel.to(out.dtype)
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=out.dtype, device=out.device)
        full = self._conv(ones, k, None, self.stride, self.padding, self.dilation)
        interior = k.flatten(1).sum(1).reshape(1, -1, *([1] * (out.dim() - 2)))
        return out + (full - interior)

    def extra_repr(self) -> str:
        return f"channels={self.kernel.shape[0]}"


def _border_hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
    return getattr(module, BORDER_ATTR)(args[0], out)


def get_border(conv: nn.Module) -> BorderFold | None:
    """The :class:`BorderFold` attached to ``conv``, or None."""
    border = getattr(conv, BORDER_ATTR, None)
    return border if isinstance(border, BorderFold) else None


def needs_border(conv: nn.Module) -> bool:
    """Whether a constant input channel contributes less at ``conv``'s borders (a zero-padded conv)."""
    if not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed or conv.groups != 1:
        return False
    padding = conv.padding
    if conv.padding_mode != "zeros":
        return False  # reflect/replicate/circular padding of a constant is the same constant
    return padding == "same" or (not isinstance(padding, str) and any(padding))


def add_border(conv: nn.modules.conv._ConvNd, kernel: torch.Tensor | None = None) -> BorderFold:
    """Add ``kernel`` (shape ``[out, 1, *kernel_size]``; None: zeros) to ``conv``'s border fold, attaching one
    (and its forward hook) when it has none. Returns the border fold."""
    border = get_border(conv)
    if border is None:
        border = BorderFold(conv, kernel)
        setattr(conv, BORDER_ATTR, border)
        conv.register_forward_hook(_border_hook)
    elif kernel is not None:
        border.kernel.add_(kernel.reshape(border.kernel.shape).to(border.kernel.dtype))
    return border


def border_kernel(weight: torch.Tensor, positions: torch.Tensor, consts: torch.Tensor) -> torch.Tensor:
    """``K[o] = sum_i W[o, i] * c_i`` over the removed input channels ``positions`` held at ``consts``."""
    w = weight.index_select(1, positions)
    shape = (1, -1, *([1] * (weight.dim() - 2)))
    return (w * consts.to(w.dtype).reshape(shape)).sum(1, keepdim=True)


def slice_border(conv: nn.Module, idx: torch.Tensor) -> None:
    """Keep the border fold's rows ``idx`` after ``conv``'s output channels were cut to ``idx``."""
    border = get_border(conv)
    if border is not None:
        border.kernel = border.kernel.index_select(0, idx.to(border.kernel.device)).clone()


def scale_border(conv: nn.Module, scale: torch.Tensor) -> None:
    """Multiply the border fold's rows by ``scale`` (a BatchNorm's per-channel scale fused into ``conv``)."""
    border = get_border(conv)
    if border is not None:
        shape = (-1, *([1] * (border.kernel.dim() - 1)))
        border.kernel = border.kernel * scale.to(border.kernel.dtype).reshape(shape)


def copy_border(old: nn.Module, new: nn.modules.conv._ConvNd) -> None:
    """Give ``new`` (``old`` rebuilt with as many or more output channels) ``old``'s border fold, zero rows
    for the added channels."""
    border = get_border(old)
    if border is None:
        return
    kernel = border.kernel.new_zeros((new.out_channels, *border.kernel.shape[1:]))
    kernel[: border.kernel.shape[0]] = border.kernel
    add_border(new, kernel)
