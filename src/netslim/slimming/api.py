"""Network Slimming, one call: ``plan`` (choose channels), ``apply`` (cut them), ``slim`` (both).

Typical use::

    result = netslim.slim(model, torch.randn(1, 3, 32, 32), ratio=0.7)
    print(result.summary())
    small = result.model
"""

from __future__ import annotations

import copy
import functools
import inspect
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netslim._inputs import call_model
from netslim.errors import PruningError
from netslim.slimming.channel_groups import analyze
from netslim.slimming.gates import fold_gates, gated_layers, is_gate, strip_plan_record
from netslim.slimming.plan import PruningPlan
from netslim.slimming.plan_builder import build_plan
from netslim.slimming.readiness import CutReadinessWarning, cut_readiness
from netslim.slimming.scores import group_scores
from netslim.slimming.surgery import cut
from netslim.slimming.threshold import check_ratio, select_channels
from netslim.slimming.tracing import output_tensors

_BN = nn.modules.batchnorm._BatchNorm


def plan(
    model: nn.Module,
    example_inputs: Any,
    ratio: float = 0.7,
    *,
    ignored_layers: Iterable[nn.Module | str] | None = None,
    scope: str = "global",
    layer_ratios: Mapping[str, float] | None = None,
    score_reduce: str = "max",
    min_channels: int = 1,
    max_layer_ratio: float | None = None,
    round_to: int = 1,
) -> PruningPlan:
    """Choose the channels to remove by BatchNorm |gamma| and return a :class:`PruningPlan`.

    ``ratio`` is the fraction of prunable channels removed (global scope: one threshold over all of them;
    local: that fraction of each group). ``min_channels`` and ``max_layer_ratio`` cap what one group loses;
    the channels a cap keeps are not replaced by others (the threshold is not raised), so fewer than
    ``ratio`` may go, with a warning saying how many. The plan's ``readiness`` (a
    :class:`~netslim.slimming.readiness.CutReadiness`) says how clean the cut is; when the cut reaches
    into the bulk of the |gamma| distribution (threshold above 0.1 x the strongest 10%' mean |gamma|), one
    :class:`~netslim.slimming.readiness.CutReadinessWarning` says what to do. Raises PruningError for an
    out-of-range ratio, a model without (prunable) BatchNorm, or (with ``min_channels=0``) a ratio that
    would empty a layer; TracingError if the model does not run on ``example_inputs``.
    """
    return _plan(
        model,
        example_inputs,
        ratio,
        ignored_layers=ignored_layers,
        scope=scope,
        layer_ratios=layer_ratios,
        score_reduce=score_reduce,
        min_channels=min_channels,
        max_layer_ratio=max_layer_ratio,
        round_to=round_to,
    )


def _plan(
    model: nn.Module,
    example_inputs: Any,
    ratio: float,
    *,
    ignored_layers: Any,
    scope: str,
    layer_ratios: Mapping[str, float] | None,
    score_reduce: str,
    min_channels: int,
    max_layer_ratio: float | None,
    round_to: int,
    stacklevel: int = 3,
) -> PruningPlan:
    """:func:`plan`; the readiness warning points ``stacklevel`` frames up (at the user's call)."""
    check_ratio(ratio, "ratio")
    if not any(isinstance(m, _BN) or is_gate(m) for m in model.modules()):
        raise PruningError(
            "the model has no BatchNorm layer: Network Slimming scores channels by BatchNorm "
            "scaling factors; add channel gates (netslim.add_channel_gates), add BatchNorm "
            "after convolutions, or use netslim.weights"
        )
    graph = analyze(model, example_inputs, ignored_layers)
    scores = group_scores(model, graph, score_reduce)
    if not scores:
        normed = [g for g in graph.groups if any(m.role in ("norm", "select") for m in g.members)]
        reasons = sorted({g.reason for g in normed})
        raise PruningError(
            "no BatchNorm channels can be pruned in this model ("
            + "; ".join(reasons[:5])
            + "); check ignored_layers or the warnings above"
        )
    keep, meta = select_channels(
        graph,
        scores,
        ratio,
        scope=scope,
        layer_ratios=layer_ratios,
        min_channels=min_channels,
        max_layer_ratio=max_layer_ratio,
        round_to=round_to,
    )
    meta.update(
        ratio=ratio,
        scope=scope,
        score_reduce=score_reduce,
        min_channels=min_channels,
        max_layer_ratio=max_layer_ratio,
        round_to=round_to,
        layer_ratios=dict(layer_ratios) if layer_ratios else None,
    )
    result = build_plan(model, graph, keep, meta)
    result.readiness = cut_readiness(scores, keep)
    if result.readiness.in_bulk:
        warnings.warn(result.readiness.advice(ratio), CutReadinessWarning, stacklevel=stacklevel)
    return result


def apply(
    model: nn.Module, plan: PruningPlan, *, fold_beta: bool | str = True, inplace: bool = False
) -> nn.Module:
    """Return a physically smaller copy of ``model`` (or ``model`` itself if ``inplace``) cut as planned.

    With ``fold_beta`` the removed channels' constant act(beta) is folded into the next layer (True or
    "mean": zero-padded convs get the spatial mean of the contribution; "interior": its value away from
    the borders; "exact": the interior value plus a border correction attached to the conv, so the result
    computes what the masked model computes at any input size (:mod:`netslim.slimming.border`); False:
    dropped, the reference code's plain cut). Channel gates (netslim.add_channel_gates)
    are multiplied into their layers and removed, so the result has no gate modules. The plan
    (with any bias the folding added) is appended to ``new_model.netslim_plans`` so ``netslim.load`` can
    replay it.
    """
    if not isinstance(plan, PruningPlan):
        raise PruningError(f"apply expects a PruningPlan, got {type(plan).__name__}; use netslim.plan(...)")
    if inplace:
        new = model
        added, bordered = cut(new, plan, fold_beta)
    else:
        new, replaced = _copy_for_cut(model, plan)
        added, bordered = cut(new, plan, fold_beta)
        _unshare(replaced)
    record = plan.to_dict()
    record["added_bias"] = sorted(set(record["added_bias"]) | set(added))
    record["added_border"] = sorted(set(record["added_border"]) | set(bordered))
    if gated_layers(new):  # channel gates: multiply them into their layers, restore the plain modules
        record = strip_plan_record(record, fold_gates(new))
    new.netslim_plans = [*getattr(model, "netslim_plans", []), record]
    return new


_REPLACED = ("weight", "bias", "running_mean", "running_var")
_ATOMIC = (int, float, bool, str, type(None))
_Shared = list[tuple[nn.Module, str, str, Any]]  # (new module, "_parameters"/"_buffers", name, tensor)
_Shared = list[tuple[nn.Module, str, str, Any]]  # (new module, "_parameters"/"_buffers", name, tensor)
_MODULE_STATE = (nn.Module.__reduce_ex__, nn.Module.__getstate__, nn.Module.__setstate__)


def _copy_for_cut(model: nn.Module, plan: PruningPlan) -> tuple[nn.Module, _Shared]:
    """A deep copy of ``model`` whose to-be-cut tensors are still the originals (the cut slices them afresh).

    Returns the copy and ``(new module, name, original tensor)`` for each tensor left shared, so
    :func:`_unshare` can clone any the cut did not replace. Tensors tied to a second, uncut module are
    copied there as usual.
    """
    planned: dict[str, tuple[str, ...]] = {}
    for fqn, lp in plan.layers.items():
        out_cut = lp.get("out_keep") is not None
        planned[fqn] = _REPLACED if out_cut else ("weight",) if lp.get("in_keep") is not None else ()
    memo: dict[int, Any] = {}
    plans = getattr(model, "netslim_plans", None)
    if plans is not None:  # replaced by apply with a new list (the old records are immutable history)
        memo[id(plans)] = plans
    replaced: _Shared = []
    return _clone(model, "", memo, planned, replaced), replaced


@functools.cache
def _plain_module(cls: type) -> bool:
    """True if ``cls`` deep-copies the default way: ``__getstate__`` state, then ``__setstate__``."""
    return (
        getattr(cls, "__deepcopy__", None) is None
        and cls.__reduce_ex__ is nn.Module.__reduce_ex__
        and cls.__reduce__ is nn.Module.__reduce__
    )


def _clone(
    m: nn.Module, fqn: str, memo: dict[int, Any], planned: dict[str, tuple[str, ...]], replaced: _Shared
) -> nn.Module:
    """What ``copy.deepcopy`` does for a module tree, without its generic per-object reduce machinery."""
    cls = type(m)
    if not _plain_module(cls):
        return copy.deepcopy(m, memo)
    new = cls.__new__(cls)
    memo[id(m)] = new
    skip = planned.get(fqn, ())
    old = m.__getstate__()
    if type(old) is not dict:
        return copy.deepcopy(m, memo)
    state = {}
    for key, value in old.items():
        if key == "_modules":
            value = {
                name: None
                if c is None
                else memo[id(c)]
                if id(c) in memo
                else _clone(c, f"{fqn}.{name}" if fqn else name, memo, planned, replaced)
                for name, c in value.items()
            }
        elif key == "_parameters" or key == "_buffers":
            store = {}
            for name, t in value.items():
                if name in skip and t is not None:
                    store[name] = t
                    replaced.append((new, key, name, t))
                else:
                    store[name] = copy.deepcopy(t, memo)
            value = store
        elif type(value) in _ATOMIC or (type(value) is tuple and all(type(v) in _ATOMIC for v in value)):
            pass
        elif not value and type(value) in (dict, OrderedDict, set, list):
            value = type(value)()
        else:
            value = copy.deepcopy(value, memo)
        state[key] = value
    new.__setstate__(state)
    return new


def _unshare(replaced: _Shared) -> None:
    """Clone any to-be-cut tensor the cut left in place (a custom handler may keep some)."""
    with torch.no_grad():
        for m, key, name, t in replaced:
            store = getattr(m, key)
            if store.get(name) is t:
                store[name] = (
                    nn.Parameter(t.detach().clone(), t.requires_grad)
                    if isinstance(t, nn.Parameter)
                    else t.clone()
                )


@dataclass
class SlimResult:
    """Outcome of :func:`slim`: the slimmed model, its plan and before/after sizes.

    ``flops_before``/``flops_after`` come from :func:`netslim.measure`'s counter (FLOPs = 2 x MACs of
    conv/linear) and are counted on first access, one forward each, so ``slim`` runs no forward pass
    beyond the engine's own. ``flops_before`` counts the input model as it is at that first access.
    """

    model: nn.Module
    plan: PruningPlan
    params_before: int
    params_after: int
    _flops: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def _counted(self, key: str) -> int:
        value = self._flops.get(key)
        if callable(value):
            value = self._flops[key] = value()
        return int(value) if value is not None else 0

    @property
    def flops_before(self) -> int:
        """FLOPs of the input model (counted on first access)."""
        return self._counted("before")

    @property
    def flops_after(self) -> int:
        """FLOPs of the slimmed model (counted on first access)."""
        return self._counted("after")

    def summary(self) -> str:
        """A text table: per-layer widths before/after, then params and FLOPs before/after."""
        rows = [str(self.plan), ""]
        for label, a, b in (
            ("params", self.params_before, self.params_after),
            ("FLOPs", self.flops_before, self.flops_after),
        ):
            pct = 100.0 * (1 - b / a) if a else 0.0
            rows.append(f"{label:<7} {a:>14,} -> {b:>14,}  ({pct:.1f}% removed)")
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable summary (plan plus sizes)."""
        return {
            "plan": self.plan.to_dict(),
            "params_before": self.params_before,
            "params_after": self.params_after,
            "flops_before": self.flops_before,
            "flops_after": self.flops_after,
        }


def count(model: nn.Module, example_inputs: Any) -> tuple[int, int]:
    """(parameters, FLOPs) of one forward pass, as :func:`netslim.measure` counts them (FLOPs = 2 x MACs)."""
    from netslim.measurement.counter import count as count_costs
    from netslim.measurement.params import num_params

    return num_params(model), 2 * count_costs(model, example_inputs, warn=False).macs


_PLAN_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(plan).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
}


def slim(
    model: nn.Module,
    example_inputs: Any,
    ratio: float = 0.7,
    *,
    fold_beta: bool | str = True,
    **plan_kwargs: Any,
) -> SlimResult:
    """Plan and apply Network Slimming in one call; returns a :class:`SlimResult` (input model untouched)."""
    kwargs = dict(_PLAN_DEFAULTS)
    unknown = sorted(set(plan_kwargs) - set(kwargs))
    if unknown:
        raise TypeError(f"slim() got unexpected keyword arguments {unknown}")
    kwargs.update(plan_kwargs)
    p = _plan(model, example_inputs, ratio, **kwargs)
    new = apply(model, p, fold_beta=fold_beta)
    from netslim.measurement.params import num_params

    flops = {
        "before": lambda: count(model, example_inputs)[1],
        "after": lambda: count(new, example_inputs)[1],
    }
    return SlimResult(new, p, num_params(model), num_params(new), flops)


def masked_model(model: nn.Module, plan: PruningPlan, *, zero_beta: bool = True) -> nn.Module:
    """A copy of ``model`` with the planned-away BatchNorm channels' gamma (and beta) set to zero."""
    masked = copy.deepcopy(model)
    mods = dict(masked.named_modules())
    with torch.no_grad():
        for fqn, lp in plan.layers.items():
            if lp["kind"] != "bn" or lp.get("out_keep") is None:
                continue
            bn = mods[fqn]
            gone = torch.ones(lp["out_before"], dtype=torch.bool)
            gone[torch.tensor(lp["out_keep"], dtype=torch.long)] = False
            if bn.weight is not None:
                bn.weight[gone] = 0
                if zero_beta:
                    bn.bias[gone] = 0
    return masked


def _rel_err(a: Any, b: Any) -> float:
    ta, tb = output_tensors(a), output_tensors(b)  # dicts, ModelOutput, dataclasses, tuples
    num = max(float((x - y).abs().max()) for x, y in zip(ta, tb))
    den = max(float(x.abs().max()) for x in ta)
    return num / max(den, 1e-12)


def fold_drift(model: nn.Module, plan: PruningPlan, slimmed: nn.Module, example_inputs: Any) -> float:
    """Relative max error of ``slimmed`` (``model`` cut by ``plan``) against the masked model (the
    planned-away channels' gamma set to 0, beta kept) on ``example_inputs``, both in eval mode: rounding
    error only when the cut computes what the masked net computes. ``slimmed`` keeps its train/eval mode."""
    reference = masked_model(model, plan, zero_beta=False).eval()
    training = slimmed.training
    slimmed.eval()
    try:
        with torch.no_grad():
            return _rel_err(call_model(reference, example_inputs), call_model(slimmed, example_inputs))
    finally:
        slimmed.train(training)


def folding_error(model: nn.Module, plan: PruningPlan, example_inputs: Any) -> dict[str, float]:
    """Relative max error of the slimmed model vs the masked one (gamma = 0, beta kept), eval mode.

    Returns ``{"folded": ..., "folded_interior": ..., "folded_exact": ..., "plain_cut": ...}``: with the
    default (mean) beta folding, with the interior-exact folding, with the exact folding (border correction
    included; rounding error only), and with the plain cut that drops the removed channels' beta (as the
    reference code does).
    """
    modes = (
        ("folded", True),
        ("folded_interior", "interior"),
        ("folded_exact", "exact"),
        ("plain_cut", False),
    )
    return {
        key: fold_drift(model, plan, apply(model, plan, fold_beta=fold), example_inputs)
        for key, fold in modes
    }
