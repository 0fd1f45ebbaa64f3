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


@row("speed_sparse_inference", "speed")
def sparse_inference(ctx: RowContext) -> dict[str, Any]:
    """Converted vs unconverted vs torch CSR FC layers over issue 13's grid, interleaved (never slower?)."""
    from benchmarks.bench_sparse_inference import BATCHES, DENSITIES, SHAPES, THREADS, bench_grid

    if ctx.suite == "smoke":
        return bench_grid(((300, 100), (784, 300)), (0.05, 0.6), (1, 8), (1,), repeats=5, retries=0)
    return bench_grid(SHAPES, DENSITIES, BATCHES, THREADS, repeats=ctx.scale(5, 30, 50))


@row("speed_slim_counting", "speed")
def slim_counting(ctx: RowContext) -> dict[str, Any]:
    """netslim.slim vs plan + apply (interleaved): counting FLOPs costs slim no forward pass any more."""
    import torch

    import netslim
    from benchmarks.bench_engine import proxy_gammas
    from netslim.measurement.latency import Timer, num_threads
    from netslim.models import create

    names = ctx.scale(
        ("vgg19",), ("vgg19", "preresnet164", "densenet40"), ("vgg19", "preresnet164", "densenet40")
    )
    ratio = {"vgg19": 0.7, "preresnet164": 0.4, "densenet40": 0.4}
    x = torch.randn(1, 3, 32, 32)
    cases = []
    for name in names:
        model = proxy_gammas(create(name, num_classes=10, in_channels=3, input_size=32))

        def engine(model: torch.nn.Module = model, r: float = ratio[name]) -> object:
            return netslim.apply(model, netslim.plan(model, x, r))

        def slim(model: torch.nn.Module = model, r: float = ratio[name]) -> object:
            return netslim.slim(model, x, ratio=r)

        with num_threads(1):
            t_engine, t_slim = Timer(repeats=ctx.scale(3, 15, 30), warmup=1, retries=1).measure(
                [engine, slim]
            )
        result = netslim.slim(model, x, ratio=ratio[name])
        measured = netslim.measure(result.model, x, latency=False, file_size=False)
        cases.append(
            {
                "model": name,
                "ratio": ratio[name],
                "plan_apply": t_engine.to_dict(),
                "slim": t_slim.to_dict(),
                "slim_over_engine": t_slim.median_ms / t_engine.median_ms,
                "flops_after": result.flops_after,
                "flops_after_matches_measure": result.flops_after == measured["flops"],
            }
        )
    return {"threads": 1, "cases": cases}


@row("speed_inference_form", "speed")
def inference_form_latency(ctx: RowContext) -> dict[str, Any]:
    """70%-slimmed VGG-19 (proxy gammas): speedup / FLOP ratio, plain vs inference form, interleaved."""
    import torch

    import netslim
    from benchmarks.bench_engine import PROXY, slimmed_vgg
    from netslim.measurement.latency import Timer, batch_of, forward_fn, num_threads

    base, slims = slimmed_vgg((1,))
    slim = slims[1]
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    flops = [netslim.measure(m, x, latency=False, file_size=False)["flops"] for m in (base, slim)]
    flop_ratio = flops[0] / flops[1]
    batches = ctx.scale((1, 4), (1, 64), (1, 64))
    repeats = ctx.scale(3, 30, 50)
    decide = Timer(repeats=ctx.scale(3, 15, 30), warmup=2, retries=ctx.scale(0, 1, 2))
    with num_threads(1):
        forms = [netslim.inference_form(m, x, batch_sizes=batches, timer=decide) for m in (base, slim)]
        cells = {}
        for b in batches:
            inputs = batch_of((x,), b)
            fns = [forward_fn(m.eval(), inputs) for m in (base, slim, forms[0].model, forms[1].model)]
            timer = Timer(repeats=repeats if b > 1 else 4 * repeats, retries=ctx.scale(0, 2, 2))
            base_plain, slim_plain, base_form, slim_form = timer.measure(fns)
            plain_speedup = base_plain.median_ms / slim_plain.median_ms
            form_speedup = base_form.median_ms / slim_form.median_ms
            cells[b] = {
                "unpruned_plain": base_plain.to_dict(),
                "slimmed_plain": slim_plain.to_dict(),
                "unpruned_form": base_form.to_dict(),
                "slimmed_form": slim_form.to_dict(),
                "plain_speedup_over_flop_ratio": plain_speedup / flop_ratio,
                "form_speedup_over_flop_ratio": form_speedup / flop_ratio,
                "form_vs_unpruned_plain_over_flop_ratio": base_plain.median_ms
                / slim_form.median_ms
                / flop_ratio,
                "noisy": any(t.noisy for t in (base_plain, slim_plain, base_form, slim_form)),
            }
    return {
        "model": "vgg19 3x32x32, 70% of BN channels pruned",
        "gammas": "PROXY: " + PROXY,
        "threads": 1,
        "flops_before": flops[0],
        "flops_after": flops[1],
        "flop_ratio": flop_ratio,
        "forms": {"unpruned": forms[0].describe(), "slimmed": forms[1].describe()},
        "form_decisions": {
            "unpruned": forms[0].decisions.get("channels_last"),
            "slimmed": forms[1].decisions.get("channels_last"),
        },
        "batches": cells,
        "target": "inference form: speedup / FLOP ratio >= 0.9 at batch 64 and >= 1.0 at batch 1",
    }


@row("speed_int8", "speed")
def int8_latency(ctx: RowContext) -> dict[str, Any]:
    """Float vs INT8 (onnxruntime, static QDQ) of slimmed VGGs at batch 1 and 64, interleaved."""
    import torch

    import netslim
    from benchmarks.bench_engine import proxy_gammas
    from netslim.export import compare_float_int8, export_onnx, quantize_int8
    from netslim.models import create

    cases = [("vgg11", 0.25, 1, 28), *ctx.scale([], [("vgg19", 0.5, 3, 32)], [("vgg19", 1.0, 3, 32)])]
    batches = ctx.scale((1, 4), (1, 64), (1, 64))
    out = []
    for name, width, channels, size in cases:
        model = proxy_gammas(create(name, num_classes=10, in_channels=channels, width=width, input_size=size))
        x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))
        small = netslim.slim(model, x, ratio=0.7).model.eval()
        form = netslim.inference_form(small, x, channels_last=False)
        folder = ctx.work_dir / "int8" / f"{name}_w{width}"
        fp = export_onnx(form.plain_model, folder / "float.onnx", x)
        calib = [
            torch.randn(16, channels, size, size, generator=torch.Generator().manual_seed(i))
            for i in range(4)
        ]
        q = quantize_int8(fp, folder / "int8.onnx", calib)
        table = compare_float_int8(
            fp, q, None, x, batch_sizes=batches, repeats=ctx.scale(3, 30, 50), threads=1
        )
        out.append(
            {
                "model": f"{name} width {width}, {channels}x{size}x{size}, 70% slimmed, BN fused",
                "float": table["float"]["latency"],
                "int8": table["int8"]["latency"],
                "int8_over_float": table["ratio"]["latency_ms"],
                "int8_faster": table["int8_faster"],
                "file_ratio": table["ratio"]["file_bytes"],
            }
        )
    return {
        "threads": 1,
        "quantization": "static QDQ, per-channel int8 weights, int8 activations",
        "cases": out,
    }


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
