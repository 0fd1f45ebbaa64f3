"""Channel-coupling groups: which channels of which layers must be removed together.

Public low-level API (also used for dead-neuron removal in Han-style weight pruning)::

    groups = build_groups(model, example_inputs, ignored_layers=None)   # list[ChannelGroup]
    plan = plan_from_keep(model, example_inputs, {group.index or group.name: kept_channel_indices})

(:func:`~netslim.slimming.plan_builder.plan_from_keep` lives with the plan building.) :func:`analyze` also
returns the :class:`Graph` the channel selection and the plan building read.

A :class:`ChannelGroup` is a set of coupled channels of equal ``size``: channel ``i`` of the group is one
channel that several layers share (a conv's output filter ``i``, the BatchNorm entry that normalises it, the
matching input slice of every consumer, the tied channel of every residual branch). ``group.members`` lists
:class:`Member` entries ``(fqn, role, positions, channels)``: ``role`` is ``"out"`` (conv/linear output
channels), ``"in"`` (conv input channels / linear input features; after a flatten one channel owns a block
of features, after a concat the positions carry the concat offset), ``"norm"`` (BatchNorm channels),
``"select"`` (a pre-activation BatchNorm read through a channel selection) or ``"dw"`` (depthwise conv,
input and output together); ``positions[j]`` of the module's dimension holds group channel ``channels[j]``.
``group.prunable`` is False (with ``group.reason``) when the channels must not change: model inputs and
outputs, ``ignored_layers``, grouped convolutions, unknown ops, a tensor read through a channel selection,
irregular coupling. ``group.scorable`` additionally requires a BatchNorm whose zeroed channels make every
conv/linear read of the group zero, which is what Network Slimming needs.

How BatchNorms join groups: a BatchNorm reading the output of a conv/linear that nothing else reads (the
post-activation pattern conv -> BN) shares that conv's channels. Any other BatchNorm (pre-activation: it
reads a residual trunk, a concatenation or a tensor others read) starts its own channels; when they are
pruned the BN reads its kept channels through a
:class:`~netslim.slimming.channel_select.ChannelSelect` and the shared tensor keeps its width, exactly as
in the paper's pre-activation ResNet and DenseNet code. A BatchNorm reading a concatenation gets one group
per concatenated part (named ``<bn>[a:b]`` after the first), so each part follows its own producer.

Group names are the FQN of the layer that creates the channels (``"<input>"`` for the model input).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netslim.errors import PruningError
from netslim.slimming.tracing import ModRec, Trace, trace_model


@dataclass
class Member:
    """One layer's share of a group: ``positions`` along the module's dim hold group ``channels``."""

    fqn: str
    role: str
    positions: torch.Tensor
    channels: torch.Tensor


@dataclass
class ChannelGroup:
    """A set of coupled channels (see the module docstring)."""

    index: int
    name: str
    size: int
    members: list[Member] = field(default_factory=list)
    prunable: bool = True
    reason: str = ""
    scorable: bool = False

    def layers(self, role: str | None = None) -> list[str]:
        """FQNs of member layers (optionally of one role), in model order."""
        return [m.fqn for m in self.members if role is None or m.role == role]

    def __repr__(self) -> str:
        state = "prunable" if self.prunable else f"fixed: {self.reason}"
        roles = ", ".join(f"{m.fqn}[{m.role}]" for m in self.members[:6])
        more = f", +{len(self.members) - 6}" if len(self.members) > 6 else ""
        return f"ChannelGroup({self.index}, {self.name!r}, size={self.size}, {state}; {roles}{more})"


@dataclass
class Graph:
    """Everything channel selection and plan building need: groups, per-module records, variable maps."""

    groups: list[ChannelGroup]
    trace: Trace
    modules: dict[str, ModRec]
    kinds: dict[str, str]
    split_bns: set[str]
    labels: torch.Tensor
    group_of_var: torch.Tensor
    chan_of_var: torch.Tensor


def components(n: int, edges: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Connected components of ``n`` nodes: each node's label is the smallest node id of its component."""
    labels = torch.arange(n)
    if not edges or n == 0:
        return labels
    a = torch.cat([e[0].reshape(-1) for e in edges])
    b = torch.cat([e[1].reshape(-1) for e in edges])
    while True:
        la, lb = labels[a], labels[b]
        m = torch.minimum(la, lb)
        new = labels.clone()
        new.scatter_reduce_(0, la, m, reduce="amin")
        new.scatter_reduce_(0, lb, m, reduce="amin")
        while True:
            jumped = new[new]
            if torch.equal(jumped, new):
                break
            new = jumped
        if torch.equal(new, labels):
            return labels
        labels = new


def _names(model: nn.Module, layers: Iterable[Any] | None) -> set[str]:
    if not layers:
        return set()
    by_module = {m: n for n, m in model.named_modules()}
    names: set[str] = set()
    known = set(by_module.values())
    for item in layers:
        name = by_module.get(item) if isinstance(item, nn.Module) else item
        if not isinstance(name, str) or name not in known:
            raise PruningError(
                f"ignored layer {item!r} is not a module of this model; pass modules or FQNs "
                "as listed by model.named_modules()"
            )
        names.update(n for n in known if n == name or n.startswith(name + ".") or name == "")
    return names


def _is_inline_bn(tr: Trace, rec: ModRec) -> bool:
    if len(rec.in_ids) != 1:
        return False
    inf = tr.infos.get(rec.in_ids[0])
    if inf is None or inf.producer is None:
        return False
    if tr.modules[inf.producer].kind not in ("conv", "dwconv", "linear"):
        return False
    return all(len(tr.readers.get(t, ())) == 1 for t in inf.chain)


def analyze(model: nn.Module, example_inputs: Any, ignored_layers: Iterable[Any] | None = None) -> Graph:
    """Trace ``model`` and build its channel groups; returns a :class:`Graph`."""
    tr = trace_model(model, example_inputs, _names(model, ignored_layers))
    kinds = {f: r.kind for f, r in tr.modules.items()}
    split = {f for f, r in tr.modules.items() if r.kind == "bn" and not _is_inline_bn(tr, r)}
    links = [(r.in_desc, r.out_desc) for f, r in tr.modules.items() if r.kind == "bn" and f not in split]
    labels = components(tr.n_vars, tr.edges + links)
    n_spaces = len(tr.spaces)
    starts = torch.tensor([sp[0] for sp in tr.spaces], dtype=torch.long)
    sizes = torch.tensor([sp[1] for sp in tr.spaces], dtype=torch.long)
    space_of = torch.repeat_interleave(torch.arange(n_spaces), sizes)
    space_label = components(n_spaces, [(space_of, space_of[labels])])
    # channel numbering: the group's first space (its producer, in model order) numbers the channels
    local = torch.arange(tr.n_vars) - starts[space_of]
    root = (space_label == torch.arange(n_spaces))[space_of]
    chan_of_comp = torch.full((tr.n_vars,), -1, dtype=torch.long)
    chan_of_comp[labels[root]] = local[root]
    chan_of_var = chan_of_comp[labels]
    groups: dict[int, ChannelGroup] = {}
    for gid in torch.unique(space_label).tolist():
        _, n, owner = tr.spaces[gid]
        groups[gid] = ChannelGroup(index=-1, name=owner, size=n)
    for gid in _irregular_spaces(space_of, space_label, sizes, chan_of_var):
        _fix(
            groups[gid],
            "irregular channel coupling (channels of one layer tied to several channels of another)",
        )
    for desc, reason in tr.pins:
        for gid in torch.unique(space_label[space_of[desc]]).tolist():
            _fix(groups[gid], reason)
    _add_members(tr, groups, split, space_label[space_of], chan_of_var)
    ordered = [g for g in groups.values() if g.members]
    for i, g in enumerate(ordered):
        g.index = i
        g.scorable = g.prunable and g.scorable and any(m.role in ("norm", "select") for m in g.members)
    return Graph(ordered, tr, tr.modules, kinds, split, labels, space_label[space_of], chan_of_var)


def _irregular_spaces(
    space_of: torch.Tensor, space_label: torch.Tensor, sizes: torch.Tensor, chan_of_var: torch.Tensor
) -> list[int]:
    """Group labels (in space order) of spaces that are not a permutation of their group's channels."""
    if space_of.numel() == 0:
        return []
    bad = sizes != sizes[space_label]
    bad |= torch.zeros_like(bad).scatter_reduce_(0, space_of, chan_of_var < 0, "amax")
    key = space_of * (int(sizes.max()) + 1) + chan_of_var.clamp(min=0)
    distinct = torch.bincount(torch.unique(key) // (int(sizes.max()) + 1), minlength=sizes.numel())
    bad |= distinct != sizes
    return space_label[torch.nonzero(bad).flatten()].tolist()


def _fix(group: ChannelGroup, reason: str) -> None:
    if group.prunable:
        group.prunable, group.reason = False, reason


def _split_by_group(gl: torch.Tensor, single: bool) -> list[tuple[int, torch.Tensor | None]]:
    """(group label, positions) per group in ``gl``; positions None means all of them (one group)."""
    if single:
        return [(int(gl[0]), None)]
    return [(gid, torch.nonzero(gl == gid).flatten()) for gid in torch.unique(gl).tolist()]


def _add_members(
    tr: Trace,
    groups: dict[int, ChannelGroup],
    split: set[str],
    group_of_var: torch.Tensor,
    chan_of_var: torch.Tensor,
) -> None:
    for g in groups.values():
        g.scorable = True
    recs = [tr.modules[f] for f in tr.order]
    # one gather for every module's channels; a module whose channels all lie in one group (the common
    # case) then needs no per-module unique/nonzero
    descs = [d for r in recs for d in (r.out_desc, r.in_desc)]
    lens = [d.numel() for d in descs]
    flat = torch.cat(descs) if descs else torch.zeros(0, dtype=torch.long)
    gl_all, ch_all = group_of_var[flat], chan_of_var[flat]
    seg = torch.repeat_interleave(torch.arange(len(descs)), torch.tensor(lens, dtype=torch.long))
    lo = torch.full((len(descs),), -1, dtype=torch.long).scatter_reduce_(
        0, seg, gl_all, "amin", include_self=False
    )
    hi = torch.full((len(descs),), -1, dtype=torch.long).scatter_reduce_(
        0, seg, gl_all, "amax", include_self=False
    )
    single = (lo == hi).tolist()
    aranges: dict[int, torch.Tensor] = {}
    off = 0
    for k, rec in enumerate(recs):
        n_out, n_in = lens[2 * k], lens[2 * k + 1]
        gl_out, ch_out = gl_all[off : off + n_out], ch_all[off : off + n_out]
        gl_in, ch_in = gl_all[off + n_out : off + n_out + n_in], ch_all[off + n_out : off + n_out + n_in]
        off += n_out + n_in
        fqn = rec.fqn
        if rec.kind == "gconv" or n_out == 0:
            continue
        bn_role = "select" if fqn in split else "norm"
        role = {"conv": "out", "linear": "out", "dwconv": "dw", "bn": bn_role}[rec.kind]
        for gid, pos in _split_by_group(gl_out, single[2 * k]):
            if pos is None:
                pos = aranges.setdefault(n_out, torch.arange(n_out))
                groups[gid].members.append(Member(fqn, role, pos, ch_out))
            else:
                groups[gid].members.append(Member(fqn, role, pos, ch_out[pos]))
        if rec.kind in ("conv", "linear"):
            if n_in == 0:
                continue
            runs = [(s, e) for segs in rec.in_segs for s, e, dead, expr in segs if not dead and expr is None]
            raw = None
            if runs:
                raw = torch.zeros(n_in, dtype=torch.bool)
                for s, e in runs:
                    raw[s:e] = True
            for gid, pos in _split_by_group(gl_in, single[2 * k + 1]):
                g = groups[gid]
                if pos is None:
                    pos = aranges.setdefault(n_in, torch.arange(n_in))
                    g.members.append(Member(fqn, "in", pos, ch_in))
                    reads_raw = raw is not None and bool(raw.any())
                else:
                    g.members.append(Member(fqn, "in", pos, ch_in[pos]))
                    reads_raw = raw is not None and bool(raw[pos].any())
                if reads_raw and g.scorable:
                    g.scorable = False
                    g.reason = g.reason or f"{fqn} reads these channels before any BatchNorm"
        elif rec.kind == "bn" and fqn in split:
            for gid in torch.unique(gl_in).tolist():
                _fix(groups[gid], f"read through a channel selection by {fqn}")


def build_groups(
    model: nn.Module, example_inputs: Any, ignored_layers: Iterable[Any] | None = None
) -> list[ChannelGroup]:
    """Trace ``model`` on ``example_inputs`` and return its coupled channel groups in model order.

    ``ignored_layers`` (modules or FQNs; containers include their children) keep their input and output
    channels. See the module docstring for what a group holds.
    """
    return analyze(model, example_inputs, ignored_layers).groups
