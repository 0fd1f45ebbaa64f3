"""Layout choices of the compressed format: column-major scan order and escaped fillers (format 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netslim.compression import compress_state_dict, decompress, relative_index, size_report
from netslim.compression.fileformat import read_container
from netslim.errors import CorruptFileError


def _record(blob: bytes, name: str) -> dict:
    return next(r for r in read_container(blob).records if r["name"] == name)


def _column_sparse(shape: tuple[int, ...], columns: list[int], seed: int = 0) -> torch.Tensor:
    """Non-zeros only in a few input columns (dim 1), as after pruning an MNIST fc1 with dead pixels."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.zeros(shape)
    w[:, columns] = torch.randn(shape[0], len(columns), *shape[2:], generator=gen)
    return w


@pytest.mark.parametrize("quantize", [False, True])
def test_column_major_scan_is_chosen_and_round_trips(quantize: bool) -> None:
    w = _column_sparse((40, 200), [0, 1, 2])
    blob = compress_state_dict({"fc.weight": w}, quantize=quantize)
    rec = _record(blob, "fc.weight")
    assert rec["scan"] == "col"
    # column-major: the 120 non-zeros are one run, no fillers; row-major needs 6 per row (gaps of 198)
    assert rec["count"] == rec["nnz"] == 120
    out = decompress(blob)[0]["fc.weight"]
    if quantize:
        assert torch.equal(out != 0, w != 0)
    else:
        assert torch.equal(out.view(torch.int32), w.view(torch.int32))
    row_only = relative_index.count_entries(relative_index.nonzero_positions(w.reshape(-1).numpy()), 5)
    assert rec["count"] < row_only


def test_input_major_scan_of_a_conv_weight_round_trips() -> None:
    w = _column_sparse((32, 16, 3, 3), [0, 9])
    blob = compress_state_dict({"conv.weight": w}, index_bits_conv=4, huffman=True)
    assert _record(blob, "conv.weight")["scan"] == "col"
    out = decompress(blob)[0]["conv.weight"]
    assert out.shape == w.shape and torch.equal(out.view(torch.int32), w.view(torch.int32))


def test_row_major_is_kept_when_rows_are_the_better_scan() -> None:
    w = _column_sparse((200, 40), [0]).T.contiguous()  # only row 0 is non-zero
    rec = _record(compress_state_dict({"w": w}), "w")
    assert rec["scan"] == "row" and rec["count"] == rec["nnz"]


def test_escape_golden_case() -> None:
    stream = relative_index.encode_positions(np.array([19]), 3)
    fields = relative_index.escape_fillers(stream, 3)
    np.testing.assert_array_equal(fields, [8, 8, 3])
    np.testing.assert_array_equal(relative_index.decode_escaped(fields, 3, 20), [19])
    with pytest.raises(CorruptFileError, match="outside"):
        relative_index.decode_escaped(np.array([9, 3]), 3, 20)
    with pytest.raises(CorruptFileError, match="past the end"):
        relative_index.decode_escaped(fields, 3, 19)


def _long_gap_weight() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    w = torch.zeros(60, 500)
    keep = torch.rand(60, 500, generator=gen) < 0.01  # mean gap ~100 > 2**5: many fillers
    w[keep] = torch.randn(int(keep.sum()), generator=gen)
    return w


@pytest.mark.parametrize("quantize", [False, True])
def test_escaped_fillers_store_no_values_and_round_trip(quantize: bool) -> None:
    w = _long_gap_weight()
    blob = compress_state_dict({"w": w}, quantize=quantize, huffman=True)
    rec = _record(blob, "w")
    assert rec["fillers"] == "escape" and rec["enc"]["index"] == "huffman"
    assert rec["count"] > rec["nnz"] == int((w != 0).sum())
    sections = dict(rec["sections"])
    if not quantize:
        assert sections["values"] == 4 * rec["nnz"]  # fillers carry no float32 zero
    else:
        assert sections["codebook"] == 4 * 31  # code 0 (= 0.0) is implicit
    out = decompress(blob)[0]["w"]
    if quantize:
        assert torch.equal(out != 0, w != 0)
    else:
        assert torch.equal(out.view(torch.int32), w.view(torch.int32))
    zero_fillers = compress_state_dict({"w": w}, quantize=quantize)  # packed: escape is impossible
    assert _record(zero_fillers, "w")["fillers"] == "zero"
    assert len(blob) < len(zero_fillers)


def test_escaped_and_zero_fillers_decode_to_the_same_tensor() -> None:
    w = _long_gap_weight()
    escaped = compress_state_dict({"w": w}, quantize=True, huffman=True)
    zero_fillers = compress_state_dict({"w": w}, quantize=True)
    assert [_record(b, "w")["fillers"] for b in (escaped, zero_fillers)] == ["escape", "zero"]
    a, b = decompress(escaped)[0]["w"], decompress(zero_fillers)[0]["w"]
    assert torch.equal(a.view(torch.int32), b.view(torch.int32))
    # the size report counts escaped fillers as entries, like filler zeros
    assert size_report(escaped).layers[0].entries == _record(escaped, "w")["count"]


def test_escape_record_with_packed_index_is_corrupt() -> None:
    import struct
    import zlib

    from netslim.compression.fileformat import FORMAT_VERSION, MAGIC

    text = (
        b'{"meta": {}, "tensors": [{"name": "w", "kind": "sparse-float32", "dtype": "float32", '
        b'"shape": [2, 2], "nnz": 1, "count": 1, "index_bits": 5, "scan": "row", "fillers": "escape", '
        b'"enc": {"index": "packed"}, "sections": [], "crc": 0}], "data_bytes": 0}'
    )
    header = zlib.compress(text)
    blob = struct.pack("<8sHHII", MAGIC, FORMAT_VERSION, 0, len(header), zlib.crc32(header)) + header
    with pytest.raises(CorruptFileError, match="escaped fillers need a Huffman"):
        decompress(blob)
