"""Training state: seeding, deterministic mode, RNG states in a ``weights_only``-loadable form, and CPU
copies of a model and its optimizer to return to."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels (warning, not failing, on ops that have none)."""
    if enabled:
        # cuBLAS needs this workspace setting for deterministic matmuls; it must be set before CUDA starts
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def get_rng_state() -> dict[str, Any]:
    """Every global RNG state as tensors, ints and floats, so ``torch.load(weights_only=True)`` accepts it."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": py_version,
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def copy_training_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A copy on the CPU of ``model``'s parameters and buffers and ``optimizer``'s per-parameter state
    (momentum, Adam moments), to return to with :func:`restore_training_state`; ``weights_only``-loadable."""
    return {"model": _cpu_copy(model.state_dict()), "optimizer": _cpu_copy(optimizer.state_dict()["state"])}


def restore_training_state(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Put the weights and optimizer state of :func:`copy_training_state` back into ``model`` and
    ``optimizer`` in place. The optimizer keeps its current hyperparameters (learning rate and the like): the
    schedule goes on from where it is, only the weights and their optimizer buffers go back."""
    model.load_state_dict(saved["model"])
    groups = optimizer.state_dict()["param_groups"]
    # cloned again: Optimizer.load_state_dict keeps tensors that are already on the right device, so the
    # copy would otherwise be updated in place by the next steps
    optimizer.load_state_dict({"state": _cpu_copy(saved["optimizer"]), "param_groups": groups})


def _cpu_copy(value: Any) -> Any:
    """``value`` with every tensor replaced by a detached copy on the CPU (dicts, lists and tuples walked)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cpu_copy(v) for v in value)
    return value
