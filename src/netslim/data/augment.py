"""Vectorized training augmentation on whole uint8 NCHW batches: zero-pad + random crop, horizontal flip.

Random parameters are drawn for the *global* batch from an explicit generator and then sliced per rank, so
W distributed processes together augment exactly as one process would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from netslim.data.registry import AugmentSpec


@dataclass
class AugmentParams:
    """Per-sample crop offsets (in the padded image) and flip flags."""

    dy: torch.Tensor  # int64 (N,), in [0, 2 * pad]
    dx: torch.Tensor  # int64 (N,)
    flip: torch.Tensor  # bool (N,)

    def select(self, rows: slice) -> AugmentParams:
        """The parameters of a subset of the samples."""
        return AugmentParams(self.dy[rows], self.dx[rows], self.flip[rows])


def sample_params(n: int, spec: AugmentSpec, generator: torch.Generator) -> AugmentParams:
    """Draw crop offsets and flip flags for ``n`` samples from ``generator`` (CPU)."""
    span = 2 * spec.pad + 1
    dy = torch.randint(0, span, (n,), generator=generator)
    dx = torch.randint(0, span, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5 if spec.flip else torch.zeros(n, dtype=torch.bool)
    return AugmentParams(dy, dx, flip)


def pad_crop(x: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Zero-pad NCHW ``x`` by ``pad`` and cut each sample's HxW window starting at (dy, dx)."""
    if pad == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (dy.to(x.device)[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
    cols = (dx.to(x.device)[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indexing on dims 0, 2, 3 puts the channel dim last: (N, H, W, C)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def hflip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror the samples of NCHW ``x`` where ``mask`` is True."""
    if not bool(mask.any()):
        return x
    return torch.where(mask.to(x.device)[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, spec: AugmentSpec, params: AugmentParams) -> torch.Tensor:
    """Apply pad-crop then flip with the given per-sample parameters; return a tensor shaped like ``x``."""
    return hflip(pad_crop(x, spec.pad, params.dy, params.dx), params.flip)
