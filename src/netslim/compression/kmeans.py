"""Weight sharing by 1-D k-means (Deep Compression §3).

A ``bits``-bit codebook has ``2**bits`` float32 entries. **Code 0 is reserved for 0.0**: filler entries of
the relative-index stream (and pruned weights) use it, so they always decode to exactly zero. The other
``2**bits - 1`` centroids are fitted to the non-zero weights with Lloyd's algorithm, starting from a
*linear* initialisation spaced evenly between the smallest and largest weight (the paper found linear
initialisation best because it keeps the rare large weights). With ``bits = 1`` there is one centroid.

When a tensor already holds no more distinct non-zero values than there are centroids (for instance after
:func:`finetune_centroids`), those values become the codebook as they are, so re-encoding is lossless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Codebook:
    """A fitted codebook: ``centroids`` (float32, ``2**bits`` entries, ``centroids[0] == 0``) and ``bits``."""

    centroids: np.ndarray
    bits: int


def _linear_init(values: np.ndarray, k: int) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if k == 1:
        return np.array([values.mean()], dtype=np.float64)
    return np.linspace(lo, hi, k, dtype=np.float64)


def _assign(sorted_centroids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for each value (centroids sorted ascending)."""
    bounds = (sorted_centroids[1:] + sorted_centroids[:-1]) / 2
    return np.searchsorted(bounds, values, side="left")


def fit_codebook(values: np.ndarray, bits: int, iterations: int = 20) -> Codebook:
    """Fit a ``bits``-bit codebook to the non-zero ``values`` (1-D) by linear-init Lloyd iterations.

    Returns a :class:`Codebook`. Empty input gives a codebook of zeros.
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"quantization bits must be between 1 and 16, got {bits}")
    k = (1 << bits) - 1
    values = np.asarray(values, dtype=np.float32).ravel()
    table = np.zeros(1 << bits, dtype=np.float32)
    if values.size == 0:
        return Codebook(table, bits)
    finite = values[np.isfinite(values)]
    distinct = np.unique(values)
    if distinct.size <= k or finite.size == 0:
        table[1 : 1 + min(distinct.size, k)] = distinct[:k]
        return Codebook(table, bits)
    data = np.sort(finite.astype(np.float64))
    prefix = np.concatenate([[0.0], np.cumsum(data)])
    centroids = _linear_init(data, k)
    for _ in range(iterations):
        # Cluster j holds data[start[j]:stop[j]]: the sorted values between consecutive boundaries.
        bounds = (centroids[1:] + centroids[:-1]) / 2
        edges = np.concatenate([[0], np.searchsorted(data, bounds, side="right"), [data.size]])
        counts = np.diff(edges)
        sums = prefix[edges[1:]] - prefix[edges[:-1]]
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        updated = np.sort(updated)
        if np.array_equal(updated, centroids):
            break
        centroids = updated
    table[1:] = centroids.astype(np.float32)
    return Codebook(table, bits)


def assign_codes(values: np.ndarray, codebook: Codebook) -> np.ndarray:
    """Code (1 .. 2**bits - 1) of the nearest non-reserved centroid for each value; uint32 array.

    Values equal to a centroid always get that centroid's code, so shared weights re-encode exactly.
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    centroids = codebook.centroids[1:].astype(np.float64)
    order = np.argsort(centroids, kind="stable")
    nearest = _assign(centroids[order], values.astype(np.float64))
    nearest = np.minimum(nearest, centroids.size - 1)
    codes = order[nearest] + 1
    # Non-finite values keep their exact code when the codebook holds the same bit pattern.
    odd = ~np.isfinite(values)
    if odd.any():
        book_bits = codebook.centroids[1:].view(np.uint32)
        value_bits = values.view(np.uint32)
        for pattern in np.unique(value_bits[odd]):
            hits = np.flatnonzero(book_bits == pattern)
            if hits.size:
                codes[value_bits == pattern] = hits[0] + 1
    return codes.astype(np.uint32)


@dataclass
class SharedWeight:
    """One weight tensor tied to a codebook: ``weight = centroids[codes]`` (code 0 = pruned, 0.0)."""

    centroids: torch.Tensor
    codes: torch.Tensor


def share_weights(model: nn.Module, bits_fc: int = 5, bits_conv: int = 8) -> dict[str, SharedWeight]:
    """Quantize every 2-D (FC) and >=3-D (conv) float weight of ``model`` in place to a fitted codebook.

    Zeros stay zero (code 0). Returns ``{parameter name: SharedWeight}`` for :func:`finetune_centroids`.
    """
    shared: dict[str, SharedWeight] = {}
    for name, param in model.named_parameters():
        if param.dim() < 2 or not param.is_floating_point():
            continue
        bits = bits_fc if param.dim() == 2 else bits_conv
        flat = param.detach().cpu().float().numpy().ravel()
        mask = flat != 0
        book = fit_codebook(flat[mask], bits)
        codes = np.zeros(flat.size, dtype=np.int64)
        codes[mask] = assign_codes(flat[mask], book)
        centroids = torch.from_numpy(book.centroids.copy()).to(param.device)
        code_t = torch.from_numpy(codes).reshape(param.shape).to(param.device)
        with torch.no_grad():
            param.copy_(centroids[code_t].to(param.dtype))
        shared[name] = SharedWeight(centroids=centroids, codes=code_t)
    return shared


def finetune_centroids(
    model: nn.Module,
    shared: dict[str, SharedWeight],
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    lr: float = 1e-3,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    max_steps: int | None = None,
) -> list[float]:
    """Fine-tune shared centroids (Deep Compression §3.3): sum the weight gradients per code, step centroids.

    Other parameters (biases, BN) are left unchanged. After every step each shared weight is rewritten as
    ``centroids[codes]``, so weights stay exactly codebook values and code 0 stays 0.0. ``loader`` yields
    ``(inputs, targets)``; ``loss_fn`` defaults to cross-entropy. Returns the training loss of each step.
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = dict(model.named_parameters())
    model.train()
    losses: list[float] = []
    for step, (inputs, targets) in enumerate(loader):
        if max_steps is not None and step >= max_steps:
            break
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        with torch.no_grad():
            for name, sw in shared.items():
                param = params[name]
                if param.grad is None:
                    continue
                grad = torch.zeros_like(sw.centroids, dtype=torch.float32)
                grad.index_add_(0, sw.codes.reshape(-1), param.grad.reshape(-1).float())
                grad[0] = 0.0
                sw.centroids -= lr * grad
                param.copy_(sw.centroids[sw.codes].to(param.dtype))
        losses.append(float(loss.detach()))
    model.zero_grad(set_to_none=True)
    return losses
