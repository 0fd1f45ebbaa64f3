"""Pack unsigned integers of a fixed bit width (1..16) into bytes and back, vectorized with numpy.

Bit order: each value is written most significant bit first, values follow each other without padding, and
the last byte is zero-padded at the end. So ``pack_bits([5, 1], 3)`` writes the bits ``101 001`` and gives
``b"\\xa4"``. Work is done in chunks so memory stays bounded on large tensors.
"""

from __future__ import annotations

import numpy as np

from netslim.errors import CorruptFileError

MAX_WIDTH = 16
# Chunks hold a multiple of 8 values, so every chunk ends on a byte boundary.
_CHUNK = 1 << 20


def _check_width(width: int) -> None:
    if not 1 <= int(width) <= MAX_WIDTH:
        raise ValueError(f"bit width must be between 1 and {MAX_WIDTH}, got {width}")


def packed_size(count: int, width: int) -> int:
    """Number of bytes :func:`pack_bits` produces for ``count`` values of ``width`` bits."""
    return (int(count) * int(width) + 7) // 8


def pack_bits(values: np.ndarray, width: int) -> bytes:
    """Pack non-negative integers ``< 2**width`` into a byte string, ``width`` bits each, MSB first.

    Raises ``ValueError`` if a value does not fit in ``width`` bits.
    """
    _check_width(width)
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() >= (1 << width)):
        raise ValueError(f"values must lie in [0, {(1 << width) - 1}] to be packed in {width} bits")
    values = values.astype(np.uint32, copy=False).ravel()
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint32)
    parts = []
    for start in range(0, values.size, _CHUNK):
        chunk = values[start : start + _CHUNK]
        bits = ((chunk[:, None] >> shifts) & 1).astype(np.uint8)
        parts.append(np.packbits(bits.ravel()).tobytes())
    return b"".join(parts)


def unpack_bits(data: bytes | memoryview, width: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: read ``count`` values of ``width`` bits; returns a uint32 array.

    Raises :class:`~netslim.errors.CorruptFileError` if ``data`` is too short for ``count`` values.
    """
    _check_width(width)
    count = int(count)
    need = packed_size(count, width)
    if len(data) < need:
        raise CorruptFileError(
            f"packed stream is truncated: {count} values of {width} bits need {need} bytes, got {len(data)}"
        )
    raw = np.frombuffer(data, dtype=np.uint8, count=need)
    weights = (np.uint32(1) << np.arange(width - 1, -1, -1, dtype=np.uint32)).astype(np.uint32)
    out = np.empty(count, dtype=np.uint32)
    chunk_bytes = _CHUNK * width // 8
    for i, start in enumerate(range(0, count, _CHUNK)):
        n = min(_CHUNK, count - start)
        byte_part = raw[i * chunk_bytes : i * chunk_bytes + packed_size(n, width)]
        bits = np.unpackbits(byte_part)[: n * width].reshape(n, width)
        out[start : start + n] = bits.astype(np.uint32) @ weights
    return out
