"""Sparse vs dense CPU inference for pruned FC layers (Deep Compression §6.3, Table 8 shapes).

For the AlexNet/VGG FC shapes (fc6 9216x4096, fc7 4096x4096, fc8 4096x1000) at 9% and 4% density and batch
1 and 64, times side by side in one run (median of repeats, milliseconds):

* ``dense``: ``nn.Linear`` (oneDNN/MKL GEMM/GEMV),
* ``torch_csr``: ``torch.addmm`` with the weight as ``torch.sparse_csr`` (int32 indices),
* ``scipy_csr``: netslim's SciPy CSR path,
* ``gather``: a pure-torch gather + ``index_add_`` kernel (batch 1 only; shown as the rejected custom path),
* ``auto``: what :func:`netslim.weights.to_sparse_inference` picks, measured end to end.

Writes ``benchmarks/results/sparse_inference.json`` (or ``--out``) and prints a markdown table.
Run: ``python benchmarks/bench_sparse_inference.py [--quick] [--threads N]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netslim.weights.masks import attach_mask, finalize
from netslim.weights.sparse_inference import (
    available_backends,
    convert_layer,
    median_time_ms,
    to_sparse_inference,
)

SHAPES = {"fc6 9216x4096": (9216, 4096), "fc7 4096x4096": (4096, 4096), "fc8 4096x1000": (4096, 1000)}
DENSITIES = (0.09, 0.04)
BATCHES = (1, 64)


def _pruned_linear(in_f: int, out_f: int, density: float, seed: int = 0) -> nn.Linear:
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(in_f, out_f)
    keep = torch.rand(out_f, in_f, generator=gen) < density
    attach_mask(layer, mask=keep)
    return layer


def _gather_kernel(layer: nn.Linear) -> Any:
    w = layer.weight.detach()
    rows, cols = torch.nonzero(w, as_tuple=True)
    vals, bias, out_f = w[rows, cols], layer.bias.detach(), w.shape[0]

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(out_f).index_add_(0, rows, vals * x[0, cols]) + bias

    return run


def bench(quick: bool) -> list[dict[str, Any]]:
    """Time every method on every shape x density x batch; returns one record per cell."""
    repeats = 5 if quick else 30
    rows = []
    for shape_name, (in_f, out_f) in SHAPES.items():
        for density in DENSITIES:
            masked = _pruned_linear(in_f, out_f, density)
            dense = finalize(copy.deepcopy(masked))  # a plain nn.Linear holding the zeros
            for batch in BATCHES:
                x = torch.randn(batch, in_f)
                times = {"dense": median_time_ms(lambda x=x, d=dense: d(x), repeats=repeats)}
                for backend in available_backends():
                    if backend != "dense":
                        layer = convert_layer(dense, backend)
                        times[backend] = median_time_ms(lambda x=x, layer=layer: layer(x), repeats=repeats)
                if batch == 1:
                    kernel = _gather_kernel(dense)
                    times["gather"] = median_time_ms(lambda x=x, k=kernel: k(x), repeats=repeats)
                auto = to_sparse_inference(nn.Sequential(masked), x, repeats=repeats)
                choice = auto.choices[0]["backend"]
                times["auto"] = median_time_ms(lambda x=x, m=auto.model: m(x), repeats=repeats)
                rows.append(
                    {
                        "shape": shape_name,
                        "density": density,
                        "batch": batch,
                        "times_ms": times,
                        "auto_backend": choice,
                    }
                )
                print(
                    f"  {shape_name} density {density:.0%} batch {batch}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in times.items()),
                    flush=True,
                )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """A side-by-side table: times in ms and the speed-up of ``auto`` over dense and over torch CSR."""
    methods = ["dense", "torch_csr", "scipy_csr", "gather", "auto"]
    head = "| Layer | Density | Batch | " + " | ".join(f"{m} (ms)" for m in methods)
    lines = [head + " | auto picks | vs dense | vs torch CSR |", "|" + "---|" * (len(methods) + 6)]
    for r in rows:
        t = r["times_ms"]
        cells = [f"{t[m]:.3f}" if m in t else "-" for m in methods]
        lines.append(
            f"| {r['shape']} | {r['density']:.0%} | {r['batch']} | "
            + " | ".join(cells)
            + f" | {r['auto_backend']} | {t['dense'] / t['auto']:.2f}x"
            + f" | {t['torch_csr'] / t['auto']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse options, run, write JSON and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repeats per cell instead of 30")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "sparse_inference.json"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = bench(args.quick)
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.platform(),
        "mkl": torch.backends.mkl.is_available(),
        "quick": args.quick,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, "results": rows}, indent=2))
    print(f"\nSparse FC inference on CPU ({env['threads']} threads, torch {env['torch']}), median ms\n")
    print(markdown(rows))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
