"""Params, MACs/FLOPs, activation memory, latency and file size of a model (:func:`measure`).

Public names are imported lazily: importing one submodule (e.g. ``netslim.measurement.latency``, which the
engine and the inference form use) does not pull in :mod:`netslim.measurement.api` and what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netslim._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "compare": "netslim.measurement.api",
    "measure": "netslim.measurement.api",
    "count": "netslim.measurement.counter",
    "file_bytes": "netslim.measurement.files",
    "saved_size": "netslim.measurement.files",
    "count_params": "netslim.measurement.params",
}

__all__ = ["compare", "count", "count_params", "file_bytes", "measure", "saved_size"]

if TYPE_CHECKING:  # pragma: no cover
    from netslim.measurement.api import compare, measure
    from netslim.measurement.counter import count
    from netslim.measurement.files import file_bytes, saved_size
    from netslim.measurement.params import count_params

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
