"""Channel gates: Network Slimming's scaling factors for networks without BatchNorm.

The paper scores channels by BatchNorm's gamma and notes that a net without BN needs a channel-wise scaling
layer in its place. :func:`add_channel_gates` inserts one (a :class:`ChannelGate`, a learnable per-channel
scale held in a parameter named ``gate``) right after each conv/linear whose output channels can be removed
exactly; the layer at ``name`` becomes a :class:`GatedLayer` holding ``name.layer`` (the original module)
and ``name.gate``. From then on the gates behave like BatchNorm gammas:

* :class:`netslim.BNSparsity` penalizes them (a gate has the ``netslim_channel_scale`` marker and exposes
  its scale as ``weight``);
* :func:`netslim.plan` scores channels by ``|gate|`` (a gate joins its layer's channel group like a
  post-activation BatchNorm; a gate at 0 makes the channel exactly 0);
* :func:`netslim.apply`/:func:`netslim.slim` cut the channels, then multiply each surviving gate into its
  layer's weight and bias rows and put the layer back in place of the wrapper (:func:`remove_gates`), so
  the slimmed model has the original module tree, narrower, and no extra op. Its plan record names the
  original layers, so :func:`netslim.load` replays it on a fresh model.

No gate is placed where removing a channel cannot be exact: channels normalized together (LayerNorm over
the channel axis, GroupNorm, InstanceNorm), model outputs, grouped convolutions, ops the channel trace does
not follow, channels that already have a BatchNorm (they are scored by it). :func:`add_channel_gates`
returns a :class:`GateReport` with the gated layers and the reason for each layer left alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netslim.errors import PruningError
from netslim.slimming.surgery import Handler, _param, _put, register_handler

_CHANNEL_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)


class ChannelGate(nn.Module):
    """``y = x * gate`` along dim 1 (channels of a conv output, features of a linear output).

    ``gate`` starts at 1 (the gated model computes what the original computed). ``weight`` is the same
    parameter under the name BatchNorm-scale code looks for; ``bias`` is zeros (a gate has no shift).
    """

    netslim_channel_scale = True  # marker: BNSparsity and the planner treat this like a BN gamma

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Parameter(torch.ones(channels))

    @property
    def weight(self) -> nn.Parameter:  # type: ignore[override]
        """The gate values (alias of ``gate``), as BatchNorm-scale code reads them."""
        return self.gate

    @property
    def bias(self) -> torch.Tensor:
        """Zeros: a zeroed gate channel outputs exactly 0 (what beta folding needs)."""
        return torch.zeros_like(self.gate)

    @property
    def num_features(self) -> int:
        """Number of gated channels."""
        return self.gate.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[1] = -1
        return x * self.gate.view(shape)

    def extra_repr(self) -> str:
        return str(self.gate.numel())


class GatedLayer(nn.Module):
    """A conv/linear ``layer`` followed by its :class:`ChannelGate` ``gate`` (what add_channel_gates puts)."""

    def __init__(self, layer: nn.Module, gate: ChannelGate) -> None:
        super().__init__()
        self.layer = layer
        self.gate = gate

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.gate(self.layer(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        # parents that read e.g. `self.conv.out_channels` keep working on the wrapped layer
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules")
            if modules is None or "layer" not in modules or name.startswith("__"):
                raise
            return getattr(modules["layer"], name)


@register_handler(ChannelGate)
class GateHandler(Handler):
    """ChannelGate: keep the gate values of the kept channels."""

    def prune_out(self, m: nn.Module, idx: torch.Tensor) -> None:
        _put(m, gate=_param(m.gate, idx))

    prune_in = prune_out


@dataclass
class GateReport:
    """What :func:`add_channel_gates` did: ``gated`` layer names and ``skipped`` {layer: reason}."""

    gated: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        rows = [f"channel gates: {len(self.gated)} layers gated, {len(self.skipped)} left alone"]
        rows += [f"  {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(rows)


def is_gate(m: nn.Module) -> bool:
    """True for a channel-scale module (a :class:`ChannelGate` or anything with its marker)."""
    return bool(getattr(m, "netslim_channel_scale", False))


def gated_layers(model: nn.Module) -> list[str]:
    """Names of the :class:`GatedLayer` wrappers in ``model`` (the names of the gated layers)."""
    return [name for name, m in model.named_modules() if isinstance(m, GatedLayer)]


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    if not name:
        raise PruningError("the model itself is a single layer; wrap it in a container to gate it")
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _out_channels(m: nn.Module) -> int:
    return int(m.weight.shape[0])


def wrap_layers(model: nn.Module, names: Iterable[str]) -> nn.Module:
    """Put a fresh gate (all ones) after each named conv/linear, in place; returns ``model``.

    The structural half of :func:`add_channel_gates`, used by :func:`netslim.load` to rebuild a saved gated
    model (the gate values then come from the checkpoint).
    """
    for name in names:
        layer = model.get_submodule(name)
        if isinstance(layer, GatedLayer):
            continue
        gate = ChannelGate(_out_channels(layer)).to(layer.weight.device, layer.weight.dtype)
        _set(model, name, GatedLayer(layer, gate))
    return model


def _unwrap(model: nn.Module, names: Iterable[str]) -> None:
    for name in names:
        wrapper = model.get_submodule(name)
        if isinstance(wrapper, GatedLayer):
            _set(model, name, wrapper.layer)


def _norm_labels(graph: Any, seen: dict[str, torch.Tensor]) -> dict[str, set[int]]:
    """Channel-group labels of the tensor each channel-normalization module read during the trace."""
    out = {}
    for name, t in seen.items():
        info = graph.trace.infos.get(id(t))
        if info is not None and info.desc.numel():
            out[name] = set(graph.group_of_var[info.desc].tolist())
    return out


def _tied_norm(graph: Any, fqn: str, norm_labels: dict[str, set[int]]) -> str | None:
    labels = set(graph.group_of_var[graph.modules[fqn].out_desc].tolist())
    return next((name for name, lab in norm_labels.items() if labels & lab), None)


def _analyze(model: nn.Module, example_inputs: Any, ignored: Any) -> tuple[Any, dict[str, set[int]]]:
    """The channel graph plus, per LayerNorm/GroupNorm-like module, the groups of the channels it reads."""
    from netslim.slimming.channel_groups import analyze

    seen: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Any:
        def record(mod: nn.Module, args: tuple) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen.setdefault(name, args[0])  # kept alive, so its id stays valid for the lookup

        return record

    handles = [
        m.register_forward_pre_hook(hook(n))
        for n, m in model.named_modules()
        if isinstance(m, _CHANNEL_NORMS)
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ops the trace does not follow: reported per layer
            graph = analyze(model, example_inputs, ignored)
    finally:
        for h in handles:
            h.remove()
    return graph, _norm_labels(graph, seen)


_NORM_REASON = (
    "its channels are normalized together by {} (LayerNorm/GroupNorm over channels): removing "
    "one would change the others"
)


def add_channel_gates(
    model: nn.Module, example_inputs: Any, *, ignored_layers: Iterable[nn.Module | str] | None = None
) -> GateReport:
    """Insert a :class:`ChannelGate` after every conv/linear whose output channels can be cut exactly.

    Modifies ``model`` in place (the layer ``name`` becomes ``GatedLayer`` with ``name.layer`` and
    ``name.gate``; the gated model computes exactly what it computed before) and returns a
    :class:`GateReport` listing the gated layers and, for every other conv/linear, why it got no gate.
    Channels scored by a BatchNorm get none (the BN is their scale). Raises PruningError when no layer
    can be gated; TracingError if the model does not run on ``example_inputs``.
    """
    graph, norm_labels = _analyze(model, example_inputs, ignored_layers)
    report = GateReport()
    candidates: list[str] = []
    wrapped = gated_layers(model)
    inside = {f"{w}.layer" for w in wrapped}
    for fqn, rec in graph.modules.items():
        if rec.kind not in ("conv", "linear", "dwconv") or fqn in inside:  # already gated: left as it is
            continue
        groups = [g for g in graph.groups if any(m.fqn == fqn and m.role in ("out", "dw") for m in g.members)]
        norm = _tied_norm(graph, fqn, norm_labels)
        if not groups:
            report.skipped[fqn] = "its output channels are fixed (grouped convolution)"
        elif any(g.scorable for g in groups):
            report.skipped[fqn] = "scored by its BatchNorm"
        elif norm is not None:
            report.skipped[fqn] = _NORM_REASON.format(norm)
        elif not all(g.prunable for g in groups):
            report.skipped[fqn] = next(g.reason for g in groups if not g.prunable)
        else:
            candidates.append(fqn)
    for fqn, m in model.named_modules():
        if (
            isinstance(m, nn.modules.conv._ConvNd | nn.Linear)
            and fqn not in graph.modules
            and fqn not in inside
        ):
            report.skipped[fqn] = (
                "the channel trace does not follow it (e.g. nn.Linear on a channels-last "
                "tensor, or not called on the example inputs)"
            )
    wrap_layers(model, candidates)
    gated_graph, _ = _analyze(model, example_inputs, ignored_layers)
    bad: list[str] = []
    for fqn in candidates:
        gate = f"{fqn}.gate"
        groups = [g for g in gated_graph.groups if any(m.fqn == gate for m in g.members)]
        failing = [g for g in groups if not g.scorable]
        if failing or not groups:
            bad.append(fqn)
            reason = failing[0].reason if failing else "the gate is not on the channel path"
            report.skipped[fqn] = reason or "a reader does not see zeroed channels as zero"
        else:
            report.gated.append(fqn)
    _unwrap(model, bad)
    if not report.gated:
        raise PruningError("no conv/linear output in this model can be gated exactly:\n" + str(report))
    return report


def fold_gates(model: nn.Module) -> list[str]:
    """Multiply every gate into its layer's weight and bias rows and unwrap the layer, in place.

    The model then computes the same function without any gate module. Returns the unwrapped names.
    """
    names = gated_layers(model)
    with torch.no_grad():
        for name in names:
            wrapper = model.get_submodule(name)
            layer, g = wrapper.layer, wrapper.gate.gate.detach()
            shape = [-1] + [1] * (layer.weight.dim() - 1)
            layer.weight.mul_(g.to(layer.weight.dtype).view(shape))
            if getattr(layer, "bias", None) is not None:
                layer.bias.mul_(g.to(layer.bias.dtype))
    _unwrap(model, names)
    return names


def _rename(fqn: str, wrappers: set[str]) -> str | None:
    """The name ``fqn`` has once the wrappers are gone (None for a gate itself)."""
    head, _, tail = fqn.rpartition(".")
    if head in wrappers:
        return head if tail == "layer" else None
    for w in wrappers:  # a module below a wrapped layer (rare: a conv subclass with children)
        if fqn.startswith(f"{w}.layer."):
            return w + fqn[len(w) + len(".layer") :]
    return fqn


def strip_plan_record(record: dict[str, Any], wrappers: Sequence[str]) -> dict[str, Any]:
    """A plan record made on the gated model, renamed for the model without gates (gate layers dropped).

    Beta folds are dropped from the record: they were applied during the cut, and replaying a saved plan
    never folds.
    """
    names = set(wrappers)
    layers = {}
    for fqn, lp in record.get("layers", {}).items():
        new = _rename(fqn, names)
        if new is not None:
            layers[new] = lp

    def renamed(key: str) -> list[str]:
        return sorted({n for n in (_rename(f, names) for f in record.get(key, [])) if n})

    meta = dict(record.get("meta", {}))
    meta["gates"] = sorted(names)
    if isinstance(meta.get("groups"), list):
        meta["groups"] = [
            {**g, "name": _rename(str(g.get("name")), names) or g.get("name")} for g in meta["groups"]
        ]
    return {
        **record,
        "layers": layers,
        "folds": [],
        "added_bias": renamed("added_bias"),
        "added_border": renamed("added_border"),
        "meta": meta,
    }
