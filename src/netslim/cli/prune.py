"""``netslim prune CHECKPOINT --ratio 0.7 -o OUT``: the Network Slimming cut alone, on a trained checkpoint.

Loads the checkpoint with ``netslim.load``, plans the cut from its BatchNorm scales, prints the plan and the
params/FLOPs before and after, optionally evaluates both on ``--dataset``'s test split, and saves the
narrow model with ``netslim.save``. ``--dry-run`` prints the plan and writes nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from netslim.cli._common import add_data_args, add_threads_arg, format_table, validate_args
from netslim.cli.slim import add_pruning_args
from netslim.errors import NetslimError


def register(subparsers: Any) -> None:
    """Add the ``prune`` sub-command."""
    p = subparsers.add_parser(
        "prune",
        help="prune the channels of a trained checkpoint by its BN scales (no training)",
        description="Cut the weakest BatchNorm channels of CHECKPOINT (a netslim.save file) and save the "
        "smaller model to -o OUT. With --dataset, report test accuracy before and after the cut.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a model written by netslim train/slim/save")
    p.add_argument("-o", "--output", metavar="OUT", help="where to save the pruned model (required unless "
                   "--dry-run)")
    p.add_argument("--dry-run", action="store_true", help="print the plan only; write nothing")
    p.add_argument("--plan-out", metavar="PATH", help="also write the plan as JSON to PATH")
    p.add_argument("--input-shape", type=int, nargs="+", metavar="N",
                   help="example input C H W for tracing (default: from the checkpoint or --dataset)")
    add_pruning_args(p)
    add_data_args(p, dataset_default=None)
    add_threads_arg(p)
    p.set_defaults(func=run)


def _example_inputs(args: argparse.Namespace, recipe: dict[str, Any] | None, bundle: Any) -> torch.Tensor:
    if args.input_shape:
        if len(args.input_shape) != 3 or min(args.input_shape) < 1:
            raise NetslimError("--input-shape takes three positive numbers: C H W, e.g. 3 32 32")
        return torch.zeros(1, *args.input_shape)
    if bundle is not None:
        size = bundle.image_size if isinstance(bundle.image_size, int) else tuple(bundle.image_size)[-1]
        return torch.zeros(1, int(bundle.in_channels), int(size), int(size))
    if (recipe or {}).get("input_shape"):  # recorded for factory models
        return torch.zeros(1, *[int(v) for v in recipe["input_shape"]])
    kwargs = (recipe or {}).get("kwargs", {})
    if "in_channels" in kwargs and "input_size" in kwargs:
        size = int(kwargs["input_size"])
        return torch.zeros(1, int(kwargs["in_channels"]), size, size)
    raise NetslimError("cannot tell the model's input shape: pass --input-shape C H W or --dataset NAME")


def run(args: argparse.Namespace) -> int:
    """Plan (and unless --dry-run apply and save) the cut; prints the plan and a summary. Returns 0."""
    import netslim
    from netslim._atomic import atomic_write_json, check_writable_target
    from netslim.cli._common import build_data
    from netslim.io import check_finite, read_checkpoint
    from netslim.measurement.api import measure
    from netslim.slimming import api
    from netslim.train import evaluate

    if not 0.0 < args.ratio < 1.0:
        raise NetslimError(f"--ratio must be in (0, 1), got {args.ratio}; 0.7 prunes 70% of the channels")
    if not args.dry_run and not args.output:
        raise NetslimError("pass -o OUT for the pruned model (or --dry-run to only print the plan)")
    validate_args(args)
    for target in (args.output, args.plan_out):
        if target and not args.dry_run:
            check_writable_target(target)
    ckpt = read_checkpoint(args.checkpoint)
    check_finite(ckpt.state_dict, f"checkpoint {args.checkpoint}")
    model = netslim.load(args.checkpoint, masks=False)  # channel surgery replaces whole tensors
    recipe = ckpt.recipe
    bundle = build_data(args) if args.dataset else None
    example = _example_inputs(args, recipe, bundle)
    plan = api.plan(
        model,
        example,
        args.ratio,
        scope=args.scope,
        min_channels=args.min_channels,
        max_layer_ratio=args.max_layer_ratio,
        round_to=args.round_to,
    )
    print(plan)
    if args.plan_out and not args.dry_run:
        atomic_write_json(args.plan_out, plan.to_dict())
    if args.dry_run:
        return 0
    pruned = api.apply(model, plan, fold_beta=not args.no_fold_beta).eval()
    before = measure(model, example, latency=False, file_size=False)
    after = measure(pruned, example, latency=False, file_size=False)
    rows: list[tuple[str, Any]] = [
        (key, f"{before[key]:,} -> {after[key]:,} ({after[key] / max(before[key], 1):.1%} kept)")
        for key in ("params", "flops")
    ]
    extra: dict[str, Any] = {"command": "prune", "source": str(args.checkpoint), "ratio": args.ratio}
    if bundle is not None:
        acc_before = evaluate(model, bundle.test)["accuracy"]
        acc_after = evaluate(pruned, bundle.test)["accuracy"]
        rows.append(("test accuracy", f"{acc_before:.2%} -> {acc_after:.2%} (no fine-tuning)"))
        extra["test_accuracy"] = {"before": acc_before, "after": acc_after}
    out = netslim.save(pruned, args.output, extra=extra)
    rows.append(("saved", str(out)))
    print(format_table(rows, title=f"netslim prune: ratio {args.ratio}"))
    return 0
