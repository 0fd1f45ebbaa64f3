"""Data the channel trace records: per-tensor channel info, leaf-module records, segment algebra.

Segments ``(start, end, dead, expr)`` describe runs of channel positions: ``dead`` means exactly zero when the
feeding BatchNorms' gamma and beta are zero; ``expr`` (nested lists, JSON-ready) gives the value as a
function of BatchNorm betas when gamma is zero, e.g. ``["act", "relu", [], {}, ["bn", "layer1.bn"]]``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import torch

Seg = tuple[int, int, bool, Any]  # (start, end, dead, expr)

# act(0) == 0: a dead (zero) channel stays dead
_ZERO_ACTS = {
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "hardswish", "tanh",
    "softsign", "hardtanh", "hardshrink", "softshrink", "tanhshrink", "rrelu",
}
_OTHER_ACTS = {"sigmoid", "hardsigmoid", "softplus", "logsigmoid", "exp", "clamp", "clip", "clamp_min",
               "clamp_max"}
# ops that keep every channel's values (constants stay constants)
_IDENTITY = {
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout", "contiguous",
    "clone", "detach", "to", "float", "double", "half", "bfloat16", "type", "cpu", "cuda",
    "max_pool1d", "max_pool2d", "max_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "max_pool2d_with_indices",
}
_ZERO_KEEP = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "pad", "lp_pool2d"}  # zero stays zero, consts may not
_BINARY = {"add", "sub", "mul", "div", "truediv", "radd", "rsub", "rmul", "rtruediv", "iadd", "isub", "imul",
           "itruediv", "maximum", "minimum"}
_RESHAPE = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "unflatten"}
_LIKE = {"zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like"}
_NO_TRACE = {"__get__", "__set__", "size", "dim", "numel", "item", "tolist", "__len__", "__format__",
             "__repr__", "__bool__", "is_floating_point", "get_device", "__hash__", "data_ptr", "__index__"}


def norm_name(func: Any) -> str:
    name = getattr(func, "__name__", str(func))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    return name[:-1] if name.endswith("_") and not name.startswith("_") else name


@dataclass
class Info:
    """What the trace knows about one tensor's channel positions."""

    desc: torch.Tensor
    segs: list[Seg]
    producer: str | None = None  # conv/linear whose output this is (through unary ops only)
    chain: tuple[int, ...] = ()  # tensor ids from that producer's output to this tensor


@dataclass
class ModRec:
    """One leaf module (first call): its kind, input/output channel descs and input tensor ids."""

    fqn: str
    kind: str  # conv, dwconv, linear, bn
    in_desc: torch.Tensor
    out_desc: torch.Tensor
    in_ids: list[int] = field(default_factory=list)
    out_ids: list[int] = field(default_factory=list)
    in_segs: list[list[Seg]] = field(default_factory=list)
    in_spatial: tuple[int, ...] = ()  # spatial size of the first input (H, W for a conv)


@dataclass
class Trace:
    """Result of :func:`trace_model`."""

    n_vars: int
    spaces: list[tuple[int, int, str]]  # (first var, size, owner)
    edges: list[tuple[torch.Tensor, torch.Tensor]]
    pins: list[tuple[torch.Tensor, str]]
    modules: dict[str, ModRec]
    infos: dict[int, Info]
    readers: dict[int, list[str]]
    order: list[str]
    # where the forward turned input-dependent tensors into Python values (data-dependent control flow)
    conversions: list[str] = field(default_factory=list)


def const_map(segs: list[Seg], dead_keep: bool, expr_fn: Any) -> list[Seg]:
    return [(s, e, d and dead_keep, None if x is None or expr_fn is None else expr_fn(x))
            for s, e, d, x in segs]


def slice_segs(segs: list[Seg], a: int, b: int, block: int = 1) -> list[Seg]:
    out = []
    for s, e, d, x in segs:
        lo, hi = max(s, a), min(e, b)
        if lo < hi:
            out.append((lo - a, hi - a, d, x))
    return out


def refine(sa: list[Seg], sb: list[Seg], combine: Any) -> list[Seg]:
    cuts = sorted({p for s in sa + sb for p in s[:2]})
    out = []
    for lo, hi in itertools.pairwise(cuts):
        a = next(s for s in sa if s[0] <= lo < s[1])
        b = next(s for s in sb if s[0] <= lo < s[1])
        out.append((lo, hi, *combine(a, b)))
    return out


def combine(op: str, s: Seg, t: Seg) -> tuple[bool, Any]:
    both = s[3] is not None and t[3] is not None
    if op in ("add", "sub", "rsub"):
        return s[2] and t[2], [op if op != "rsub" else "sub", s[3], t[3]] if both else None
    if op == "mul":
        return s[2] or t[2], ["mul", s[3], t[3]] if both else None
    if op in ("div", "truediv"):
        return s[2], None
    return s[2] and t[2], [op, s[3], t[3]] if both else None


def as_tuple(v: Any) -> tuple:
    return tuple(v) if isinstance(v, list | tuple) else (v,)
