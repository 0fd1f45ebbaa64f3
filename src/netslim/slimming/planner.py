"""Choose which channels to remove: BN |gamma| scores, one global threshold (or per-layer ratios).

Scores: each scorable group's channel gets the |gamma| of its BatchNorm entries, reduced over the group's
BatchNorms with ``score_reduce`` (max/mean/sum; a residual stage's BNs are scored together). Global scope
(the paper) sorts every candidate channel by (score, group order, channel index) and removes exactly
``floor(ratio * total)`` of them, where ``total`` counts each coupled channel once. ``min_channels``,
``max_layer_ratio`` and ``round_to`` bound what each group may lose (``round_to`` rounds each group's
kept count up to a multiple, so fewer channels than requested may go; the plan's metadata says how many
did, and a warning says so when min_channels/max_layer_ratio prevent the exact count); ``max_safe_ratio``
in the plan's metadata is the largest ratio that empties no group with ``min_channels=0`` (the YOLO
forks' highest_thre).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from netslim.errors import PruningError
from netslim.slimming.graph import ChannelGroup, Graph
from netslim.slimming.plan import READY_THRESHOLD_RATIO, CutReadiness, PruningPlan
from netslim.slimming.sparsity import NEAR_ZERO, near_zero_stats

REDUCERS = ("max", "mean", "sum")


def group_scores(model: nn.Module, graph: Graph, reduce: str = "max") -> dict[int, torch.Tensor]:
    """|gamma| per channel of every scorable group, reduced over the group's BatchNorms."""
    if reduce not in REDUCERS:
        raise PruningError(f"score_reduce must be one of {REDUCERS}, got {reduce!r}")
    mods = dict(model.named_modules())
    scores = {}
    for g in graph.groups:
        if not g.scorable:
            continue
        rows = []
        for m in g.members:
            if m.role in ("norm", "select") and getattr(mods[m.fqn], "weight", None) is not None:
                row = torch.zeros(g.size)
                row[m.channels] = mods[m.fqn].weight.detach().abs().float().cpu()[m.positions]
                rows.append(row)
        stack = torch.stack(rows)
        scores[g.index] = {"max": stack.amax(0), "mean": stack.mean(0), "sum": stack.sum(0)}[reduce]
    return scores


def _order(score: torch.Tensor, group: torch.Tensor, chan: torch.Tensor) -> torch.Tensor:
    """Indices sorting by (score, group, channel), deterministic."""
    idx = torch.argsort(chan, stable=True)
    idx = idx[torch.argsort(group[idx], stable=True)]
    return idx[torch.argsort(score[idx], stable=True)]


def _groups_for(graph: Graph, fqn: str) -> list[ChannelGroup]:
    found = [g for g in graph.groups if g.scorable and any(
        m.fqn == fqn and m.role != "in" for m in g.members)]
    if not found:
        raise PruningError(f"layer_ratios key {fqn!r} is not a prunable layer; use the FQN of a conv, "
                           "linear or BatchNorm whose channels are scored (see graph.build_groups)")
    return found


def select_channels(graph: Graph, scores: dict[int, torch.Tensor], ratio: float, *, scope: str = "global",
                    layer_ratios: Mapping[str, float] | None = None, min_channels: int = 1,
                    max_layer_ratio: float | None = None, round_to: int = 1
                    ) -> tuple[dict[int, torch.Tensor], dict[str, Any]]:
    """Return (keep mask per group index, metadata) for the requested pruning."""
    _check_ratio(ratio, "ratio")
    if scope not in ("global", "local"):
        raise PruningError(f"scope must be 'global' or 'local', got {scope!r}")
    if min_channels < 0 or round_to < 1:
        raise PruningError("min_channels must be >= 0 and round_to >= 1")
    if max_layer_ratio is not None:
        _check_ratio(max_layer_ratio, "max_layer_ratio", upper_ok=True)
    local: dict[int, float] = {}
    for fqn, r in (layer_ratios or {}).items():
        _check_ratio(r, f"layer_ratios[{fqn!r}]")
        for g in _groups_for(graph, fqn):
            local[g.index] = r
    sizes = {gi: s.numel() for gi, s in scores.items()}

    def cap(gi: int) -> int:
        floor = min_channels
        if max_layer_ratio is not None:
            floor = max(floor, math.ceil((1 - max_layer_ratio) * sizes[gi] - 1e-9))
        return max(0, sizes[gi] - floor)

    pool = [gi for gi in scores if gi not in local and scope == "global"]
    total = sum(sizes[gi] for gi in pool)
    pruned: dict[int, torch.Tensor] = {}
    meta: dict[str, Any] = {"threshold": None}
    if pool:
        all_s = torch.cat([scores[gi] for gi in pool])
        all_g = torch.cat([torch.full((sizes[gi],), gi) for gi in pool])
        all_c = torch.cat([torch.arange(sizes[gi]) for gi in pool])
        order = _order(all_s, all_g, all_c)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel())
        last = torch.zeros(max(pool) + 1, dtype=torch.long).scatter_reduce(0, all_g, rank, "amax",
                                                                             include_self=False)
        safe = int(min(last[gi] for gi in pool))
        meta["max_safe_ratio"] = safe / total
        n = math.floor(ratio * total + 1e-9)
        if min_channels == 0 and n > safe:
            raise PruningError(
                f"ratio {ratio} would remove every channel of a layer; the largest safe ratio is "
                f"{safe / total:.4f} (or keep min_channels >= 1)")
        # per group: only its `cap` weakest channels are candidates
        g_sorted = all_g[order]
        by_group = torch.argsort(g_sorted, stable=True)
        starts = torch.zeros(max(pool) + 2, dtype=torch.long)
        starts.scatter_add_(0, g_sorted + 1, torch.ones_like(g_sorted))
        starts = starts.cumsum(0)
        within = torch.empty_like(order)
        within[by_group] = torch.arange(order.numel()) - starts[g_sorted[by_group]]
        caps = torch.zeros(max(pool) + 1, dtype=torch.long)
        for gi in pool:
            caps[gi] = cap(gi)
        cand = within < caps[g_sorted]
        chosen = order[cand][:n]
        if chosen.numel() < n:
            warnings.warn(f"netslim: only {chosen.numel()} of the requested {n} channels can be pruned under "
                          "min_channels/max_layer_ratio", stacklevel=3)
        if chosen.numel():
            meta["threshold"] = float(all_s[chosen[-1]])
        flag = torch.zeros(order.numel(), dtype=torch.bool)
        flag[chosen] = True
        offset = 0
        for gi in pool:
            pruned[gi] = flag[offset:offset + sizes[gi]]
            offset += sizes[gi]
    else:
        meta["max_safe_ratio"] = None
    for gi in scores:
        if gi in pruned:
            continue
        r = local.get(gi, ratio)
        k = min(math.floor(r * sizes[gi] + 1e-9), cap(gi))
        mask = torch.zeros(sizes[gi], dtype=torch.bool)
        mask[_order(scores[gi], torch.zeros(sizes[gi]), torch.arange(sizes[gi]))[:k]] = True
        pruned[gi] = mask
    keep = {}
    for gi, mask in pruned.items():
        if round_to > 1:
            mask = _round(mask, scores[gi], round_to)
        keep[gi] = ~mask
    n_pruned = int(sum(int((~k).sum()) for k in keep.values()))
    meta.update(total_channels=sum(sizes.values()), pruned_channels=n_pruned)
    return keep, meta


def cut_readiness(scores: Mapping[int, torch.Tensor], keep: Mapping[int, torch.Tensor],
                  near_zero: float = NEAR_ZERO) -> CutReadiness:
    """How clean the cut ``keep`` is against the channel ``scores`` (see :class:`CutReadiness`)."""
    groups = sorted(scores)
    all_s = torch.cat([scores[gi].double() for gi in groups]) if groups else torch.zeros(0)
    kept = torch.cat([keep[gi] if gi in keep else torch.ones(scores[gi].numel(), dtype=torch.bool)
                      for gi in groups]) if groups else torch.zeros(0, dtype=torch.bool)
    share, ref = near_zero_stats(all_s, near_zero)
    removed = all_s[~kept]
    total = float(all_s.sum())
    n = all_s.numel()
    threshold = float(removed.max()) if removed.numel() else None
    median_kept = float(all_s[kept].median()) if bool(kept.any()) else None
    ratio = None
    if threshold is not None:
        ratio = threshold / ref if ref > 0 else (0.0 if threshold == 0 else math.inf)
    return CutReadiness(
        near_zero_share=share, removed_share=removed.numel() / n if n else 0.0,
        removed_mass=float(removed.sum()) / total if total > 0 else 0.0, threshold=threshold,
        threshold_ratio=ratio, reference=ref, median_kept=median_kept, near_zero=near_zero,
        in_bulk=ratio is not None and ratio > READY_THRESHOLD_RATIO)


def _round(pruned: torch.Tensor, score: torch.Tensor, round_to: int) -> torch.Tensor:
    kept = int((~pruned).sum())
    target = min(pruned.numel(), math.ceil(kept / round_to) * round_to)
    if target == kept:
        return pruned
    idx = torch.nonzero(pruned).flatten()
    back = idx[torch.argsort(score[idx], descending=True, stable=True)][: target - kept]
    pruned = pruned.clone()
    pruned[back] = False
    return pruned


def _check_ratio(r: Any, what: str, upper_ok: bool = False) -> None:
    ok = isinstance(r, int | float) and 0 <= r <= 1 and (upper_ok or r < 1)
    if not ok:
        raise PruningError(f"{what} must be a number in [0, 1{']' if upper_ok else ')'}, got {r!r}")


def build_plan(model: nn.Module, graph: Graph, keep: Mapping[int, torch.Tensor], meta: dict[str, Any]
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
            masks, desc = (in_masks, graph.modules[m.fqn].in_desc) if m.role == "in" else \
                (out_masks, graph.modules[m.fqn].out_desc)
            if m.fqn not in masks:
                masks[m.fqn] = torch.ones(desc.numel(), dtype=torch.bool)
            masks[m.fqn][gone] = False
    plan = PruningPlan(meta=dict(meta))
    for f, rec in graph.modules.items():
        om, im = out_masks.get(f), in_masks.get(f)
        kind = rec.kind
        plan.layers[f] = {
            "kind": kind, "type": type(mods[f]).__name__,
            "out_before": int(rec.out_desc.numel()),
            "in_before": int(rec.in_desc.numel()) if kind in ("conv", "linear") else None,
            "out_keep": None if om is None else torch.nonzero(om).flatten().tolist(),
            "in_keep": None if im is None or kind not in ("conv", "linear") else
            torch.nonzero(im).flatten().tolist(),
            "select": f in graph.split_bns and om is not None,
        }
    for lp in plan.layers.values():  # width of the pruned dimension, for reports
        by_out = lp["kind"] in ("bn", "dwconv") or lp["out_keep"] is not None or not lp["in_before"]
        side = "out" if by_out else "in"
        lp["before"] = lp[f"{side}_before"]
        lp["after"] = lp["before"] if lp[f"{side}_keep"] is None else len(lp[f"{side}_keep"])
    plan.folds = _folds(graph, in_masks)
    plan.meta["groups"] = [{"name": g.name, "size": g.size, "kept": int(keep[g.index].sum())
                            if g.index in keep else g.size} for g in graph.groups if g.prunable]
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
        folds.append({"consumer": f, "positions": pos.tolist(), "exprs": exprs,
                      "expr_of": torch.cat(expr_of).tolist(), "bn_index": bn_index, "target_bn": target,
                      "in_spatial": list(rec.in_spatial)})
    return folds


def _leaves(expr: Any) -> set[str]:
    if isinstance(expr, list) and expr and expr[0] == "bn":
        return {expr[1]}
    out: set[str] = set()
    if isinstance(expr, list):
        for e in expr:
            out |= _leaves(e)
    return out


def plan_from_keep_graph(model: nn.Module, graph: Graph, keep: Mapping[int | str, Sequence[int]]
                         ) -> PruningPlan:
    """:func:`netslim.slimming.graph.plan_from_keep` on an analysed graph."""
    by_name = {g.name: g for g in graph.groups}
    masks: dict[int, torch.Tensor] = {}
    for key, kept in keep.items():
        g = graph.groups[key] if isinstance(key, int) and 0 <= key < len(graph.groups) else by_name.get(key)
        if g is None:
            raise PruningError(f"no channel group {key!r}; use an index or name from build_groups()")
        idx = torch.as_tensor(list(kept), dtype=torch.long)
        if idx.numel() == 0 or bool((idx < 0).any()) or bool((idx >= g.size).any()):
            raise PruningError(f"group {g.name!r} (size {g.size}): keep must list 1..{g.size} indices in "
                               f"[0, {g.size}), got {list(kept)[:10]}")
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
