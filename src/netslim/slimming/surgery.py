"""Physical channel removal with a per-layer-type handler registry, plus beta folding.

A handler knows how to drop output channels (``prune_out``) and input channels (``prune_in``) of one layer
type; :func:`register_handler` adds more types. Weights are sliced with ``index_select`` into new
Parameters of the same module class, so the result is an ordinary, smaller model.

Beta folding: with gamma = 0 a removed channel outputs the constant act(beta); its contribution to the next
conv/linear layer is ``W[:, c].sum(kernel) * act(beta_c)``, added to that layer's bias, or subtracted from the
running mean of the BatchNorm that directly follows a bias-free conv, or put in a new bias (recorded in the
plan). Exact for linear layers, 1x1 and unpadded convs and pooling -> linear. For a zero-padded conv the
true contribution is smaller at the borders (some taps read padding), so no constant is exact: by default
each tap is weighted by the share of output positions where it reads real input, which folds the spatial
mean of the contribution (the least-squares constant); ``fold_beta="interior"`` folds the interior value
instead (exact away from the borders); ``fold_beta="exact"`` folds the interior value and adds the border
correction through a :class:`~netslim.slimming.border.BorderFold` on the conv (exact everywhere, any input
size). :func:`netslim.slimming.api.folding_error` measures them.
"""

from __future__ import annotations

import array
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netslim.errors import PruningError
from netslim.slimming.border import add_border, border_kernel, needs_border, slice_border
from netslim.slimming.channel_select import attach_select
from netslim.slimming.plan import PruningPlan


class Handler:
    """Prunes one layer type along its output (``prune_out``) and input (``prune_in``) channel dimension."""

    def prune_out(self, m: nn.Module, idx: torch.Tensor) -> None:
        """Keep output channels ``idx``."""
        raise PruningError(f"{type(m).__name__} output channels cannot be pruned")

    def prune_in(self, m: nn.Module, idx: torch.Tensor) -> None:
        """Keep input channels ``idx``."""
        raise PruningError(f"{type(m).__name__} input channels cannot be pruned")


_HANDLERS: dict[type, Handler] = {}


def register_handler(*types: type) -> Callable[[type[Handler]], type[Handler]]:
    """Class decorator: use the handler for ``types`` (and subclasses)."""

    def deco(cls: type[Handler]) -> type[Handler]:
        for t in types:
            _HANDLERS[t] = cls()
        return cls

    return deco


def handler_for(m: nn.Module) -> Handler:
    """The registered handler for ``m``'s type (searching its MRO); raises PruningError if none."""
    for t in type(m).__mro__:
        if t in _HANDLERS:
            return _HANDLERS[t]
    raise PruningError(f"no pruning handler for {type(m).__name__}; register one with register_handler")


def _param(p: torch.Tensor | None, idx: torch.Tensor, dim: int = 0) -> nn.Parameter | None:
    if p is None:
        return None
    # index_select always allocates: the result never shares storage with ``p``
    return nn.Parameter(p.detach().index_select(dim, idx.to(p.device)), requires_grad=p.requires_grad)


def _buffer(b: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if b is None else b.index_select(0, idx.to(b.device))


def _put(m: nn.Module, **values: Any) -> None:
    """Replace existing parameters/buffers/attributes of ``m`` (skipping Module.__setattr__'s slow checks)."""
    for name, v in values.items():
        if name in m._parameters:
            m._parameters[name] = v
        elif name in m._buffers:
            m._buffers[name] = v
        elif name in m.__dict__:
            m.__dict__[name] = v
        else:
            setattr(m, name, v)


@register_handler(nn.Conv1d, nn.Conv2d, nn.Conv3d)
class ConvHandler(Handler):
    """Conv: output filters; input channels; a depthwise conv keeps in = out = groups."""

    def prune_out(self, m: nn.Module, idx: torch.Tensor) -> None:
        depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
        if m.groups > 1 and not depthwise:
            raise PruningError(f"grouped convolution {m} cannot be pruned")
        _put(m, weight=_param(m.weight, idx), bias=_param(m.bias, idx), out_channels=idx.numel())
        if depthwise:
            m.in_channels = m.groups = idx.numel()

    def prune_in(self, m: nn.Module, idx: torch.Tensor) -> None:
        if m.groups > 1:
            raise PruningError(f"grouped convolution {m} input channels cannot be pruned on their own")
        _put(m, weight=_param(m.weight, idx, 1), in_channels=idx.numel())


@register_handler(nn.Linear)
class LinearHandler(Handler):
    """Linear: output features (rows) and input features (columns)."""

    def prune_out(self, m: nn.Module, idx: torch.Tensor) -> None:
        _put(m, weight=_param(m.weight, idx), bias=_param(m.bias, idx), out_features=idx.numel())

    def prune_in(self, m: nn.Module, idx: torch.Tensor) -> None:
        _put(m, weight=_param(m.weight, idx, 1), in_features=idx.numel())


@register_handler(nn.modules.batchnorm._BatchNorm)
class BatchNormHandler(Handler):
    """BatchNorm: gamma, beta and running statistics."""

    def prune_out(self, m: nn.Module, idx: torch.Tensor) -> None:
        _put(
            m,
            weight=_param(m.weight, idx),
            bias=_param(m.bias, idx),
            num_features=idx.numel(),
            running_mean=_buffer(m.running_mean, idx),
            running_var=_buffer(m.running_var, idx),
        )

    prune_in = prune_out


def _eval_expr(expr: Any, leaf: Callable[[str], torch.Tensor]) -> torch.Tensor:
    op = expr[0]
    if op == "bn":
        return leaf(expr[1])
    if op == "act":
        _, name, params, kw, sub = expr
        fn = getattr(F, name, None) or getattr(torch, name)
        return fn(_eval_expr(sub, leaf), *params, **kw)
    if op == "affine":
        return expr[1] * _eval_expr(expr[3], leaf) + expr[2]
    a, b = _eval_expr(expr[1], leaf), _eval_expr(expr[2], leaf)
    return {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
    }[op](a, b)


def index_tensor(values: list[int]) -> torch.Tensor:
    """A LongTensor of the plan's index list (through ``array``: several times faster than torch.tensor)."""
    try:
        return (
            torch.frombuffer(array.array("q", values), dtype=torch.long)
            if values
            else torch.zeros(0, dtype=torch.long)
        )
    except (TypeError, OverflowError):
        return torch.tensor(values, dtype=torch.long)  # raises its own error for a malformed plan


def _beta(
    mods: dict[str, nn.Module],
    bn_index: dict[str, list[int]],
    rows: torch.Tensor,
    like: torch.Tensor,
    bn: str,
) -> torch.Tensor:
    idx = index_tensor(bn_index[bn])[rows].to(like.device)
    return mods[bn].bias.detach().to(like.dtype).index_select(0, idx)


def fold_consts(
    mods: dict[str, nn.Module], plan: PruningPlan, mean_fold: bool = True
) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Per consumer layer: (removed input positions, the constant act(beta) each carries, tap coverage)."""
    out = {}
    with torch.no_grad():
        for fold in plan.folds:
            w = mods[fold["consumer"]].weight
            expr_of = index_tensor(fold["expr_of"])
            consts = torch.zeros(expr_of.numel(), dtype=w.dtype, device=w.device)
            for k, expr in enumerate(fold["exprs"]):
                rows = torch.nonzero(expr_of == k).flatten()
                leaf = partial(_beta, mods, fold["bn_index"], rows, w)
                consts[rows.to(w.device)] = _eval_expr(expr, leaf)
            cover = None
            if mean_fold and fold.get("in_spatial"):
                cover = tap_coverage(mods[fold["consumer"]], fold["in_spatial"])
            out[fold["consumer"]] = (index_tensor(fold["positions"]).to(w.device), consts, cover)
    return out


def tap_coverage(conv: nn.Module, in_spatial: Sequence[int]) -> torch.Tensor | None:
    """Share of output positions at which each kernel tap reads inside the input (not the zero padding).

    Returns a tensor of the kernel's spatial shape, or None when every tap always reads inside (no padding,
    or not a convolution), where a constant input channel contributes the same amount everywhere.
    """
    if not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed or conv.padding_mode != "zeros":
        return None  # reflect/replicate/circular padding of a constant channel is that constant
    padding = conv.padding
    if isinstance(padding, str) or len(in_spatial) != len(conv.kernel_size) or not any(padding):
        return None  # "valid"/unpadded: every tap reads input; "same": keep the interior-exact fold
    cover = torch.ones(())
    for size, k, st, pad, dil in zip(in_spatial, conv.kernel_size, conv.stride, padding, conv.dilation):
        out = (size + 2 * pad - dil * (k - 1) - 1) // st + 1
        pos = torch.arange(out)[:, None] * st - pad + torch.arange(k)[None, :] * dil  # (out, k)
        frac = ((pos >= 0) & (pos < size)).double().mean(0)
        cover = cover[..., None] * frac
    return cover


def fold_delta(
    weight: torch.Tensor, positions: torch.Tensor, consts: torch.Tensor, coverage: torch.Tensor | None = None
) -> torch.Tensor:
    """Output shift (one value per row of ``weight``) of inputs ``positions`` held at ``consts``.

    ``sum_{i, k} W[o, i, k] * c_i * cover[k]`` as one matrix-vector product over the flattened weight (c is
    0 at the other inputs). With ``coverage`` (zero-padded convs, see :func:`tap_coverage`) each tap counts
    by the share of positions where it reads real input: the shift is the spatial mean of the removed
    channels' exact, position-dependent contribution, i.e. the least-squares best constant (exact in the
    interior is ``coverage=None``).
    """
    full = torch.zeros(weight.shape[1], dtype=weight.dtype, device=weight.device)
    full[positions] = consts
    per_input = math.prod(weight.shape[2:])
    if coverage is not None:
        vec = (full[:, None] * coverage.flatten().to(weight.dtype)[None, :]).flatten()
    else:
        vec = full.repeat_interleave(per_input) if per_input > 1 else full
    return weight.flatten(1) @ vec


def _add_bias(m: nn.Module, value: torch.Tensor) -> None:
    m.bias = nn.Parameter(value.detach().clone().to(m.weight.dtype), requires_grad=m.weight.requires_grad)


FOLD_MODES = (True, False, "mean", "interior", "exact")


def _fold_into(
    m: nn.Module,
    fqn: str,
    const: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    exact: bool,
    deltas: dict[str, torch.Tensor],
    borders: dict[str, torch.Tensor],
) -> None:
    """Record the output shift of consumer ``m`` (and, ``exact``, its border kernel) for ``const``."""
    deltas[fqn] = fold_delta(m.weight.detach(), *const)
    if exact and needs_border(m):
        borders[fqn] = border_kernel(m.weight.detach(), const[0], const[1])


def cut(model: nn.Module, plan: PruningPlan, fold_beta: bool | str) -> tuple[list[str], list[str]]:
    """Narrow ``model`` in place as ``plan`` says; returns the layers that gained a bias and the convs that
    gained a border fold (folding).

    ``fold_beta``: False drops removed channels' constants (the reference code's plain cut); True or "mean"
    folds them, padded convs by their spatial mean (:func:`fold_delta`); "interior" folds padded convs by
    the value away from the borders; "exact" adds the border correction to that (:mod:`.border`).
    """
    if fold_beta not in FOLD_MODES:
        raise PruningError(f"fold_beta must be True, False, 'mean', 'interior' or 'exact', not {fold_beta!r}")
    mods = dict(model.named_modules())
    for fqn, lp in plan.layers.items():
        m = mods.get(fqn)
        if m is None or type(m).__name__ != lp.get("type"):
            raise PruningError(
                f"the plan does not fit this model: layer {fqn!r} is missing or not a "
                f"{lp.get('type')}; apply a plan to the architecture it was made for"
            )
        size = m.weight.shape[0] if getattr(m, "weight", None) is not None else getattr(m, "num_features", 0)
        if lp.get("out_keep") is not None and size != lp["out_before"]:
            raise PruningError(
                f"the plan does not fit this model: {fqn} has {size} channels, the plan "
                f"expects {lp['out_before']}"
            )
    exact = fold_beta == "exact"
    consts = fold_consts(mods, plan, mean_fold=fold_beta not in ("interior", "exact")) if fold_beta else {}
    deltas, borders = {}, {}
    with torch.no_grad():
        for fqn, lp in plan.layers.items():
            m = mods[fqn]
            h = handler_for(m)
            if lp.get("out_keep") is not None:
                idx = index_tensor(lp["out_keep"])
                if lp.get("select"):
                    attach_select(m, idx)
                h.prune_out(m, idx)
                slice_border(m, idx)  # a border fold of an earlier cut
            if fqn in consts:  # after the output cut, before the input cut: only the rows that stay
                _fold_into(m, fqn, consts[fqn], exact, deltas, borders)
            if lp.get("in_keep") is not None:
                h.prune_in(m, index_tensor(lp["in_keep"]))
        for fqn in consts.keys() - deltas.keys():
            _fold_into(mods[fqn], fqn, consts[fqn], exact, deltas, borders)
    added = []
    fold_by = {f["consumer"]: f for f in plan.folds}
    with torch.no_grad():
        for fqn, delta in deltas.items():
            m, bn_name = mods[fqn], fold_by[fqn].get("target_bn")
            bn = mods.get(bn_name) if bn_name else None
            if m.bias is not None:
                m.bias.add_(delta.to(m.bias.dtype))
            elif bn is not None and bn.running_mean is not None:
                bn.running_mean.sub_(delta.to(bn.running_mean.dtype))
            else:
                _add_bias(m, delta)
                added.append(fqn)
        for fqn in plan.added_bias:
            m = mods[fqn]
            if m.bias is None:
                _add_bias(m, torch.zeros(m.weight.shape[0], device=m.weight.device))
                added.append(fqn)
        for fqn, kernel in borders.items():
            add_border(mods[fqn], kernel)
        for fqn in plan.added_border:  # a replayed plan: zeros, the state dict fills them
            add_border(mods[fqn])
    return added, sorted(borders)
