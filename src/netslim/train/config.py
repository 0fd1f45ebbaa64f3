"""Training hyper-parameters as one validated dataclass."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from netslim.errors import NetslimError


@dataclass
class TrainConfig:
    """Everything the trainer needs to know besides the model and the data.

    Defaults follow the Network Slimming paper's CIFAR setting (SGD, lr 0.1 divided by 10 at 50% and 75%
    of the epochs, momentum 0.9, weight decay 1e-4), scaled down in epochs.
    """

    epochs: int = 10
    lr: float = 0.1
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    decay_bn_and_bias: bool = True  # False: no weight decay on BN parameters and biases
    schedule: Literal["step", "cosine", "constant"] = "step"
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of `epochs` where "step" divides lr by 10
    amp: bool = False  # mixed precision where the device supports it (bf16 on CPU, fp16 + GradScaler on CUDA)
    channels_last: bool = False  # NHWC weights and inputs (faster convs with oneDNN/cuDNN)
    seed: int = 0
    deterministic: bool = False
    max_batches: int | None = None  # cap batches per epoch (smoke runs and tests)
    grad_clip: float | None = None
    progress: bool = True  # tqdm progress bar
    checkpoint_every: int = 1  # epochs between checkpoints (0 = only at the end)
    sync_bn: bool = False  # under DDP on CUDA, convert BatchNorm to SyncBatchNorm (global batch statistics)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, stored with the run's config

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise NetslimError(f"epochs must be >= 1, got {self.epochs}")
        for name in ("lr", "momentum", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
                raise NetslimError(f"{name} must be a finite number, got {value!r}")
        if self.lr <= 0:
            raise NetslimError(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise NetslimError(f"optimizer must be one of sgd, adam, adamw; got {self.optimizer!r}")
        if self.schedule not in ("step", "cosine", "constant"):
            raise NetslimError(f"schedule must be one of step, cosine, constant; got {self.schedule!r}")
        if any(not 0.0 < m < 1.0 for m in self.milestones):
            raise NetslimError(f"milestones are fractions of the run in (0, 1); got {self.milestones}")
        if self.momentum < 0 or self.weight_decay < 0:
            raise NetslimError(
                f"momentum and weight_decay must be >= 0; got {self.momentum} and {self.weight_decay}"
            )
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise NetslimError("nesterov needs optimizer='sgd' with momentum > 0")
        if self.max_batches is not None and self.max_batches < 1:
            raise NetslimError(f"max_batches must be >= 1 (or None for whole epochs), got {self.max_batches}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise NetslimError(f"grad_clip must be > 0 (or None to disable), got {self.grad_clip}")
        if self.checkpoint_every < 0:
            raise NetslimError(
                f"checkpoint_every must be >= 0 (0 = only at the end), got {self.checkpoint_every}"
            )
        self.milestones = tuple(self.milestones)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable copy."""
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d
