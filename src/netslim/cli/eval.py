"""``netslim eval CHECKPOINT``: loss and accuracy of a saved model on a dataset split."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netslim.cli._common import (
    DEFAULT_DATASET,
    add_command,
    add_data_args,
    add_threads_arg,
    build_data,
    validate_args,
)
from netslim.errors import NetslimError


def register(subparsers: Any) -> None:
    """Add the ``eval`` sub-command."""
    p = add_command(
        subparsers,
        "eval",
        run,
        help="loss and accuracy of a checkpoint written by netslim.save (train/slim/prune output model.pt)",
        description="Evaluate CHECKPOINT on the test split (or --split val) of --dataset (default: the "
        "dataset recorded in the checkpoint). For --split val pass the training run's --val-size and --seed.",
    )
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the result as JSON here")
    add_data_args(p, dataset_default=None)
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val split (default: 0)")
    add_threads_arg(p)
    p.set_defaults(no_augment=True)


def run(args: argparse.Namespace) -> int:
    """Load, evaluate, print; returns the exit code."""
    import torch

    import netslim
    from netslim._atomic import atomic_write_json, check_writable_target
    from netslim._table import format_table
    from netslim.io import read_checkpoint
    from netslim.train import evaluate
    from netslim.train.distributed import default_device

    validate_args(args)
    if args.json is not None:
        check_writable_target(args.json, "--json")
    stored = read_checkpoint(args.checkpoint).meta.get("extra", {})
    args.dataset = args.dataset or stored.get("dataset") or DEFAULT_DATASET
    model = netslim.load(args.checkpoint)
    if args.split == "test":
        args.val_size = 0  # the held-out split does not matter: no need for a training set that fits it
    args.batch_size = 1  # the training loader is not used: any training set size will do
    bundle = build_data(args)
    loader = getattr(bundle, args.split, None)
    if loader is None:
        raise NetslimError(f"there is no {args.split} split; use --split test or a --val-size above 0")
    device = torch.device(args.device) if args.device else default_device()
    try:
        result = evaluate(model.to(device), loader, device)
    except RuntimeError as exc:
        raise NetslimError(
            f"the model does not accept {args.dataset} images ({str(exc).splitlines()[0]}); "
            "evaluate on the dataset it was trained on"
        ) from None
    print(
        format_table(
            [("loss", result["loss"]), ("accuracy", f"{result['accuracy']:.2%}"), ("samples", result["n"])],
            title=f"netslim eval: {args.checkpoint} on {args.dataset} ({args.split})",
            indent="  ",
        )
    )
    if args.json:
        atomic_write_json(args.json, {**result, "dataset": args.dataset, "split": args.split})
    return 0
