"""What netslim knows about each dataset: file layouts on disk, official downloads, classes, augmentation.

Normalization statistics are not listed here: they are measured from each training set when it is loaded
(see :func:`netslim.data.stats.channel_stats`), so they always match the files in use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netslim.errors import UnknownNameError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Layout:
    """One way a dataset's files can lie in a folder.

    ``kind`` picks the reader ("idx", "cifar-bin", "cifar-py", "svhn-mat"); ``files`` maps split -> file
    names; ``subdirs`` are conventional sub-folder names the files may sit in; ``gz_ok`` accepts
    ``<file>.gz`` too; ``meta`` is an optional file with class names.
    """

    kind: str
    files: dict[str, tuple[str, ...]]
    subdirs: tuple[str, ...] = ()
    gz_ok: bool = False
    meta: str | None = None


@dataclass(frozen=True)
class Resource:
    """A file published by the dataset's authors: mirrors to try in order, its MD5, whether to untar it."""

    filename: str
    urls: tuple[str, ...]
    md5: str
    extract: bool = False


@dataclass(frozen=True)
class AugmentSpec:
    """Training augmentation: zero-pad by ``pad`` then random-crop back to size; optional horizontal flip."""

    pad: int = 0
    flip: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """Static description of a dataset netslim can load."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    class_names: tuple[str, ...]
    layouts: tuple[Layout, ...]
    resources: tuple[Resource, ...]
    augment: AugmentSpec
    homepage: str
    aliases: tuple[str, ...] = field(default=())  # other folder names the dataset is commonly kept under


def _spec(
    name: str, class_names: tuple[str, ...], in_channels: int, image_size: int, **rest: Any
) -> DatasetSpec:
    """A :class:`DatasetSpec` with one class per name in ``class_names``."""
    return DatasetSpec(name, len(class_names), in_channels, image_size, class_names, **rest)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _idx(
    name: str,
    class_names: tuple[str, ...],
    subdir: str,
    mirrors: tuple[str, ...],
    md5: tuple[str, str, str, str],
    *,
    homepage: str,
    flip: bool = False,
    aliases: tuple[str, ...] = (),
) -> DatasetSpec:
    """An MNIST-like dataset: 28x28 grey images in the four gzipped IDX files (``md5`` in the order train
    images, train labels, test images, test labels) under torchvision's ``subdir`` or flat; pad-2 crops."""
    files = [f for split in _IDX_FILES.values() for f in split]
    return _spec(
        name,
        class_names,
        1,
        28,
        layouts=(Layout(kind="idx", files=dict(_IDX_FILES), subdirs=(subdir,), gz_ok=True),),
        resources=tuple(
            Resource(f"{f}.gz", tuple(m + f"{f}.gz" for m in mirrors), h) for f, h in zip(files, md5)
        ),
        augment=AugmentSpec(pad=2, flip=flip),
        homepage=homepage,
        aliases=aliases,
    )


def _cifar(
    name: str, class_names: tuple[str, ...], *, binary: Layout, python: Layout, md5: str
) -> DatasetSpec:
    """A CIFAR dataset: its binary and pickled-Python layouts, the binary archive, pad-4 crops and flips."""
    archive = f"cifar-{len(class_names)}-binary.tar.gz"
    return _spec(
        name,
        class_names,
        3,
        32,
        layouts=(binary, python),
        resources=(Resource(archive, (f"https://www.cs.toronto.edu/~kriz/{archive}",), md5, extract=True),),
        augment=AugmentSpec(pad=4, flip=True),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        aliases=(f"cifar-{len(class_names)}",),
    )


_DIGITS = tuple(str(i) for i in range(10))

_SPECS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        _idx(
            "mnist",
            _DIGITS,
            "MNIST/raw",
            ("https://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
            (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
            homepage="https://yann.lecun.com/exdb/mnist/",
        ),
        _idx(
            "fashion-mnist",
            (
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
            "FashionMNIST/raw",
            (
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ),
            (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
            flip=True,
            aliases=("fashion_mnist", "fashionmnist"),
        ),
        _idx(
            "kmnist",
            ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            "KMNIST/raw",
            ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
            (
                "bdb82020997e1d708af4cf47b453dcf7",
                "e144d726b3acfaa3e44228e80efcd344",
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "7320c461ea6c1c855c0b718fb2a4b134",
            ),
            homepage="https://github.com/rois-codh/kmnist",
        ),
        _cifar(
            "cifar10",
            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
            binary=Layout(
                "cifar-bin",
                {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)},
                ("cifar-10-batches-bin",),
                meta="batches.meta.txt",
            ),
            python=Layout(
                "cifar-py",
                {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
                ("cifar-10-batches-py",),
                meta="batches.meta",
            ),
            md5="c32a1d4ab5d03f1284b67883e8d87530",
        ),
        _cifar(
            "cifar100",
            tuple(str(i) for i in range(100)),  # real names are read from the meta file
            binary=Layout(
                "cifar-bin",
                {"train": ("train.bin",), "test": ("test.bin",)},
                ("cifar-100-binary",),
                meta="fine_label_names.txt",
            ),
            python=Layout(
                "cifar-py", {"train": ("train",), "test": ("test",)}, ("cifar-100-python",), meta="meta"
            ),
            md5="03b5dce01913d631647c71ecec9e9cb8",
        ),
        _spec(
            "svhn",
            _DIGITS,
            3,
            32,
            layouts=(
                Layout(kind="svhn-mat", files={"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)}),
            ),
            resources=(
                Resource(
                    "train_32x32.mat",
                    ("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",),
                    "e26dedcc434d2e4c54c9b2d4a06d8373",
                ),
                Resource(
                    "test_32x32.mat",
                    ("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",),
                    "eb5a983be6a315427106f1b164d9cef3",
                ),
            ),
            augment=AugmentSpec(pad=4, flip=False),  # flipping digits changes what they are
            homepage="http://ufldl.stanford.edu/housenumbers/",
        ),
    )
}

FOLDER_PREFIX = "folder:"


def list_datasets() -> list[str]:
    """Names of the built-in datasets (plus ``folder:<path>`` for an image folder, not listed)."""
    return sorted(_SPECS)


def get_spec(name: str) -> DatasetSpec:
    """The spec of a built-in dataset; raises UnknownNameError listing the valid names."""
    key = name.strip().lower()
    if key in _SPECS:
        return _SPECS[key]
    for spec in _SPECS.values():
        if key in spec.aliases:
            return spec
    raise UnknownNameError(
        f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}, "
        f"or 'folder:<path>' for a folder of images per class"
    )


def is_folder_name(name: str) -> bool:
    """True when ``name`` designates an image folder (``folder`` or ``folder:<path>``)."""
    return name == "folder" or name.startswith(FOLDER_PREFIX)
