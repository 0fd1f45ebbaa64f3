"""Params, MACs/FLOPs, activation memory, latency and file size of a model (:func:`measure`)."""

from netslim.measurement.api import compare, measure
from netslim.measurement.counter import count
from netslim.measurement.files import file_bytes, saved_size
from netslim.measurement.params import count_params

__all__ = ["compare", "count", "count_params", "file_bytes", "measure", "saved_size"]
