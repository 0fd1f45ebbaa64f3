"""Which channels to remove, from their scores: the paper's global threshold and the per-layer policies.

The paper (Liu et al. 2017) prunes with one global threshold: sort every channel's |gamma|, take the value at
the ``ratio`` quantile, remove the channels below it (:func:`global_threshold`; ``total`` counts each
coupled channel once, and exactly ``floor(ratio * total)`` channels go, ties broken by position).
:func:`select_channels` applies it together with the other policies, each its own function:

* ``scope="local"`` or ``layer_ratios``: a group loses its own ratio of channels (:func:`weakest`);
* ``min_channels`` / ``max_layer_ratio``: the most channels a group may lose (:func:`prune_cap`); a capped
  group keeps channels the global threshold chose, and the threshold is not raised to make up for them (as
  in the paper's multi-pass cap), so fewer channels than the ratio may go: a warning says how many went;
* ``round_to``: each group's kept count is rounded up to a multiple (:func:`round_kept_up`), so fewer channels
  than requested may go (the plan's metadata says how many did);
* ``max_safe_ratio`` in the metadata: the largest ratio that empties no group with ``min_channels=0``
  (:func:`max_safe_count`; the YOLO forks' highest_thre).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from netslim.errors import PruningError
from netslim.slimming.channel_groups import ChannelGroup, Graph


def prune_count(ratio: float, total: int) -> int:
    """``floor(ratio * total)``, robust to float error (0.7 * 10 is 6.999...)."""
    return math.floor(ratio * total + 1e-9)


def global_threshold(scores: torch.Tensor, ratio: float) -> tuple[torch.Tensor, float | None]:
    """Network Slimming's global threshold over every channel's score; returns (pruned mask, threshold).

    Sort the scores, take the value at the ``ratio`` quantile, prune every channel below it: exactly
    ``floor(ratio * len(scores))`` channels, the weakest, equal scores taken in position order (earlier
    first), so the result is deterministic. ``threshold`` is the largest pruned score (None when nothing
    is pruned).
    """
    chosen = torch.argsort(scores, stable=True)[: prune_count(ratio, scores.numel())]
    pruned = torch.zeros(scores.numel(), dtype=torch.bool)
    pruned[chosen] = True
    return pruned, float(scores[chosen[-1]]) if chosen.numel() else None


def weakest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the ``k`` lowest ``scores`` (equal scores in position order)."""
    mask = torch.zeros(scores.numel(), dtype=torch.bool)
    mask[torch.argsort(scores, stable=True)[:k]] = True
    return mask


def prune_cap(size: int, min_channels: int, max_layer_ratio: float | None) -> int:
    """The most channels a group of ``size`` may lose: it keeps ``min_channels`` and, with
    ``max_layer_ratio``, at least ``1 - max_layer_ratio`` of its channels."""
    floor = min_channels
    if max_layer_ratio is not None:
        floor = max(floor, math.ceil((1 - max_layer_ratio) * size - 1e-9))
    return max(0, size - floor)


def max_safe_count(scores: Sequence[torch.Tensor]) -> int:
    """How many channels the global threshold over the groups' ``scores`` removes before it empties a group.

    Each group is emptied when its strongest channel goes; the answer is the global rank (in
    :func:`global_threshold`'s order over the concatenated scores) of the earliest of them.
    """
    flat = torch.cat(list(scores))
    rank = torch.empty(flat.numel(), dtype=torch.long)
    rank[torch.argsort(flat, stable=True)] = torch.arange(flat.numel())
    return min(int(r.max()) if r.numel() else 0 for r in rank.split([s.numel() for s in scores]))


def round_kept_up(pruned: torch.Tensor, scores: torch.Tensor, multiple: int) -> torch.Tensor:
    """``pruned`` with the strongest pruned channels given back until the kept count is a multiple of
    ``multiple`` (or every channel is kept)."""
    kept = int((~pruned).sum())
    target = min(pruned.numel(), math.ceil(kept / multiple) * multiple)
    if target == kept:
        return pruned
    idx = torch.nonzero(pruned).flatten()
    back = idx[torch.argsort(scores[idx], descending=True, stable=True)][: target - kept]
    pruned = pruned.clone()
    pruned[back] = False
    return pruned


def check_ratio(r: Any, what: str, upper_ok: bool = False) -> None:
    """Raise PruningError unless ``r`` is a number in [0, 1) ([0, 1] with ``upper_ok``)."""
    ok = isinstance(r, int | float) and 0 <= r <= 1 and (upper_ok or r < 1)
    if not ok:
        raise PruningError(f"{what} must be a number in [0, 1{']' if upper_ok else ')'}, got {r!r}")


def layer_ratio_groups(graph: Graph, layer_ratios: Mapping[str, float] | None) -> dict[int, float]:
    """Group index -> ratio for the groups of each layer named in ``layer_ratios`` (checked)."""
    own: dict[int, float] = {}
    for fqn, r in (layer_ratios or {}).items():
        check_ratio(r, f"layer_ratios[{fqn!r}]")
        for g in _groups_of_layer(graph, fqn):
            own[g.index] = r
    return own


def _groups_of_layer(graph: Graph, fqn: str) -> list[ChannelGroup]:
    found = [
        g for g in graph.groups if g.scorable and any(m.fqn == fqn and m.role != "in" for m in g.members)
    ]
    if not found:
        raise PruningError(
            f"layer_ratios key {fqn!r} is not a prunable layer; use the FQN of a conv, linear "
            "or BatchNorm whose channels are scored (see netslim.slimming.build_groups)"
        )
    return found


def select_channels(
    graph: Graph,
    scores: dict[int, torch.Tensor],
    ratio: float,
    *,
    scope: str = "global",
    layer_ratios: Mapping[str, float] | None = None,
    min_channels: int = 1,
    max_layer_ratio: float | None = None,
    round_to: int = 1,
) -> tuple[dict[int, torch.Tensor], dict[str, Any]]:
    """Return (keep mask per group index, metadata) for the requested pruning (see the module docstring).

    Metadata: ``threshold`` (largest score the global threshold removed, or None), ``max_safe_ratio`` (None
    without a global pool), ``total_channels``, ``pruned_channels``. Raises PruningError for bad options and,
    with ``min_channels=0``, for a ratio that would empty a group.
    """
    check_ratio(ratio, "ratio")
    if scope not in ("global", "local"):
        raise PruningError(f"scope must be 'global' or 'local', got {scope!r}")
    if min_channels < 0 or round_to < 1:
        raise PruningError("min_channels must be >= 0 and round_to >= 1")
    if max_layer_ratio is not None:
        check_ratio(max_layer_ratio, "max_layer_ratio", upper_ok=True)
    own = layer_ratio_groups(graph, layer_ratios)
    caps = {gi: prune_cap(s.numel(), min_channels, max_layer_ratio) for gi, s in scores.items()}
    pool = [gi for gi in scores if gi not in own] if scope == "global" else []
    pruned, meta = _global_cut(scores, pool, ratio, caps, min_channels)
    for gi, s in scores.items():
        if gi not in pruned:
            pruned[gi] = weakest(s, min(prune_count(own.get(gi, ratio), s.numel()), caps[gi]))
    keep = {
        gi: ~round_kept_up(mask, scores[gi], round_to) if round_to > 1 else ~mask
        for gi, mask in pruned.items()
    }
    meta.update(
        total_channels=sum(s.numel() for s in scores.values()),
        pruned_channels=int(sum(int((~k).sum()) for k in keep.values())),
    )
    return keep, meta


def _global_cut(
    scores: Mapping[int, torch.Tensor],
    pool: list[int],
    ratio: float,
    caps: Mapping[int, int],
    min_channels: int,
) -> tuple[dict[int, torch.Tensor], dict[str, Any]]:
    """The global threshold over the ``pool`` groups, each losing at most ``caps[group]`` channels.

    Returns (pruned mask per pool group, ``{"threshold", "max_safe_ratio"}``).
    """
    meta: dict[str, Any] = {"threshold": None, "max_safe_ratio": None}
    if not pool:
        return {}, meta
    ranked = sorted(pool)  # position order (group index, channel) breaks ties between equal scores
    pool_scores = [scores[gi] for gi in ranked]
    flat = torch.cat(pool_scores)
    safe = max_safe_count(pool_scores)
    meta["max_safe_ratio"] = safe / flat.numel()
    n = prune_count(ratio, flat.numel())
    if min_channels == 0 and n > safe:
        raise PruningError(
            f"ratio {ratio} would remove every channel of a layer; the largest safe ratio is "
            f"{safe / flat.numel():.4f} (or keep min_channels >= 1)"
        )
    flags, _ = global_threshold(flat, ratio)
    # a cap keeps channels the threshold chose; it never raises the threshold to make up for them, which
    # would cut into the bulk of the other layers (the paper's multi-pass cap: its Table 4 pass 1 pruned
    # 66.7% of VGG's params, not the 75% a uniform 50% per layer gives)
    by_group = {
        gi: mask & weakest(scores[gi], caps[gi])
        for gi, mask in zip(ranked, flags.split([s.numel() for s in pool_scores]), strict=True)
    }
    pruned_scores = torch.cat([scores[gi][by_group[gi]] for gi in ranked])
    meta["threshold"] = float(pruned_scores.max()) if pruned_scores.numel() else None
    went = int(pruned_scores.numel())
    if went < n:  # stacklevel 4: the frame select_channels pointed at before it was split
        warnings.warn(
            f"netslim: only {went} of the requested {n} channels are pruned: min_channels/max_layer_ratio "
            f"keep {n - went} that the global threshold chose (it is not raised to make up for them)",
            stacklevel=4,
        )
    return {gi: by_group[gi] for gi in pool}, meta
