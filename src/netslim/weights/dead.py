"""Physically remove neurons/channels that weight pruning left without inputs or without outputs.

Han et al. 2015 §3.5: a neuron with zero input connections or zero output connections "may be safely
pruned". This module finds them and removes them with the channel engine of Network Slimming
(:func:`netslim.slimming.build_groups` / ``plan_from_keep`` and :func:`netslim.slimming.api.apply`),
so coupled layers (BatchNorm, residual ties, flatten -> Linear) are narrowed consistently and the result is
a plain, smaller model that :func:`netslim.load` can rebuild.

* **No outputs**: every consumer's weights reading the channel are zero. Removing it changes nothing.
* **No inputs**: every producer row of the channel is zero, so it outputs a constant (``act(bias)``, through
  any BatchNorm). The constant each consumer reads is measured on the example inputs; its contribution is
  added to the consumer's bias and the channel removed. This is exact for Linear consumers and for conv
  consumers without padding; a channel whose constant would be non-zero at a padded conv's border, whose
  consumer has no bias, or whose value is not constant across the example batch is kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netslim._inputs import call_model
from netslim.weights.masks import finalize

_MAX_PASSES = 8  # removing a dead neuron can starve the next layer's neuron; repeat until nothing changes


@dataclass
class DeadNeuronResult:
    """The smaller model, parameter counts before/after and removed channels per group and pass."""

    model: nn.Module
    params_before: int
    params_after: int
    removed: list[dict[str, int]] = field(default_factory=list)


def _run(model: nn.Module, example_inputs: Any) -> None:
    with torch.no_grad():
        call_model(model, example_inputs)


def _capture_inputs(model: nn.Module, example_inputs: Any, names: set[str]) -> dict[str, torch.Tensor]:
    mods = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        mods[n].register_forward_pre_hook(lambda _m, a, n=n: seen.setdefault(n, a[0].detach())) for n in names
    ]
    try:
        _run(model, example_inputs)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _zero_along(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Per index of ``dim``: whether the weight slice is all zero."""
    return weight.detach().transpose(0, dim).flatten(1).abs().sum(1) == 0


def _dead_flags(mods: dict[str, nn.Module], group: Any) -> tuple[torch.Tensor, torch.Tensor]:
    no_in = torch.ones(group.size, dtype=torch.bool)
    no_out = torch.ones(group.size, dtype=torch.bool)
    has_out = has_in = False
    for m in group.members:
        if m.role == "out":
            has_out = True
            zero = _zero_along(mods[m.fqn].weight, 0)
            no_in[m.channels[~zero[m.positions]]] = False
        elif m.role == "in":
            has_in = True
            zero = _zero_along(mods[m.fqn].weight, 1)
            no_out[m.channels[~zero[m.positions]]] = False
    return no_in & has_out, no_out & has_in


def _fold(
    mods: dict[str, nn.Module], group: Any, channels: torch.Tensor, inputs: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Bias deltas folding the constant outputs of ``channels`` into consumers: (deltas, unfoldable)."""
    deltas: dict[str, torch.Tensor] = {}
    bad = torch.zeros(group.size, dtype=torch.bool)
    chosen = torch.zeros(group.size, dtype=torch.bool)
    chosen[channels] = True
    for m in group.members:
        if m.role != "in":
            continue
        sel = chosen[m.channels]
        pos, chan = m.positions[sel], m.channels[sel]
        if pos.numel() == 0:
            continue
        layer, x = mods[m.fqn], inputs.get(m.fqn)
        if x is None:
            bad[chan] = True
            continue
        values = x[:, pos].flatten(2) if x.dim() > 2 else x[:, pos].unsqueeze(-1)  # B, P, spatial
        ref = values[:1, :, :1]
        constant = ((values - ref).abs() <= 1e-6 * (1 + ref.abs())).all(0).all(-1)  # per position
        v = ref.flatten()
        w = layer.weight.detach()[:, pos]
        padded = isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d) and any(
            p != 0 for p in (layer.padding if isinstance(layer.padding, tuple) else (1,))
        )
        needs_bias = v != 0
        ok = constant & ~(needs_bias & (padded or layer.bias is None))
        bad[chan[~ok]] = True
        w_sum = w.flatten(2).sum(2) if w.dim() > 2 else w
        delta = w_sum[:, ok] @ v[ok].to(w_sum.dtype)
        deltas[m.fqn] = deltas.get(m.fqn, torch.zeros_like(delta)) + delta
    return deltas, bad


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def remove_dead_neurons(
    model: nn.Module, example_inputs: Any, ignored_layers: Any = None
) -> DeadNeuronResult:
    """Return a physically smaller copy of ``model`` without dead neurons/channels (same outputs).

    ``model`` may still carry masks (a finalized copy is used). ``example_inputs`` should be a small batch
    of real inputs (at least 2 samples, so constant channels can be told apart). ``ignored_layers`` keep
    their channels. See the module docstring for the rules; a group always keeps at least one channel.
    """
    from netslim.slimming.api import apply
    from netslim.slimming.channel_groups import build_groups
    from netslim.slimming.plan_builder import plan_from_keep

    work = finalize(copy.deepcopy(model)).eval()
    result = DeadNeuronResult(model=work, params_before=_count(work), params_after=_count(work))
    for _ in range(_MAX_PASSES):
        groups = [
            g
            for g in build_groups(work, example_inputs, ignored_layers)
            if g.prunable and not any(m.role in ("select", "dw") for m in g.members)
        ]
        mods = dict(work.named_modules())
        inputs = _capture_inputs(
            work, example_inputs, {m.fqn for g in groups for m in g.members if m.role == "in"}
        )
        keep: dict[int, list[int]] = {}
        all_deltas: dict[str, torch.Tensor] = {}
        removed: dict[str, int] = {}
        for g in groups:
            no_in, no_out = _dead_flags(mods, g)
            gone = no_out.clone()
            fold_candidates = torch.nonzero(no_in & ~no_out).flatten()
            if fold_candidates.numel():
                deltas, bad = _fold(mods, g, fold_candidates, inputs)
                gone |= no_in & ~bad
            if bool(gone.all()):
                gone[0] = False  # the engine keeps every group non-empty
            if not bool(gone.any()):
                continue
            if fold_candidates.numel():
                folded = torch.nonzero(gone & no_in & ~no_out).flatten()
                deltas, _ = _fold(mods, g, folded, inputs)
                for fqn, d in deltas.items():
                    all_deltas[fqn] = all_deltas.get(fqn, torch.zeros_like(d)) + d
            keep[g.index] = torch.nonzero(~gone).flatten().tolist()
            removed[g.name] = int(gone.sum())
        if not keep:
            break
        with torch.no_grad():
            for fqn, delta in all_deltas.items():
                if mods[fqn].bias is not None:
                    mods[fqn].bias.add_(delta.to(mods[fqn].bias.dtype))
        plan = plan_from_keep(work, example_inputs, keep, ignored_layers)
        work = apply(work, plan, fold_beta=False, inplace=True)
        result.removed.append(removed)
    result.model = work
    result.params_after = _count(work)
    return result
