"""The versioned binary container of a compressed model (``.nsz``).

Layout (integers little-endian)::

    magic      8 bytes   b"\\x89NSZ\\r\\n\\x1a\\n"
    version    uint16    FORMAT_VERSION (2)
    flags      uint16    0 (reserved; any other value is rejected)
    hlen       uint32    length of the compressed header
    hcrc       uint32    CRC32 of the compressed header bytes
    header     hlen bytes, zlib-compressed UTF-8 JSON
    data       the sections, back to back

The JSON header is ``{"meta": {...}, "tensors": [record, ...], "data_bytes": N}``. Each tensor record has
``name``, ``dtype``, ``shape``, ``kind`` (``raw``, ``sparse-float32`` or ``sparse-quantized``) and kind
specific fields (see :mod:`.tensor_codec`), plus ``sections``: ``[[section name, length], ...]`` in data
order, and ``crc``: the CRC32 of the tensor's sections concatenated. Sections follow each other in record
order, so offsets are implied. Every tensor is CRC-checked when read; any inconsistency raises
:class:`~netslim.errors.CorruptFileError`, never returns garbage.

Version history: version 1 stored ``[offset, length, crc32]`` per section, an ``options`` copy and
4-byte Huffman table words; version 2 (this one) drops what can be derived and is refused by name when an
older file is read (re-compress the checkpoint).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from netslim.errors import CorruptFileError

MAGIC = b"\x89NSZ\r\n\x1a\n"
FORMAT_VERSION = 2
_PREAMBLE = struct.Struct("<8sHHII")


@dataclass
class TensorEntry:
    """A tensor's header record and its sections' bytes (``record["sections"]`` is filled on write)."""

    record: dict[str, Any]
    sections: dict[str, bytes]


def write_container(meta: dict[str, Any], entries: Iterable[TensorEntry]) -> bytes:
    """Serialize ``meta`` and the tensor entries; returns the file bytes."""
    records = []
    blobs: list[bytes] = []
    for entry in entries:
        record = dict(entry.record)
        record["sections"] = [[name, len(blob)] for name, blob in entry.sections.items()]
        record["crc"] = zlib.crc32(b"".join(entry.sections.values()))
        blobs.extend(entry.sections.values())
        records.append(record)
    header_json = json.dumps(
        {"meta": meta, "tensors": records, "data_bytes": sum(len(b) for b in blobs)},
        separators=(",", ":"),
        sort_keys=True,
    )
    header = zlib.compress(header_json.encode("utf-8"), 9)
    preamble = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(header), zlib.crc32(header))
    return b"".join([preamble, header, *blobs])


@dataclass
class Container:
    """A parsed container: the JSON ``header`` and the raw ``data`` area; sections are read on demand."""

    header: dict[str, Any]
    data: memoryview
    header_bytes: int
    # Data offset of each tensor's first section, plus the end of the data area (filled by read_container).
    _starts: list[int] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        """The ``meta`` dict stored in the header (empty when the file has none)."""
        return self.header.get("meta", {})

    @property
    def records(self) -> list[dict[str, Any]]:
        """One header record per stored tensor, in file order."""
        return self.header["tensors"]

    def sections(self, index: int) -> dict[str, memoryview]:
        """The sections of tensor number ``index``, ``{name: bytes}``, after checking the tensor's CRC32."""
        record = self.records[index]
        start = self._starts[index]
        stop = self._starts[index + 1]
        blob = self.data[start:stop]
        if zlib.crc32(blob) != record.get("crc"):
            raise CorruptFileError(
                f"compressed file is corrupt: CRC32 mismatch in tensor {record.get('name')!r}; "
                "the file was damaged, compress the checkpoint again"
            )
        out = {}
        at = 0
        for name, length in record["sections"]:
            out[name] = blob[at : at + length]
            at += length
        return out


def _section_starts(records: list[Any], data_bytes: int) -> list[int]:
    """Data offset where each tensor's sections start, plus the end; checks the section lists."""
    starts = [0]
    for record in records:
        if not isinstance(record, dict) or "name" not in record:
            raise CorruptFileError("compressed file: a tensor record has no name; the header is damaged")
        try:
            lengths = [int(length) for name, length in record["sections"] if isinstance(name, str)]
            if len(lengths) != len(record["sections"]) or min(lengths, default=0) < 0:
                raise ValueError("bad section list")
        except (KeyError, TypeError, ValueError):
            raise CorruptFileError(
                f"compressed file: tensor {record.get('name')!r} has a malformed section list; "
                "the header is damaged"
            ) from None
        starts.append(starts[-1] + sum(lengths))
    if starts[-1] != data_bytes:
        raise CorruptFileError(
            f"compressed file: the sections add up to {starts[-1]} bytes, the header announces {data_bytes}; "
            "the header is damaged"
        )
    return starts


def read_container(blob: bytes | bytearray | memoryview) -> Container:
    """Parse and validate the preamble and header of a container; returns a :class:`Container`.

    Raises :class:`~netslim.errors.CorruptFileError` for a bad magic, an unknown version, a damaged header
    or a data area of the wrong length (truncated or with trailing bytes).
    """
    view = memoryview(blob)
    if len(view) < _PREAMBLE.size:
        raise CorruptFileError(
            f"not a netslim compressed model: {len(view)} bytes is shorter than the "
            f"{_PREAMBLE.size}-byte preamble"
        )
    magic, version, flags, hlen, hcrc = _PREAMBLE.unpack_from(view, 0)
    if magic != MAGIC:
        raise CorruptFileError(
            "not a netslim compressed model (bad magic bytes); pass a file written by `netslim compress`"
        )
    if version > FORMAT_VERSION:
        raise CorruptFileError(
            f"compressed model has format version {version}, newer than this netslim ({FORMAT_VERSION}); "
            "upgrade netslim"
        )
    if version < 1:
        raise CorruptFileError(f"compressed file is corrupt: invalid format version {version}")
    if version < FORMAT_VERSION:
        raise CorruptFileError(
            f"compressed model has format version {version}, written by an older netslim; this one reads "
            f"version {FORMAT_VERSION} only: compress the original checkpoint again"
        )
    if flags != 0:
        raise CorruptFileError(f"compressed file is corrupt: unknown flags {flags:#06x} in the preamble")
    start = _PREAMBLE.size
    header_blob = view[start : start + hlen]
    if len(header_blob) < hlen:
        raise CorruptFileError("compressed file is truncated inside its header; copy or write the file again")
    if zlib.crc32(header_blob) != hcrc:
        raise CorruptFileError(
            "compressed file is corrupt: header CRC32 mismatch; compress the checkpoint again"
        )
    try:
        header = json.loads(zlib.decompress(header_blob).decode("utf-8"))
        data_bytes = int(header["data_bytes"])
        if not isinstance(header["tensors"], list):
            raise TypeError("tensors is not a list")
    except (ValueError, KeyError, TypeError, zlib.error) as exc:
        raise CorruptFileError(f"compressed file has a malformed header ({exc})") from None
    data = view[start + hlen :]
    if len(data) < data_bytes:
        raise CorruptFileError(
            f"compressed file is truncated: the header announces {data_bytes} data bytes, only {len(data)} "
            "are present; copy or write the file again"
        )
    if len(data) > data_bytes:
        raise CorruptFileError(
            f"compressed file has {len(data) - data_bytes} unexpected trailing bytes; "
            "it may be two files joined"
        )
    starts = _section_starts(header["tensors"], data_bytes)
    return Container(header=header, data=data, header_bytes=start + hlen, _starts=starts)
