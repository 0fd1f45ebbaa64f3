"""Speed and cost rows: each calls the topic benchmark script's functions, so the figures match its own run.

Ratios are measured side by side in one process (interleaved repeats, medians); the machine is stored with
every row by the suite.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from benchmarks.suite import RowContext, row


@row("speed_engine_vs_tp", "speed", suites=("quick", "full"))
def engine_vs_torch_pruning(ctx: RowContext) -> dict[str, Any]:
    """netslim plan+apply vs torch-pruning's BN-scale pruner: VGG-19, ResNet-164, DenseNet-40 at 32x32."""
    from benchmarks.bench_engine import PROXY, bench_cut_times

    repeats = ctx.scale(1, 3, 5)
    return {"repeats": repeats, "proxy": PROXY, "cases": bench_cut_times(repeats)}


@row("speed_slimmed_latency", "speed", suites=("quick", "full"))
def slimmed_latency(ctx: RowContext) -> dict[str, Any]:
    """CPU latency of a 70%-slimmed VGG-19 vs the unpruned one at batch 1 and 64, next to the FLOP ratio."""
    from benchmarks.bench_engine import PROXY, bench_latency

    repeats = ctx.scale(1, 10, 30)
    return {"repeats": repeats, "proxy": PROXY, **bench_latency(repeats)}


@row("speed_sparse_fc", "speed", suites=("quick", "full"))
def sparse_fc(ctx: RowContext) -> dict[str, Any]:
    """Sparse vs dense FC latency at batch 1 and 64 on AlexNet/VGG FC shapes (bench_sparse_inference.py)."""
    from benchmarks.bench_sparse_inference import bench

    return {"quick": ctx.suite != "full", "cells": bench(quick=ctx.suite != "full")}


@row("speed_sparsity_overhead", "speed", suites=("quick", "full"))
def sparsity_overhead(ctx: RowContext) -> dict[str, Any]:
    """Step time with the BNSparsity hook vs a plain step (VGG-19, interleaved steps, medians)."""
    from benchmarks.bench_sparsity_overhead import bench_mode

    width, batch, steps = ctx.scale((0.125, 8, 2), (0.5, 64, 10), (1.0, 64, 40))
    rows = [bench_mode("vgg19", width, batch, steps, mode) for mode in ("subgradient", "proximal")]
    return {"model": "vgg19", "width": width, "batch": batch, "steps_each": steps, "rows": rows}


@row("speed_demo", "speed", suites=("quick", "full"))
def demo_wall_time(ctx: RowContext) -> dict[str, Any]:
    """Wall time of ``netslim demo`` (the README's main job), run as a subprocess in the work folder."""
    folder = ctx.work_dir / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "netslim", "demo"]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"netslim demo exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return {"command": "netslim demo", "seconds": seconds, "output_tail": done.stdout[-2000:]}
