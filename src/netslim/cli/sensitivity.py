"""``netslim sensitivity --model M --dataset D``: per-layer pruning sensitivity (Han et al. 2015, Fig. 6).

Trains the model (or loads ``--checkpoint``), prunes each Linear/Conv layer alone to 0..95% sparsity without
retraining, and writes ``sensitivity.csv``, ``sensitivity.png`` and ``layer_settings.json`` (per-layer
sparsity and Han quality parameter for ``--max-drop``) into ``--run-dir``. The steps are those of
:mod:`netslim.pipelines.weights`; ``--resume`` continues an interrupted baseline training.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netslim.cli._common import (
    add_command,
    add_sensitivity_args,
    add_weight_pruning_command_args,
    claim_run,
    weight_pruning_config,
)


def register(subparsers: Any) -> None:
    """Add the ``sensitivity`` sub-command."""
    p = add_command(
        subparsers,
        "sensitivity",
        run,
        help="per-layer pruning sensitivity sweep (CSV + plot + derived per-layer settings)",
        description="Prune each Linear/Conv layer alone at increasing sparsity, without retraining, and "
        "record validation accuracy. Trains MODEL first unless --checkpoint is given.",
    )
    add_weight_pruning_command_args(p)
    add_sensitivity_args(p)
    p.add_argument("--checkpoint", type=Path, metavar="FILE", help="a trained model saved by netslim")


def run(args: argparse.Namespace) -> int:
    """Train or load, sweep, write the outputs and print the per-layer tolerated sparsity."""
    from netslim._table import format_table
    from netslim.pipelines.layout import RunLayout
    from netslim.pipelines.weights import build_model, load_data, sweep_sensitivity, train_baseline

    config = weight_pruning_config(args, sensitivity=True)
    data = load_data(config)
    layout = RunLayout(claim_run(args, "sensitivity"))
    model = build_model(config, data)
    model, _ = train_baseline(config, layout, data, model, resume=args.resume)
    sweep = sweep_sensitivity(config, layout, model, data, resume=args.resume)
    print(
        f"netslim sensitivity: baseline accuracy {sweep['baseline_accuracy']:.2%}; "
        f"tolerated drop {args.max_drop:.2%}"
    )
    layers = sweep["layers"].items()
    rows = [[name, f"{100 * s['sparsity']:.0f}", f"{s['quality']:.3f}"] for name, s in layers]
    print(format_table(rows, ["Layer", "Tolerated sparsity %", "Han quality"], align="lrr", markdown=True))
    print(f"wrote {layout.root / 'sensitivity.csv'}, sensitivity.png, layer_settings.json")
    return 0
