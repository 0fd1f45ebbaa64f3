"""Per-layer sparsity and FLOPs report in the layout of Han et al. 2015, Tables 2-5."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netslim.weights.masks import prunable_layers

_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _capture_inputs(model: nn.Module, example_inputs: Any, names: list[str]) -> dict[str, torch.Tensor]:
    layers = prunable_layers(model)
    seen: dict[str, torch.Tensor] = {}
    handles = [
        layers[n].register_forward_pre_hook(lambda _m, args, n=n: seen.setdefault(n, args[0].detach()))
        for n in names
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*example_inputs) if isinstance(example_inputs, tuple) else model(example_inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return seen


def _macs(module: nn.Module, w_ind: torch.Tensor, x_ind: torch.Tensor) -> float:
    """Multiply-accumulates where both the weight indicator and input indicator are 1, for one sample."""
    x_ind = x_ind[:1]
    if isinstance(module, nn.Linear):
        return float((x_ind.reshape(-1, x_ind.shape[-1]) @ w_ind.t()).sum())
    conv = _CONV_FN[w_ind.dim() - 2]
    out = conv(x_ind, w_ind, None, module.stride, module.padding, module.dilation, module.groups)
    return float(out.sum())


def sparsity_report(model: nn.Module, example_inputs: Any = None) -> list[dict[str, Any]]:
    """One dict per Linear/Conv layer: name, type, weights, kept, kept_pct; with ``example_inputs`` also
    flops (multiply-accumulates per sample, padding counted exactly), flops_kept, flops_kept_pct.

    A MAC is kept when its weight is non-zero; zero activations are not discounted (Han's tables report
    activation sparsity in a separate column). A final row named ``"total"`` sums the layers.
    """
    layers = prunable_layers(model)
    inputs = _capture_inputs(model, example_inputs, list(layers)) if example_inputs is not None else {}
    rows: list[dict[str, Any]] = []
    for name, module in layers.items():
        w = module.weight.detach()
        kept = int((w != 0).sum())
        row: dict[str, Any] = {
            "name": name,
            "type": type(module).__name__,
            "weights": w.numel(),
            "kept": kept,
            "kept_pct": 100.0 * kept / w.numel(),
        }
        if name in inputs:
            ones_x = torch.ones_like(inputs[name][:1], dtype=torch.float32)
            dense = _macs(module, torch.ones_like(w, dtype=torch.float32), ones_x)
            flops_kept = _macs(module, (w != 0).float(), ones_x)
            row.update(
                flops=dense, flops_kept=flops_kept, flops_kept_pct=100.0 * flops_kept / max(dense, 1.0)
            )
        rows.append(row)
    total_w = sum(r["weights"] for r in rows)
    total_kept = sum(r["kept"] for r in rows)
    total: dict[str, Any] = {
        "name": "total",
        "type": "",
        "weights": total_w,
        "kept": total_kept,
        "kept_pct": 100.0 * total_kept / max(total_w, 1),
    }
    if rows and all("flops" in r for r in rows):
        f = sum(r["flops"] for r in rows)
        fk = sum(r["flops_kept"] for r in rows)
        total.update(flops=f, flops_kept=fk, flops_kept_pct=100.0 * fk / max(f, 1.0))
    rows.append(total)
    return rows


def format_report(rows: list[dict[str, Any]]) -> str:
    """Render :func:`sparsity_report` rows as markdown (layer, weights, weights kept %, FLOP kept %)."""
    lines = ["| Layer | Weights | Weights kept % | FLOP kept % |", "|---|---:|---:|---:|"]
    for r in rows:
        flop = f"{r['flops_kept_pct']:.1f}" if "flops_kept_pct" in r else "-"
        lines.append(f"| {r['name']} | {_human(r['weights'])} | {r['kept_pct']:.1f} | {flop} |")
    return "\n".join(lines)


def _human(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}K"
    return str(n)
