"""Whole datasets in memory (uint8 NCHW images + int64 labels) and :func:`load_dataset`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from netslim.data import download as _download
from netslim.data.formats.cifar import read_cifar_bin, read_cifar_py, read_class_names
from netslim.data.formats.folder import class_dirs, read_image_folder
from netslim.data.formats.idx import read_idx_pair
from netslim.data.formats.svhn import read_svhn_mat
from netslim.data.locate import ENV_VAR, Found, cache_dir, find, folder_root, require
from netslim.data.registry import SPLITS, DatasetSpec, get_spec, is_folder_name
from netslim.data.splits import split_indices
from netslim.errors import CorruptFileError, NetslimError

FOLDER_TEST_FRACTION = 0.2  # held out as "test" when an image folder has no train/ and test/ sub-folders
_FOLDER_TEST_SEED = 0


@dataclass
class ArrayDataset:
    """One split of a dataset held in memory."""

    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    name: str
    split: str
    class_names: list[str]
    source: Path | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        """Number of classes of the dataset (not only those present in this split)."""
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        """Image channels (1 for grey, 3 for colour)."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """Image (height, width)."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, indices: np.ndarray | torch.Tensor, split: str | None = None) -> ArrayDataset:
        """A new dataset with the samples at ``indices`` (copied), optionally renamed to ``split``."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        return replace(self, images=self.images[index], labels=self.labels[index], split=split or self.split)


def _to_dataset(
    images: np.ndarray, labels: np.ndarray, name: str, split: str, classes: list[str], source: Path | None
) -> ArrayDataset:
    return ArrayDataset(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(labels.astype(np.int64)),
        name=name,
        split=split,
        class_names=list(classes),
        source=source,
    )


def _read(found: Found, spec: DatasetSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    paths = found.files(split)
    kind = found.layout.kind
    if kind == "idx":
        return read_idx_pair(paths[0], paths[1], spec.num_classes)
    if kind == "cifar-bin":
        return read_cifar_bin(paths, spec.num_classes)
    if kind == "cifar-py":
        return read_cifar_py(paths, spec.num_classes)
    if kind == "svhn-mat":
        return read_svhn_mat(paths[0])
    raise NetslimError(f"no reader for layout kind {kind!r}")


def _class_names(found: Found, spec: DatasetSpec) -> list[str]:
    meta = found.meta_file()
    if meta is None:
        return list(spec.class_names)
    names = read_class_names(meta)
    if len(names) != spec.num_classes:
        raise CorruptFileError(f"{meta}: lists {len(names)} class names, {spec.name} has {spec.num_classes}")
    return names


def download_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where downloads go: ``data_dir`` when given, else ``$NETSLIM_DATA``, else ``~/.cache/netslim``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else cache_dir()


def _load_builtin(
    spec: DatasetSpec, split: str, data_dir: str | os.PathLike[str] | None, download: bool
) -> ArrayDataset:
    found = find(spec, data_dir)
    if found is None and download:
        _download.download(spec, download_root(data_dir))
    found = found or require(spec, data_dir)
    images, labels = _read(found, spec, split)
    expected = (spec.in_channels, spec.image_size, spec.image_size)
    if images.shape[1:] != expected:
        raise CorruptFileError(
            f"{found.directory}: {spec.name} images should be {expected} (C, H, W), found {images.shape[1:]}"
        )
    return _to_dataset(images, labels, spec.name, split, _class_names(found, spec), found.directory)


def _load_folder(root: Path, name: str, split: str, image_size: tuple[int, int] | None) -> ArrayDataset:
    if class_dirs(root / "train"):
        split_root = root / split
        images, labels, classes = read_image_folder(split_root, image_size)
        if split == "test":
            train_classes = [d.name for d in class_dirs(root / "train")]
            if classes != train_classes:
                raise CorruptFileError(
                    f"{split_root}: class folders {classes} differ from those in {root / 'train'} "
                    f"({train_classes}); both splits need the same classes"
                )
        return _to_dataset(images, labels, name, split, classes, split_root)
    images, labels, classes = read_image_folder(root, image_size)
    keep, held = split_indices(len(labels), FOLDER_TEST_FRACTION, _FOLDER_TEST_SEED)
    chosen = held if split == "test" else keep
    return _to_dataset(images[chosen], labels[chosen], name, split, classes, root)


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    image_size: int | tuple[int, int] | None = None,
) -> ArrayDataset:
    """Load one split (``"train"`` or ``"test"``) of dataset ``name`` into memory and return it.

    ``name`` is a built-in name (see :func:`list_datasets`), ``folder:<path>``, or ``folder`` with
    ``data_dir``. An image folder uses ``<root>/train`` and ``<root>/test`` when present, otherwise a fixed
    20% of ``<root>`` is the test split; ``image_size`` resizes its images (default: most common size).
    Raises DataNotFoundError (listing files and places) when the files are missing and ``download`` is
    False or fails, and CorruptFileError for damaged files.
    """
    if split not in SPLITS:
        raise NetslimError(
            f"split must be one of {', '.join(SPLITS)} (validation is carved from train), got {split!r}"
        )
    if is_folder_name(name):
        size = (image_size, image_size) if isinstance(image_size, int) else image_size
        root = folder_root(name, data_dir)
        return _load_folder(root, f"folder:{root}", split, size)
    return _load_builtin(get_spec(name), split, data_dir, download)
