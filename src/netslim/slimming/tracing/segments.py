"""Segment algebra: how runs of channel positions ``(start, end, dead, expr)`` pass through ops.

See :mod:`netslim.slimming.tracing.records` for what a segment means.
"""

from __future__ import annotations

import itertools
from typing import Any

from netslim.slimming.tracing.records import Seg


def const_map(segs: list[Seg], dead_keep: bool, expr_fn: Any) -> list[Seg]:
    """Segments after an element-wise op: dead stays dead if ``dead_keep``; ``expr_fn`` maps each expr
    (None: the op's output is not a known function of the betas)."""
    return [
        (s, e, d and dead_keep, None if x is None or expr_fn is None else expr_fn(x)) for s, e, d, x in segs
    ]


def slice_segs(segs: list[Seg], a: int, b: int) -> list[Seg]:
    """Segments of channel positions ``a:b``, renumbered from 0."""
    out = []
    for s, e, d, x in segs:
        lo, hi = max(s, a), min(e, b)
        if lo < hi:
            out.append((lo - a, hi - a, d, x))
    return out


def refine(sa: list[Seg], sb: list[Seg], combine: Any) -> list[Seg]:
    """Segments of a binary op's output: both inputs cut at every boundary, ``combine(a, b)`` per piece."""
    cuts = sorted({p for s in sa + sb for p in s[:2]})
    out = []
    for lo, hi in itertools.pairwise(cuts):
        a = next(s for s in sa if s[0] <= lo < s[1])
        b = next(s for s in sb if s[0] <= lo < s[1])
        out.append((lo, hi, *combine(a, b)))
    return out


def combine(op: str, s: Seg, t: Seg) -> tuple[bool, Any]:
    """(dead, expr) of ``s op t`` for one piece where both segments hold."""
    both = s[3] is not None and t[3] is not None
    if op in ("add", "sub", "rsub"):
        return s[2] and t[2], [op if op != "rsub" else "sub", s[3], t[3]] if both else None
    if op == "mul":
        return s[2] or t[2], ["mul", s[3], t[3]] if both else None
    if op in ("div", "truediv"):
        return s[2], None
    return s[2] and t[2], [op, s[3], t[3]] if both else None
