"""Reading whole files, transparently un-gzipping them, with errors that name the file."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from netslim.errors import CorruptFileError

_GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """Return the contents of ``path``, decompressed when it is gzip data (detected by magic, not name)."""
    raw = Path(path).read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptFileError(
            f"{path}: gzip data is truncated or damaged ({exc}); delete the file and fetch it again"
        ) from exc


def check_labels(labels: np.ndarray, num_classes: int, source: Path | str) -> None:
    """Raise CorruptFileError when a label is outside ``[0, num_classes)``."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise CorruptFileError(
            f"{source}: label out of range: found {int(bad[0])} but the dataset has {num_classes} classes "
            f"(0..{num_classes - 1})"
        )
