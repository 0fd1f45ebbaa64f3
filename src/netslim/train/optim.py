"""Optimizers: built from a :class:`TrainConfig`, and rebuilt for a model whose parameters were replaced.

Parameter groups made here carry a ``"netslim_group"`` tag (``"decay"`` or ``"no_decay"``) so that
:func:`rebuild_optimizer` can redo the weight-decay split on a pruned model, whose layers are new, smaller
``Parameter`` objects that the old optimizer knows nothing about.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from netslim.errors import NetslimError
from netslim.train.config import TrainConfig

GROUP_KEY = "netslim_group"

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def _named_trainable(model: nn.Module) -> Iterator[tuple[str, nn.Module, nn.Parameter]]:
    """(name, owning layer, parameter); a masked (parametrized) tensor is reported under its layer and
    tensor name (``fc.bias``), not as ``fc.parametrizations.bias.original``, so decay rules still apply."""
    from torch.nn.utils import parametrize

    for mod_name, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue
        prefix = f"{mod_name}." if mod_name else ""
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                yield prefix + name, module, param
        if parametrize.is_parametrized(module):
            for tensor_name, plist in module.parametrizations.items():
                if plist.original.requires_grad:
                    yield prefix + tensor_name, module, plist.original


def split_decay(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split trainable parameters into (decayed, not decayed).

    Not decayed: every parameter of a normalization layer (BatchNorm, GroupNorm, LayerNorm, InstanceNorm)
    and every bias. Shared parameters are listed once.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for name, module, param in _named_trainable(model):
        if id(param) in seen:
            continue
        seen.add(id(param))
        if (
            isinstance(module, _NORM_TYPES)
            or getattr(module, "netslim_channel_scale", False)
            or name.endswith("bias")
        ):
            no_decay.append(param)
        else:
            decay.append(param)
    return decay, no_decay


def param_groups(model: nn.Module, weight_decay: float, decay_bn_and_bias: bool) -> list[dict[str, Any]]:
    """Tagged optimizer parameter groups; one group, or a decay / no-decay pair (empty groups dropped)."""
    if decay_bn_and_bias:
        params = [p for _, _, p in _named_trainable(model)]
        params = list({id(p): p for p in params}.values())
        return [{"params": params, "weight_decay": weight_decay, GROUP_KEY: "all"}]
    decay, no_decay = split_decay(model)
    groups = [
        {"params": decay, "weight_decay": weight_decay, GROUP_KEY: "decay"},
        {"params": no_decay, "weight_decay": 0.0, GROUP_KEY: "no_decay"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, config: TrainConfig) -> Optimizer:
    """The optimizer named by ``config.optimizer`` (SGD, Adam or AdamW) over the trainable parameters."""
    groups = param_groups(model, config.weight_decay, config.decay_bn_and_bias)
    if not groups:
        raise NetslimError("the model has no trainable parameters; unfreeze some before training")
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    raise NetslimError(f"optimizer must be one of sgd, adam, adamw; got {config.optimizer!r}")


def rebuild_optimizer(optimizer: Optimizer, model: nn.Module) -> Optimizer:
    """A new optimizer of the same class and hyper-parameters over ``model``'s current parameters.

    Each group's settings (lr, momentum, weight decay, betas, ..., the scheduler's ``initial_lr``) are kept;
    the parameters are reassigned: for groups made by :func:`build_optimizer` the decay / no-decay split is
    recomputed, and a single untagged group receives every trainable parameter. Optimizer state (momentum
    buffers, Adam moments) is not carried over, since the parameters have new shapes. A learning-rate
    scheduler bound to the old optimizer must be rebuilt too.

    Raises:
        NetslimError: the optimizer has several groups not made by :func:`build_optimizer`, so there is
            no way to tell which new parameter belongs where.
    """
    settings = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    tags = [s.get(GROUP_KEY) for s in settings]
    if tags == [None] or tags == ["all"]:
        params = list({id(p): p for _, _, p in _named_trainable(model)}.values())
        groups = [{**settings[0], "params": params}]
    elif set(tags) <= {"decay", "no_decay"}:
        decay, no_decay = split_decay(model)
        by_tag = {"decay": decay, "no_decay": no_decay}
        groups = [{**s, "params": by_tag[s[GROUP_KEY]]} for s in settings]
        missing = [t for t in ("decay", "no_decay") if t not in tags and by_tag[t]]
        if missing:  # a group that was empty before (e.g. no biases) got members: give it the paired setting
            base = settings[0]
            for tag in missing:
                wd = 0.0 if tag == "no_decay" else base["weight_decay"]
                groups.append({**base, GROUP_KEY: tag, "weight_decay": wd, "params": by_tag[tag]})
        groups = [g for g in groups if g["params"]]
    else:
        raise NetslimError(
            f"cannot rebuild an optimizer with {len(settings)} hand-made parameter groups; build it with "
            "netslim.train.build_optimizer or use a single parameter group"
        )
    # defaults may hold entries the constructor does not take (AdamW's decoupled_weight_decay)
    accepted = inspect.signature(type(optimizer).__init__).parameters
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
    return type(optimizer)(groups, **defaults)
