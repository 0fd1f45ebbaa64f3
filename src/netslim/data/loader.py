"""In-memory batch loader over uint8 NCHW tensors: no per-sample Python, no worker processes.

Shuffling and augmentation draw from a generator seeded by ``(seed, epoch)`` only, so an epoch's batches do
not depend on global RNG state (a killed run resumed at epoch e sees exactly the batches it would have seen).
With ``world_size=W`` the loader still walks the *global* batches; rank r yields rows ``r::W`` of each.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from netslim.data.augment import augment as apply_augment
from netslim.data.augment import sample_params
from netslim.data.registry import AugmentSpec
from netslim.errors import NetslimError


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed derived from ``(seed, epoch)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF]).generate_state(2)
    return (int(state[0]) << 31 | int(state[1])) & ((1 << 63) - 1)


class TensorLoader:
    """Iterates ``(x float32 NCHW normalized, y int64)`` batches over in-memory uint8 images.

    ``batch_size`` is the global batch size. ``len()`` is the number of batches per epoch (the same on every
    rank). Training loaders use ``shuffle=True, drop_last=True``; evaluation loaders neither.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        shuffle: bool = False,
        drop_last: bool = False,
        augment: AugmentSpec | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise NetslimError(
                f"TensorLoader needs uint8 NCHW images, got {images.dtype} {tuple(images.shape)}"
            )
        if len(images) != len(labels):
            raise NetslimError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise NetslimError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise NetslimError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
        if drop_last and batch_size % world_size:
            raise NetslimError(
                f"the global batch size {batch_size} must be a multiple of world_size {world_size} so every "
                "rank gets the same number of samples"
            )
        if len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise NetslimError(f"mean/std need {images.shape[1]} values (one per channel)")
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment if augment is not None and (augment.pad or augment.flip) else None
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.max_batches = max_batches
        self.epoch = 0
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        std_t = torch.tensor(self.std, dtype=torch.float32, device=self.device)
        mean_t = torch.tensor(self.mean, dtype=torch.float32, device=self.device)
        # normalize as one fused multiply-add: (x / 255 - mean) / std
        self._scale = (1.0 / (255.0 * std_t)).view(1, -1, 1, 1)
        self._shift = (-mean_t / std_t).view(1, -1, 1, 1)

    @property
    def num_samples(self) -> int:
        """Samples in the underlying dataset (all ranks together)."""
        return len(self.images)

    def without_augment(self) -> TensorLoader:
        """This loader over the same images, order and batches, with augmentation off (shares the tensors)."""
        plain = copy.copy(self)
        plain.augment = None
        return plain

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose shuffle order and augmentation the next iteration uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = self.num_samples
        batches = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return batches if self.max_batches is None else min(batches, int(self.max_batches))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Convert a uint8 NCHW batch to normalized float32 on this loader's device."""
        return torch.addcmul(self._shift, x.to(self.device, torch.float32), self._scale)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        n = self.num_samples
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        mine = slice(self.rank, None, self.world_size)
        for b in range(len(self)):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            params = sample_params(len(batch), self.augment, generator) if self.augment else None
            index = batch[mine].to(self.device)
            if len(index) == 0:  # a short last evaluation batch can leave a rank nothing
                continue
            x = self.images[index]
            if params is not None and self.augment is not None:
                x = apply_augment(x, self.augment, params.select(mine))
            yield self.normalize(x), self.labels[index]

    def first(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` samples, normalized and not augmented (for calibration and tracing)."""
        n = min(int(n), self.num_samples)
        return self.normalize(self.images[:n]), self.labels[:n]

    def __repr__(self) -> str:
        return (
            f"TensorLoader(samples={self.num_samples}, batch_size={self.batch_size}, batches={len(self)}, "
            f"shuffle={self.shuffle}, augment={self.augment}, rank={self.rank}/{self.world_size})"
        )
