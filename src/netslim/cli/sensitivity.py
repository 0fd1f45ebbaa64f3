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
    add_weight_pruning_command_args,
    check_model_source,
    config_from_args,
    default_run_dir,
    model_kwargs,
)
from netslim.runfolder import claim_from_args


def register(subparsers: Any) -> None:
    """Add the ``sensitivity`` sub-command."""
    from netslim.pipelines.weights import SENSITIVITY_OPTIONS

    p = subparsers.add_parser(
        "sensitivity",
        help="per-layer pruning sensitivity sweep (CSV + plot + derived per-layer settings)",
        description="Prune each Linear/Conv layer alone at increasing sparsity, without retraining, and "
        "record validation accuracy. Trains MODEL first unless --checkpoint is given.",
    )
    add_weight_pruning_command_args(p)
    g = p.add_argument_group("sensitivity")
    for flag, kind, default, text in SENSITIVITY_OPTIONS:
        g.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default})")
    p.add_argument("--checkpoint", type=Path, metavar="FILE", help="a trained model saved by netslim")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train or load, sweep, write the outputs and print the per-layer tolerated sparsity."""
    from netslim.pipelines.layout import RunLayout
    from netslim.pipelines.weights import (
        WeightPruningConfig,
        build_model,
        checkpoint_zoo_name,
        default_lr,
        load_data,
        sweep_sensitivity,
        train_baseline,
    )

    model_name = None if args.checkpoint is not None else args.model
    if args.lr is None:
        args.lr = default_lr(model_name or (args.checkpoint and checkpoint_zoo_name(args.checkpoint)))
    config = WeightPruningConfig(
        model=model_name,
        model_kwargs=model_kwargs(args) if model_name else {},
        checkpoint=str(args.checkpoint) if args.checkpoint is not None else None,
        dataset=args.dataset,
        data_dir=args.data_dir,
        val_size=args.val_size,
        limit_train=args.limit_train,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        augment=False if args.no_augment else (True if args.augment else None),
        max_batches=args.max_batches,
        device=args.device,
        train=config_from_args(args),
        sensitivity=True,
        sensitivity_step=args.step,
        sensitivity_max=args.max_sparsity,
        max_drop=args.max_drop,
    )
    check_model_source(args)
    data = load_data(config)
    default = default_run_dir("sensitivity", args.model, args.dataset)
    layout = RunLayout(claim_from_args(args, "sensitivity", default))  # lock; never replace a finished run
    model = build_model(config, data)
    model, _ = train_baseline(config, layout, data, model, resume=args.resume)
    sweep = sweep_sensitivity(config, layout, model, data, resume=args.resume)
    print(
        f"netslim sensitivity: baseline accuracy {sweep['baseline_accuracy']:.2%}; "
        f"tolerated drop {args.max_drop:.2%}"
    )
    print("| Layer | Tolerated sparsity % | Han quality |\n|---|---:|---:|")
    for name, s in sweep["layers"].items():
        print(f"| {name} | {100 * s['sparsity']:.0f} | {s['quality']:.3f} |")
    print(f"wrote {layout.root / 'sensitivity.csv'}, sensitivity.png, layer_settings.json")
    return 0
