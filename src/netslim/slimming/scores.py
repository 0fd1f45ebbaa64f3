"""Channel scores: the |gamma| of each channel of every scorable group, reduced over the group's BatchNorms.

A residual stage's BatchNorms share their channels (one group), so each group channel gets one score from
all of them, by ``score_reduce`` (max, mean or sum).
"""

from __future__ import annotations

import torch
from torch import nn

from netslim.errors import PruningError
from netslim.slimming.channel_groups import Graph

REDUCERS = ("max", "mean", "sum")


def group_scores(model: nn.Module, graph: Graph, reduce: str = "max") -> dict[int, torch.Tensor]:
    """|gamma| per channel of every scorable group (by group index), reduced over the group's BatchNorms."""
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
