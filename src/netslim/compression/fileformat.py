"""The versioned binary container of a compressed model (``.nsz``).

Layout (integers little-endian)::

    magic      8 bytes   b"\\x89NSZ\\r\\n\\x1a\\n"
    version    uint16    FORMAT_VERSION
    flags      uint16    0 (reserved; any other value is rejected)
    hlen       uint32    length of the compressed header
    hcrc       uint32    CRC32 of the compressed header bytes
    header     hlen bytes, zlib-compressed UTF-8 JSON
    data       the sections, back to back

The JSON header is ``{"meta": {...}, "options": {...}, "tensors": [record, ...], "data_bytes": N}``.
Each tensor record has ``name``, ``dtype``, ``shape``, ``kind`` (``raw``, ``sparse-float32`` or
``sparse-quantized``) and kind specific fields (see :mod:`.tensor_codec`), plus ``sections``:
``{section name: [offset, length, crc32]}`` with offsets relative to the start of the data area. Every
section is CRC-checked when read; any inconsistency raises :class:`~netslim.errors.CorruptFileError`,
never returns garbage.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from netslim.errors import CorruptFileError

MAGIC = b"\x89NSZ\r\n\x1a\n"
FORMAT_VERSION = 1
_PREAMBLE = struct.Struct("<8sHHII")


@dataclass
class TensorEntry:
    """A tensor's header record and its sections' bytes (``record["sections"]`` is filled on write)."""

    record: dict[str, Any]
    sections: dict[str, bytes]


def write_container(
    meta: dict[str, Any], entries: Iterable[TensorEntry], options: dict[str, Any] | None = None
) -> bytes:
    """Serialize ``meta``, the encoding ``options`` and the tensor entries; returns the file bytes."""
    records = []
    blobs: list[bytes] = []
    offset = 0
    for entry in entries:
        record = dict(entry.record)
        record["sections"] = {}
        for name, blob in entry.sections.items():
            record["sections"][name] = [offset, len(blob), zlib.crc32(blob)]
            blobs.append(blob)
            offset += len(blob)
        records.append(record)
    header_json = json.dumps(
        {"meta": meta, "options": options or {}, "tensors": records, "data_bytes": offset},
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

    @property
    def meta(self) -> dict[str, Any]:
        return self.header.get("meta", {})

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.header["tensors"]

    def section(self, record: dict[str, Any], name: str) -> memoryview:
        """The bytes of section ``name`` of a tensor, CRC-checked."""
        try:
            offset, length, crc = record["sections"][name]
        except (KeyError, TypeError, ValueError):
            raise CorruptFileError(
                f"compressed file: tensor {record.get('name')!r} lacks its {name!r} section; "
                "the header is damaged"
            ) from None
        if offset < 0 or length < 0 or offset + length > len(self.data):
            raise CorruptFileError(
                f"compressed file is truncated: section {name!r} of tensor {record.get('name')!r} "
                f"ends at byte {offset + length} of a data area of {len(self.data)} bytes; "
                "copy or write the file again"
            )
        blob = self.data[offset : offset + length]
        if zlib.crc32(blob) != crc:
            raise CorruptFileError(
                f"compressed file is corrupt: CRC32 mismatch in section {name!r} of tensor "
                f"{record.get('name')!r}; the file was damaged, compress the checkpoint again"
            )
        return blob


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
    return Container(header=header, data=data, header_bytes=start + hlen)
