"""Canonical Huffman coding of small-alphabet integer streams (weight codes, index fields), vectorized.

Stream layout: a code-length table, then the payload bits (MSB first). The table starts with a mode byte
and a symbol count ``n`` (unsigned LEB128 varint); code lengths (at most :data:`MAX_CODE_LENGTH` = 20) are
packed in 5 bits each with :mod:`.bitpack`. The encoder writes whichever of the two forms is smaller::

    empty:  0x00
    dense:  0x01 | n | length[n] (5 bits each; length of symbol i, 0 = absent)
    sparse: 0x02 | n | uint16 symbol[n] (little-endian, ascending) | length[n] (5 bits each)

Only the code-length table is stored; codes are rebuilt canonically (sorted by length, then symbol). Code
lengths are capped at :data:`MAX_CODE_LENGTH` so decoding can use a lookup table indexed by the next
``max length`` bits. A stream with one distinct symbol uses a 1-bit code; an empty stream has an empty table.

Decoding is vectorized too: the table gives, for every bit offset, the symbol starting there and its
length, i.e. a "next offset" function; the offsets of all symbols are then found by pointer doubling
(``log2(n)`` rounds of array indexing) instead of a Python loop over symbols.
"""

from __future__ import annotations

import heapq

import numpy as np

from netslim.compression import bitpack
from netslim.errors import CorruptFileError

MAX_CODE_LENGTH = 20
_MAX_SYMBOL = 0xFFFF


def code_lengths(symbols: np.ndarray, counts: np.ndarray, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Huffman code length of each symbol given its count (all counts > 0); lengths capped at ``max_length``.

    If the optimal code is too deep, counts are flattened (halved, kept >= 1) until it fits.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size == 1:
        return np.ones(1, dtype=np.int64)
    while True:
        lengths = _huffman_lengths(counts)
        if lengths.max() <= max_length:
            return lengths
        counts = np.maximum(counts >> 1, 1)


def _huffman_lengths(counts: np.ndarray) -> np.ndarray:
    n = counts.size
    # Nodes 0..n-1 are leaves; merged nodes are appended. Ties broken by node id for determinism.
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = [0] * (2 * n - 1)
    next_id = n
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a] = parent[b] = next_id
        heapq.heappush(heap, (c1 + c2, next_id))
        next_id += 1
    depth = [0] * (2 * n - 1)
    for node in range(2 * n - 3, -1, -1):  # parents have larger ids than children
        depth[node] = depth[parent[node]] + 1
    return np.array(depth[:n], dtype=np.int64)


def canonical_codes(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical code values for symbols in table order; returns ``(order, codes)`` where ``order`` sorts
    the table by (length, position) and ``codes[i]`` is the code of table entry ``order[i]``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.lexsort((np.arange(lengths.size), lengths))
    sorted_len = lengths[order]
    codes = np.zeros(lengths.size, dtype=np.int64)
    code = 0
    for i in range(1, lengths.size):  # alphabet-sized loop, not stream-sized
        code = (code + 1) << int(sorted_len[i] - sorted_len[i - 1])
        codes[i] = code
    return order, codes


def encode(stream: np.ndarray) -> bytes:
    """Huffman-encode a 1-D array of integers in ``[0, 65535]``; returns the self-contained byte string."""
    stream = np.asarray(stream).ravel()
    if stream.size == 0:
        return bytes([_EMPTY])
    if stream.min() < 0 or stream.max() > _MAX_SYMBOL:
        raise ValueError("Huffman symbols must lie in [0, 65535]")
    stream = stream.astype(np.int64)
    symbols, inverse, counts = np.unique(stream, return_inverse=True, return_counts=True)
    lengths = code_lengths(symbols, counts)
    order, sorted_codes = canonical_codes(lengths)
    codes = np.empty_like(sorted_codes)
    codes[order] = sorted_codes
    sym_len = lengths[inverse]
    sym_code = codes[inverse]
    return _write_table(symbols, lengths) + _pack_codes(sym_code, sym_len)


_EMPTY, _DENSE, _SPARSE = 0, 1, 2
_LENGTH_BITS = 5


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(at, min(at + 4, len(data))):
        value |= (data[i] & 0x7F) << shift
        shift += 7
        if not data[i] & 0x80:
            return value, i + 1
    raise CorruptFileError("Huffman stream is truncated or malformed (bad symbol count)")


def _write_table(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    n_dense = int(symbols[-1]) + 1
    dense_size = bitpack.packed_size(n_dense, _LENGTH_BITS)
    sparse_size = 2 * symbols.size + bitpack.packed_size(symbols.size, _LENGTH_BITS)
    if dense_size <= sparse_size:
        dense = np.zeros(n_dense, dtype=np.uint32)
        dense[symbols] = lengths
        return bytes([_DENSE]) + _varint(n_dense) + bitpack.pack_bits(dense, _LENGTH_BITS)
    return (
        bytes([_SPARSE])
        + _varint(symbols.size)
        + symbols.astype("<u2").tobytes()
        + bitpack.pack_bits(lengths, _LENGTH_BITS)
    )


def _read_table(data: memoryview) -> tuple[np.ndarray, np.ndarray, int]:
    """Parse the code-length table; returns ``(symbols, lengths, end offset)``."""
    if len(data) < 1:
        raise CorruptFileError("Huffman stream is truncated (no symbol table)")
    mode = data[0]
    if mode == _EMPTY:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 1
    if mode not in (_DENSE, _SPARSE):
        raise CorruptFileError(f"Huffman stream has an unknown table mode {mode}")
    n, at = _read_varint(data, 1)
    sym_bytes = 0 if mode == _DENSE else 2 * n
    end = at + sym_bytes + bitpack.packed_size(n, _LENGTH_BITS)
    if n > _MAX_SYMBOL + 1 or len(data) < end:
        raise CorruptFileError(f"Huffman stream is truncated or malformed (table of {n} symbols)")
    lengths = bitpack.unpack_bits(data[at + sym_bytes : end], _LENGTH_BITS, n).astype(np.int64)
    if mode == _DENSE:
        symbols = np.flatnonzero(lengths)
        return symbols, lengths[symbols], end
    symbols = np.frombuffer(data[at : at + sym_bytes], dtype="<u2").astype(np.int64)
    return symbols, lengths, end


def _pack_codes(codes: np.ndarray, lengths: np.ndarray, chunk: int = 1 << 18) -> bytes:
    """Concatenate variable-length codes MSB first and pack into bytes (chunked to bound memory)."""
    bit_chunks = []
    for start in range(0, codes.size, chunk):
        c, ln = codes[start : start + chunk], lengths[start : start + chunk]
        total = int(ln.sum())
        owner = np.repeat(np.arange(c.size), ln)
        offset = np.arange(total) - np.repeat(np.cumsum(ln) - ln, ln)
        bit_chunks.append(((c[owner] >> (ln[owner] - 1 - offset)) & 1).astype(np.uint8))
    bits = np.concatenate(bit_chunks) if bit_chunks else np.zeros(0, dtype=np.uint8)
    return np.packbits(bits).tobytes()


def decode(data: bytes | memoryview, count: int) -> np.ndarray:
    """Decode ``count`` symbols from a byte string made by :func:`encode`; returns an int64 array.

    Raises :class:`~netslim.errors.CorruptFileError` on an invalid table, an invalid code or a short payload.
    """
    data = memoryview(data)
    symbols, lengths, table_end = _read_table(data)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if symbols.size == 0:
        raise CorruptFileError(f"Huffman stream has an empty table but should hold {count} symbols")
    if lengths.min() < 1 or lengths.max() > MAX_CODE_LENGTH or np.sum(2.0**-lengths) > 1.0:
        raise CorruptFileError("Huffman code-length table is invalid (bad lengths or not a prefix code)")
    max_len = int(lengths.max())
    order, _ = canonical_codes(lengths)
    sorted_len = lengths[order]
    # Lookup table over max_len bits: canonical codes cover contiguous, ascending ranges.
    span = np.int64(1) << (max_len - sorted_len)
    covered = int(span.sum())
    lut_sym = np.full(1 << max_len, -1, dtype=np.int64)
    lut_len = np.ones(1 << max_len, dtype=np.int64)
    lut_sym[:covered] = np.repeat(symbols[order], span)
    lut_len[:covered] = np.repeat(sorted_len, span)

    payload = np.frombuffer(data[table_end:], dtype=np.uint8)
    bits = np.unpackbits(payload).astype(np.int64)
    nbits = bits.size
    padded = np.concatenate([bits, np.zeros(max_len, dtype=np.int64)])
    window = np.zeros(nbits + 1, dtype=np.int64)
    for j in range(max_len):
        window[:nbits] = (window[:nbits] << 1) | padded[j : j + nbits]
    at_sym = lut_sym[window]
    at_len = lut_len[window]
    # jump[p] = offset of the next symbol when one starts at p; offset nbits is absorbing ("past the end").
    jump = np.minimum(np.arange(nbits + 1) + at_len, nbits)
    jump[nbits] = nbits
    starts = np.zeros(count, dtype=np.int64)
    rank = np.arange(count)
    k = 0
    while (1 << k) < count:
        step = ((rank >> k) & 1).astype(bool)
        starts[step] = jump[starts[step]]
        jump = jump[jump]
        k += 1
    out = at_sym[starts]
    last_end = int(starts[-1]) + int(at_len[starts[-1]])
    if last_end > nbits or (out < 0).any() or (starts >= nbits).any():
        raise CorruptFileError(f"Huffman payload is truncated or corrupt: cannot decode {count} symbols")
    return out
