"""CIFAR-10 and CIFAR-100, both the binary version and the python (pickle) version.

Binary records are ``<label bytes><3072 pixel bytes>``: one label byte for CIFAR-10, two (coarse, fine) for
CIFAR-100; pixels are the red, green and blue 32x32 planes. The python version stores dicts whose ``data``
is an (N, 3072) uint8 array in the same order and whose ``labels`` / ``fine_labels`` is a list of ints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from netslim.data.formats._io import check_labels, read_bytes
from netslim.data.safe_pickle import safe_load
from netslim.errors import CorruptFileError

PIXELS = 3 * 32 * 32
COARSE_CLASSES = 20


def read_cifar_bin(paths: Sequence[Path], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read binary CIFAR batches; return uint8 (N, 3, 32, 32) images and int64 fine labels (N,).

    ``num_classes`` 100 means CIFAR-100 records (coarse and fine label bytes), 10 means CIFAR-10.
    """
    label_bytes = 2 if num_classes == 100 else 1
    record = label_bytes + PIXELS
    images, labels = [], []
    for path in paths:
        data = read_bytes(path)
        if len(data) == 0 or len(data) % record:
            raise CorruptFileError(
                f"{path}: CIFAR record count not a whole number: {len(data)} bytes is not a multiple of the "
                f"{record}-byte record ({label_bytes} label byte(s) + {PIXELS} pixels); the file is "
                f"truncated or belongs to the other CIFAR"
            )
        rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
        if label_bytes == 2:
            check_labels(rows[:, 0], COARSE_CLASSES, f"{path} (coarse labels)")
        lab = rows[:, label_bytes - 1].astype(np.int64)
        check_labels(lab, num_classes, path)
        images.append(rows[:, label_bytes:].reshape(-1, 3, 32, 32))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _as_str_keys(obj: Any, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{path}: expected a pickled dict (a CIFAR batch), got {type(obj).__name__}")
    return {_text(k): v for k, v in obj.items()}


def read_cifar_py(paths: Sequence[Path], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read python-version CIFAR batches safely; return uint8 (N, 3, 32, 32) images and int64 labels (N,)."""
    key = "fine_labels" if num_classes == 100 else "labels"
    images, labels = [], []
    for path in paths:
        batch = _as_str_keys(safe_load(path), path)
        if "data" not in batch or key not in batch:
            raise CorruptFileError(
                f"{path}: a CIFAR batch needs 'data' and {key!r} entries; found {sorted(batch)}"
            )
        data = batch["data"]
        well_formed = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
        if not well_formed or data.shape[1] != PIXELS:
            shape = getattr(data, "shape", None)
            raise CorruptFileError(f"{path}: 'data' must be a uint8 (N, {PIXELS}) array, got {shape}")
        try:
            lab = np.asarray(batch[key], dtype=np.int64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise CorruptFileError(f"{path}: {key!r} is not a list of integers ({exc})") from exc
        if len(lab) != len(data):
            raise CorruptFileError(
                f"{path}: label/image count mismatch: {len(data)} images but {len(lab)} labels"
            )
        check_labels(lab, num_classes, path)
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def read_class_names(path: Path) -> list[str]:
    """Class names from a CIFAR meta file: a text file with one name per line, or a python-version pickle."""
    if path.suffix == ".txt":
        return [line.strip() for line in path.read_text(encoding="latin1").splitlines() if line.strip()]
    meta = _as_str_keys(safe_load(path), path)
    for key in ("fine_label_names", "label_names"):
        if key in meta:
            return [_text(n) for n in meta[key]]
    raise CorruptFileError(f"{path}: no label names in this meta file (keys {sorted(meta)})")
