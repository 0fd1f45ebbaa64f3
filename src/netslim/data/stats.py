"""Per-channel mean and standard deviation of uint8 images, computed exactly from value histograms."""

from __future__ import annotations

import numpy as np
import torch

_CHUNK = 4096  # images per histogram pass, to keep the int64 copy bincount needs small


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel of uint8 NCHW ``images``, on the [0, 1] scale."""
    array = images.cpu().numpy()
    channels = array.shape[1]
    counts = np.zeros((channels, 256), dtype=np.float64)
    for start in range(0, len(array), _CHUNK):
        chunk = array[start : start + _CHUNK]
        for c in range(channels):
            counts[c] += np.bincount(chunk[:, c].reshape(-1), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum(axis=1)
    mean = (counts * values).sum(axis=1) / total
    var = (counts * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    std = np.sqrt(np.maximum(var, 1e-12))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)
