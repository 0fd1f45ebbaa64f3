"""Cost of the BNSparsity hook on a training step (target: <= 2% overhead).

A VGG-19 (CIFAR size, batch 64 on CPU by default) trains with SGD; steps with and without
``BNSparsity.apply_()`` between ``backward()`` and ``optimizer.step()`` alternate, so both see the same
machine load, and the medians are compared. The hook is also timed alone (median over many calls), which
gives the overhead without the step-to-step noise. Both modes (subgradient, proximal) are measured.

Run: ``.venv/bin/python -m benchmarks.bench_sparsity_overhead [--quick]``; writes
``benchmarks/results/bench_sparsity_overhead.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.suite import machine_info

RESULTS = Path(__file__).resolve().parent / "results"


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, hook: Any) -> float:
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    if hook is not None:
        hook.apply_()
    opt.step()
    if hook is not None:
        hook.step(opt)
    return time.perf_counter() - start


def bench_mode(model_name: str, width: float, batch: int, steps: int, mode: str) -> dict[str, Any]:
    """Median step seconds with and without the hook, and the hook alone, for one sparsity mode."""
    from netslim.models import create
    from netslim.slimming.sparsity import BNSparsity

    torch.manual_seed(0)
    model = create(model_name, num_classes=10, in_channels=3, input_size=32, width=width).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    hook = BNSparsity(model, s=1e-4, mode=mode)  # type: ignore[arg-type]
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    for _ in range(3):  # warm-up
        _step(model, opt, x, y, hook)
    plain, with_hook = [], []
    for i in range(steps):
        order = (None, hook) if i % 2 == 0 else (hook, None)
        for h in order:
            t = _step(model, opt, x, y, h)
            (plain if h is None else with_hook).append(t)
    alone = []
    for _ in range(200):
        start = time.perf_counter()
        hook.apply_()
        hook.step(opt)
        alone.append(time.perf_counter() - start)
    p, w, a = statistics.median(plain), statistics.median(with_hook), statistics.median(alone)
    return {"mode": mode, "bn_layers": len(hook.weights), "bn_channels": sum(v.numel() for v in hook.weights),
            "step_ms": p * 1e3, "step_with_hook_ms": w * 1e3, "overhead_steps": w / p - 1.0,
            "hook_alone_ms": a * 1e3, "overhead_hook_alone": a / p, "target_met": a / p <= 0.02}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the JSON result and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a narrow model and fewer steps (smoke run)")
    parser.add_argument("--model", default="vgg19")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_sparsity_overhead.json")
    args = parser.parse_args(argv)
    width, steps = (0.25, 10) if args.quick else (1.0, 20)
    rows = [bench_mode(args.model, width, args.batch, steps, mode) for mode in ("subgradient", "proximal")]
    result = {"machine": machine_info(), "model": args.model, "width": width, "batch": args.batch,
              "steps_each": steps, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    print(f"machine: {m['cpu_count']} cores, torch threads {m['torch_threads']}; {args.model} width {width}, "
          f"batch {args.batch}, {steps} steps each (interleaved)\n")
    print("| mode | BN channels | step (ms) | step + hook (ms) | overhead (steps) | hook alone (ms) | "
          "overhead (hook alone) | <= 2% |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['bn_channels']} | {r['step_ms']:.1f} | {r['step_with_hook_ms']:.1f} | "
              f"{r['overhead_steps']:+.2%} | {r['hook_alone_ms']:.3f} | {r['overhead_hook_alone']:.3%} | "
              f"{'yes' if r['target_met'] else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
