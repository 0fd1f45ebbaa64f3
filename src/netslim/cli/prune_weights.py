"""``netslim prune-weights``: Han et al. 2015 connection pruning, end to end.

This module only turns options into a :class:`netslim.pipelines.weights.WeightPruningConfig`; the recipe
(train -> optional sensitivity sweep -> rounds of prune/retrain -> per-layer report and Deep Compression
sizes) is :func:`netslim.pipelines.weights.run_weight_pruning`. Writes ``baseline.pt``, ``pruned.pt``
(masked), ``results.json`` and the run report into ``--run-dir``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netslim.cli._common import (
    LAYER_SETTINGS_EXAMPLE,
    add_command,
    add_sensitivity_args,
    add_weight_pruning_command_args,
    claim_run,
    weight_pruning_config,
)


def register(subparsers: Any) -> None:
    """Add the ``prune-weights`` sub-command."""
    p = add_command(
        subparsers,
        "prune-weights",
        run,
        help="Han-style connection pruning: iterative prune/retrain, report, compressed sizes",
        description="Train MODEL (or load --checkpoint), optionally sweep per-layer sensitivity, then run "
        "--rounds of magnitude pruning and retraining at a reduced, constant learning rate. Without a "
        "criterion the LeNets, AlexNet and VGG-16 get Han et al.'s per-layer amounts (--preset han: 12x on "
        "the LeNets) and other models --target-sparsity 0.8.",
    )
    add_weight_pruning_command_args(p)
    g = p.add_argument_group("pruning")
    g.add_argument("--checkpoint", type=Path, metavar="FILE", help="start from this trained model")
    g.add_argument("--rounds", type=int, default=3, help="prune/retrain rounds (default: 3)")
    g.add_argument(
        "--preset",
        choices=("han",),
        help="han: Han et al.'s per-layer amounts (Tables 2-5; 12x on lenet300_100 and lenet5)",
    )
    g.add_argument(
        "--list-layers",
        action="store_true",
        help="print the prunable layer names (for --layer-settings) and exit",
    )
    g.add_argument("--quality", type=float, help="Han's rule: prune |w| < quality * std(layer)")
    g.add_argument("--quality-step", type=float, default=0.0, help="quality increment per round")
    g.add_argument(
        "--target-sparsity", type=float, help="final sparsity per layer, cubic schedule over rounds"
    )
    g.add_argument(
        "--std-mode",
        choices=("fixed", "recompute"),
        default="fixed",
        help="std taken at the first prune (fixed) or from the survivors every round",
    )
    g.add_argument(
        "--layer-settings",
        default="{}",
        metavar="JSON",
        help="per-layer settings by name or glob (see --list-layers), e.g. for lenet5 "
        f"'{LAYER_SETTINGS_EXAMPLE}'",
    )
    g.add_argument("--protect-first", action="store_true", help="leave the first layer unpruned")
    g.add_argument("--prune-bias", action="store_true", help="prune biases with the same rule")
    g.add_argument(
        "--retrain-epochs", type=int, default=2, help="epochs of retraining per round (default: 2)"
    )
    g.add_argument(
        "--retrain-lr-factor", type=float, default=0.1, help="retrain lr = lr * this (default: 0.1)"
    )
    g.add_argument(
        "--retrain-schedule",
        choices=("constant", "cosine", "step"),
        default="constant",
        help="retraining rate over its epochs: constant (Han et al., default), cosine from it, or step",
    )
    g.add_argument(
        "--reg",
        choices=("l2", "l1", "none"),
        default="l2",
        help="regularization while retraining: l2 = weight decay (default), l1 = lambda*sign(w)",
    )
    g.add_argument("--l1-strength", type=float, default=1e-5, help="lambda of --reg l1 (default: 1e-5)")
    g.add_argument("--no-dropout-adjust", action="store_true", help="keep dropout rates (no Eq. 2)")
    g.add_argument(
        "--phases",
        default="all",
        metavar="LIST",
        help="comma list of all|fc|conv pruned in turn each round (default: all)",
    )
    g.add_argument("--freeze", action="store_true", help="retrain only the layer kind just pruned")
    g.add_argument(
        "--sensitivity",
        action="store_true",
        help="sweep sensitivity first and use each layer's tolerated sparsity as its target",
    )
    g.add_argument("--no-compress", action="store_true", help="skip the compressed-size report")
    add_sensitivity_args(p)


def list_layers(config: Any, data: Any) -> str:
    """The prunable layers of the configured model, one per line: name, type, weights, preset amount."""
    from netslim._table import format_table
    from netslim.pipelines.weights import build_model
    from netslim.weights.masks import prunable_layers
    from netslim.weights.presets import HAN_TABLES, han_layer_amounts

    model = build_model(config, data)
    name = (getattr(model, "netslim_recipe", None) or {}).get("name")
    amounts = han_layer_amounts(model, name) if name in HAN_TABLES else {}
    rows = [
        [
            layer,
            type(module).__name__,
            f"{module.weight.numel():,} weights",
            f"--preset han prunes {amounts[layer]['amount']:.1%}" if layer in amounts else "",
        ]
        for layer, module in prunable_layers(model).items()
    ]
    title = f"prunable layers of {name or config.checkpoint} (names for --layer-settings):"
    return format_table(rows, title=title, indent="  ", align="llr")


def run(args: argparse.Namespace) -> int:
    """Translate the options, run Han et al.'s pipeline, print the per-layer table, write the report."""
    from netslim.pipelines.weights import load_data, run_weight_pruning
    from netslim.weights.report import format_report

    config = weight_pruning_config(args)  # every option checked before any data is read
    if args.list_layers:
        data = load_data(config)
        print(list_layers(config, data))
        return 0
    data = load_data(config)
    run_dir = claim_run(args, "prune-weights")
    result = run_weight_pruning(
        config, run_dir, data=data, resume=args.resume, log=None if args.no_progress else print
    )
    res = result.results
    print(
        f"netslim prune-weights: {res['model']} on {args.dataset}, {config.rounds} rounds"
        + (f", preset {res['preset']}" if res.get("preset") else "")
    )
    print(format_report([*res["layers"], res["total"]]))
    print(
        f"weights {res['weights']:,} -> {res['weights_kept']:,} ({res['compression_rate']:.1f}x); "
        f"FLOPs kept {res['flops_kept_pct']:.1f}% (zero weights and zero activations)"
    )
    before, after = res["test_before"]["accuracy"], res["test_after"]["accuracy"]
    print(f"test accuracy: {before:.2%} before, {after:.2%} after pruning")
    if "sizes_bytes" in res:
        s = res["sizes_bytes"]
        print("sizes: " + ", ".join(f"{k} {v / 1024:.1f} KiB ({s['dense'] / v:.1f}x)" for k, v in s.items()))
    from netslim.report import write_report

    write_report(run_dir)
    print(f"wrote {result.layout.model('pruned')}, {result.layout.results} and {result.layout.report_html}")
    return 0
