"""What netslim knows about each dataset: file layouts on disk, official downloads, classes, augmentation.

Normalization statistics are not listed here: they are measured from each training set when it is loaded
(see :func:`netslim.data.stats.channel_stats`), so they always match the files in use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def _idx_layout(*subdirs: str) -> Layout:
    return Layout(
        kind="idx",
        files={
            "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        },
        subdirs=subdirs,
        gz_ok=True,
    )


def _idx_resources(bases: tuple[str, ...], md5: dict[str, str]) -> tuple[Resource, ...]:
    return tuple(Resource(f, tuple(b + f for b in bases), m) for f, m in md5.items())


_DIGITS = tuple(str(i) for i in range(10))

_SPECS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="mnist",
            num_classes=10,
            in_channels=1,
            image_size=28,
            class_names=_DIGITS,
            layouts=(_idx_layout("MNIST/raw"),),
            resources=_idx_resources(
                ("https://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
                {
                    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
                },
            ),
            augment=AugmentSpec(pad=2, flip=False),
            homepage="https://yann.lecun.com/exdb/mnist/",
        ),
        DatasetSpec(
            name="fashion-mnist",
            num_classes=10,
            in_channels=1,
            image_size=28,
            class_names=(
                "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
            ),
            layouts=(_idx_layout("FashionMNIST/raw"),),
            resources=_idx_resources(
                (
                    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                ),
                {
                    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
                },
            ),
            augment=AugmentSpec(pad=2, flip=True),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
            aliases=("fashion_mnist", "fashionmnist"),
        ),
        DatasetSpec(
            name="kmnist",
            num_classes=10,
            in_channels=1,
            image_size=28,
            class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            layouts=(_idx_layout("KMNIST/raw"),),
            resources=_idx_resources(
                ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
                {
                    "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
                    "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
                    "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
                    "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
                },
            ),
            augment=AugmentSpec(pad=2, flip=False),
            homepage="https://github.com/rois-codh/kmnist",
        ),
        DatasetSpec(
            name="cifar10",
            num_classes=10,
            in_channels=3,
            image_size=32,
            class_names=(
                "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
            ),
            layouts=(
                Layout(
                    kind="cifar-bin",
                    files={
                        "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                        "test": ("test_batch.bin",),
                    },
                    subdirs=("cifar-10-batches-bin",),
                    meta="batches.meta.txt",
                ),
                Layout(
                    kind="cifar-py",
                    files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
                    subdirs=("cifar-10-batches-py",),
                    meta="batches.meta",
                ),
            ),
            resources=(
                Resource(
                    "cifar-10-binary.tar.gz",
                    ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
                    "c32a1d4ab5d03f1284b67883e8d87530",
                    extract=True,
                ),
            ),
            augment=AugmentSpec(pad=4, flip=True),
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
            aliases=("cifar-10",),
        ),
        DatasetSpec(
            name="cifar100",
            num_classes=100,
            in_channels=3,
            image_size=32,
            class_names=tuple(str(i) for i in range(100)),  # real names are read from the meta file
            layouts=(
                Layout(
                    kind="cifar-bin",
                    files={"train": ("train.bin",), "test": ("test.bin",)},
                    subdirs=("cifar-100-binary",),
                    meta="fine_label_names.txt",
                ),
                Layout(
                    kind="cifar-py",
                    files={"train": ("train",), "test": ("test",)},
                    subdirs=("cifar-100-python",),
                    meta="meta",
                ),
            ),
            resources=(
                Resource(
                    "cifar-100-binary.tar.gz",
                    ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",),
                    "03b5dce01913d631647c71ecec9e9cb8",
                    extract=True,
                ),
            ),
            augment=AugmentSpec(pad=4, flip=True),
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
            aliases=("cifar-100",),
        ),
        DatasetSpec(
            name="svhn",
            num_classes=10,
            in_channels=3,
            image_size=32,
            class_names=_DIGITS,
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
