"""Channel gates row: a norm-free conv net on Fashion-MNIST, slimmed 50% through gates, next to its baseline.

``gates_normfree``: the same architecture and initial weights trained twice: plainly (the baseline), and
with :func:`netslim.add_channel_gates` plus L1 on the gates (:class:`netslim.BNSparsity`), then cut 50% of the
gated channels with :func:`netslim.slim` (the gates are folded into the convolutions and removed) and
fine-tuned. Reports test error, params and FLOPs of the baseline, the gated model, the cut and the fine-tuned
model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from benchmarks.rows_slimming import example_input, fit, load_data, train_config
from benchmarks.rows_slimming import test_error as _test_error
from benchmarks.suite import RowContext, row


def norm_free_net(in_channels: int, num_classes: int, width: float) -> nn.Module:
    """Four 3x3 convs with ReLU and max pooling, global average pooling, a linear layer; no normalization."""
    c = [max(4, round(v * width)) for v in (32, 64, 128, 128)]
    return nn.Sequential(
        nn.Conv2d(in_channels, c[0], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[0], c[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c[3], num_classes),
    )  # fmt: skip


def _size(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    from netslim.slimming.api import count

    params, flops = count(model, example)
    return {"params": params, "flops": flops}


@row("gates_normfree", "gates", suites=("smoke", "quick", "full"))
def gates_normfree(ctx: RowContext) -> dict[str, Any]:
    """Baseline vs gated + L1 + 50% cut + fine-tuning, same architecture and initial weights."""
    import netslim

    data = load_data(ctx)
    example = example_input(data)
    width = ctx.scale(0.25, 1.0, 1.0)
    epochs = ctx.scale(1, 6, 30)
    ft_epochs = ctx.scale(1, 4, 10)
    lr = 0.05

    def fresh() -> nn.Module:
        torch.manual_seed(0)
        return norm_free_net(data.in_channels, data.num_classes, width)

    folder = ctx.work_dir / "gates_normfree"
    baseline = fresh()
    fit(baseline, data, train_config(ctx, epochs, lr=lr, schedule="cosine"), folder / "baseline-run")
    gated = fresh()
    report = netslim.add_channel_gates(gated, example)
    # netslim's budget-aware strength aimed at the cut (released survivors after the ramp)
    sparsity = netslim.BNSparsity(gated, "auto", target=0.5, mode="proximal", hist_file=None)
    fit(gated, data, train_config(ctx, epochs, lr=lr, schedule="cosine"), folder / "gated-run", [sparsity])
    gates = torch.cat([m.weight.detach().abs() for _, m in sparsity.named_norms])
    near_zero = sparsity.near_zero_share()[0]
    result = netslim.slim(gated, example, ratio=0.5)
    pruned = result.model
    err_pruned = _test_error(pruned, data)
    # plain fine-tuning at the training rate: distillation from the (weaker) gated teacher lost to plain
    # fine-tuning in the sparsity study, and 0.01 recovers a norm-free net too slowly in a few epochs
    ft_config = train_config(ctx, ft_epochs, lr=lr, schedule="cosine")
    fit(pruned, data, ft_config, folder / "finetune-run")
    return {
        "model": "norm-free conv net (4 conv + linear, no normalization)",
        "width": width,
        "dataset": ctx.dataset,
        "epochs": epochs,
        "finetune_epochs": ft_epochs,
        "sparsity": "auto (proximal, target 0.5)",
        "finetune_lr": lr,
        "near_zero_share": near_zero,
        "lr": lr,
        "gated_layers": report.gated,
        "skipped_layers": report.skipped,
        "gate_below_1e-2": float((gates < 1e-2).float().mean()),
        "ratio": 0.5,
        "pruned_channels": result.plan.pruned_channels,
        "total_channels": int(result.plan.meta.get("total_channels", 0)),
        "test_error_baseline": _test_error(baseline, data),
        "test_error_gated": _test_error(gated, data),
        "test_error_pruned": err_pruned,
        "test_error_finetuned": _test_error(pruned, data),
        "gate_modules_after": sum(1 for m in pruned.modules() if getattr(m, "netslim_channel_scale", False)),
        "baseline": _size(baseline, example),
        "after": _size(pruned, example),
    }
