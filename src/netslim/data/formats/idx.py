"""The IDX format of MNIST, Fashion-MNIST and KMNIST (optionally gzipped).

Header: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per dimension;
the data follows in C order and must fill the rest of the file exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from netslim.data.formats._io import check_labels, read_bytes
from netslim.errors import CorruptFileError

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


_MAX_DIMS = 4  # MNIST-style files have 1 (labels) or 3 (images)


def _short(shape: tuple[int, ...]) -> str:
    text = str(shape)
    return text if len(text) <= 60 else text[:57] + "...)"


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array of the shape and type the header declares."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise CorruptFileError(
            f"{name}: bad IDX magic {data[:4].hex() or '(empty file)'}; expected 0000 then a type code "
            "(08 for unsigned bytes) and the number of dimensions"
        )
    dtype = _TYPES[data[2]]
    ndim = data[3]
    if not 1 <= ndim <= _MAX_DIMS:
        raise CorruptFileError(
            f"{name}: the IDX header declares {ndim} dimensions (1 to {_MAX_DIMS} "
            "expected); the file is damaged or not an IDX file"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptFileError(f"{name}: file ends inside the IDX header ({len(data)} bytes, need {header})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise CorruptFileError(
            f"{name}: size mismatch with header: header says shape {_short(shape)} ({expected} bytes) but "
            f"the file has {len(data)} bytes; it is truncated or not an IDX file"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or gzipped) and return its array."""
    return parse_idx(read_bytes(path), name=str(path))


def read_idx_pair(images_path: Path, labels_path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file (N, H, W) and a labels file (N,) and return uint8 (N, 1, H, W) and int64 (N,)."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise CorruptFileError(
            f"{images_path}: expected unsigned-byte images of shape (N, H, W), "
            f"got {images.dtype} {_short(images.shape)}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise CorruptFileError(
            f"{labels_path}: expected unsigned-byte labels of shape (N,), got {labels.dtype} "
            f"{_short(labels.shape)}"
        )
    if len(images) != len(labels):
        raise CorruptFileError(
            f"label/image count mismatch: {images_path.name} has {len(images)} images but "
            f"{labels_path.name} has {len(labels)} labels"
        )
    check_labels(labels, num_classes, labels_path)
    return images[:, None, :, :].copy(), labels.astype(np.int64)
