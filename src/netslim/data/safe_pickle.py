"""Loading the CIFAR "python version" pickles without letting them run code.

A pickle may name any importable callable and have it called while loading (``os.system`` included).
The CIFAR batches only need dicts, lists, strings, numbers and numpy uint8 arrays, so the unpickler here
resolves exactly the few globals that numpy's array reconstruction uses and refuses every other one.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from netslim.errors import CorruptFileError

# numpy's array reconstructor, whichever module path this numpy version keeps it under
_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1"); nothing else passes.
    if encoding.lower() not in _LATIN1 or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1", errors)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed (only numpy array reconstruction is)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def safe_loads(data: bytes, name: str = "<bytes>") -> Any:
    """Unpickle ``data`` allowing only builtin containers/scalars and numpy arrays; return the object.

    Raises CorruptFileError (without running anything) when the pickle names any other global or is damaged.
    """
    try:
        # latin1 lets Python 2 str payloads (the original CIFAR files) become numpy buffers losslessly.
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise CorruptFileError(
            f"{name}: refused to unpickle: {exc}. The CIFAR python batches contain only dicts, lists and "
            "numpy arrays; this file is not one of them (use the official download or the binary version)"
        ) from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        raise CorruptFileError(f"{name}: damaged or truncated pickle ({type(exc).__name__}: {exc})") from exc


def safe_load(path: Path) -> Any:
    """Read a pickle file with :func:`safe_loads` and return the object."""
    return safe_loads(Path(path).read_bytes(), name=str(path))
