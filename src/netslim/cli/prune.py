"""``netslim prune CHECKPOINT --ratio 0.7 -o OUT``: the Network Slimming cut alone, on a trained checkpoint.

Loads the checkpoint with ``netslim.load``, plans the cut from its BatchNorm scales
(:func:`netslim.pipelines.slimming.plan_cut`, as every pass of ``netslim slim`` does), prints the plan and the
params/FLOPs before and after, optionally evaluates both on ``--dataset``'s test split, and saves the
narrow model with ``netslim.save``. ``--dry-run`` prints the plan and writes nothing. ``--bn-recalibration N``
(with ``--dataset``) first recomputes the BatchNorm statistics over N training batches, as ``netslim slim``
does after sparsity training, for a checkpoint whose running averages lag behind its final weights.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from netslim.cli._common import (
    add_command,
    add_data_args,
    add_pruning_args,
    add_threads_arg,
    build_data,
    fold_mode,
    same_named,
    validate_args,
)
from netslim.errors import NetslimError


def register(subparsers: Any) -> None:
    """Add the ``prune`` sub-command."""
    p = add_command(
        subparsers,
        "prune",
        run,
        help="prune the channels of a trained checkpoint by its BN scales (no training)",
        description="Cut the weakest BatchNorm channels of CHECKPOINT (a netslim.save file) and save the "
        "smaller model to -o OUT. With --dataset, report test accuracy before and after the cut.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a model written by netslim train/slim/save")
    p.add_argument(
        "-o", "--output", metavar="OUT", help="where to save the pruned model (required unless --dry-run)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan only; write nothing")
    p.add_argument("--plan-out", metavar="PATH", help="also write the plan as JSON to PATH")
    p.add_argument(
        "--input-shape",
        type=int,
        nargs="+",
        metavar="N",
        help="example input C H W for tracing (default: from the checkpoint or --dataset)",
    )
    p.add_argument(
        "--bn-recalibration",
        type=int,
        default=0,
        metavar="N",
        help="before the cut, recompute the BatchNorm statistics over N training batches of --dataset "
        "(as netslim slim does after sparsity training; default: 0, the checkpoint's statistics as saved)",
    )
    add_pruning_args(p)
    add_data_args(p, dataset_default=None)
    add_threads_arg(p)


def _example_inputs(args: argparse.Namespace, recipe: dict[str, Any] | None, bundle: Any) -> torch.Tensor:
    """The tracing input: ``--input-shape``, else shaped like ``--dataset``'s images, else as recorded."""
    from netslim.measurement.resolve import recorded_input_shape
    from netslim.pipelines.slimming import example_inputs

    if args.input_shape:
        if len(args.input_shape) != 3 or min(args.input_shape) < 1:
            raise NetslimError("--input-shape takes three positive numbers: C H W, e.g. 3 32 32")
        return torch.zeros(1, *args.input_shape)
    if bundle is not None:
        return example_inputs(bundle)
    shape = recorded_input_shape(recipe)
    if shape is None:
        raise NetslimError("cannot tell the model's input shape: pass --input-shape C H W or --dataset NAME")
    return torch.zeros(1, *shape)


def run(args: argparse.Namespace) -> int:
    """Plan (and unless --dry-run apply and save) the cut; prints the plan and a summary. Returns 0."""
    import netslim
    from netslim._atomic import atomic_write_json, check_writable_target
    from netslim._table import format_table
    from netslim.io import check_finite, read_checkpoint
    from netslim.measurement.api import measure
    from netslim.pipelines.slimming import SlimmingConfig, check_fold, plan_cut
    from netslim.slimming import api
    from netslim.train import evaluate, recalibrate_batchnorm

    config = SlimmingConfig(  # checks the ratio, cap, minimum and recalibration batches
        **same_named(
            args, ("ratio", "max_layer_ratio", "min_channels", "scope", "round_to", "bn_recalibration")
        ),
        fold_beta=fold_mode(args.fold_beta),
    )
    if not args.dry_run and not args.output:
        raise NetslimError("pass -o OUT for the pruned model (or --dry-run to only print the plan)")
    if config.bn_recalibration and not args.dataset:
        raise NetslimError(
            "--bn-recalibration needs --dataset NAME: its training batches give the statistics"
        )
    validate_args(args)
    for target in (args.output, args.plan_out):
        if target and not args.dry_run:
            check_writable_target(target)
    ckpt = read_checkpoint(args.checkpoint)
    check_finite(ckpt.state_dict, f"checkpoint {args.checkpoint}")
    model = netslim.load(args.checkpoint, masks=False)  # channel surgery replaces whole tensors
    bundle = build_data(args) if args.dataset else None
    example = _example_inputs(args, ckpt.recipe, bundle)
    recalibrated = 0
    if config.bn_recalibration:
        recalibrated = recalibrate_batchnorm(model, bundle.train, config.bn_recalibration)
        print(f"BN statistics recomputed for the checkpoint's weights over {recalibrated} training batches")
    plan, _ = plan_cut(model, example, config, say=print)
    print(plan)
    if args.plan_out and not args.dry_run:
        atomic_write_json(args.plan_out, plan.to_dict())
    if args.dry_run:
        return 0
    pruned = api.apply(model, plan, fold_beta=config.fold_beta).eval()
    check_fold(model, plan, pruned, example, config.fold_beta, say=print)
    before = measure(model, example, latency=False, file_size=False)
    after = measure(pruned, example, latency=False, file_size=False)
    rows: list[tuple[str, Any]] = [
        (key, f"{before[key]:,} -> {after[key]:,} ({after[key] / max(before[key], 1):.1%} kept)")
        for key in ("params", "flops")
    ]
    extra: dict[str, Any] = {"command": "prune", "source": str(args.checkpoint), "ratio": args.ratio}
    if recalibrated:
        extra["bn_recalibration"] = recalibrated
    if bundle is not None:
        acc_before = evaluate(model, bundle.test)["accuracy"]
        acc_after = evaluate(pruned, bundle.test)["accuracy"]
        rows.append(("test accuracy", f"{acc_before:.2%} -> {acc_after:.2%} (no fine-tuning)"))
        extra["test_accuracy"] = {"before": acc_before, "after": acc_after}
    out = netslim.save(pruned, args.output, extra=extra)
    rows.append(("saved", str(out)))
    print(format_table(rows, title=f"netslim prune: ratio {args.ratio}", indent="  "))
    return 0
