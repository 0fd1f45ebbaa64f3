"""``netslim train --model M --dataset D``: train a zoo model, evaluate it on the test split, save it.

Also runs data-parallel: ``torchrun --nproc_per_node=N -m netslim train ...`` (``--batch-size`` is global).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from netslim._table import format_table
from netslim.cli._common import (
    add_command,
    add_training_command_args,
    build_data,
    build_model,
    check_model_source,
    config_from_args,
    default_run_dir,
    validate_args,
)


def register(subparsers: Any) -> None:
    """Add the ``train`` sub-command."""
    p = add_command(
        subparsers,
        "train",
        run,
        help="train a zoo model (checkpoints every epoch; --resume continues a killed run)",
        description="Train MODEL on DATASET, evaluate on the test split, and write config.json, metrics.csv, "
        "metrics.jsonl, checkpoint.pt and model.pt into --run-dir. Under torchrun, runs DDP.",
    )
    add_training_command_args(p)


def run(args: argparse.Namespace) -> int:
    """Train, test and save; prints a short result table on rank 0. Returns the exit code."""
    import netslim
    from netslim.runfolder import claim_from_args
    from netslim.train import Trainer, evaluate
    from netslim.train import distributed as dist
    from netslim.train.state import set_deterministic

    check_model_source(args)
    validate_args(args)
    info = dist.init_from_env()
    try:
        config = config_from_args(args)
        if config.deterministic:
            set_deterministic(True)
        run_dir = Path(
            dist.broadcast_object(str(args.run_dir or default_run_dir("train", args.model, args.dataset)))
        )
        if info.is_main:
            args.run_dir = run_dir
            claim_from_args(args, "train", run_dir)
        bundle = build_data(args, rank=info.rank, world=info.world_size)
        config.extra["data_dir"] = str(bundle.source) if bundle.source else None
        model = build_model(args, bundle)
        trainer = Trainer(
            model,
            bundle.train,
            getattr(bundle, "val", None),
            config,
            run_dir=run_dir,
            device=None if info.world_size > 1 else args.device,
        )
        history = trainer.fit(resume=args.resume)
        test = evaluate(trainer.model, bundle.test, trainer.device, amp=config.amp)
        if info.is_main:
            last = history[-1]
            extra = {
                "command": "train",
                "dataset": args.dataset,
                "val_size": args.val_size,
                "seed": args.seed,
                "epochs": config.epochs,
                "final_epoch": last,
                "test": test,
            }
            netslim.save(trainer.model, run_dir / "model.pt", extra=extra)
            title = f"netslim train: {args.model} on {args.dataset}, {config.epochs} epochs"
            seconds = sum(h["time"] for h in history)
            print(format_table(_result_rows(last, test, run_dir, seconds), title=title, indent="  "))
    finally:
        dist.shutdown()
    return 0


def _result_rows(
    last: dict[str, Any], test: dict[str, Any], run_dir: Path, seconds: float
) -> list[tuple[str, Any]]:
    train = f"{last['train_loss']:.4f} / {last['train_acc']:.2%}"
    rows: list[tuple[str, Any]] = [("train loss / acc", train)]
    if "val_loss" in last:
        rows.append(("val loss / acc", f"{last['val_loss']:.4f} / {last['val_acc']:.2%}"))
    rows += [
        ("test loss / acc", f"{test['loss']:.4f} / {test['accuracy']:.2%} (n={test['n']})"),
        ("training time", f"{seconds:.1f} s"),
        ("run dir", str(run_dir)),
    ]
    return rows
