"""Data-parallel training with ``torch.distributed`` (DDP), started by ``torchrun``.

``torchrun --nproc_per_node=N -m netslim train ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`init_from_env` joins the process group (NCCL on GPUs, Gloo on CPU). The loaders shard every global
batch by rank, DDP averages gradients, and metric sums are all-reduced so every rank reports global numbers.
Only rank 0 writes files.

BatchNorm statistics are per rank under DDP. On CUDA, ``TrainConfig.sync_bn`` converts BatchNorm layers to
``SyncBatchNorm``; on CPU (Gloo) torch has no SyncBatchNorm kernels, so BN models see per-rank statistics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and shows progress."""
        return self.rank == 0


def info() -> DistInfo:
    """The current process's rank and world size (rank 0 of 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def init_from_env() -> DistInfo:
    """Join the process group described by torchrun's environment variables; a no-op without them.

    Returns this process's :class:`DistInfo`. Uses NCCL when CUDA is available, Gloo otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistInfo()
    if not dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return info()


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def wrap(model: nn.Module, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """Wrap ``model`` (already on ``device``) in DDP when running distributed, else return it unchanged."""
    if info().world_size <= 1:
        return model
    if sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all ranks (in place, also returned); unchanged when not distributed."""
    if info().world_size > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. a timestamped run folder); ``obj`` itself when not distributed."""
    if info().world_size <= 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank; a no-op when not distributed."""
    if info().world_size > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
