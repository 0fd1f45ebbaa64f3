"""Weight masks as a ``torch.nn.utils.parametrize`` reparametrization.

Why parametrize and not a forward pre-hook (``torch.nn.utils.prune``): the registration keeps the very same
``Parameter`` object (now at ``module.parametrizations.weight.original``), so optimizers built before
pruning stay valid; ``copy.deepcopy`` works (pytorch/pytorch#37322 affects the hook design); the mask is a
plain ``bool`` buffer, so it is saved in ``state_dict`` and broadcast by DDP like any buffer; and
``module.weight`` is always ``original * mask``, so a masked entry reads as exactly zero no matter what an
optimizer did to ``original``. :class:`netslim.weights.MaskCallback` additionally zeroes the masked
gradients and the masked entries of ``original`` after each step, so momentum, Adam moments and weight
decay cannot accumulate anything there either.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from netslim.errors import PruningError

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class WeightMask(nn.Module):
    """Parametrization ``w -> w * mask`` with a boolean ``mask`` buffer (True = connection kept).

    ``std`` caches the standard deviation of the layer's weights at the first threshold prune (Han's rule
    with a fixed statistic); it is NaN until then and travels with ``state_dict`` and ``deepcopy``.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.bool).clone())
        self.register_buffer("std", torch.tensor(float("nan")))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The weight with pruned entries zeroed."""
        return weight * self.mask

    def extra_repr(self) -> str:
        kept = int(self.mask.sum())
        return f"kept={kept}/{self.mask.numel()}"


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Linear and Conv1d/2d/3d layers of ``model`` by qualified name, in module registration order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)}


def get_mask(module: nn.Module, name: str = "weight") -> WeightMask | None:
    """The :class:`WeightMask` on ``module.<name>``, or None when that tensor is not masked."""
    if not parametrize.is_parametrized(module, name):
        return None
    for p in module.parametrizations[name]:  # type: ignore[index]
        if isinstance(p, WeightMask):
            return p
    return None


def is_masked(module: nn.Module, name: str = "weight") -> bool:
    """Whether ``module.<name>`` carries a netslim weight mask (for a whole model: :func:`has_masks`)."""
    return get_mask(module, name) is not None


def has_masks(model: nn.Module) -> bool:
    """Whether any tensor of ``model`` or its sub-modules carries a netslim weight mask (a masked,
    weight-pruned model, e.g. one :func:`netslim.load` restored)."""
    return next(iter_masks(model), None) is not None


def raw_parameter(module: nn.Module, name: str = "weight") -> nn.Parameter:
    """The trainable tensor behind ``module.<name>``: ``original`` when masked, else the parameter itself."""
    if parametrize.is_parametrized(module, name):
        return module.parametrizations[name].original  # type: ignore[index,return-value]
    param = getattr(module, name)
    if not isinstance(param, nn.Parameter):
        raise PruningError(
            f"{type(module).__name__}.{name} is not a parameter; only parameters can be masked"
        )
    return param


def attach_mask(module: nn.Module, name: str = "weight", mask: torch.Tensor | None = None) -> WeightMask:
    """Mask ``module.<name>`` (all-ones when ``mask`` is None) and return the :class:`WeightMask`.

    On an already masked tensor the existing mask buffer is updated in place (intersected with ``mask``:
    pruned connections never come back), so optimizers, DDP and references to the buffer stay valid.
    """
    param = raw_parameter(module, name)
    if mask is not None and mask.shape != param.shape:
        raise PruningError(f"mask shape {tuple(mask.shape)} does not match {name} shape {tuple(param.shape)}")
    existing = get_mask(module, name)
    if existing is not None:
        if mask is not None:
            existing.mask.logical_and_(mask.to(existing.mask.device, torch.bool))
        _zero_masked(param, existing.mask)
        return existing
    new_mask = torch.ones_like(param, dtype=torch.bool) if mask is None else mask.to(param.device, torch.bool)
    wm = WeightMask(new_mask)
    parametrize.register_parametrization(module, name, wm, unsafe=True)
    _zero_masked(param, wm.mask)
    return wm


def iter_masks(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, WeightMask]]:
    """Yield ``(module_name, module, tensor_name, mask)`` for every masked tensor in ``model``."""
    for mod_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name in list(module.parametrizations.keys()):  # type: ignore[union-attr]
            wm = get_mask(module, tensor_name)
            if wm is not None:
                yield mod_name, module, tensor_name, wm


def _zero_masked(param: torch.Tensor, mask: torch.Tensor) -> None:
    with torch.no_grad():
        param.masked_fill_(~mask, 0.0)


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Set the masked entries of every masked tensor's ``original`` to exactly zero (call after a step)."""
    for _, module, tensor_name, wm in iter_masks(model):
        _zero_masked(raw_parameter(module, tensor_name), wm.mask)


@torch.no_grad()
def mask_gradients(model: nn.Module) -> None:
    """Zero the gradients of masked entries (call after backward, before the optimizer step)."""
    for _, module, tensor_name, wm in iter_masks(model):
        grad = raw_parameter(module, tensor_name).grad
        if grad is not None:
            grad.masked_fill_(~wm.mask, 0.0)


def remove(module: nn.Module, name: str = "weight") -> nn.Module:
    """Make the mask of ``module.<name>`` permanent: a plain Parameter with zeros, no parametrization.

    Like ``torch.nn.utils.prune.remove``, pruning itself is not undone. Any other parametrization registered
    on the same tensor is folded in as well. Returns ``module``.
    """
    if not is_masked(module, name):
        raise PruningError(f"{type(module).__name__}.{name} has no netslim mask to remove")
    _own_class(module)
    parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return module


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a private copy of its generated class.

    ``copy.deepcopy`` of a parametrized module shares the generated ``Parametrized<Cls>`` class, and
    ``remove_parametrizations`` deletes the tensor's property from that class, which would break every
    other copy (the original model loses ``weight`` after a copy is finalized). A private class avoids it.
    """
    cls = type(module)
    attrs = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, attrs)


def finalize(model: nn.Module) -> nn.Module:
    """Fold every netslim mask into its weights in place, leaving plain modules; returns ``model``.

    The zeros stay; masks, parametrizations and cached statistics are gone, so the state dict loads into a
    fresh instance of the architecture and :func:`netslim.save` stores plain tensors.
    """
    for _, module, tensor_name, _ in list(iter_masks(model)):
        remove(module, tensor_name)
    return model


def mask_meta(model: nn.Module) -> dict[str, dict[str, float | None]]:
    """``{"layer.weight": {"std": s}}`` for every masked tensor: what a checkpoint records so that
    :func:`restore_masks` can rebuild the masks from the stored (folded) weights' exact zeros."""
    out: dict[str, dict[str, float | None]] = {}
    for mod_name, _, tensor_name, wm in iter_masks(model):
        std = float(wm.std)
        out[f"{mod_name}.{tensor_name}" if mod_name else tensor_name] = {
            "std": None if std != std else std  # NaN (no std cached yet) is not valid JSON
        }
    return out


@torch.no_grad()
def restore_masks(model: nn.Module, masks: dict[str, dict[str, float | None]]) -> nn.Module:
    """Re-attach the masks :func:`mask_meta` recorded: each listed tensor is masked where it is exactly zero.

    The stored weights hold every pruned connection as an exact zero, so the rebuilt mask keeps all of them
    pruned (a kept weight that happens to be exactly 0.0 is pruned too, which changes no output). Returns
    ``model``.
    """
    for key, info in masks.items():
        mod_path, _, tensor_name = key.rpartition(".")
        module = model.get_submodule(mod_path) if mod_path else model
        tensor = getattr(module, tensor_name, None)
        if not isinstance(tensor, torch.Tensor):
            raise PruningError(f"the checkpoint lists a mask for {key}, which the model does not have")
        wm = attach_mask(module, tensor_name, tensor.detach() != 0)
        if info and info.get("std") is not None:
            wm.std.fill_(float(info["std"]))  # type: ignore[arg-type]
    return model


def load_masked_state_dict(
    model: nn.Module, state_dict: dict[str, torch.Tensor], strict: bool = True
) -> None:
    """Load a state dict saved from a masked model into ``model``, attaching masks where the dict has them.

    ``model`` may be a fresh (unmasked) instance of the same architecture.
    """
    suffix = ".0.mask"
    for key in state_dict:
        if not key.endswith(suffix) or ".parametrizations." not in key:
            continue
        mod_path, _, rest = ("." + key).partition(".parametrizations.")
        mod_path = mod_path.lstrip(".")
        tensor_name = rest[: -len(suffix)]
        module = model.get_submodule(mod_path) if mod_path else model
        if not is_masked(module, tensor_name):
            attach_mask(module, tensor_name)
    model.load_state_dict(state_dict, strict=strict)
