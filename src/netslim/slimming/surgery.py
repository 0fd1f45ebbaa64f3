"""Physical channel removal with a per-layer-type handler registry, plus beta folding.

A handler knows how to drop output channels (``prune_out``) and input channels (``prune_in``) of one layer
type; :func:`register_handler` adds more types. Weights are sliced with ``index_select`` into new
Parameters of the same module class, so the result is an ordinary, smaller model.

Beta folding: with gamma = 0 a removed channel outputs the constant act(beta); its contribution to the next
conv/linear layer is ``W[:, c].sum(kernel) * act(beta_c)``, added to that layer's bias, or subtracted from the
running mean of the BatchNorm that directly follows a bias-free conv, or put in a new bias (recorded in the
plan). Exact for linear layers, 1x1 and unpadded convs and pooling -> linear; for zero-padded convs exact
away from the borders (see :func:`netslim.slimming.api.folding_error`).
"""

from __future__ import annotations

import array
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netslim.errors import PruningError
from netslim.slimming.plan import PruningPlan
from netslim.slimming.select import attach_select


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
        _put(m, weight=_param(m.weight, idx), bias=_param(m.bias, idx), num_features=idx.numel(),
             running_mean=_buffer(m.running_mean, idx), running_var=_buffer(m.running_var, idx))

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
    return {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "maximum": torch.maximum,
            "minimum": torch.minimum}[op](a, b)


def index_tensor(values: list[int]) -> torch.Tensor:
    """A LongTensor of the plan's index list (through ``array``: several times faster than torch.tensor)."""
    try:
        return torch.frombuffer(array.array("q", values), dtype=torch.long) if values else \
            torch.zeros(0, dtype=torch.long)
    except (TypeError, OverflowError):
        return torch.tensor(values, dtype=torch.long)  # raises its own error for a malformed plan


def _beta(mods: dict[str, nn.Module], bn_index: dict[str, list[int]], rows: torch.Tensor,
          like: torch.Tensor, bn: str) -> torch.Tensor:
    idx = index_tensor(bn_index[bn])[rows].to(like.device)
    return mods[bn].bias.detach().to(like.dtype).index_select(0, idx)


def fold_consts(mods: dict[str, nn.Module], plan: PruningPlan
                ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per consumer layer: (removed input positions, the constant act(beta) each of them carries)."""
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
            out[fold["consumer"]] = (index_tensor(fold["positions"]).to(w.device), consts)
    return out


def fold_delta(weight: torch.Tensor, positions: torch.Tensor, consts: torch.Tensor) -> torch.Tensor:
    """Output shift (one value per row of ``weight``) of inputs ``positions`` held at ``consts``.

    ``sum_{i, k} W[o, i, k] * c_i`` as one matrix-vector product over the flattened weight (c is 0 at the
    other inputs), much faster than summing the kernel of each removed input first.
    """
    full = torch.zeros(weight.shape[1], dtype=weight.dtype, device=weight.device)
    full[positions] = consts
    per_input = math.prod(weight.shape[2:])
    return weight.flatten(1) @ (full.repeat_interleave(per_input) if per_input > 1 else full)


def _add_bias(m: nn.Module, value: torch.Tensor) -> None:
    m.bias = nn.Parameter(value.detach().clone().to(m.weight.dtype), requires_grad=m.weight.requires_grad)


def cut(model: nn.Module, plan: PruningPlan, fold_beta: bool) -> list[str]:
    """Narrow ``model`` in place as ``plan`` says; returns the layers that gained a bias (folding)."""
    mods = dict(model.named_modules())
    for fqn, lp in plan.layers.items():
        m = mods.get(fqn)
        if m is None or type(m).__name__ != lp.get("type"):
            raise PruningError(f"the plan does not fit this model: layer {fqn!r} is missing or not a "
                               f"{lp.get('type')}; apply a plan to the architecture it was made for")
        size = m.weight.shape[0] if getattr(m, "weight", None) is not None else getattr(m, "num_features", 0)
        if lp.get("out_keep") is not None and size != lp["out_before"]:
            raise PruningError(f"the plan does not fit this model: {fqn} has {size} channels, the plan "
                               f"expects {lp['out_before']}")
    consts = fold_consts(mods, plan) if fold_beta else {}
    deltas = {}
    with torch.no_grad():
        for fqn, lp in plan.layers.items():
            m = mods[fqn]
            h = handler_for(m)
            if lp.get("out_keep") is not None:
                idx = index_tensor(lp["out_keep"])
                if lp.get("select"):
                    attach_select(m, idx)
                h.prune_out(m, idx)
            if fqn in consts:  # after the output cut, before the input cut: only the rows that stay
                deltas[fqn] = fold_delta(m.weight.detach(), *consts[fqn])
            if lp.get("in_keep") is not None:
                h.prune_in(m, index_tensor(lp["in_keep"]))
        for fqn in consts.keys() - deltas.keys():
            deltas[fqn] = fold_delta(mods[fqn].weight.detach(), *consts[fqn])
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
    return added
