"""Relative (gap) indices with filler zeros, as in Deep Compression §2 and Fig. 2.

The weight tensor is flattened in row-major (C) order. Its non-zero entries, at positions
``p_0 < p_1 < ...``, are stored as a stream of *entries*; each entry has a value and an index field of
``b`` bits. The gap of an entry is its distance from the previous entry (the first entry's gap is
``p_0 + 1``, i.e. counted from a virtual position ``-1``), so every gap is at least 1.

* **How a gap is stored.** The index field holds ``gap - 1``, so ``b`` bits cover gaps ``1 .. 2**b``
  (the convention of the authors' released ``decode.py``). Positions are rebuilt as
  ``cumsum(field + 1) - 1``.
* **Filler zeros.** When a gap exceeds ``2**b``, filler entries are inserted first, each advancing by the
  full ``2**b`` (field ``2**b - 1``) and carrying the value zero. A gap ``g`` therefore costs
  ``(g - 1) // 2**b`` fillers and the real entry then stores ``(g - 1) % 2**b``. Fillers are ordinary
  entries in the stream (they count in ``count``); they land on positions that are zero anyway, so the
  decoder needs no flag for them. Their value must decode to exactly 0.0: in float32 streams they store
  0.0, in quantized streams they use code 0, which is reserved for 0.0 (see :mod:`.kmeans`).
* **What counts as zero.** An entry is non-zero when ``value != 0``; ``-0.0`` counts as zero (masking a
  negative weight by multiplication yields ``-0.0``) and decodes to ``+0.0``. NaN and inf are non-zero and
  are stored bit-exactly.

Example (3-bit fields, covering gaps 1..8): a single non-zero at position 19 has gap 20, giving two
fillers (positions 7 and 15) and then the entry with field 3: fields ``[7, 7, 3]``, values ``[0, 0, v]``.

**Escaped fillers** (only for Huffman-coded index streams, whose alphabet is not limited to ``b`` bits).
The same entries are produced, but a filler is written as the extra symbol ``2**b`` ("advance ``2**b``,
no weight here") instead of field ``2**b - 1`` with a zero value. The value stream then holds the
``nnz`` real weights only. Positions and the filler count are exactly those of the plain form; only the
zero values of the fillers are no longer stored. Example above: fields ``[8, 8, 3]``, values ``[v]``.

**Scan order.** The caller chooses the order in which the tensor is flattened (see :mod:`.tensor_codec`);
this module only sees a flat array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netslim.errors import CorruptFileError


@dataclass(frozen=True)
class SparseStream:
    """A tensor's entries in relative-index form.

    ``fields``: the stored index fields (``gap - 1``, uint32), one per entry; ``entry_of_nonzero``: for each
    non-zero of the tensor (in flattened order), its entry number in the stream; fillers are the other
    entries. ``count`` = entries including fillers, ``nnz`` = real non-zeros.
    """

    fields: np.ndarray
    entry_of_nonzero: np.ndarray
    nonzero_positions: np.ndarray

    @property
    def count(self) -> int:
        """Number of stream entries, fillers included."""
        return int(self.fields.size)

    @property
    def nnz(self) -> int:
        """Number of entries that hold a real non-zero (fillers excluded)."""
        return int(self.entry_of_nonzero.size)


def nonzero_positions(flat: np.ndarray) -> np.ndarray:
    """Flattened positions of the entries that are not zero (``-0.0`` is zero); int64 array."""
    return np.flatnonzero(flat != 0).astype(np.int64)


def encode_positions(positions: np.ndarray, bits: int) -> SparseStream:
    """Encode sorted, distinct flattened ``positions`` as ``bits``-bit relative fields with filler entries.

    Returns a :class:`SparseStream`; values are attached by the caller through ``entry_of_nonzero``.
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"index bits must be between 1 and 16, got {bits}")
    positions = np.asarray(positions, dtype=np.int64)
    span = 1 << bits
    gaps = np.diff(positions, prepend=-1)
    fillers = (gaps - 1) >> bits
    entry_of_nonzero = np.cumsum(fillers + 1) - 1
    total = int(entry_of_nonzero[-1]) + 1 if positions.size else 0
    fields = np.full(total, span - 1, dtype=np.uint32)
    fields[entry_of_nonzero] = ((gaps - 1) & (span - 1)).astype(np.uint32)
    return SparseStream(fields=fields, entry_of_nonzero=entry_of_nonzero, nonzero_positions=positions)


def count_entries(positions: np.ndarray, bits: int) -> int:
    """Number of stream entries (non-zeros plus fillers) that ``bits``-bit fields need for ``positions``."""
    positions = np.asarray(positions, dtype=np.int64)
    gaps = np.diff(positions, prepend=-1)
    return int(positions.size + ((gaps - 1) >> bits).sum())


def decode_positions(fields: np.ndarray, numel: int) -> np.ndarray:
    """Rebuild the flattened position of every entry (fillers included) from the stored fields.

    Raises :class:`~netslim.errors.CorruptFileError` if a position falls outside a tensor of ``numel``.
    """
    positions = np.cumsum(np.asarray(fields, dtype=np.int64) + 1) - 1
    if positions.size and positions[-1] >= numel:
        raise CorruptFileError(
            f"relative indices point past the end of the tensor (position {int(positions[-1])} >= {numel})"
        )
    return positions


def escape_fillers(stream: SparseStream, bits: int) -> np.ndarray:
    """The stream's fields with every filler replaced by the escape symbol ``2**bits``; int64 array."""
    fields = np.full(stream.count, 1 << bits, dtype=np.int64)
    fields[stream.entry_of_nonzero] = stream.fields[stream.entry_of_nonzero]
    return fields


def decode_escaped(fields: np.ndarray, bits: int, numel: int) -> np.ndarray:
    """Flattened positions of the real (non-filler) entries of an escaped stream, in stream order.

    Raises :class:`~netslim.errors.CorruptFileError` for a symbol above the escape symbol or a position
    outside a tensor of ``numel``.
    """
    span = 1 << bits
    fields = np.asarray(fields, dtype=np.int64)
    if fields.size and (fields.min() < 0 or fields.max() > span):
        raise CorruptFileError(f"relative index symbol outside 0..{span} in an escaped {bits}-bit stream")
    is_filler = fields == span
    positions = decode_positions(np.where(is_filler, span - 1, fields), numel)
    return positions[~is_filler]
