"""Parameter counts that see through weight-pruning reparametrizations and ignore mask buffers."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize


def effective_parameters(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(qualified name, tensor)`` for every learnable weight as the forward pass sees it.

    A parametrized weight (a pruning mask via ``torch.nn.utils.parametrize``) is yielded once, masked;
    ``torch.nn.utils.prune``'s ``weight_orig`` is replaced by the masked ``weight``. Buffers (masks,
    running statistics, ``ChannelSelect`` indices) are not parameters and are never counted. Shared
    parameters are yielded once.
    """
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        if ".parametrizations." in f".{mod_name}." or mod_name.endswith("parametrizations"):
            continue
        prefix = f"{mod_name}." if mod_name else ""
        if parametrize.is_parametrized(module):
            for name in module.parametrizations:
                original = module.parametrizations[name].original
                if id(original) in seen:
                    continue
                seen.add(id(original))
                yield prefix + name, getattr(module, name).detach()
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            if name.endswith("_orig") and isinstance(
                getattr(module, name[: -len("_orig")], None), torch.Tensor
            ):
                yield prefix + name[: -len("_orig")], getattr(module, name[: -len("_orig")]).detach()
            else:
                yield prefix + name, param.detach()


def count_params(model: nn.Module) -> tuple[int, int]:
    """Return ``(params, nonzero_params)``: all learnable elements and those not exactly zero."""
    total = nonzero = 0
    with torch.no_grad():
        for _, tensor in effective_parameters(model):
            total += tensor.numel()
            nonzero += int(torch.count_nonzero(tensor))
    return total, nonzero


def num_params(model: nn.Module) -> int:
    """``count_params(model)[0]`` without the nonzero pass: every learnable element, shared ones once.

    A parametrized (masked) weight has exactly one learnable ``original`` and ``torch.nn.utils.prune``'s
    ``weight_orig`` is the parameter itself, so the parameter numels add up to the same total.
    """
    return sum(p.numel() for p in model.parameters())
