"""Size of a model on disk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from torch import nn

from netslim.errors import NetslimError


def file_bytes(path: str | os.PathLike[str]) -> int:
    """Size of the file at ``path`` in bytes."""
    path = Path(path)
    if not path.is_file():
        raise NetslimError(f"{path} is not a file; pass the path of a saved model")
    return path.stat().st_size


def saved_size(model: nn.Module) -> int:
    """Bytes of ``model`` saved as a netslim checkpoint (:func:`netslim.save`) in a temporary file."""
    from netslim.io import save

    with tempfile.TemporaryDirectory(prefix="netslim-size-") as tmp:
        return file_bytes(save(model, Path(tmp) / "model.pt"))
