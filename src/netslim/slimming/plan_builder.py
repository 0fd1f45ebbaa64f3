"""Plan building: turn keep masks per channel group into a :class:`PruningPlan`.

:func:`build_plan` writes each layer's kept output/input channels and the beta-fold records (which removed
channels' constant output folds into which consumer, as an expression of BatchNorm betas);
:func:`plan_from_keep` builds a plan from kept channel indices chosen by the caller (used for dead-neuron
removal in Han-style weight pruning).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from netslim.errors import PruningError
from netslim.slimming.channel_groups import Graph, analyze
from netslim.slimming.plan import PruningPlan


def build_plan(
    model: nn.Module, graph: Graph, keep: Mapping[int, torch.Tensor], meta: dict[str, Any]
) -> PruningPlan:
    """Turn keep masks per group into a :class:`PruningPlan` (layer keep lists plus beta-fold records)."""
    mods = dict(model.named_modules())
    # masks only for the layers a pruned group touches; every other layer keeps all its channels
    out_masks: dict[str, torch.Tensor] = {}
    in_masks: dict[str, torch.Tensor] = {}
    for g in graph.groups:
        mask = keep.get(g.index)
        if mask is None or bool(mask.all()):
            continue
        for m in g.members:
            gone = m.positions[~mask[m.channels]]
            if gone.numel() == 0:
                continue
            masks, desc = (
                (in_masks, graph.modules[m.fqn].in_desc)
                if m.role == "in"
                else (out_masks, graph.modules[m.fqn].out_desc)
            )
            if m.fqn not in masks:
                masks[m.fqn] = torch.ones(desc.numel(), dtype=torch.bool)
            masks[m.fqn][gone] = False
    plan = PruningPlan(meta=dict(meta))
    for f, rec in graph.modules.items():
        om, im = out_masks.get(f), in_masks.get(f)
        kind = rec.kind
        plan.layers[f] = {
            "kind": kind,
            "type": type(mods[f]).__name__,
            "out_before": int(rec.out_desc.numel()),
            "in_before": int(rec.in_desc.numel()) if kind in ("conv", "linear") else None,
            "out_keep": None if om is None else torch.nonzero(om).flatten().tolist(),
            "in_keep": None
            if im is None or kind not in ("conv", "linear")
            else torch.nonzero(im).flatten().tolist(),
            "select": f in graph.split_bns and om is not None,
        }
    for lp in plan.layers.values():  # width of the pruned dimension, for reports
        by_out = lp["kind"] in ("bn", "dwconv") or lp["out_keep"] is not None or not lp["in_before"]
        side = "out" if by_out else "in"
        lp["before"] = lp[f"{side}_before"]
        lp["after"] = lp["before"] if lp[f"{side}_keep"] is None else len(lp[f"{side}_keep"])
    plan.folds = _folds(graph, in_masks)
    plan.meta["groups"] = [
        {"name": g.name, "size": g.size, "kept": int(keep[g.index].sum()) if g.index in keep else g.size}
        for g in graph.groups
        if g.prunable
    ]
    return plan


def _folds(graph: Graph, in_masks: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    tr, labels = graph.trace, graph.labels
    folds = []
    inverse: dict[str, torch.Tensor] = {}  # BN -> its channel index per variable label (-1: not its)
    for f, rec in graph.modules.items():
        if rec.kind not in ("conv", "linear") or len(rec.in_segs) != 1 or f not in in_masks:
            continue
        gone = torch.nonzero(~in_masks[f]).flatten()
        exprs, expr_of, positions = [], [], []
        for s, e, _dead, expr in rec.in_segs[0]:
            if expr is None:
                continue
            sel = gone[(gone >= s) & (gone < e)]
            if sel.numel():
                exprs.append(expr)
                positions.append(sel)
                expr_of.append(torch.full((sel.numel(),), len(exprs) - 1))
        if not exprs:
            continue
        pos = torch.cat(positions)
        bn_index = {}
        for b in sorted(_leaves(exprs)):
            inv = inverse.get(b)
            if inv is None:
                inv = inverse[b] = torch.full((tr.n_vars,), -1, dtype=torch.long)
                inv[labels[graph.modules[b].out_desc]] = torch.arange(graph.modules[b].out_desc.numel())
            bn_index[b] = inv[labels[rec.in_desc[pos]]].tolist()
        readers = tr.readers.get(rec.out_ids[0], [])
        target = None
        if len(readers) == 1 and graph.kinds.get(readers[0]) == "bn" and readers[0] not in graph.split_bns:
            target = readers[0]
        folds.append(
            {
                "consumer": f,
                "positions": pos.tolist(),
                "exprs": exprs,
                "expr_of": torch.cat(expr_of).tolist(),
                "bn_index": bn_index,
                "target_bn": target,
                "in_spatial": list(rec.in_spatial),
            }
        )
    return folds


def _leaves(expr: Any) -> set[str]:
    if isinstance(expr, list) and expr and expr[0] == "bn":
        return {expr[1]}
    out: set[str] = set()
    if isinstance(expr, list):
        for e in expr:
            out |= _leaves(e)
    return out


def plan_from_keep_on_graph(
    model: nn.Module, graph: Graph, keep: Mapping[int | str, Sequence[int]]
) -> PruningPlan:
    """:func:`plan_from_keep` on an analysed graph."""
    by_name = {g.name: g for g in graph.groups}
    masks: dict[int, torch.Tensor] = {}
    for key, kept in keep.items():
        g = graph.groups[key] if isinstance(key, int) and 0 <= key < len(graph.groups) else by_name.get(key)
        if g is None:
            raise PruningError(f"no channel group {key!r}; use an index or name from build_groups()")
        idx = torch.as_tensor(list(kept), dtype=torch.long)
        if idx.numel() == 0 or bool((idx < 0).any()) or bool((idx >= g.size).any()):
            raise PruningError(
                f"group {g.name!r} (size {g.size}): keep must list 1..{g.size} indices in "
                f"[0, {g.size}), got {list(kept)[:10]}"
            )
        if idx.numel() == g.size and torch.unique(idx).numel() == g.size:
            continue
        if not g.prunable:
            raise PruningError(f"group {g.name!r} cannot be pruned: {g.reason}")
        mask = torch.zeros(g.size, dtype=torch.bool)
        mask[idx] = True
        masks[g.index] = mask
    pruned = sum(int((~m).sum()) for m in masks.values())
    total = sum(g.size for g in graph.groups if g.prunable)
    meta = {"source": "keep", "pruned_channels": pruned, "total_channels": total}
    return build_plan(model, graph, masks, meta)


def plan_from_keep(
    model: nn.Module,
    example_inputs: Any,
    keep: Mapping[int | str, Sequence[int]],
    ignored_layers: Iterable[Any] | None = None,
) -> PruningPlan:
    """Build a :class:`PruningPlan` that keeps, for each group (by index or name), the given channels.

    Groups not in ``keep`` keep all channels. Raises PruningError for a fixed group, an out-of-range or
    empty keep list.
    """
    return plan_from_keep_on_graph(model, analyze(model, example_inputs, ignored_layers), keep)
