"""What a channel trace records: per-tensor channel info, one record per leaf layer, the whole trace.

Every channel position of a tensor is a *variable* (an int id); a tensor's ``desc`` lists the variable of each
of its channel positions. Segments :data:`Seg` ``(start, end, dead, expr)`` describe runs of channel
positions: ``dead`` means exactly zero when the feeding BatchNorms' gamma and beta are zero; ``expr`` (nested
lists, JSON-ready) gives the value as a function of BatchNorm betas when gamma is zero, e.g.
``["act", "relu", [], {}, ["bn", "layer1.bn"]]`` (see :mod:`netslim.slimming.tracing.segments`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

Seg = tuple[int, int, bool, Any]  # (start, end, dead, expr)


@dataclass
class Info:
    """What the trace knows about one tensor's channel positions."""

    desc: torch.Tensor
    segs: list[Seg]
    producer: str | None = None  # conv/linear whose output this is (through unary ops only)
    chain: tuple[int, ...] = ()  # tensor ids from that producer's output to this tensor


@dataclass
class ModRec:
    """One leaf module (first call): its kind, input/output channel descs and input tensor ids."""

    fqn: str
    kind: str  # conv, dwconv, linear, bn
    in_desc: torch.Tensor
    out_desc: torch.Tensor
    in_ids: list[int] = field(default_factory=list)
    out_ids: list[int] = field(default_factory=list)
    in_segs: list[list[Seg]] = field(default_factory=list)
    in_spatial: tuple[int, ...] = ()  # spatial size of the first input (H, W for a conv)


@dataclass
class Trace:
    """Result of :func:`~netslim.slimming.tracing.trace_model`."""

    n_vars: int
    spaces: list[tuple[int, int, str]]  # (first var, size, owner)
    edges: list[tuple[torch.Tensor, torch.Tensor]]
    pins: list[tuple[torch.Tensor, str]]
    modules: dict[str, ModRec]
    infos: dict[int, Info]
    readers: dict[int, list[str]]
    order: list[str]
    # where the forward turned input-dependent tensors into Python values (data-dependent control flow)
    conversions: list[str] = field(default_factory=list)
