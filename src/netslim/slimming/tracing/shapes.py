"""Shape-only execution of heavy layers: zeros of the shape a conv/linear/BatchNorm call would return.

While a leaf conv/linear/BatchNorm layer runs under the recorder, only its output shape matters; computing
it from shape rules (the meta device as a fallback) makes a trace cost little more than the Python of one
forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

_CONV = {F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d}
# calls whose arithmetic is skipped in shape-only mode
HEAVY = {*_CONV, F.linear, F.batch_norm, torch.batch_norm}


def _conv_shape(args: tuple, kwargs: dict) -> list[int] | None:
    """Output shape of a batched convolution with integer padding; None for anything else."""
    x, w = args[0], args[1] if len(args) > 1 else kwargs.get("weight")
    if not isinstance(w, torch.Tensor) or x.dim() != w.dim() or x.dtype != w.dtype:
        return None
    nd = w.dim() - 2
    spec = []
    for pos, key, default in ((3, "stride", 1), (4, "padding", 0), (5, "dilation", 1)):
        v = args[pos] if len(args) > pos else kwargs.get(key, default)
        v = tuple(v) if isinstance(v, list | tuple) else (v,) * nd
        if len(v) != nd or not all(type(i) is int for i in v):
            return None  # "same"/"valid" padding and the like: let torch work it out
        spec.append(v)
    stride, padding, dilation = spec
    groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
    if type(groups) is not int or x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        return None  # let torch raise its error
    out = [
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation)
    ]
    return [x.shape[0], w.shape[0], *out] if min(out, default=1) > 0 else None


def zeros_like_result(func: Any, args: tuple, kwargs: dict) -> torch.Tensor:
    """Zeros of the shape ``func`` would return, without arithmetic (shape rules, else the meta device)."""
    x = args[0]
    shape = None
    if func in _CONV:
        shape = _conv_shape(args, kwargs)
    elif func is F.linear:
        w = args[1] if len(args) > 1 else kwargs.get("weight")
        if (
            isinstance(w, torch.Tensor)
            and w.dim() == 2
            and x.dim() >= 1
            and x.shape[-1] == w.shape[1]
            and x.dtype == w.dtype
        ):
            shape = [*x.shape[:-1], w.shape[0]]
    elif x.dim() >= 2 and all(a.numel() == x.shape[1] for a in args[1:5] if isinstance(a, torch.Tensor)):
        shape = list(x.shape)  # batch norm keeps the shape
    if shape is not None:
        return torch.zeros(shape, dtype=x.dtype, device=x.device)
    meta = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in args]
    mkw = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    out = func(*meta, **mkw)
    return torch.zeros(out.shape, dtype=out.dtype, device=x.device)
