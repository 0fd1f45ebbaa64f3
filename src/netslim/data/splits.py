"""Seeded train/validation split: the same seed always holds out the same samples."""

from __future__ import annotations

import numpy as np

from netslim.errors import NetslimError


def resolve_size(size: int | float, n: int) -> int:
    """Number of samples meant by ``size``: an int count, or a float fraction in [0, 1) of ``n``."""
    if isinstance(size, float) and not size.is_integer():
        if not 0.0 < size < 1.0:
            raise NetslimError(f"a fractional val_size must be in (0, 1), got {size}")
        count = round(size * n)
    else:
        count = int(size)
    if count < 0 or count >= n:
        raise NetslimError(
            f"val_size {size} leaves no training data ({n} samples); "
            "use a smaller count or a fraction like 0.1"
        )
    return count


def split_indices(n: int, size: int | float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (kept, held_out) index arrays, both sorted; held_out has ``size`` samples.

    The choice depends only on ``(n, size, seed)``, never on global random state.
    """
    count = resolve_size(size, n)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[count:]), np.sort(order[:count])
