"""``netslim slim``: Network Slimming end to end: sparsity training, prune, fine-tune, before/after table.

Example::

    netslim slim --model vgg19 --dataset cifar10 --l1 1e-4 --ratio 0.7 --epochs 160 \\
        --finetune-epochs 40 --finetune-lr 0.001 --finetune-schedule constant
    netslim slim --model vgg11 --width 0.25 --dataset fashion-mnist --l1 auto --epochs 15 --distill
    netslim slim --checkpoint runs/train-.../model.pt --dataset cifar10 --ratio 0.7   # already sparse-trained

The recipe itself is :func:`netslim.pipelines.slimming.run_slimming`; this module only turns the options into
its :class:`~netslim.pipelines.slimming.SlimmingConfig`. "--l1" is the L1 strength on the BN scales (the
paper's lambda; "--sparsity" is its old name), "--ratio" the share of channels the cut removes.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from netslim.cli._common import (
    add_command,
    add_data_args,
    add_distill_args,
    add_model_args,
    add_pruning_args,
    add_run_args,
    add_train_args,
    build_data,
    build_model,
    check_model_source,
    config_from_args,
    default_run_dir,
    finite_float,
    fold_mode,
    l1_strength,
    model_kwargs,
    same_named,
)
from netslim.errors import NetslimError


def register(subparsers: Any) -> None:
    """Add the ``slim`` sub-command."""
    p = add_command(
        subparsers,
        "slim",
        run,
        help="Network Slimming: train with BN sparsity, prune channels, fine-tune, report before/after",
        description="Train MODEL with L1 on the BatchNorm scales (or start from --checkpoint), prune the "
        "weakest channels, fine-tune, and print accuracy, params, FLOPs and CPU latency before and after. "
        "Writes config.json, plan.json, sparse.pt, pruned.pt, finetuned.pt, results.json and the report "
        "(report.md, report.html) into --run-dir.",
    )
    add_model_args(p, required=False)
    add_data_args(p)
    add_train_args(p)
    g = p.add_argument_group("sparsity")
    g.add_argument(
        "--l1",
        "--sparsity",
        "-s",
        dest="l1",
        type=l1_strength,
        default="auto",
        metavar="S|auto",
        help="L1 strength on BN scales (paper, 160 epochs: 1e-4 VGG, 1e-5 ResNet/DenseNet), or "
        "auto: adapt it so --l1-target of the channels are near zero by the last epoch "
        "(default: auto)",
    )
    g.add_argument(
        "--l1-target",
        type=finite_float,
        metavar="F",
        help="with --l1 auto: share of prunable channels to bring near zero (default: --ratio)",
    )
    g.add_argument(
        "--l1-ramp",
        type=finite_float,
        metavar="F",
        help="with --l1 auto: share of the sparsity epochs over which the near-zero share rises to "
        "--l1-target; the survivors train without the penalty after it (default: 0.5)",
    )
    g.add_argument(
        "--sparsity-mode",
        choices=("subgradient", "proximal"),
        help="subgradient: the paper's sign term, for SGD; proximal: soft threshold, exact zeros, also "
        "right for Adam (default: proximal with --l1 auto, subgradient with a fixed strength)",
    )
    g.add_argument("--sparsity-schedule", choices=("constant", "linear_decay"), default="constant")
    g.add_argument(
        "--sparsity-exclude",
        nargs="+",
        default=[],
        metavar="NAME",
        help="BN modules (or parents) left out of the penalty, e.g. classifier",
    )
    g.add_argument(
        "--bn-recalibration",
        type=int,
        default=100,
        metavar="N",
        help="after sparsity training, recompute the BatchNorm statistics over N training batches, so "
        "the evaluation and the cut see statistics of the final weights (0: off; default: 100)",
    )
    g.add_argument(
        "--gates",
        action="store_true",
        help="for nets without BatchNorm: put a learnable channel gate after each conv/linear "
        "whose channels can be cut exactly, penalize and cut by it, fold it away after the cut",
    )
    g.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="a sparsity-trained netslim checkpoint: skip the first sparsity training",
    )
    add_pruning_args(p)
    f = p.add_argument_group("fine-tuning")
    f.add_argument(
        "--passes",
        type=int,
        default=1,
        help="rounds of sparsity training, pruning and fine-tuning, each cutting --ratio of "
        "what is left (default: 1; with more, --max-layer-ratio defaults to 0.5)",
    )
    f.add_argument("--finetune-epochs", type=int, default=10, help="(default: 10)")
    f.add_argument(
        "--finetune-lr",
        type=float,
        default=0.01,
        help="(default: 0.01, best for short fine-tuning; with 15+ epochs the training rate recovers more: "
        "VGG-11 70%% cut, 15 epochs: 8.22%% error at 0.1 vs 8.51%% at 0.01)",
    )
    f.add_argument(
        "--finetune-schedule",
        choices=("step", "cosine", "constant"),
        default="cosine",
        help="(default: cosine)",
    )
    f.add_argument(
        "--finetune-no-augment",
        action="store_true",
        help="fine-tune on the training images without augmentation: a heavily cut small net underfits "
        "augmented images and recovers more without them (VGG-11 w0.25 cut 70%%, 15 epochs: 7.97%% test "
        "error against 8.48%%, mean of three seeds)",
    )
    add_distill_args(p, teacher=True)
    r = p.add_argument_group("report")
    r.add_argument("--no-plain-cut", action="store_true", help="skip evaluating the cut without beta folding")
    r.add_argument("--no-latency", action="store_true", help="skip CPU latency timing")
    r.add_argument("--no-plots", action="store_true", help="skip the plots")
    add_run_args(p)


def config_from(args: argparse.Namespace) -> Any:
    """The :class:`SlimmingConfig` the parsed options describe (validated; bad values raise NetslimError)."""
    from netslim.pipelines.slimming import SlimmingConfig

    if args.model is None and args.checkpoint is None:
        raise NetslimError("pass --model NAME to train a zoo model, or --checkpoint PATH of a trained one")
    if args.resume:
        raise NetslimError("slim does not resume; start it again, or pass --checkpoint of the sparse model")
    train = config_from_args(args)
    finetune = dataclasses.replace(
        train, epochs=args.finetune_epochs, lr=args.finetune_lr, schedule=args.finetune_schedule
    )
    run_dir = args.run_dir or default_run_dir("slim", args.model, args.dataset)
    return SlimmingConfig(
        **same_named(args, _SAME_NAMED),
        model=args.model or "",
        model_kwargs=model_kwargs(args),
        data_kwargs={  # what build_data passes to get_loaders, so config.json tells how the data was read
            "data_dir": args.data_dir,
            "batch_size": args.batch_size,
            "eval_batch_size": args.eval_batch_size,
            "val_size": args.val_size,
            "limit": args.limit_train,
            "augment": not getattr(args, "no_augment", False),
            "seed": getattr(args, "seed", 0),
        },
        l1_strength=args.l1,
        sparsity_exclude=list(args.sparsity_exclude),
        channel_gates=args.gates,
        train=train,
        fold_beta=fold_mode(args.fold_beta),
        finetune=finetune,
        finetune_augment=not args.finetune_no_augment,
        run_dir=str(run_dir),
        compare_plain_cut=not args.no_plain_cut,
        latency=not args.no_latency,
        plots=not args.no_plots,
    )


# SlimmingConfig fields set by the option of the same name
_SAME_NAMED = (
    "dataset",
    "checkpoint",
    "l1_target",
    "l1_ramp",
    "sparsity_mode",
    "bn_recalibration",
    "sparsity_schedule",
    "ratio",
    "passes",
    "max_layer_ratio",
    "min_channels",
    "scope",
    "round_to",
    "distill",
    "distill_temperature",
    "distill_alpha",
    "distill_teacher",
    "device",
)


def run(args: argparse.Namespace) -> int:
    """Run the slimming pipeline, print the before/after table and write the report. Returns the exit code."""
    from netslim.pipelines.slimming import run_slimming
    from netslim.report import write_report
    from netslim.runfolder import claim_from_args

    config = config_from(args)  # validates ratio & co. before any data is read
    check_model_source(args)
    claim_from_args(args, "slim", config.run_dir)  # netslim.runfolder: lock; never replace a finished run
    bundle = build_data(args)
    model = None if args.checkpoint else build_model(args, bundle)
    run_slimming(config, data=bundle, model=model, verbose=True)
    _, html = write_report(Path(config.run_dir or "."))
    print(f"report: {html}")
    return 0
