"""Encode one tensor into container sections and back.

Kinds of records:

* ``raw``: section ``data`` holds the tensor's bytes in the host byte order (little-endian on the platforms
  torch ships for), any dtype, bit-exact (``-0.0`` and NaN payloads included).
* ``sparse-float32``: float32 weights (2-D or more) in relative-index form (:mod:`.relative_index`).
  Section ``index`` holds the ``index_bits``-bit fields; section ``values`` holds one little-endian float32
  per entry (fillers store 0.0). Non-zero values are bit-exact.
* ``sparse-quantized``: as above, but section ``values`` holds ``value_bits``-bit codes into section
  ``codebook`` (``2**value_bits`` float32, code 0 = 0.0, used by fillers).

Streams named in ``record["enc"]`` are either ``packed`` (fixed width, :mod:`.bitpack`) or ``huffman``
(:mod:`.huffman`); with Huffman enabled each stream takes whichever of the two is smaller. For every
candidate tensor the sparse form is used only when it is smaller than ``raw``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from netslim.compression import bitpack, huffman, kmeans, relative_index
from netslim.compression.fileformat import TensorEntry
from netslim.errors import CorruptFileError, NetslimError


@dataclass(frozen=True)
class CodecOptions:
    """Encoding options: index bits for FC (2-D) and conv (>=3-D) weights, quantization, Huffman."""

    index_bits_fc: int = 5
    index_bits_conv: int = 8
    quantize: bool = False
    bits_fc: int = 5
    bits_conv: int = 8
    huffman: bool = False

    def validate(self) -> None:
        """Raise :class:`~netslim.errors.NetslimError` if a bit width is out of range."""
        for name in ("index_bits_fc", "index_bits_conv"):
            value = getattr(self, name)
            if not 1 <= value <= 16:
                raise NetslimError(f"{name} must be between 1 and 16, got {value}")
        for name in ("bits_fc", "bits_conv"):
            value = getattr(self, name)
            if not 1 <= value <= 16:
                raise NetslimError(f"{name} must be between 1 and 16 (8 or fewer is typical), got {value}")


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def _dtype_from_name(name: str, tensor_name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise CorruptFileError(f"compressed file: tensor {tensor_name!r} has unknown dtype {name!r}")
    return dtype


def _raw_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return flat.view(torch.uint8).numpy().tobytes()


def _stream(values: np.ndarray, width: int, use_huffman: bool) -> tuple[str, bytes]:
    packed = bitpack.pack_bits(values, width)
    if use_huffman:
        coded = huffman.encode(values)
        if len(coded) < len(packed):
            return "huffman", coded
    return "packed", packed


def _read_stream(blob: memoryview, enc: str, width: int, count: int, what: str) -> np.ndarray:
    if enc == "packed":
        return bitpack.unpack_bits(blob, width, count).astype(np.int64)
    if enc == "huffman":
        return huffman.decode(blob, count)
    raise CorruptFileError(f"compressed file: unknown stream encoding {enc!r} for {what}")


def _base_record(name: str, tensor: torch.Tensor) -> dict[str, Any]:
    return {"name": name, "dtype": dtype_name(tensor.dtype), "shape": list(tensor.shape)}


def encode_tensor(name: str, tensor: torch.Tensor, opts: CodecOptions) -> TensorEntry:
    """Encode one tensor in the smallest applicable kind; returns its header record and sections."""
    if tensor.is_sparse or tensor.layout != torch.strided:
        raise NetslimError(f"tensor {name!r} has layout {tensor.layout}; convert it with .to_dense() first")
    raw = TensorEntry({**_base_record(name, tensor), "kind": "raw"}, {"data": _raw_bytes(tensor)})
    if tensor.dtype != torch.float32 or tensor.dim() < 2 or tensor.numel() == 0:
        return raw
    fc = tensor.dim() == 2
    index_bits = opts.index_bits_fc if fc else opts.index_bits_conv
    value_bits = opts.bits_fc if fc else opts.bits_conv
    flat = tensor.detach().cpu().contiguous().reshape(-1).numpy()
    positions = relative_index.nonzero_positions(flat)
    count = relative_index.count_entries(positions, index_bits)
    raw_size = len(raw.sections["data"])
    if not opts.huffman:  # exact sizes are known without encoding; skip hopeless tensors
        values_size = 4 * count
        if opts.quantize:
            values_size = bitpack.packed_size(count, value_bits) + 4 * (1 << value_bits)
        if bitpack.packed_size(count, index_bits) + values_size >= raw_size:
            return raw
    stream = relative_index.encode_positions(positions, index_bits)
    index_enc, index_blob = _stream(stream.fields, index_bits, opts.huffman)
    record = {
        **_base_record(name, tensor),
        "nnz": stream.nnz,
        "count": stream.count,
        "index_bits": index_bits,
        "enc": {"index": index_enc},
    }
    if opts.quantize:
        nonzero = flat[positions]
        book = kmeans.fit_codebook(nonzero, value_bits)
        codes = np.zeros(stream.count, dtype=np.uint32)
        codes[stream.entry_of_nonzero] = kmeans.assign_codes(nonzero, book)
        values_enc, values_blob = _stream(codes, value_bits, opts.huffman)
        record.update(kind="sparse-quantized", value_bits=value_bits)
        record["enc"]["values"] = values_enc
        codebook = book.centroids.astype("<f4").tobytes()
        sections = {"index": index_blob, "values": values_blob, "codebook": codebook}
    else:
        entry_values = np.zeros(stream.count, dtype="<f4")
        entry_values[stream.entry_of_nonzero] = flat[positions]
        record["kind"] = "sparse-float32"
        sections = {"index": index_blob, "values": entry_values.tobytes()}
    if sum(len(b) for b in sections.values()) >= raw_size:
        return raw
    return TensorEntry(record, sections)


def decode_tensor(record: dict[str, Any], section: Any) -> torch.Tensor:
    """Rebuild a tensor from its record; ``section(record, name)`` returns a CRC-checked section."""
    name = record.get("name")
    try:
        kind = record["kind"]
        dtype = _dtype_from_name(record["dtype"], name)
        shape = [int(s) for s in record["shape"]]
        if any(s < 0 for s in shape):
            raise ValueError("negative dimension")
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"compressed file: malformed record for tensor {name!r} ({exc})") from None
    numel = int(np.prod(shape, dtype=np.int64))
    if kind == "raw":
        blob = section(record, "data")
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if len(blob) != numel * itemsize:
            raise CorruptFileError(
                f"compressed file: tensor {name!r} should hold {numel * itemsize} bytes, "
                f"its section has {len(blob)}"
            )
        if numel == 0:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(bytearray(blob), dtype=dtype).reshape(shape)
    if kind not in ("sparse-float32", "sparse-quantized"):
        raise CorruptFileError(f"compressed file: tensor {name!r} has unknown encoding kind {kind!r}")
    try:
        count = int(record["count"])
        index_bits = int(record["index_bits"])
        enc = record["enc"]
        if count < 0 or not 1 <= index_bits <= 16:
            raise ValueError("count or index_bits out of range")
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptFileError(f"compressed file: malformed record for tensor {name!r} ({exc})") from None
    fields = _read_stream(section(record, "index"), enc.get("index"), index_bits, count, f"{name!r} indices")
    if kind == "sparse-float32":
        blob = section(record, "values")
        if len(blob) != 4 * count:
            raise CorruptFileError(f"compressed file: values of tensor {name!r} have the wrong length")
        values = np.frombuffer(blob, dtype="<f4")
    else:
        value_bits = int(record.get("value_bits", 0))
        if not 1 <= value_bits <= 16:
            raise CorruptFileError(f"compressed file: tensor {name!r} has invalid value_bits {value_bits}")
        book_blob = section(record, "codebook")
        if len(book_blob) != 4 << value_bits:
            raise CorruptFileError(f"compressed file: codebook of tensor {name!r} has the wrong length")
        codebook = np.frombuffer(book_blob, dtype="<f4")
        codes_blob = section(record, "values")
        codes = _read_stream(codes_blob, enc.get("values"), value_bits, count, f"{name!r} codes")
        if codes.size and codes.max() >= codebook.size:
            raise CorruptFileError(f"compressed file: tensor {name!r} has codes outside its codebook")
        values = codebook[codes]
    dense = relative_index.scatter(values, fields, numel, np.float32)
    return torch.from_numpy(dense.astype(np.float32, copy=False)).reshape(shape)
