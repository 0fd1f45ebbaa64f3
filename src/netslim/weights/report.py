"""Per-layer sparsity and FLOPs report in the layout of Han et al. 2015, Tables 2-5 (zero weights and zero
activations both discounted, measured on real inputs)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from netslim._inputs import call_model
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
            call_model(model, example_inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return seen


def _count(module: nn.Module, w_ind: torch.Tensor, x_ind: torch.Tensor) -> float:
    """Multiply-accumulates where both indicators are 1, summed over the batch ``x_ind``."""
    if isinstance(module, nn.Linear):
        return float((x_ind.reshape(-1, x_ind.shape[-1]) @ w_ind.t()).sum())
    conv = _CONV_FN[w_ind.dim() - 2]
    out = conv(x_ind, w_ind, None, module.stride, module.padding, module.dilation, module.groups)
    return float(out.sum())


def sparsity_report(model: nn.Module, example_inputs: Any = None) -> list[dict[str, Any]]:
    """One dict per Linear/Conv layer, as in Han et al.'s Tables 2-5, plus a final ``"total"`` row.

    Every row has ``name``, ``type``, ``weights``, ``kept`` (non-zero weights) and ``kept_pct``. With
    ``example_inputs`` (a batch of real inputs, e.g. test images; a tuple for several arguments) the rows
    also count the work per sample the way Han et al. did:

    * ``macs``: multiply-accumulates of the dense layer (padding excluded);
    * ``macs_kept``: those whose weight is non-zero AND whose input activation is non-zero (zero
      activations, e.g. after a ReLU, need no multiply), averaged over the batch; ``macs_kept_pct``;
    * ``macs_kept_weights``: those whose weight is non-zero, whatever the input (``macs_kept_weights_pct``);
    * ``act_kept_pct``: the share of the layer's input activations that are non-zero (Han's "Act%");
    * ``flops``, ``flops_kept``, ``flops_kept_pct``: the same as FLOPs (2 per multiply-accumulate, the
      README's convention).
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
            x = inputs[name].float()
            n = x.shape[0]
            w_all = torch.ones_like(w, dtype=torch.float32)
            w_kept = (w != 0).float()
            x_one = torch.ones_like(x[:1])
            x_kept = (x != 0).float()
            dense = _count(module, w_all, x_one)
            row.update(
                macs=dense,
                macs_kept=_count(module, w_kept, x_kept) / n,
                macs_kept_weights=_count(module, w_kept, x_one),
                act_kept_pct=100.0 * float(x_kept.mean()),
            )
            _add_rates(row)
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
    if rows and all("macs" in r for r in rows):
        for key in ("macs", "macs_kept", "macs_kept_weights"):
            total[key] = sum(r[key] for r in rows)
        _add_rates(total)
    rows.append(total)
    return rows


def _add_rates(row: dict[str, Any]) -> None:
    dense = max(row["macs"], 1.0)
    row["macs_kept_pct"] = 100.0 * row["macs_kept"] / dense
    row["macs_kept_weights_pct"] = 100.0 * row["macs_kept_weights"] / dense
    row["flops"] = 2.0 * row["macs"]
    row["flops_kept"] = 2.0 * row["macs_kept"]
    row["flops_kept_pct"] = row["macs_kept_pct"]


def format_report(rows: list[dict[str, Any]]) -> str:
    """Render :func:`sparsity_report` rows as Markdown: layer, weights, weights kept %, activations kept %
    and FLOPs kept % (non-zero weight and non-zero input, Han et al.'s count)."""
    from netslim._table import format_table

    header = ["Layer", "Weights", "Weights kept %", "Input act. non-zero %", "FLOPs kept %"]
    body = [
        [
            r["name"],
            _human(r["weights"]),
            f"{r['kept_pct']:.1f}",
            f"{r['act_kept_pct']:.1f}" if "act_kept_pct" in r else "-",
            f"{r['flops_kept_pct']:.1f}" if "flops_kept_pct" in r else "-",
        ]
        for r in rows
    ]
    return format_table(body, header, align="lrrrr", markdown=True)


def _human(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}K"
    return str(n)
