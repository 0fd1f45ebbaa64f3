"""SVHN cropped digits (``train_32x32.mat`` / ``test_32x32.mat``), MATLAB files read with scipy.

``X`` is (32, 32, 3, N) uint8 and ``y`` is (N, 1) with the digit 0 stored as 10.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from netslim.data.formats._io import check_labels
from netslim.errors import CorruptFileError, NetslimError


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one SVHN .mat file; return uint8 (N, 3, 32, 32) images and int64 labels (N,), 10 mapped to 0."""
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise NetslimError(
            "reading SVHN .mat files needs scipy: pip install 'netslim[svhn]' (or pip install scipy)"
        ) from exc
    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
    except Exception as exc:  # scipy raises several unrelated types for damaged files
        raise CorruptFileError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    if "X" not in mat or "y" not in mat:
        raise CorruptFileError(f"{path}: an SVHN file needs variables 'X' and 'y'; found {sorted(mat)}")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise CorruptFileError(f"{path}: 'X' must be uint8 (H, W, 3, N), got {x.dtype} {x.shape}")
    if x.shape[3] != len(y):
        raise CorruptFileError(f"{path}: label/image count mismatch: {x.shape[3]} images but {len(y)} labels")
    labels = y.astype(np.int64)
    check_labels(labels, 11, path)  # 0..10 on disk; 10 is the digit 0
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels
