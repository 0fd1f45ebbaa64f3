"""The one-call entry point: :func:`get_loaders` returns train/val/test loaders and dataset facts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from netslim.data.dataset import load_dataset
from netslim.data.loader import TensorLoader
from netslim.data.registry import AugmentSpec, get_spec, is_folder_name
from netslim.data.splits import split_indices
from netslim.data.stats import channel_stats
from netslim.errors import NetslimError


@dataclass
class DataBundle:
    """Loaders for one dataset plus what a model and a report need to know about it.

    ``val`` is None when ``val_size=0``. ``mean``/``std`` are the per-channel statistics (on the [0, 1]
    scale) of the training file, used to normalize every split.
    """

    train: TensorLoader
    val: TensorLoader | None
    test: TensorLoader
    num_classes: int
    in_channels: int
    image_size: int | tuple[int, int]
    name: str
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: Path | None = None  # the folder the training files were read from

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input."""
        h, w = (self.image_size, self.image_size) if isinstance(self.image_size, int) else self.image_size
        return self.in_channels, h, w


def _folder_augment(height: int, width: int) -> AugmentSpec:
    return AugmentSpec(pad=max(1, min(height, width) // 8), flip=True)


def get_loaders(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    eval_batch_size: int = 256,
    val_size: int | float = 5000,
    seed: int = 0,
    augment: bool = True,
    limit: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    download: bool = False,
    device: torch.device | str | None = None,
    max_batches: int | None = None,
) -> DataBundle:
    """Load dataset ``name`` and return a :class:`DataBundle` of train/val/test loaders.

    ``val_size`` samples (a count, or a fraction of the training file) are held out of train by a split
    that depends only on ``seed``; ``limit`` then keeps the first N remaining training samples. ``batch_size``
    is the global training batch (each of ``world_size`` ranks yields its rows ``rank::world_size``);
    ``max_batches`` caps every loader's batches per epoch. Only the training loader augments, and only when
    ``augment`` is True.
    """
    train_full = load_dataset(name, "train", data_dir=data_dir, download=download)
    test = load_dataset(name, "test", data_dir=data_dir, image_size=train_full.image_size)
    mean, std = channel_stats(train_full.images)
    keep, held = split_indices(len(train_full), val_size, seed)
    train = train_full.subset(keep, "train")
    if limit is not None:
        if limit < 1:
            raise NetslimError(f"limit must be >= 1, got {limit}")
        train = train.subset(torch.arange(min(limit, len(train))))
    if len(train) < batch_size:
        raise NetslimError(
            f"only {len(train)} training samples for a batch size of {batch_size}; "
            "lower batch_size or raise limit"
        )
    height, width = train_full.image_size
    if is_folder_name(name):
        aug_spec = _folder_augment(height, width)
    else:
        aug_spec = get_spec(name).augment
    common = dict(
        mean=mean, std=std, rank=rank, world_size=world_size, max_batches=max_batches, device=device
    )
    train_loader = TensorLoader(
        train.images,
        train.labels,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        augment=aug_spec if augment else None,
        seed=seed,
        **common,
    )

    def eval_loader(images: torch.Tensor, labels: torch.Tensor) -> TensorLoader:
        return TensorLoader(images, labels, batch_size=eval_batch_size, seed=seed, **common)

    val_loader = eval_loader(train_full.images[held], train_full.labels[held]) if len(held) else None
    return DataBundle(
        train=train_loader,
        val=val_loader,
        test=eval_loader(test.images, test.labels),
        num_classes=train_full.num_classes,
        in_channels=train_full.in_channels,
        image_size=height if height == width else (height, width),
        name=train_full.name,
        class_names=train_full.class_names,
        mean=mean,
        std=std,
        source=train_full.source.resolve() if train_full.source is not None else None,
    )


def example_batch(bundle: DataBundle, n: int = 8, split: str = "train") -> torch.Tensor:
    """The first ``n`` normalized, un-augmented inputs of ``split`` (for calibration, tracing, export)."""
    loader = {"train": bundle.train, "val": bundle.val, "test": bundle.test}.get(split)
    if loader is None:
        raise NetslimError(f"split must be train, val (when val_size > 0) or test; got {split!r}")
    return loader.first(n)[0]
