"""What the sub-commands share: option groups, argument types, and the translation of options into configs.

A command registers itself with :func:`add_command` and composes its parser from the option groups here
(``add_model_args``, ``add_data_args``, ``add_train_args`` and ``add_run_args``, all four:
:func:`add_training_command_args`; the cut's :func:`add_pruning_args`, :func:`add_distill_args`,
:func:`add_sensitivity_args`, ...), checks ``--model``/``--checkpoint`` with :func:`check_model_source` and
then turns the parsed namespace into library objects with :func:`config_from_args`,
:func:`weight_pruning_config`, :func:`build_data` and :func:`build_model`, so every command spells the same
option the same way. No command module imports another; what two commands share lives here or in the library.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from netslim.errors import NetslimError
from netslim.train.config import TrainConfig

DEFAULT_DATASET = "fashion-mnist"


def finite_float(text: str) -> float:
    """argparse type: a float that is neither nan nor inf (the CLI applies it to every float option)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def add_command(
    subparsers: Any, name: str, run: Callable[[argparse.Namespace], int], *, help: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """Add sub-command ``name`` (``help`` also its description unless ``description`` is given) whose
    ``func`` is ``run``; returns its parser for the command's options."""
    kwargs.setdefault("description", help)
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help, **kwargs)
    parser.set_defaults(func=run)
    return parser


def same_named(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """``{name: args.name}`` for the options whose config field has the option's own name."""
    return {name: getattr(args, name) for name in names}


def l1_strength(text: str) -> float | str:
    """argparse type of ``--l1``: a number, or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 1e-4, or auto; got {text!r}") from None
    return finite_float(text)


def add_threads_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--threads N``: CPU threads torch uses (commands that train or measure; applied by the CLI)."""
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for torch (default: torch's choice); use 1 per job when running "
        "several jobs side by side",
    )


def add_model_args(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--model SPEC``, ``--input-shape C H W``, ``--width W`` (channel multiplier), ``--model-kwargs``."""
    g = parser.add_argument_group("model")
    g.add_argument(
        "--model",
        required=required,
        metavar="SPEC",
        help="zoo model name (e.g. vgg11), path/to/file.py:factory or package.module:factory "
        "(the factory gets --model-kwargs and the dataset's num_classes/in_channels/input_size "
        "where it takes them; a file is run as Python code)",
    )
    g.add_argument(
        "--input-shape",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        help="the model's input C H W where the dataset does not define it (recorded in the checkpoint)",
    )
    g.add_argument("--width", type=float, metavar="W", help="channel width multiplier (models that take one)")
    g.add_argument(
        "--model-kwargs",
        default="{}",
        metavar="JSON",
        help="extra model arguments as a JSON object, e.g. '{\"depth\": 20}'",
    )


def add_data_args(parser: argparse.ArgumentParser, *, dataset_default: str | None = DEFAULT_DATASET) -> None:
    """Dataset options: name, folder, validation split, training limit, batch sizes, augmentation."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default=dataset_default,
        metavar="NAME",
        help=f"dataset name (default: {dataset_default or 'as recorded in the checkpoint'})",
    )
    g.add_argument("--data-dir", metavar="DIR", help="folder holding the dataset files (default: searched)")
    g.add_argument(
        "--val-size",
        type=int,
        default=5000,
        metavar="N",
        help="training images held out for validation (default: 5000)",
    )
    g.add_argument("--limit-train", type=int, metavar="N", help="use only the first N training images")
    g.add_argument("--batch-size", type=int, default=64, metavar="B", help="global batch size (default: 64)")
    g.add_argument("--eval-batch-size", type=int, default=256, metavar="B", help="(default: 256)")
    g.add_argument("--no-augment", action="store_true", help="no random crops/flips on training images")


def add_train_args(
    parser: argparse.ArgumentParser, *, epochs: int = 10, lr: float = 0.1, schedule: str = "step"
) -> None:
    """Optimizer, schedule, precision, seed and loop-length options; defaults can be set per command."""
    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs, help=f"(default: {epochs})")
    g.add_argument("--lr", type=float, default=lr, help=f"initial learning rate (default: {lr})")
    g.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD)")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="(default: 1e-4)")
    g.add_argument("--no-decay-bn-bias", action="store_true", help="no weight decay on BN params and biases")
    g.add_argument(
        "--schedule",
        choices=("step", "cosine", "constant"),
        default=schedule,
        help=f"learning-rate schedule; step = /10 at each milestone (default: {schedule})",
    )
    g.add_argument(
        "--milestones",
        type=float,
        nargs="+",
        default=[0.5, 0.75],
        metavar="F",
        help="fractions of the epochs where 'step' divides the rate by 10 (default: 0.5 0.75)",
    )
    g.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA, bf16 on CPU)")
    g.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradient norm")
    g.add_argument("--sync-bn", action="store_true", help="under torchrun on GPUs, use SyncBatchNorm")
    g.add_argument("--seed", type=int, default=0, help="(default: 0)")
    g.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic kernels: a resumed run ends bit-identical to an uninterrupted one",
    )
    g.add_argument("--max-batches", type=int, metavar="N", help="at most N batches per epoch (smoke runs)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """``--run-dir`` (default ``runs/<command>-<model>-<dataset>-<time>``), ``--resume``, ``--device``."""
    g = parser.add_argument_group("run")
    g.add_argument("--run-dir", type=Path, metavar="DIR", help="output folder (default: runs/<command>-...)")
    g.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --run-dir (default: refuse to touch a finished run)",
    )
    g.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    add_threads_arg(g)


def add_training_command_args(
    parser: argparse.ArgumentParser, *, model_required: bool = True, epochs: int = 10, lr: float = 0.1
) -> None:
    """The model, data, training and run option groups of a command that trains, in that order."""
    add_model_args(parser, required=model_required)
    add_data_args(parser)
    add_train_args(parser, epochs=epochs, lr=lr)
    add_run_args(parser)


def add_weight_pruning_command_args(parser: argparse.ArgumentParser) -> None:
    """The training options of the Han commands (prune-weights, sensitivity): the model's own default rate
    and augmentation unless given. The sweep's options (:func:`add_sensitivity_args`) are added apart, after
    the command's own."""
    from netslim.pipelines.weights import LR_HELP

    add_training_command_args(parser, model_required=False, epochs=5, lr=0.05)
    parser.set_defaults(lr=None)
    next(a for a in parser._actions if a.dest == "lr").help = LR_HELP
    parser.add_argument(
        "--augment",
        action="store_true",
        help="random crops/flips on training images (default: per model; off for the LeNets)",
    )


def add_pruning_args(parser: argparse.ArgumentParser) -> None:
    """The cut's options (``slim``, ``prune``): ratio, caps, scope, rounding, beta folding."""
    g = parser.add_argument_group("pruning")
    g.add_argument("--ratio", type=float, default=0.7, help="share of BN channels to prune (default: 0.7)")
    g.add_argument(
        "--max-layer-ratio",
        type=float,
        metavar="F",
        help="never prune more than this share of one layer; the channels it keeps are not replaced by "
        "others, so fewer than --ratio may go (multi-pass default: 0.5)",
    )
    g.add_argument(
        "--min-channels",
        type=int,
        default=1,
        metavar="N",
        help="keep at least N channels per layer (default: 1)",
    )
    g.add_argument(
        "--scope",
        choices=("global", "local"),
        default="global",
        help="one threshold over all layers (paper) or the ratio per layer (default: global)",
    )
    g.add_argument(
        "--round-to",
        type=int,
        default=1,
        metavar="N",
        help="round kept channel counts to a multiple of N (default: 1)",
    )
    fold = g.add_mutually_exclusive_group()
    fold.add_argument(
        "--fold-beta",
        choices=FOLD_CHOICES,
        default="mean",
        help="how pruned channels' constant beta is folded into the next layer: mean (default; zero-padded "
        "convs get its spatial mean), exact (plus a border correction on those convs: the cut net computes "
        "what the masked net computes), interior, or none (the reference code's plain cut)",
    )
    fold.add_argument(
        "--no-fold-beta",
        action="store_const",
        const="none",
        dest="fold_beta",
        help="the same as --fold-beta none",
    )


FOLD_CHOICES = ("mean", "exact", "interior", "none")


def fold_mode(choice: str) -> bool | str:
    """``--fold-beta CHOICE`` as :func:`netslim.apply`'s ``fold_beta`` (mean: True, none: False)."""
    return {"mean": True, "none": False}.get(choice, choice)


def add_distill_args(parser: argparse.ArgumentParser, teacher: bool = False) -> None:
    """``--distill`` and its temperature and weight (``slim``, ``demo``); ``teacher``: ``--distill-teacher``
    too (``slim``)."""
    g = parser.add_argument_group("distillation")
    g.add_argument(
        "--distill",
        action="store_true",
        help="fine-tune with knowledge distillation from the network before the cut",
    )
    if teacher:
        g.add_argument(
            "--distill-teacher",
            metavar="PATH",
            help="distill from this trained model instead (a netslim model file, e.g. the model.pt of "
            "netslim train on the same data; implies --distill)",
        )
    g.add_argument(
        "--distill-temperature",
        type=finite_float,
        default=4.0,
        metavar="T",
        help="softening temperature of the teacher's and student's logits (default: 4)",
    )
    g.add_argument(
        "--distill-alpha",
        type=finite_float,
        default=0.9,
        metavar="A",
        help="weight of the teacher term; 1-A weights the cross-entropy on labels (default: 0.9)",
    )


def add_sensitivity_args(parser: argparse.ArgumentParser) -> None:
    """``--step``, ``--max-sparsity`` and ``--max-drop`` of the sweep (``sensitivity``, ``prune-weights``)."""
    from netslim.pipelines.weights import SENSITIVITY_OPTIONS

    g = parser.add_argument_group("sensitivity")
    for flag, kind, default, text in SENSITIVITY_OPTIONS:
        g.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default})")


class _InputShape(argparse.Action):
    """``--input-shape C H W`` stored as the ``"CxHxW"`` text the model resolver reads."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, "x".join(str(v) for v in values))


def add_model_file_args(parser: argparse.ArgumentParser, *, input_size_default: str) -> None:
    """``MODEL_OR_CHECKPOINT`` (a zoo name, factory spec or netslim checkpoint) and ``--input-shape C H W``
    (``measure``, ``export``; the same flag as the training commands); ``input_size_default`` says where the
    shape comes from otherwise. ``--input-size CxHxW`` is kept as a hidden older spelling."""
    parser.add_argument("model", metavar="MODEL_OR_CHECKPOINT")
    parser.add_argument(
        "--input-shape",
        dest="input_size",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        action=_InputShape,
        help=f"the model's input, e.g. 1 28 28 (default: {input_size_default})",
    )
    parser.add_argument("--input-size", dest="input_size", metavar="CxHxW", help=argparse.SUPPRESS)


def add_timing_args(parser: argparse.ArgumentParser, *, repeats_help: str, inference_form_help: str) -> None:
    """``--repeats N`` timed runs per batch size and ``--[no-]inference-form`` (``measure``, ``export``)."""
    parser.add_argument("--repeats", type=int, default=30, help=repeats_help)
    parser.add_argument(
        "--inference-form", action=argparse.BooleanOptionalAction, default=True, help=inference_form_help
    )


def json_object_arg(text: str | None, option: str, example: str) -> dict[str, Any]:
    """Parse the JSON object given to ``option`` (empty or None: ``{}``); bad JSON raises NetslimError."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise NetslimError(f"{option} is not valid JSON ({exc}); e.g. '{example}'") from None
    if not isinstance(value, dict):
        raise NetslimError(f"{option} must be a JSON object, e.g. '{example}'")
    return value


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The model's keyword arguments from ``--model-kwargs`` and ``--width``."""
    kwargs = json_object_arg(getattr(args, "model_kwargs", None), "--model-kwargs", '{"depth": 20}')
    if getattr(args, "width", None) is not None:
        kwargs["width"] = args.width
    return kwargs


def check_model_source(args: argparse.Namespace) -> None:
    """Before any data is read: reject a missing, unreadable or non-finite ``--checkpoint``, an unknown
    ``--model``, or neither, and the same faults of a ``--distill-teacher`` file; then check the generic
    options (:func:`validate_args`)."""
    from netslim.io import check_finite, read_checkpoint

    checkpoint = getattr(args, "checkpoint", None)
    teacher = getattr(args, "distill_teacher", None)
    if teacher is not None:
        role = "distillation teacher"
        check_finite(read_checkpoint(teacher, role).state_dict, f"{role} {teacher}")
    if checkpoint is not None:
        # read_checkpoint also refuses a missing file, a folder or a file of another format
        check_finite(read_checkpoint(checkpoint).state_dict, f"checkpoint {checkpoint}")
    elif not getattr(args, "model", None):
        raise NetslimError("give --model NAME to train, or --checkpoint FILE with a trained model")
    else:
        from netslim.models import check_spec

        check_spec(args.model)  # an unknown zoo name lists the zoo; a factory must import
    validate_args(args)


def check_device(device: str | None) -> None:
    """Refuse a ``--device`` torch cannot parse or this build cannot use (e.g. cuda on a CPU-only torch)."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise NetslimError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NetslimError(
                f"--device {device}: CUDA is not available to this torch "
                f"({torch.__version__}); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise NetslimError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s); use cuda:0 .. cuda:N-1"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise NetslimError(f"--device {device}: MPS is not available here; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise NetslimError(f"--device {device}: netslim runs on cpu, cuda or mps")


def _at_least(args: argparse.Namespace, name: str, low: int) -> None:
    value = getattr(args, name, None)
    if value is not None and value < low:
        raise NetslimError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")


def validate_args(args: argparse.Namespace) -> None:
    """Check every generic option (data, training, run groups) before anything is read, trained or written.

    Raises NetslimError naming the first bad option and what it should be.
    """
    for name in ("batch_size", "eval_batch_size", "epochs", "limit_train", "max_batches", "threads"):
        _at_least(args, name, 1)
    _at_least(args, "val_size", 0)
    if getattr(args, "lr", None) is not None and args.lr <= 0:
        raise NetslimError(f"--lr must be > 0, got {args.lr}")
    for name in ("momentum", "weight_decay"):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            raise NetslimError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if getattr(args, "grad_clip", None) is not None and args.grad_clip <= 0:
        raise NetslimError(f"--grad-clip must be > 0, got {args.grad_clip}")
    milestones = getattr(args, "milestones", None) or ()
    if any(not 0 < m <= 1 for m in milestones):
        raise NetslimError(f"--milestones are fractions of the epochs in (0, 1], got {list(milestones)}")
    if getattr(args, "width", None) is not None and args.width <= 0:
        raise NetslimError(f"--width must be > 0, got {args.width}")
    if getattr(args, "model_kwargs", None) is not None:
        json_object_arg(args.model_kwargs, "--model-kwargs", '{"depth": 20}')
    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.exists():
            raise NetslimError(f"--data-dir {data_dir} does not exist")
        if not path.is_dir():
            raise NetslimError(f"--data-dir {data_dir} is a file; give the folder holding the dataset files")
    if getattr(args, "resume", False) and getattr(args, "run_dir", None) is None:
        raise NetslimError("--resume needs --run-dir: give the folder of the run to continue")
    run_dir = getattr(args, "run_dir", None)
    if run_dir is not None and Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise NetslimError(f"--run-dir {run_dir} is a file, not a folder; give a folder path")
    check_device(getattr(args, "device", None))


def config_from_args(args: argparse.Namespace, **extra: Any) -> TrainConfig:
    """A :class:`TrainConfig` from the options of :func:`add_train_args`; ``extra`` goes to ``config.extra``.

    The model and dataset names, when present, are recorded in ``extra`` too.
    """
    names = ("command", "model", "dataset")
    info = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    return TrainConfig(
        **same_named(args, _TRAIN_OPTIONS),
        decay_bn_and_bias=not args.no_decay_bn_bias,
        milestones=tuple(args.milestones),
        sync_bn=getattr(args, "sync_bn", False),
        progress=not args.no_progress,
        extra={**info, **extra},
    )


# TrainConfig fields set by the option of the same name (add_train_args)
_TRAIN_OPTIONS = (
    "epochs",
    "lr",
    "optimizer",
    "momentum",
    "nesterov",
    "weight_decay",
    "schedule",
    "amp",
    "seed",
    "deterministic",
    "max_batches",
    "grad_clip",
)

# WeightPruningConfig fields set by the option of the same name, where the command has that option
_WEIGHT_PRUNING_OPTIONS = (
    "dataset",
    "data_dir",
    "val_size",
    "limit_train",
    "batch_size",
    "eval_batch_size",
    "max_batches",
    "device",
    "sensitivity",
    "max_drop",
    "rounds",
    "preset",
    "quality",
    "quality_step",
    "target_sparsity",
    "std_mode",
    "protect_first",
    "prune_bias",
    "retrain_epochs",
    "retrain_lr_factor",
    "retrain_schedule",
    "reg",
    "l1_strength",
    "freeze",
)


def weight_pruning_config(args: argparse.Namespace, **fields: Any) -> Any:
    """The :class:`~netslim.pipelines.weights.WeightPruningConfig` the options of ``prune-weights`` or
    ``sensitivity`` describe; ``fields`` override it. Sets ``args.lr`` to the model's default rate when it
    was not given. Every option and the model source (:func:`check_model_source`) are checked before any
    data is read; bad values raise NetslimError."""
    from netslim.pipelines.weights import WeightPruningConfig, checkpoint_zoo_name, default_lr

    checkpoint = getattr(args, "checkpoint", None)
    model = None if checkpoint is not None else args.model
    if args.lr is None:
        args.lr = default_lr(model or (checkpoint and checkpoint_zoo_name(checkpoint)))
    augment = None
    if getattr(args, "no_augment", False):
        augment = False
    elif getattr(args, "augment", False):
        augment = True
    if getattr(args, "target_sparsity", None) is not None and not 0.0 <= args.target_sparsity < 1.0:
        raise NetslimError(
            f"--target-sparsity is the share of weights removed, in [0, 1); got {args.target_sparsity}"
        )
    layer_settings = getattr(args, "layer_settings", None)
    settings = json_object_arg(layer_settings, "--layer-settings", LAYER_SETTINGS_EXAMPLE)
    values = same_named(args, [name for name in _WEIGHT_PRUNING_OPTIONS if hasattr(args, name)])
    values.update(
        model=model,
        model_kwargs=model_kwargs(args) if model else {},
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        augment=augment,
        train=config_from_args(args),
        sensitivity_step=args.step,
        sensitivity_max=args.max_sparsity,
        layer_settings=settings,
        adjust_dropout=not getattr(args, "no_dropout_adjust", False),
        phases=tuple(p.strip() for p in getattr(args, "phases", "all").split(",") if p.strip()),
        compress=not getattr(args, "no_compress", False),
    )
    config = WeightPruningConfig(**{**values, **fields})
    check_model_source(args)
    return config


LAYER_SETTINGS_EXAMPLE = '{"classifier.2": {"quality": 0.5}, "features.0": null}'


def build_data(args: argparse.Namespace, rank: int = 0, world: int = 1) -> Any:
    """The ``DataBundle`` the options of :func:`add_data_args` describe, sharded for ``rank`` of ``world``."""
    from netslim.data import get_loaders

    for name in ("batch_size", "eval_batch_size"):
        if getattr(args, name) < 1:
            raise NetslimError(f"--{name.replace('_', '-')} must be >= 1")
    if args.batch_size % world:
        raise NetslimError(
            f"--batch-size {args.batch_size} is the global batch; make it a multiple of the {world} processes"
        )
    bundle = get_loaders(
        args.dataset or DEFAULT_DATASET,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        val_size=args.val_size,
        seed=getattr(args, "seed", 0),
        augment=not getattr(args, "no_augment", False),
        limit=args.limit_train,
        rank=rank,
        world_size=world,
    )
    if rank == 0 and getattr(bundle, "source", None) is not None:
        print(f"data: {bundle.name} from {bundle.source}", flush=True)
    return bundle


def build_model(args: argparse.Namespace, bundle: Any) -> nn.Module:
    """The model ``--model`` names (zoo or factory), shaped for ``bundle``'s classes/channels/size, seeded."""
    from netslim.models import resolve
    from netslim.train.state import seed_everything

    seed_everything(getattr(args, "seed", 0))  # same initial weights on every rank and every rerun
    kwargs = model_kwargs(args)
    clash = sorted({"num_classes", "in_channels", "input_size"} & set(kwargs))
    if clash:
        raise NetslimError(
            f"--model-kwargs sets {', '.join(clash)}, which come from the dataset; leave "
            "them out (use --input-shape for a model whose input the dataset does not define)"
        )
    size = bundle.image_size
    shape = getattr(args, "input_shape", None)
    if shape is None:  # recorded with a factory model, so `netslim prune` can trace it without data
        shape = (int(bundle.in_channels), *((size, size) if isinstance(size, int) else tuple(size)[-2:]))
    return resolve(
        args.model,
        num_classes=bundle.num_classes,
        in_channels=bundle.in_channels,
        input_size=size,
        input_shape=shape,
        **kwargs,
    )


def claim_run(args: argparse.Namespace, command: str) -> Path:
    """Claim ``command``'s run folder (locked; a finished run is never replaced): ``--run-dir``, else
    :func:`default_run_dir`; honours ``--resume`` and ``--overwrite``. Returns the folder."""
    from netslim.runfolder import claim_from_args

    default = default_run_dir(command, getattr(args, "model", None), getattr(args, "dataset", None))
    return claim_from_args(args, command, default)


def default_run_dir(command: str, model: str | None, dataset: str | None, root: str | Path = "runs") -> Path:
    """``runs/<command>-<model>-<dataset>-<YYYYmmdd-HHMMSS>`` (missing parts left out)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    from netslim.models.factory import spec_label

    parts = [p for p in (command, spec_label(model) if model else None, dataset) if p]
    return Path(root) / "-".join([*parts, stamp])
