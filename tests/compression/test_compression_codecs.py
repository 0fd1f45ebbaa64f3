"""Unit tests of the compression building blocks: bit packing, relative indices, k-means, Huffman."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netslim.compression import bitpack, huffman, kmeans, relative_index
from netslim.errors import CorruptFileError


def test_pack_bits_golden_msb_first() -> None:
    assert bitpack.pack_bits(np.array([5, 1]), 3) == b"\xa4"  # 101 001 00
    assert bitpack.pack_bits(np.array([0xABCD]), 16) == b"\xab\xcd"
    assert bitpack.pack_bits(np.array([], dtype=np.uint32), 7) == b""


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 16), data=st.data())
def test_pack_unpack_round_trip(width: int, data: st.DataObject) -> None:
    values = np.array(data.draw(st.lists(st.integers(0, (1 << width) - 1), max_size=300)), dtype=np.uint32)
    blob = bitpack.pack_bits(values, width)
    assert len(blob) == bitpack.packed_size(values.size, width)
    np.testing.assert_array_equal(bitpack.unpack_bits(blob, width, values.size), values)


def test_pack_rejects_out_of_range_and_unpack_detects_truncation() -> None:
    with pytest.raises(ValueError, match=r"lie in"):
        bitpack.pack_bits(np.array([8]), 3)
    with pytest.raises(CorruptFileError, match="truncated"):
        bitpack.unpack_bits(b"\x00", 5, 4)


def test_filler_zero_golden_case() -> None:
    # 3-bit fields cover gaps 1..8; a gap of 20 needs two fillers (each +8) and then field 20-16-1 = 3.
    stream = relative_index.encode_positions(np.array([19]), 3)
    np.testing.assert_array_equal(stream.fields, [7, 7, 3])
    np.testing.assert_array_equal(stream.entry_of_nonzero, [2])
    np.testing.assert_array_equal(relative_index.decode_positions(stream.fields, 20), [7, 15, 19])
    assert bitpack.pack_bits(stream.fields, 3) == bytes([0b11111101, 0b10000000])


def test_gap_of_exactly_span_needs_no_filler() -> None:
    stream = relative_index.encode_positions(np.array([7, 8, 17]), 3)  # gaps 8, 1, 9
    np.testing.assert_array_equal(stream.fields, [7, 0, 7, 0])
    assert stream.count == relative_index.count_entries(np.array([7, 8, 17]), 3) == 4


def test_negative_zero_counts_as_zero() -> None:
    flat = np.array([0.0, -0.0, 1.5, -2.0], dtype=np.float32)
    np.testing.assert_array_equal(relative_index.nonzero_positions(flat), [2, 3])


def test_decode_positions_out_of_range_is_corrupt() -> None:
    with pytest.raises(CorruptFileError, match="past the end"):
        relative_index.decode_positions(np.array([3, 3]), 7)


def test_kmeans_linear_init_reserved_zero_and_exact_reencoding() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-0.3, 0.05, 500), rng.normal(0.3, 0.05, 500)]).astype(np.float32)
    book = kmeans.fit_codebook(values, 3)
    assert book.centroids.shape == (8,) and book.centroids[0] == 0.0
    codes = kmeans.assign_codes(values, book)
    assert codes.min() >= 1
    err = np.abs(book.centroids[codes] - values).mean()
    assert err < 0.05
    # Already-shared values are kept exactly.
    shared = book.centroids[codes]
    book2 = kmeans.fit_codebook(shared, 3)
    np.testing.assert_array_equal(book2.centroids[kmeans.assign_codes(shared, book2)], shared)


def test_kmeans_one_bit_and_empty() -> None:
    book = kmeans.fit_codebook(np.array([1.0, 2.0, 3.0], dtype=np.float32), 1)
    assert book.centroids.tolist() == [0.0, 2.0]
    assert kmeans.fit_codebook(np.zeros(0, dtype=np.float32), 4).centroids.tolist() == [0.0] * 16


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 65535), max_size=400), st.integers(1, 5))
def test_huffman_round_trip(symbols: list[int], repeat: int) -> None:
    stream = np.array(symbols * repeat, dtype=np.int64)
    blob = huffman.encode(stream)
    np.testing.assert_array_equal(huffman.decode(blob, stream.size), stream)


def test_huffman_single_symbol_and_empty() -> None:
    one = np.full(1000, 7)
    blob = huffman.encode(one)
    # sparse table: mode 2, n = 1 (varint), symbol 7 (uint16), length 1 in 5 bits; then 1 bit per symbol
    assert blob[:5] == b"\x02\x01\x07\x00\x08"
    assert len(blob) == 5 + 125
    np.testing.assert_array_equal(huffman.decode(blob, 1000), one)
    assert huffman.decode(huffman.encode(np.zeros(0)), 0).size == 0


def test_huffman_is_optimal_on_dyadic_source_and_limits_depth() -> None:
    stream = np.repeat([0, 1, 2, 3], [8, 4, 2, 2])
    assert sorted(huffman.code_lengths(np.arange(4), np.array([8, 4, 2, 2])).tolist()) == [1, 2, 3, 3]
    counts = np.array([int(1.7**i) + 1 for i in range(40)])
    assert huffman.code_lengths(np.arange(40), counts, max_length=12).max() <= 12
    np.testing.assert_array_equal(huffman.decode(huffman.encode(stream), stream.size), stream)


def test_huffman_decodes_a_layer_sized_stream_exactly() -> None:
    # decoding speed is a benchmark (the han_* rows of benchmarks/rows_weights.py), never a timed unit test
    rng = np.random.default_rng(1)
    stream = np.minimum(rng.geometric(0.1, 270_000) - 1, 31)
    blob = huffman.encode(stream)
    np.testing.assert_array_equal(huffman.decode(blob, stream.size), stream)


def test_huffman_dense_table_form_is_used_for_compact_alphabets() -> None:
    stream = np.arange(1000) % 32
    blob = huffman.encode(stream)
    # mode 1, n = 32 (varint), 32 five-bit lengths (20 bytes), then 5 bits per symbol
    assert blob[:2] == b"\x01\x20" and len(blob) == 2 + 20 + 1000 * 5 // 8
    np.testing.assert_array_equal(huffman.decode(blob, stream.size), stream)


def test_huffman_truncated_payload_is_corrupt() -> None:
    stream = np.arange(100) % 5
    blob = huffman.encode(stream)
    with pytest.raises(CorruptFileError):
        huffman.decode(blob[:-10], stream.size)
    with pytest.raises(CorruptFileError):
        huffman.decode(blob[:5], stream.size)
    with pytest.raises(CorruptFileError, match="table mode"):
        huffman.decode(b"\x07" + blob[1:], stream.size)
