"""Cut readiness: how clean a planned cut is, from the |gamma| scores it removes and keeps.

A cut is clean when it removes channels whose BatchNorm scale sparsity training drove to near zero; one that
reaches into the bulk of the scales (threshold above a tenth of the strongest channels' mean |gamma|) will
cost accuracy, and :func:`netslim.plan` warns with :class:`CutReadinessWarning`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from netslim.slimming.gammas import NEAR_ZERO, near_zero_stats

READY_THRESHOLD_RATIO = 0.1  # a cut whose threshold passes 10% of the strongest gammas' mean is in the bulk


class CutReadinessWarning(UserWarning):
    """The planned cut removes channels whose BN scales are not near zero: it will cost accuracy."""


@dataclass(frozen=True)
class CutReadiness:
    """How clean a planned cut is, from the |gamma| scores of the prunable channels.

    ``near_zero_share``: share of the scored channels that are near zero (``|gamma| < near_zero *
    reference``, ``reference`` being the mean score of the strongest 10% of the channels, as in training;
    see :func:`netslim.slimming.gammas.near_zero_stats`). ``removed_share``: share of the
    channels the cut removes. ``removed_mass``: share of the total |gamma| the removed channels carry.
    ``threshold``: the largest removed score. ``threshold_ratio``: ``threshold / reference``, the cut
    against the gammas that stay (``median_kept`` is the median of every kept score, dead ones included).
    ``in_bulk``: True when ``threshold_ratio`` exceeds 0.1: the cut removes channels whose scale is more
    than a tenth of the strong ones', i.e. it reaches into the bulk.
    """

    near_zero_share: float
    removed_share: float
    removed_mass: float
    threshold: float | None
    threshold_ratio: float | None
    reference: float
    median_kept: float | None
    near_zero: float
    in_bulk: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CutReadiness:
        """Rebuild from :meth:`to_dict` output (unknown keys are ignored)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    def line(self) -> str:
        """One line for summaries."""
        ratio = "n/a" if self.threshold_ratio is None else f"{self.threshold_ratio:.3g}"
        verdict = "reaches into the bulk" if self.in_bulk else "clean"
        return (
            f"cut readiness: {self.near_zero_share:.1%} of channels near zero, the cut removes "
            f"{self.removed_share:.1%} of channels and {self.removed_mass:.2%} of |gamma| mass, "
            f"threshold = {ratio} x the strongest 10%' mean |gamma| ({verdict})"
        )

    def advice(self, ratio: float | None) -> str:
        """The one-line warning text for a cut in the bulk."""
        r = "" if ratio is None else f" at ratio {ratio}"
        return (
            f"netslim: the cut{r} reaches into the bulk of the BatchNorm scales (threshold = "
            f"{self.threshold_ratio:.2g} x the strongest 10%' mean |gamma|, only "
            f"{self.near_zero_share:.0%} of channels near zero); train longer with sparsity, use "
            f"--l1 auto (BNSparsity(model, 'auto', target=...)) if the strength was fixed, or a lower ratio"
        )


def cut_readiness(
    scores: Mapping[int, torch.Tensor], keep: Mapping[int, torch.Tensor], near_zero: float = NEAR_ZERO
) -> CutReadiness:
    """How clean the cut ``keep`` is against the channel ``scores`` (see :class:`CutReadiness`)."""
    groups = sorted(scores)
    all_s = torch.cat([scores[gi].double() for gi in groups]) if groups else torch.zeros(0)
    kept = (
        torch.cat(
            [keep[gi] if gi in keep else torch.ones(scores[gi].numel(), dtype=torch.bool) for gi in groups]
        )
        if groups
        else torch.zeros(0, dtype=torch.bool)
    )
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
        near_zero_share=share,
        removed_share=removed.numel() / n if n else 0.0,
        removed_mass=float(removed.sum()) / total if total > 0 else 0.0,
        threshold=threshold,
        threshold_ratio=ratio,
        reference=ref,
        median_kept=median_kept,
        near_zero=near_zero,
        in_bulk=ratio is not None and ratio > READY_THRESHOLD_RATIO,
    )
