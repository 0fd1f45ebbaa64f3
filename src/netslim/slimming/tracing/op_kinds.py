"""Torch ops by what they do to channels: the names the recorder dispatches on.

A name is the op's ``__name__`` normalised by :func:`norm_name` (``__add__`` and ``add_`` both read ``add``).
"""

from __future__ import annotations

from typing import Any

# act(0) == 0: a dead (zero) channel stays dead
ZERO_ACTS = {
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "hardswish",
    "tanh",
    "softsign",
    "hardtanh",
    "hardshrink",
    "softshrink",
    "tanhshrink",
    "rrelu",
}
OTHER_ACTS = {
    "sigmoid",
    "hardsigmoid",
    "softplus",
    "logsigmoid",
    "exp",
    "clamp",
    "clip",
    "clamp_min",
    "clamp_max",
}
# ops that keep every channel's values (constants stay constants)
IDENTITY = {
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "alpha_dropout",
    "feature_alpha_dropout",
    "contiguous",
    "clone",
    "detach",
    "to",
    "float",
    "double",
    "half",
    "bfloat16",
    "type",
    "cpu",
    "cuda",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "interpolate",
    "upsample",
    "upsample_nearest",
    "upsample_bilinear",
    "max_pool2d_with_indices",
}
ZERO_KEEP = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "pad", "lp_pool2d"}  # zero stays zero, consts may not
BINARY = {
    "add",
    "sub",
    "mul",
    "div",
    "truediv",
    "radd",
    "rsub",
    "rmul",
    "rtruediv",
    "iadd",
    "isub",
    "imul",
    "itruediv",
    "maximum",
    "minimum",
}
RESHAPE = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "unflatten"}
LIKE = {"zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like"}
# calls that read metadata or are plumbing: nothing to record
NO_TRACE = {
    "__get__",
    "__set__",
    "size",
    "dim",
    "numel",
    "item",
    "tolist",
    "__len__",
    "__format__",
    "__repr__",
    "__bool__",
    "is_floating_point",
    "get_device",
    "__hash__",
    "data_ptr",
    "__index__",
}


def norm_name(func: Any) -> str:
    """The op name of a torch function or tensor method: dunders and the in-place ``_`` stripped."""
    name = getattr(func, "__name__", str(func))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    return name[:-1] if name.endswith("_") and not name.startswith("_") else name
