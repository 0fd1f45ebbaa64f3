"""Slimming engine speed against torch-pruning, and the CPU speedup of a 70%-slimmed VGG-19.

1. Time of ``netslim.plan`` + ``netslim.apply`` against torch-pruning's ``BNScalePruner`` (construction, which
   builds its dependency graph, plus ``step()``) at the paper's ratios: VGG-19 0.7, ResNet-164 0.4,
   DenseNet-40 0.4, CIFAR size (1x3x32x32). Median of repeats, each on a fresh copy of the model.
2. CPU latency of the 70%-slimmed VGG-19 against the unpruned one at batch 1 and 64 (median of repeats),
   next to the FLOP ratio; the target is speedup >= 0.9 x FLOP ratio at batch 64.

No trained CIFAR model ships with netslim, so BN scales come from a proxy (printed with the results): a
seeded bimodal mixture, |gamma| ~1e-3 (log-normal, sigma 1) or ~0.3 (log-normal, sigma 0.5), the shape
sparsity training produces, where the share of near-zero scales grows with depth from 10% in the first BN
to 95% in the last, as in the paper's Figure 5 (later VGG layers lose most of their channels).

Run: ``.venv/bin/python -m benchmarks.bench_engine [--quick]``; torch-pruning is optional
(``pip install --no-deps torch-pruning==1.6.1``). Writes ``benchmarks/results/bench_engine.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

RESULTS = Path(__file__).resolve().parent / "results"
CASES = (("vgg19", 0.7), ("preresnet164", 0.4), ("densenet40", 0.4))
PROXY = ("|gamma| ~ 1e-3 * lognormal(0, 1) with probability p, else 0.3 * lognormal(0, 0.5); p grows "
         "linearly with BN depth from 0.10 to 0.95; seed 0")


def proxy_gammas(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN a bimodal |gamma| spread like a sparsity-trained network's (see :data:`PROXY`)."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) and m.affine]
    with torch.no_grad():
        for depth, m in enumerate(norms):
            p_small = 0.10 + 0.85 * depth / max(len(norms) - 1, 1)
            n = m.weight.numel()
            small = torch.rand(n, generator=g) < p_small
            low = 1e-3 * torch.exp(torch.randn(n, generator=g))
            high = 0.3 * torch.exp(0.5 * torch.randn(n, generator=g))
            m.weight.copy_(torch.where(small, low, high))
    return model.eval()


def machine() -> dict[str, Any]:
    """Cores, torch threads and versions of the machine the figures come from."""
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def median_time(fn: Callable[[], Any], repeats: int, setup: Callable[[], Any]) -> tuple[float, Any]:
    """Median wall seconds of ``fn(setup())`` over ``repeats`` runs (setup not timed); last result too."""
    times, out = [], None
    for _ in range(repeats):
        arg = setup()
        start = time.perf_counter()
        out = fn(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def netslim_cut(model: nn.Module, x: torch.Tensor, ratio: float) -> nn.Module:
    """plan + apply, the way ``netslim.slim`` runs them."""
    from netslim.slimming import api

    return api.apply(model, api.plan(model, x, ratio))


def tp_cut(model: nn.Module, x: torch.Tensor, ratio: float) -> nn.Module:
    """torch-pruning's BN-scale pruner, global threshold, final linear layer ignored."""
    import torch_pruning as tp

    last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.BNScalePruner(
        model, x, importance=tp.importance.BNScaleImportance(), pruning_ratio=ratio,
        global_pruning=True, ignored_layers=[last_linear],
    )
    pruner.step()
    return model


def bench_cut_times(repeats: int) -> list[dict[str, Any]]:
    """One row per model: netslim and torch-pruning median seconds and parameters kept."""
    from netslim.models import create

    try:
        import torch_pruning  # noqa: F401

        have_tp = True
    except ImportError:
        have_tp = False
    x = torch.zeros(1, 3, 32, 32)
    rows = []
    for name, ratio in CASES:
        base = proxy_gammas(create(name, num_classes=10, in_channels=3, input_size=32))
        row: dict[str, Any] = {"model": name, "ratio": ratio, "params": _params(base)}
        fresh = lambda b=base: copy.deepcopy(b)  # noqa: E731
        t, out = median_time(lambda m, r=ratio: netslim_cut(m, x, r), repeats, fresh)
        row.update(netslim_s=t, netslim_params=_params(out))
        if have_tp:
            try:
                t, out = median_time(lambda m, r=ratio: tp_cut(m, x, r), repeats, fresh)
                row.update(tp_s=t, tp_params=_params(out), ratio_netslim_over_tp=row["netslim_s"] / t)
            except Exception as exc:  # report, don't hide, a failure of the other library
                row["tp_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        rows.append(row)
    return rows


def bench_latency(repeats: int) -> dict[str, Any]:
    """Latency and FLOPs of the unpruned and the 70%-slimmed VGG-19 at batch 1 and 64."""
    from netslim.measurement.api import compare
    from netslim.models import create

    x = torch.zeros(1, 3, 32, 32)
    base = proxy_gammas(create("vgg19", num_classes=10, in_channels=3, input_size=32))
    slim = netslim_cut(copy.deepcopy(base), x, 0.7).eval()
    res = compare(base, slim, x, batch_sizes=(1, 64), repeats=repeats, file_size=False)
    flop_ratio = res["a"]["flops"] / res["b"]["flops"]
    out: dict[str, Any] = {"flops_before": res["a"]["flops"], "flops_after": res["b"]["flops"],
                           "flop_ratio": flop_ratio, "params_before": res["a"]["params"],
                           "params_after": res["b"]["params"], "threads": res["a"]["threads"]}
    for b in (1, 64):
        before, after = res["a"]["latency_ms"][b], res["b"]["latency_ms"][b]
        out[f"batch{b}"] = {"before_ms": before, "after_ms": after, "speedup": before / after,
                            "speedup_over_flop_ratio": (before / after) / flop_ratio}
    out["target_met_batch64"] = out["batch64"]["speedup"] >= 0.9 * flop_ratio
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results as markdown tables."""
    m = result["machine"]
    lines = [f"machine: {m['cpu_count']} cores, torch threads {m['torch_threads']}, torch {m['torch']}",
             f"BN scale proxy: {result['proxy']}", "",
             "| model | ratio | params | netslim plan+apply (s) | torch-pruning (s) | netslim/TP | "
             "params kept netslim / TP |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["cut_times"]:
        tp_s = f"{r['tp_s']:.3f}" if "tp_s" in r else r.get("tp_error", "not installed")
        ratio = f"{r['ratio_netslim_over_tp']:.2f}" if "tp_s" in r else "-"
        kept = f"{r['netslim_params'] / r['params']:.1%} / " + (
            f"{r['tp_params'] / r['params']:.1%}" if "tp_params" in r else "-")
        lines.append(f"| {r['model']} | {r['ratio']} | {r['params']:,} | {r['netslim_s']:.3f} | {tp_s} | "
                     f"{ratio} | {kept} |")
    lat = result["latency"]
    lines += ["", f"VGG-19 70% slimmed, FLOPs {lat['flops_before']:.3g} -> {lat['flops_after']:.3g} "
              f"(ratio {lat['flop_ratio']:.2f}x), threads {lat['threads']}", "",
              "| batch | unpruned (ms) | slimmed (ms) | speedup | speedup / FLOP ratio |",
              "|---:|---:|---:|---:|---:|"]
    for b in (1, 64):
        r = lat[f"batch{b}"]
        lines.append(f"| {b} | {r['before_ms']:.2f} | {r['after_ms']:.2f} | {r['speedup']:.2f}x | "
                     f"{r['speedup_over_flop_ratio']:.2f} |")
    lines.append(f"\ntarget (batch 64 speedup >= 0.9 x FLOP ratio): "
                 f"{'met' if lat['target_met_batch64'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the JSON result and print the markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_engine.json")
    args = parser.parse_args(argv)
    cut_repeats, lat_repeats = (1, 5) if args.quick else (5, 30)
    result = {"machine": machine(), "proxy": PROXY, "quick": args.quick, "repeats": cut_repeats,
              "latency_repeats": lat_repeats, "cut_times": bench_cut_times(cut_repeats),
              "latency": bench_latency(lat_repeats)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
