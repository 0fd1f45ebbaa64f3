"""Sparse inference that never loses: converted vs unconverted FC layers over a shape x density x batch grid.

For each cell (issue 13's grid: layers 784x300, 300x100, 4096x4096, 9216x4096 as in x out features;
densities 2-60%; batch 1, 8, 64; 1 and 2 torch threads) a weight-pruned ``nn.Linear`` is

* ``unconverted``: the finalized dense layer (the zeros kept) in an ``nn.Sequential``,
* ``converted``: :func:`netslim.weights.to_sparse_inference` of it, tuned for that batch size and thread
  count (sparse only where >= 10% faster with non-overlapping IQRs, else the same plain layer),
* ``torch_csr``: the layer as a ``torch.sparse_csr`` ``addmm`` (what a user gets from torch alone), timed
  in the cells where netslim chose a sparse kernel,

timed interleaved with :class:`netslim.measurement.latency.Timer` (warm-up, repeats, median and IQR).
Targets: converted / unconverted <= 1.05 in every cell; converted <= torch_csr where sparse wins.

Run through the benchmark suite: ``python -m benchmarks.run --suite quick --only speed_sparse_inference``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from netslim.measurement.latency import Timer, num_threads
from netslim.weights.masks import attach_mask, finalize
from netslim.weights.sparse_inference import convert_layer, to_sparse_inference

SHAPES = ((784, 300), (300, 100), (4096, 4096), (9216, 4096))
DENSITIES = (0.02, 0.05, 0.09, 0.3, 0.6)
BATCHES = (1, 8, 64)
THREADS = (1, 2)


def pruned_linear(in_f: int, out_f: int, density: float, seed: int = 0) -> nn.Linear:
    """An ``nn.Linear`` with a random mask keeping about ``density`` of its weights."""
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(in_f, out_f)
    attach_mask(layer, mask=torch.rand(out_f, in_f, generator=gen) < density)
    return layer


def _call(module: nn.Module, x: torch.Tensor) -> Any:
    def run() -> Any:
        with torch.inference_mode():
            return module(x)

    return run


def bench_cell(
    in_f: int, out_f: int, density: float, batch: int, threads: int, repeats: int, retries: int = 2
) -> dict[str, Any]:
    """One grid cell: tune, then time unconverted / converted / torch_csr interleaved."""
    masked = nn.Sequential(pruned_linear(in_f, out_f, density))
    dense = finalize(copy.deepcopy(masked)).eval()
    x = torch.randn(batch, in_f, generator=torch.Generator().manual_seed(batch))
    with num_threads(threads):
        converted = to_sparse_inference(dense, x, batch_sizes=[batch], threads=threads, repeats=repeats)
        choice = converted.choices[0] if converted.choices else {"backend": "dense", "reason": "not examined"}
        fns = [_call(dense, x), _call(converted.model, x)]
        if choice["backend"] != "dense":  # torch CSR matters where sparse wins; elsewhere it only costs time
            fns.append(_call(nn.Sequential(convert_layer(dense[0], "torch_csr")), x))
        t_dense, t_conv, *t_csr = Timer(repeats=repeats, retries=retries).measure(fns)
    return {
        "shape": f"{in_f}x{out_f}",
        "density": density,
        "batch": batch,
        "threads": threads,
        "backend": choice["backend"],
        "reason": choice["reason"],
        "unconverted": t_dense.to_dict(),
        "converted": t_conv.to_dict(),
        "torch_csr": t_csr[0].to_dict() if t_csr else None,
        "converted_over_unconverted": t_conv.median_ms / t_dense.median_ms,
        "converted_over_torch_csr": t_conv.median_ms / t_csr[0].median_ms if t_csr else None,
        "noisy": any(t.noisy for t in (t_dense, t_conv, *t_csr)),
    }


def bench_grid(
    shapes: Sequence[tuple[int, int]] = SHAPES,
    densities: Sequence[float] = DENSITIES,
    batches: Sequence[int] = BATCHES,
    threads: Sequence[int] = THREADS,
    repeats: int = 30,
    retries: int = 2,
) -> dict[str, Any]:
    """Every cell of the grid, plus the worst converted/unconverted ratio and the cells over 1.05."""
    cells = []
    for t in threads:
        for in_f, out_f in shapes:
            for d in densities:
                for b in batches:
                    cell = bench_cell(in_f, out_f, d, b, t, repeats, retries)
                    cells.append(cell)
                    print(
                        f"  {cell['shape']} {100 * d:.0f}% b{b} t{t}: {cell['backend']} "
                        f"{cell['converted_over_unconverted']:.2f}x dense",
                        flush=True,
                    )
    worst = max(cells, key=lambda c: c["converted_over_unconverted"])
    over = [c for c in cells if c["converted_over_unconverted"] > 1.05]
    sparse_wins = [c for c in cells if c["backend"] != "dense"]
    return {
        "cells": cells,
        "worst_ratio": worst["converted_over_unconverted"],
        "worst_cell": {k: worst[k] for k in ("shape", "density", "batch", "threads", "backend")},
        "cells_over_1_05": len(over),
        "sparse_cells": len(sparse_wins),
        "sparse_cells_slower_than_torch_csr": sum(c["converted_over_torch_csr"] > 1.0 for c in sparse_wins),
        "target": "converted / unconverted <= 1.05 in every cell; converted <= torch CSR where sparse wins",
    }
