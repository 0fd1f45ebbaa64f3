"""Shared test helpers: tiny dataset files in the real on-disk formats and the subprocess environment.

Imported by test modules as ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np


def rng_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random uint8 images of shape (n, *shape)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of an array as uint8 (magic ``0x0000080N`` for N dimensions, big-endian sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(
    directory: Path, n_train: int = 40, n_test: int = 20, gz: bool = True, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write MNIST-style train/t10k IDX files of random images; return {split: (images (N,28,28), labels)}."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng_images(n, (28, 28), seed)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (directory / name).write_bytes(data)
        out[split] = (images, labels)
    return out


def write_tiny_mnist(
    root: Path,
    n_train: int = 256,
    n_test: int = 64,
    seed: int = 0,
    *,
    noise: int = 60,
    bar_height: int = 2,
    bar_cols: tuple[int, int] = (4, 24),
) -> Path:
    """Uncompressed MNIST IDX files that a small network learns in an epoch or two. Returns ``root``.

    Each image is uniform noise below ``noise`` plus a bright bar ``bar_height`` rows high (columns
    ``bar_cols``) starting at row ``2 + 2 * label``, so the bar's row encodes the class.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, noise, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label : 2 + 2 * label + bar_height, bar_cols[0] : bar_cols[1]] = 255
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return root


def cifar_bin_bytes(images: np.ndarray, labels: np.ndarray, coarse: np.ndarray | None = None) -> bytes:
    """CIFAR binary records for (N, 3, 32, 32) images; with ``coarse``, CIFAR-100 two-label records."""
    cols = [labels[:, None].astype(np.uint8)]
    if coarse is not None:
        cols.insert(0, coarse[:, None].astype(np.uint8))
    return np.concatenate([*cols, images.reshape(len(images), -1)], axis=1).tobytes()


def write_cifar10_bin(directory: Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Write cifar-10-batches-bin style files; return the train images and labels."""
    directory.mkdir(parents=True, exist_ok=True)
    all_x, all_y = [], []
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        x = rng_images(per_batch, (3, 32, 32), seed=i)
        y = (np.arange(per_batch) + i) % 10
        (directory / name).write_bytes(cifar_bin_bytes(x, y))
        if i < 5:
            all_x.append(x)
            all_y.append(y)
    return np.concatenate(all_x), np.concatenate(all_y)


def write_cifar_py(path: Path, images: np.ndarray, labels: list[int], label_key: str = "labels") -> None:
    """Write one python-version CIFAR batch with pickle protocol 2, as the originals were."""
    data = images.reshape(len(images), -1)
    batch = {b"batch_label": b"test batch", label_key.encode(): labels, b"data": data}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def subprocess_env() -> dict[str, str]:
    """The environment for ``python -m netslim`` subprocesses: this checkout's ``src`` first on the path."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a Gloo rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(worker: Any, out: str, world: int = 2) -> list[Any]:
    """Run ``worker(rank, world, port, out)`` in ``world`` Gloo processes; each writes JSON to
    ``{out}.{rank}``; returns what they wrote, by rank.

    Gloo sometimes aborts in process teardown ("terminate called without an active exception") after the
    workers have finished; when every rank's file is written by then, that abort is not a failure."""
    import json

    import torch.multiprocessing as mp

    try:
        mp.spawn(worker, args=(world, free_port(), out), nprocs=world, join=True)
    except mp.ProcessExitedException as exc:
        if not (all(Path(f"{out}.{r}").is_file() for r in range(world)) and exc.signal_name == "SIGABRT"):
            raise
    return [json.loads(Path(f"{out}.{r}").read_text()) for r in range(world)]
