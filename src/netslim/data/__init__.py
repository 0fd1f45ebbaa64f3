"""Datasets for netslim: on-disk formats, finding and fetching files, in-memory loaders.

``get_loaders("fashion-mnist")`` returns train/val/test loaders of normalized float batches;
``load_dataset`` returns one split as uint8 tensors; ``netslim datasets`` shows what is installed where.
"""

from __future__ import annotations

from netslim.data.api import DataBundle, example_batch, get_loaders
from netslim.data.dataset import ArrayDataset, load_dataset
from netslim.data.loader import TensorLoader
from netslim.data.locate import locate, search_roots
from netslim.data.registry import AugmentSpec, DatasetSpec, get_spec, list_datasets
from netslim.data.splits import split_indices

__all__ = [
    "ArrayDataset",
    "AugmentSpec",
    "DataBundle",
    "DatasetSpec",
    "TensorLoader",
    "example_batch",
    "get_loaders",
    "get_spec",
    "list_datasets",
    "load_dataset",
    "locate",
    "search_roots",
    "split_indices",
]
