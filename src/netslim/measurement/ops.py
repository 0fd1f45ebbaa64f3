"""Per-operator cost formulas at the ATen level (what one forward pass dispatches).

Conventions (stated once, used everywhere in :mod:`netslim.measurement`):

* **MACs** are multiply-accumulates of convolutions and matrix products (``nn.Conv*``, ``nn.Linear``,
  ``matmul``). A convolution costs ``positions x weight.numel()``, i.e.
  ``N * H_out * W_out * C_out * (C_in / groups) * k_h * k_w`` (for a transposed convolution the input
  positions are used). Bias additions are not MACs.
* **Non-zero MACs** count only the products whose weight is not exactly zero
  (``positions x count_nonzero(weight)``), which is what a weight-pruned model could skip.
* **Element-wise FLOPs** (reported separately as ``other_flops``): batch norm 2 per output element (eval:
  one scale, one shift), layer/group norm 5, activations 1, element-wise add/sub/mul/div 1, pooling one per
  element of each window (``output.numel() * kernel area``; adaptive/global pooling and means: one per input
  element), softmax 3 per element.
* Data movement (views, concatenation, ``index_select`` as used by ``ChannelSelect``, padding, copies)
  costs 0 FLOPs and is listed under ``zero_cost_ops``.

Any other operator that produces a tensor is *unsupported*: it is counted by name, reported, and warned
about, never silently treated as free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

aten = torch.ops.aten


@dataclass
class OpCost:
    """The cost of one dispatched operator."""

    macs: int = 0
    nonzero_macs: int = 0
    other_flops: int = 0


def _numel(t: Any) -> int:
    return t.numel() if isinstance(t, torch.Tensor) else 0


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Sequence):
        for item in out:
            if isinstance(item, torch.Tensor):
                return item
    return None


def conv_cost(args: Sequence[Any], out: Any, is_weight: Callable[[torch.Tensor], bool]) -> OpCost:
    """``aten.convolution``: positions x weight.numel() MACs (non-zero: positions x nnz(weight))."""
    x, weight = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    result = _first_tensor(out)
    spatial_src = x if transposed else result
    positions = spatial_src.shape[0] * math.prod(spatial_src.shape[2:]) if spatial_src is not None else 0
    macs = positions * weight.numel()
    nnz = int(torch.count_nonzero(weight)) if weight.numel() else 0
    return OpCost(macs=macs, nonzero_macs=positions * nnz)


def _mm_cost(a: torch.Tensor, b: torch.Tensor, is_weight: Callable[[torch.Tensor], bool]) -> OpCost:
    """``a @ b`` with a = (..., m, k), b = (..., k, n): m*k*n MACs per batch element."""
    m, k = a.shape[-2], a.shape[-1]
    n = b.shape[-1]
    batch = math.prod(a.shape[:-2]) if a.dim() > 2 else 1
    macs = batch * m * k * n
    if is_weight(b):
        nonzero = batch * m * int(torch.count_nonzero(b))
    elif is_weight(a):
        nonzero = batch * n * int(torch.count_nonzero(a))
    else:
        nonzero = macs
    return OpCost(macs=macs, nonzero_macs=nonzero)


def addmm_cost(args: Sequence[Any], out: Any, is_weight: Callable[[torch.Tensor], bool]) -> OpCost:
    """``aten.addmm(bias, a, b)`` (``nn.Linear``): the bias add is not a MAC."""
    return _mm_cost(args[1], args[2], is_weight)


def mm_cost(args: Sequence[Any], out: Any, is_weight: Callable[[torch.Tensor], bool]) -> OpCost:
    """``aten.mm`` / ``aten.bmm``."""
    return _mm_cost(args[0], args[1], is_weight)


def _per_output(factor: int) -> Callable[..., OpCost]:
    def cost(args: Sequence[Any], out: Any, is_weight: Callable[[torch.Tensor], bool]) -> OpCost:
        return OpCost(other_flops=factor * _numel(_first_tensor(out)))

    cost.__doc__ = f"{factor} FLOP(s) per output element."
    return cost


def _per_input(args: Sequence[Any], out: Any, is_weight: Callable[[torch.Tensor], bool]) -> OpCost:
    """One FLOP per input element (global/adaptive pooling, means, sums)."""
    return OpCost(other_flops=_numel(args[0]))


def _window_pool(args: Sequence[Any], out: Any, is_weight: Callable[[torch.Tensor], bool]) -> OpCost:
    """Max/avg pooling: one FLOP per element of each window (output.numel() x kernel area)."""
    kernel = args[1]
    area = math.prod(kernel) if isinstance(kernel, Sequence) else int(kernel) ** (args[0].dim() - 2)
    if isinstance(kernel, Sequence) and len(kernel) == 1:
        area = int(kernel[0]) ** (args[0].dim() - 2)
    return OpCost(other_flops=area * _numel(_first_tensor(out)))


CostFn = Callable[[Sequence[Any], Any, Callable[[torch.Tensor], bool]], OpCost]


def _packets(names: Sequence[str]) -> list[Any]:
    found = []
    for name in names:
        packet = getattr(aten, name, None)
        if packet is not None:
            found.append(packet)
    return found


def _build_table() -> dict[Any, CostFn]:
    table: dict[Any, CostFn] = {}
    groups: list[tuple[Sequence[str], CostFn]] = [
        (["convolution", "_convolution", "mkldnn_convolution"], conv_cost),
        (["addmm"], addmm_cost),
        (["mm", "bmm"], mm_cost),
        (
            [
                "_native_batch_norm_legit_no_training",
                "_native_batch_norm_legit",
                "native_batch_norm",
                "cudnn_batch_norm",
                "_batch_norm_with_update",
                "_batch_norm_no_update",
            ],
            _per_output(2),
        ),
        (["native_layer_norm", "native_group_norm"], _per_output(5)),
        (
            [
                "relu",
                "relu_",
                "hardtanh",
                "hardtanh_",
                "clamp",
                "clamp_",
                "clamp_min",
                "clamp_min_",
                "sigmoid",
                "sigmoid_",
                "tanh",
                "tanh_",
                "gelu",
                "gelu_",
                "silu",
                "silu_",
                "hardswish",
                "hardswish_",
                "hardsigmoid",
                "hardsigmoid_",
                "leaky_relu",
                "leaky_relu_",
                "elu",
                "elu_",
                "threshold",
                "threshold_",
                "mish",
                "mish_",
                "prelu",
                "_prelu_kernel",
                "softplus",
                "add",
                "add_",
                "sub",
                "sub_",
                "mul",
                "mul_",
                "div",
                "div_",
                "rsub",
                "neg",
                "exp",
                "sqrt",
                "rsqrt",
                "pow",
                "abs",
                "maximum",
                "minimum",
                "where",
            ],
            _per_output(1),
        ),
        (["_softmax", "_log_softmax"], _per_output(3)),
        (
            [
                "max_pool1d",
                "max_pool2d",
                "max_pool3d",
                "max_pool2d_with_indices",
                "max_pool3d_with_indices",
                "avg_pool1d",
                "avg_pool2d",
                "avg_pool3d",
            ],
            _window_pool,
        ),
        (
            [
                "_adaptive_avg_pool2d",
                "_adaptive_avg_pool3d",
                "adaptive_max_pool2d",
                "adaptive_max_pool3d",
                "mean",
                "sum",
                "amax",
                "max",
                "amin",
                "min",
            ],
            _per_input,
        ),
    ]
    for names, fn in groups:
        for packet in _packets(names):
            table[packet] = fn
    return table


# Operators that only move or reinterpret data: 0 FLOPs by convention.
ZERO_COST_NAMES = [
    "view",
    "_unsafe_view",
    "reshape",
    "_reshape_alias",
    "t",
    "transpose",
    "permute",
    "expand",
    "squeeze",
    "unsqueeze",
    "flatten",
    "clone",
    "sparse_compressed_tensor",
    "contiguous",
    "cat",
    "stack",
    "index_select",
    "index",
    "gather",
    "detach",
    "alias",
    "slice",
    "select",
    "split",
    "split_with_sizes",
    "unbind",
    "chunk",
    "narrow",
    "as_strided",
    "_to_copy",
    "copy_",
    "empty",
    "empty_like",
    "empty_strided",
    "zeros",
    "zeros_like",
    "ones",
    "ones_like",
    "fill_",
    "zero_",
    "new_zeros",
    "new_empty",
    "new_ones",
    "new_empty_strided",
    "constant_pad_nd",
    "lift_fresh",
    "lift_fresh_copy",
    "native_dropout",
    "dropout",
    "repeat",
    "_local_scalar_dense",
    "scalar_tensor",
    "argmax",
    "topk",
    "sort",
    "eq",
    "ne",
    "gt",
    "lt",
    "ge",
    "le",
    "arange",
    "full",
    "full_like",
    "masked_fill",
    "masked_fill_",
    "roll",
    "flip",
    "pixel_shuffle",
    "channel_shuffle",
    "upsample_nearest2d",
    "_unsafe_index",
    "embedding",
    "count_nonzero",
    "nonzero",
    "_assert_async",
    "sym_size",
    "sym_stride",
    "sym_numel",
    "set_",
    "resize_",
    "unfold",
]

COST_TABLE: dict[Any, CostFn] = _build_table()
ZERO_COST: frozenset[Any] = frozenset(_packets(ZERO_COST_NAMES))


def packet_of(func: Any) -> Any:
    """The overload packet (e.g. ``aten.add``) of a dispatched overload (e.g. ``aten.add.Tensor``)."""
    return getattr(func, "overloadpacket", func)


def op_name(func: Any) -> str:
    """A readable operator name, e.g. ``aten.add``."""
    packet = packet_of(func)
    return f"{getattr(packet, '__module__', 'aten').split('.')[-1]}.{getattr(packet, '__name__', packet)}"
