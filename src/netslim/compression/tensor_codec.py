"""Encode one tensor into container sections and back.

Kinds of records:

* ``raw``: section ``data`` holds the tensor's bytes in the host byte order (little-endian on the platforms
  torch ships for), any dtype, bit-exact (``-0.0`` and NaN payloads included).
* ``sparse-float32``: float32 weights (2-D or more) in relative-index form (:mod:`.relative_index`).
  Section ``index`` holds the ``index_bits``-bit fields; section ``values`` holds one little-endian float32
  per valued entry. Non-zero values are bit-exact.
* ``sparse-quantized``: as above, but section ``values`` holds ``value_bits``-bit codes and section
  ``codebook`` the ``2**value_bits - 1`` float32 centroids of codes 1, 2, ...; code 0 means 0.0 and is
  not stored.

Sparse records also name their layout:

* ``scan``: ``"row"`` flattens the tensor as stored (row-major, output-major for ``(out, in, ...)``
  weights); ``"col"`` flattens it with its first two dimensions swapped (input-major; for a 2-D weight
  exactly column-major). The encoder tries both and keeps the smaller, since e.g. the dead border pixels
  of an MNIST fc1 form whole empty columns, which pack into fewer filler entries than the same zeros
  spread over every row.
* ``fillers``: ``"zero"`` (Deep Compression's filler zeros: entries with field ``2**b - 1`` and value
  zero / code 0) or ``"escape"`` (the filler is the extra index symbol ``2**b`` and has no value; only
  with a Huffman-coded index stream and ``index_bits <= 15``, see :mod:`.relative_index`).

Streams named in ``record["enc"]`` are either ``packed`` (fixed width, :mod:`.bitpack`) or ``huffman``
(:mod:`.huffman`). With Huffman enabled the encoder tries each stream both ways and both filler forms and
keeps the smallest total. For every candidate tensor the sparse form is used only when it is smaller than
``raw``.
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


SCANS = ("row", "col")
FILLERS = ("zero", "escape")


def _scan(tensor: torch.Tensor, scan: str) -> np.ndarray:
    """The tensor flattened in scan order ``scan`` (``"col"``: first two dimensions swapped)."""
    t = tensor.detach().cpu()
    if scan == "col":
        t = t.transpose(0, 1)
    return t.contiguous().reshape(-1).numpy()


def _unscan(flat: np.ndarray, shape: list[int], scan: str) -> torch.Tensor:
    """Inverse of :func:`_scan`: a flat array in scan order back to a tensor of ``shape``."""
    if scan == "row":
        return torch.from_numpy(flat).reshape(shape)
    swapped = [shape[1], shape[0], *shape[2:]]
    return torch.from_numpy(flat).reshape(swapped).transpose(0, 1).contiguous()


def _fixed_size(count: int, index_bits: int, value_bits: int, quantize: bool) -> int:
    """Bytes of a packed (no Huffman) sparse encoding with ``count`` entries."""
    if quantize:
        return (
            bitpack.packed_size(count, index_bits)
            + bitpack.packed_size(count, value_bits)
            + (4 * ((1 << value_bits) - 1))
        )
    return bitpack.packed_size(count, index_bits) + 4 * count


def _candidates(
    flat: np.ndarray,
    positions: np.ndarray,
    index_bits: int,
    value_bits: int,
    book: kmeans.Codebook | None,
    use_huffman: bool,
) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    """Sparse encodings of one scan order: ``(record fields, sections)`` for each filler form tried."""
    stream = relative_index.encode_positions(positions, index_bits)
    nonzero = flat[positions]
    codes = kmeans.assign_codes(nonzero, book) if book is not None else None
    base = {"nnz": stream.nnz, "count": stream.count, "index_bits": index_bits}
    out = []
    # Filler zeros: every entry carries a value (0.0 / code 0 for fillers).
    index_enc, index_blob = _stream(stream.fields, index_bits, use_huffman)
    record = {**base, "fillers": "zero", "enc": {"index": index_enc}}
    if codes is not None:
        entry_codes = np.zeros(stream.count, dtype=np.uint32)
        entry_codes[stream.entry_of_nonzero] = codes
        record["enc"]["values"], values_blob = _stream(entry_codes, value_bits, use_huffman)
    else:
        entry_values = np.zeros(stream.count, dtype="<f4")
        entry_values[stream.entry_of_nonzero] = nonzero
        values_blob = entry_values.tobytes()
    out.append((record, {"index": index_blob, "values": values_blob}))
    if use_huffman and index_bits <= 15 and stream.count > stream.nnz:
        # Escaped fillers: the filler is an index symbol of its own and stores no value.
        index_blob = huffman.encode(relative_index.escape_fillers(stream, index_bits))
        record = {**base, "fillers": "escape", "enc": {"index": "huffman"}}
        if codes is not None:
            record["enc"]["values"], values_blob = _stream(codes, value_bits, use_huffman)
        else:
            values_blob = nonzero.astype("<f4").tobytes()
        out.append((record, {"index": index_blob, "values": values_blob}))
    return out


def encode_tensor(name: str, tensor: torch.Tensor, opts: CodecOptions) -> TensorEntry:
    """Encode one tensor in its smallest applicable kind and layout; returns its record and sections."""
    if tensor.is_sparse or tensor.layout != torch.strided:
        raise NetslimError(f"tensor {name!r} has layout {tensor.layout}; convert it with .to_dense() first")
    raw = TensorEntry({**_base_record(name, tensor), "kind": "raw"}, {"data": _raw_bytes(tensor)})
    if tensor.dtype != torch.float32 or tensor.dim() < 2 or tensor.numel() == 0:
        return raw
    fc = tensor.dim() == 2
    index_bits = opts.index_bits_fc if fc else opts.index_bits_conv
    value_bits = opts.bits_fc if fc else opts.bits_conv
    raw_size = len(raw.sections["data"])
    scans = {scan: _scan(tensor, scan) for scan in SCANS}
    positions = {scan: relative_index.nonzero_positions(flat) for scan, flat in scans.items()}
    if not opts.huffman:  # packed sizes are known without encoding: keep only the smaller scan order
        sizes = {
            scan: _fixed_size(
                relative_index.count_entries(pos, index_bits), index_bits, value_bits, opts.quantize
            )
            for scan, pos in positions.items()
        }
        best = min(SCANS, key=lambda scan: sizes[scan])  # ties keep "row"
        if sizes[best] >= raw_size:
            return raw
        scans = {best: scans[best]}
    book = None
    if opts.quantize:  # the codebook depends on the set of non-zeros only, not on the scan order
        row = scans.get("row", _scan(tensor, "row"))
        book = kmeans.fit_codebook(row[relative_index.nonzero_positions(row)], value_bits)
    best_entry: TensorEntry | None = None
    best_size = raw_size
    for scan, flat in scans.items():
        tried = _candidates(flat, positions[scan], index_bits, value_bits, book, opts.huffman)
        for fields, sections in tried:
            if book is not None:
                sections["codebook"] = book.centroids[1:].astype("<f4").tobytes()
            size = sum(len(b) for b in sections.values())
            if size < best_size:
                kind = "sparse-quantized" if book is not None else "sparse-float32"
                record = {**_base_record(name, tensor), "kind": kind, "scan": scan, **fields}
                if book is not None:
                    record["value_bits"] = value_bits
                best_entry, best_size = TensorEntry(record, sections), size
    return best_entry if best_entry is not None else raw


def decode_tensor(record: dict[str, Any], sections: dict[str, memoryview]) -> torch.Tensor:
    """Rebuild a tensor from its record and its CRC-checked ``sections`` (``{name: bytes}``)."""
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
        blob = _section(sections, "data", name)
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
        scan, fillers = record["scan"], record["fillers"]
        if count < 0 or not 1 <= index_bits <= 16:
            raise ValueError("count or index_bits out of range")
        if scan not in SCANS or fillers not in FILLERS or len(shape) < 2:
            raise ValueError(f"unknown layout scan={scan!r} fillers={fillers!r} for shape {shape}")
        if fillers == "escape" and (enc.get("index") != "huffman" or index_bits > 15):
            raise ValueError("escaped fillers need a Huffman index stream and index_bits <= 15")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptFileError(f"compressed file: malformed record for tensor {name!r} ({exc})") from None
    index_blob = _section(sections, "index", name)
    if fillers == "escape":
        fields = huffman.decode(index_blob, count)
        positions = relative_index.decode_escaped(fields, index_bits, numel)
    else:
        fields = _read_stream(index_blob, enc.get("index"), index_bits, count, f"{name!r} indices")
        if fields.size and fields.max() >= 1 << index_bits:
            raise CorruptFileError(
                f"compressed file: tensor {name!r} has index fields wider than {index_bits} bits"
            )
        positions = relative_index.decode_positions(fields, numel)
    n_values = positions.size
    if kind == "sparse-float32":
        blob = _section(sections, "values", name)
        if len(blob) != 4 * n_values:
            raise CorruptFileError(f"compressed file: values of tensor {name!r} have the wrong length")
        values = np.frombuffer(blob, dtype="<f4")
    else:
        value_bits = int(record.get("value_bits", 0))
        if not 1 <= value_bits <= 16:
            raise CorruptFileError(f"compressed file: tensor {name!r} has invalid value_bits {value_bits}")
        book_blob = _section(sections, "codebook", name)
        if len(book_blob) != 4 * ((1 << value_bits) - 1):
            raise CorruptFileError(f"compressed file: codebook of tensor {name!r} has the wrong length")
        codebook = np.concatenate([np.zeros(1, dtype="<f4"), np.frombuffer(book_blob, dtype="<f4")])
        codes_blob = _section(sections, "values", name)
        codes = _read_stream(codes_blob, enc.get("values"), value_bits, n_values, f"{name!r} codes")
        if codes.size and codes.max() >= codebook.size:
            raise CorruptFileError(f"compressed file: tensor {name!r} has codes outside its codebook")
        values = codebook[codes]
    dense = np.zeros(numel, dtype=np.float32)
    dense[positions] = values
    return _unscan(dense, shape, scan)


def _section(sections: dict[str, memoryview], key: str, name: Any) -> memoryview:
    try:
        return sections[key]
    except KeyError:
        raise CorruptFileError(
            f"compressed file: tensor {name!r} lacks its {key!r} section; the header is damaged"
        ) from None
