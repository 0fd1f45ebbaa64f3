"""Size report of a compressed model: per tensor and total bytes, bits per non-zero, index overhead, ratio.

Definitions:

* ``bytes``: the tensor's section bytes (index + values + codebook, or the raw data).
* ``dense_bytes``: ``numel * element size`` of the tensor's dtype (4 bytes per float32 weight).
* ``bits/nz``: ``8 * bytes / nnz`` (non-zeros only; fillers are overhead). For ``raw`` tensors every
  element counts as stored, so ``nnz = numel``.
* ``layout``: scan order and filler form of a sparse tensor (``row``/``col``, ``zero``/``escape``).
* ``index %``: index bytes relative to value bytes (values + codebook), the measure behind Han et al.'s
  "storage overhead of only 15.6%" for 5-bit indices next to 32-bit weights.
* totals: ``total_bytes`` is the whole file (preamble and header included); ``ratio = dense_bytes /
  total_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netslim.compression.fileformat import Container, read_container


@dataclass(frozen=True)
class LayerSize:
    """Storage of one tensor in a compressed file."""

    name: str
    kind: str
    shape: tuple[int, ...]
    numel: int
    nnz: int
    entries: int
    index_bytes: int
    value_bytes: int
    dense_bytes: int
    layout: str = ""  # sparse kinds: "<scan>/<fillers>", e.g. "col/zero" (see tensor_codec)

    @property
    def bytes(self) -> int:
        """Bytes this tensor takes in the file: index plus value bytes."""
        return self.index_bytes + self.value_bytes

    @property
    def bits_per_nonzero(self) -> float:
        """Bits stored per non-zero weight (``inf`` for a tensor with no non-zeros but some bytes)."""
        if self.nnz == 0:
            return 0.0 if self.bytes == 0 else float("inf")
        return 8.0 * self.bytes / self.nnz

    @property
    def index_overhead_pct(self) -> float:
        """Index bytes as a percentage of value bytes (0 for raw tensors)."""
        return 100.0 * self.index_bytes / self.value_bytes if self.value_bytes else 0.0

    @property
    def ratio(self) -> float:
        """Dense bytes / stored bytes (``inf`` when nothing is stored)."""
        return self.dense_bytes / self.bytes if self.bytes else float("inf")


@dataclass
class SizeReport:
    """Per-tensor sizes plus the file's total; ``ratio`` = dense bytes / file bytes."""

    layers: list[LayerSize] = field(default_factory=list)
    total_bytes: int = 0
    header_bytes: int = 0

    @property
    def dense_bytes(self) -> int:
        """Dense bytes of all tensors (numel x element size of their dtype)."""
        return sum(layer.dense_bytes for layer in self.layers)

    @property
    def ratio(self) -> float:
        """Dense bytes / file bytes (``inf`` for an empty file)."""
        return self.dense_bytes / self.total_bytes if self.total_bytes else float("inf")

    @property
    def nnz(self) -> int:
        """Non-zero weights over all tensors."""
        return sum(layer.nnz for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (per-layer rows plus totals)."""
        return {
            "total_bytes": self.total_bytes,
            "dense_bytes": self.dense_bytes,
            "header_bytes": self.header_bytes,
            "ratio": self.ratio,
            "layers": [
                {
                    "name": lay.name,
                    "kind": lay.kind,
                    "shape": list(lay.shape),
                    "numel": lay.numel,
                    "nnz": lay.nnz,
                    "entries": lay.entries,
                    "bytes": lay.bytes,
                    "index_bytes": lay.index_bytes,
                    "value_bytes": lay.value_bytes,
                    "dense_bytes": lay.dense_bytes,
                    "layout": lay.layout,
                    "bits_per_nonzero": lay.bits_per_nonzero,
                    "index_overhead_pct": lay.index_overhead_pct,
                }
                for lay in self.layers
            ],
        }

    def render(self) -> str:
        """A plain-text table: one row per tensor, then the header and the total."""
        from netslim._table import format_table

        head = [
            "tensor",
            "kind",
            "layout",
            "shape",
            "nnz",
            "fillers",
            "bytes",
            "bits/nz",
            "index %",
            "dense",
            "ratio",
        ]
        rows = []
        for lay in self.layers:
            rows.append(
                [
                    lay.name,
                    lay.kind,
                    lay.layout,
                    "x".join(map(str, lay.shape)) or "scalar",
                    str(lay.nnz),
                    str(lay.entries - lay.nnz),
                    str(lay.bytes),
                    f"{lay.bits_per_nonzero:.2f}",
                    f"{lay.index_overhead_pct:.1f}",
                    str(lay.dense_bytes),
                    f"{lay.ratio:.1f}x",
                ]
            )
        rows.append(["(header)", "", "", "", "", "", str(self.header_bytes), "", "", "", ""])
        rows.append(
            [
                "total",
                "",
                "",
                "",
                str(self.nnz),
                "",
                str(self.total_bytes),
                "",
                "",
                str(self.dense_bytes),
                f"{self.ratio:.1f}x",
            ]
        )
        return format_table(rows, head, align="llll" + "r" * 7, rules_before=(-2,))


def _element_size(dtype: str) -> int:
    import torch

    return torch.empty(0, dtype=getattr(torch, dtype)).element_size()


def size_report(blob: bytes | Container) -> SizeReport:
    """Build the :class:`SizeReport` of a compressed file from its header (sections are not decoded)."""
    container = blob if isinstance(blob, Container) else read_container(blob)
    layers = []
    for rec in container.records:
        sections = {name: int(length) for name, length in rec["sections"]}
        numel = 1
        for s in rec["shape"]:
            numel *= int(s)
        if rec["kind"] == "raw":
            index_bytes, value_bytes, entries, nnz = 0, sections.get("data", 0), numel, numel
        else:
            index_bytes = sections.get("index", 0)
            value_bytes = sections.get("values", 0) + sections.get("codebook", 0)
            entries, nnz = int(rec["count"]), int(rec["nnz"])
        layout = f"{rec['scan']}/{rec['fillers']}" if rec["kind"] != "raw" else ""
        layers.append(
            LayerSize(
                name=rec["name"],
                kind=rec["kind"],
                shape=tuple(int(s) for s in rec["shape"]),
                numel=numel,
                nnz=nnz,
                entries=entries,
                index_bytes=index_bytes,
                value_bytes=value_bytes,
                dense_bytes=numel * _element_size(rec["dtype"]),
                layout=layout,
            )
        )
    total = container.header_bytes + len(container.data)
    return SizeReport(layers=layers, total_bytes=total, header_bytes=container.header_bytes)
