"""Round trips, corruption handling and size arithmetic of the compressed container."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from netslim.compression import compress_model, compress_state_dict, decompress, size_report
from netslim.compression.fileformat import FORMAT_VERSION, MAGIC, read_container
from netslim.errors import CorruptFileError, NetslimError


@st.composite
def sparse_tensors(draw: st.DrawFn) -> torch.Tensor:
    ndim = draw(st.integers(1, 4))
    shape = draw(st.lists(st.integers(0 if ndim > 1 else 1, 9), min_size=ndim, max_size=ndim))
    density = draw(st.sampled_from([0.0, 0.02, 0.1, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=gen)
    mask = torch.rand(shape, generator=gen) < density
    tensor = torch.where(mask, values, torch.zeros(()))
    if draw(st.booleans()) and tensor.numel():  # negative zeros in pruned slots
        tensor = torch.where(mask, tensor, torch.full((), -0.0))
    return tensor


def _assert_same_positions(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert torch.equal(out != 0, ref != 0)


@settings(max_examples=80, deadline=None)
@given(tensor=sparse_tensors(), index_bits=st.integers(1, 16), huffman=st.booleans())
def test_float32_round_trip_is_exact(tensor: torch.Tensor, index_bits: int, huffman: bool) -> None:
    state = {"w": tensor, "bias": torch.randn(3)}
    blob = compress_state_dict(
        state, {"k": 1}, index_bits_fc=index_bits, index_bits_conv=index_bits, huffman=huffman
    )
    out, meta = decompress(blob)
    assert meta == {"k": 1}
    assert torch.equal(out["w"], tensor)  # -0.0 == 0.0; non-zeros bit-exact
    nz = tensor != 0
    assert torch.equal(out["w"][nz].view(torch.int32), tensor[nz].view(torch.int32))
    assert torch.equal(out["bias"].view(torch.int32), state["bias"].view(torch.int32))


@settings(max_examples=60, deadline=None)
@given(tensor=sparse_tensors(), bits=st.integers(1, 8), index_bits=st.integers(1, 16), huffman=st.booleans())
def test_quantized_round_trip_uses_codebook_values(
    tensor: torch.Tensor, bits: int, index_bits: int, huffman: bool
) -> None:
    blob = compress_state_dict(
        {"w": tensor},
        index_bits_fc=index_bits,
        index_bits_conv=index_bits,
        quantize=True,
        bits_fc=bits,
        bits_conv=bits,
        huffman=huffman,
    )
    out, _ = decompress(blob)
    record = size_report(blob).layers[0]
    if record.kind == "raw":
        assert torch.equal(out["w"], tensor)
        return
    assert record.kind == "sparse-quantized"
    _assert_same_positions(out["w"], tensor)
    nonzero = tensor[tensor != 0]
    decoded = out["w"][tensor != 0]
    if nonzero.numel():
        assert len(torch.unique(decoded)) <= 2**bits - 1
        assert decoded.min() >= nonzero.min() and decoded.max() <= nonzero.max()


def test_quantized_error_is_small_and_reencoding_is_lossless() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 50, generator=gen) * (torch.rand(64, 50, generator=gen) < 0.2)
    out, _ = decompress(compress_state_dict({"w": w}, quantize=True, bits_fc=5))
    nz = w != 0
    assert (out["w"][nz] - w[nz]).abs().max() < 0.25
    again, _ = decompress(compress_state_dict(out, quantize=True, bits_fc=5, huffman=True))
    assert torch.equal(again["w"], out["w"])


def test_dtypes_and_buffers_are_kept_raw() -> None:
    state = {
        "idx": torch.tensor([3, 1, 4], dtype=torch.int64),
        "half": torch.randn(4, 4).half(),
        "flag": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "bf": torch.randn(5).bfloat16(),
        "dense_w": torch.randn(8, 8),
    }
    blob = compress_state_dict(state)
    out, _ = decompress(blob)
    for name, ref in state.items():
        assert out[name].dtype == ref.dtype and torch.equal(out[name], ref), name
    kinds = {lay.name: lay.kind for lay in size_report(blob).layers}
    assert kinds["dense_w"] == "raw"  # a dense weight is smaller stored raw


def test_pruned_conv_weight_uses_conv_index_bits() -> None:
    w = torch.randn(16, 8, 3, 3) * (torch.rand(16, 8, 3, 3) < 0.1)
    blob = compress_state_dict({"conv.weight": w}, index_bits_conv=4, index_bits_fc=9)
    assert decompress(blob)[0]["conv.weight"].equal(w)
    assert read_container(blob).records[0]["index_bits"] == 4


def test_size_report_arithmetic_on_hand_example() -> None:
    # 1x100 weight (both scan orders agree) with non-zeros at positions 0 and 50; 5-bit indices cover gaps
    # up to 32.
    w = torch.zeros(1, 100)
    w.view(-1)[0] = 1.0
    w.view(-1)[50] = -2.0
    blob = compress_state_dict({"w": w, "b": torch.ones(10)}, index_bits_fc=5)
    report = size_report(blob)
    lay, bias = report.layers
    # gaps 1 and 50 -> fields [0], [31 (filler), 17]: 3 entries, 15 bits -> 2 bytes, 3 float32 -> 12 bytes
    assert (lay.kind, lay.nnz, lay.entries) == ("sparse-float32", 2, 3)
    assert (lay.index_bytes, lay.value_bytes, lay.bytes) == (2, 12, 14)
    assert lay.bits_per_nonzero == 56.0
    assert lay.index_overhead_pct == pytest.approx(100 * 2 / 12)
    assert lay.dense_bytes == 400 and bias.bytes == 40 and bias.dense_bytes == 40
    assert report.total_bytes == len(blob)
    assert report.dense_bytes == 440
    assert report.ratio == pytest.approx(440 / len(blob))
    assert report.header_bytes + 14 + 40 == len(blob)
    table = report.render()
    assert "sparse-float32" in table and "total" in table


def test_compress_model_reports_and_rejects_bad_options() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 4))
    with torch.no_grad():
        model[0].weight.mul_(torch.rand(30, 20) < 0.1)
    blob, report = compress_model(model, quantize=True, huffman=True)
    assert report.total_bytes == len(blob)
    out, meta = decompress(blob)
    assert set(out) == set(model.state_dict()) and meta["class"].endswith("Sequential")
    with pytest.raises(NetslimError, match="index_bits_fc"):
        compress_model(model, index_bits_fc=0)


def _blob() -> bytes:
    w = torch.randn(20, 30) * (torch.rand(20, 30) < 0.1)
    state = {"layer.weight": w, "layer.bias": torch.randn(20)}
    return compress_state_dict(state, {"note": "x"}, huffman=True)


def test_bad_magic_and_short_file() -> None:
    blob = _blob()
    with pytest.raises(CorruptFileError, match="magic"):
        decompress(b"PK\x03\x04" + blob[4:])
    with pytest.raises(CorruptFileError, match="preamble"):
        decompress(MAGIC[:5])


def test_truncated_file_at_every_region() -> None:
    blob = _blob()
    for cut in (25, len(blob) // 2, len(blob) - 1):
        with pytest.raises(CorruptFileError, match="truncated"):
            decompress(blob[:cut])
    with pytest.raises(CorruptFileError, match="trailing"):
        decompress(blob + b"\x00")


def test_every_single_bit_flip_is_detected() -> None:
    blob = bytearray(_blob())
    for pos in range(len(blob)):
        for bit in (0, 5):
            damaged = bytearray(blob)
            damaged[pos] ^= 1 << bit
            with pytest.raises(CorruptFileError):
                decompress(bytes(damaged))


def test_crc_mismatch_names_the_tensor() -> None:
    blob = bytearray(_blob())
    blob[-1] ^= 0xFF  # last section belongs to the last tensor (the bias)
    with pytest.raises(CorruptFileError, match=r"layer\.bias"):
        decompress(bytes(blob))


def test_newer_version_is_refused() -> None:
    blob = bytearray(_blob())
    struct.pack_into("<H", blob, 8, 99)
    with pytest.raises(CorruptFileError, match="newer"):
        decompress(bytes(blob))


def _with_header(text: bytes, version: int = FORMAT_VERSION) -> bytes:
    header = zlib.compress(text)
    return struct.pack("<8sHHII", MAGIC, version, 0, len(header), zlib.crc32(header)) + header


def test_malformed_header_with_valid_crc() -> None:
    blob = _with_header(
        b'{"meta": {}, "tensors": [{"name": "w", "kind": "weird", "dtype": "float32", '
        b'"shape": [2], "sections": [], "crc": 0}], "data_bytes": 0}'
    )
    with pytest.raises(CorruptFileError, match="unknown encoding kind"):
        decompress(blob)
    with pytest.raises(CorruptFileError, match="malformed header"):
        decompress(_with_header(b"not json"))
    blob = _with_header(
        b'{"meta": {}, "tensors": [{"name": "w", "kind": "raw", "dtype": "float32", '
        b'"shape": [1], "sections": [["data", 4]], "crc": 0}], "data_bytes": 0}'
    )
    with pytest.raises(CorruptFileError, match="add up"):
        decompress(blob)


def test_version_1_file_is_refused_with_advice() -> None:
    blob = _with_header(b'{"meta": {}, "options": {}, "tensors": [], "data_bytes": 0}', version=1)
    with pytest.raises(CorruptFileError, match=r"older netslim.*compress the original checkpoint again"):
        decompress(blob)


def test_numpy_input_of_state_dict_is_rejected() -> None:
    with pytest.raises(NetslimError, match="not a tensor"):
        compress_state_dict({"w": np.zeros(3)})  # type: ignore[dict-item]
