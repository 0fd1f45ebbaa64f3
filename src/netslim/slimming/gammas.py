"""Statistics of BatchNorm scales (gamma): what "near zero" means, and per-epoch histograms.

Shared by sparsity training (:class:`netslim.slimming.sparsity.BNSparsity` logs them every epoch and steers
its auto strength by the near-zero share) and the cut's readiness report (:mod:`netslim.slimming.readiness`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

# Fixed histogram edges for |gamma|, the same every epoch so histograms compare: linear 0..2.5 in steps of
# 0.05 (the paper's Figure 4 view) and log-spaced 1e-6..10 with 5 bins per decade (detail near zero).
# Values past the last edge are counted in "above"; log values below 1e-6 (exact zeros too) in "log_below".
HIST_EDGES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(51))
LOG_HIST_EDGES: tuple[float, ...] = tuple(10.0 ** (-6 + i / 5) for i in range(36))
THRESHOLDS: tuple[float, ...] = (1e-2, 1e-3)

NEAR_ZERO: float = 1e-2  # a gamma is near zero below this share of the strongest gammas' mean
_TOP = 0.1  # the reference of "near zero": the mean |gamma| of the strongest 10% of the channels


def threshold_key(t: float) -> str:
    """The metrics key of the share of |gamma| below ``t`` (``gamma_frac_below_1e-2``)."""
    return f"gamma_frac_below_{t:.0e}".replace("e-0", "e-")


@torch.no_grad()
def near_zero_stats(values: torch.Tensor | Sequence[float], rel: float = NEAR_ZERO) -> tuple[float, float]:
    """The share of ``values`` that are near zero, and the reference scale they are measured against.

    A value is near zero when ``|v| < rel * ref``, with ``ref`` the mean ``|v|`` of the strongest 10% of
    the values (at least one): channels that stay under any cut of up to 90%, so the reference neither
    depends on the gamma scale nor on how many channels are already dead, and it moves continuously with
    the values. Returns ``(share, ref)``; all-zero input gives ``(1.0, 0.0)``, empty input ``(0.0, 0.0)``.
    """
    a = torch.as_tensor(values).detach().flatten().abs().to("cpu", torch.float64)
    n = a.numel()
    if n == 0:
        return 0.0, 0.0
    top = max(1, math.ceil(_TOP * n))
    ref = float(torch.topk(a, top).values.mean())
    if ref == 0.0:
        return 1.0, 0.0
    return float((a < rel * ref).sum()) / n, ref


@torch.no_grad()
def gamma_stats(values: torch.Tensor, near_zero: float = NEAR_ZERO) -> dict[str, Any]:
    """Fractions of ``|values|`` below 1e-2 and 1e-3, the near-zero share and histograms over fixed bins.

    Returns ``{"n", "gamma_frac_below_1e-2", "gamma_frac_below_1e-3", "near_zero_share",
    "near_zero_ref", "bin_edges", "counts", "above", "log_bin_edges", "log_counts", "log_below",
    "log_above"}``; ``counts[i]`` holds values in ``[bin_edges[i], bin_edges[i+1])``
    (:data:`HIST_EDGES`), ``log_counts`` the same over :data:`LOG_HIST_EDGES`.
    """
    g = values.detach().abs().flatten().float().cpu()
    stats: dict[str, Any] = {"n": int(g.numel())}
    for t in THRESHOLDS:
        stats[threshold_key(t)] = float((g < t).float().mean()) if g.numel() else 0.0
    stats["near_zero_share"], stats["near_zero_ref"] = near_zero_stats(g, near_zero)
    _, lin, lin_above = _histogram(g, HIST_EDGES)  # nothing lies below the first linear edge, 0
    log_below, log, log_above = _histogram(g, LOG_HIST_EDGES)
    stats.update(bin_edges=list(HIST_EDGES), counts=lin, above=lin_above)
    stats.update(log_bin_edges=list(LOG_HIST_EDGES), log_counts=log, log_below=log_below)
    stats["log_above"] = log_above
    return stats


def _histogram(values: torch.Tensor, edges: Sequence[float]) -> tuple[int, list[int], int]:
    """(count below edges[0], counts per bin, count at or above edges[-1])."""
    idx = torch.bucketize(values, torch.tensor(edges, dtype=torch.float32), right=True)
    binned = torch.bincount(idx, minlength=len(edges) + 1)
    return int(binned[0]), [int(c) for c in binned[1 : len(edges)]], int(binned[len(edges)])
