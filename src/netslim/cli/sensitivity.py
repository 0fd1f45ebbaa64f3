"""``netslim sensitivity --model M --dataset D``: per-layer pruning sensitivity (Han et al. 2015, Fig. 6).

Trains the model (or loads ``--checkpoint``), prunes each Linear/Conv layer alone to 0..95% sparsity without
retraining, and writes ``sensitivity.csv``, ``sensitivity.png`` and ``layer_settings.json`` (per-layer
sparsity and Han quality parameter for ``--max-drop``) into ``--run-dir``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from netslim.cli._common import (
    add_training_command_args,
    build_data,
    build_model,
    check_model_source,
    config_from_args,
    default_run_dir,
)
from netslim.errors import NetslimError
from netslim.runfolder import claim_from_args


def register(subparsers: Any) -> None:
    """Add the ``sensitivity`` sub-command."""
    p = subparsers.add_parser(
        "sensitivity",
        help="per-layer pruning sensitivity sweep (CSV + plot + derived per-layer settings)",
        description="Prune each Linear/Conv layer alone at increasing sparsity, without retraining, and "
        "record validation accuracy. Trains MODEL first unless --checkpoint is given.",
    )
    add_training_command_args(p, model_required=False, epochs=5, lr=0.05)
    add_sensitivity_args(p)
    p.add_argument("--checkpoint", type=Path, metavar="FILE", help="a trained model saved by netslim")
    p.set_defaults(func=run)


def add_sensitivity_args(parser: argparse.ArgumentParser) -> None:
    """``--step`` and ``--max-drop`` (shared with ``prune-weights --sensitivity``)."""
    g = parser.add_argument_group("sensitivity")
    g.add_argument("--step", type=float, default=0.05, help="sparsity step of the sweep (default: 0.05)")
    g.add_argument("--max-sparsity", type=float, default=0.95, help="last sparsity swept (default: 0.95)")
    g.add_argument(
        "--max-drop",
        type=float,
        default=0.01,
        help="tolerated accuracy drop (fraction, 0.01 = 1 point) for per-layer settings",
    )


def prepare_model(
    args: argparse.Namespace, bundle: Any, run_dir: Path
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Load ``--checkpoint`` or build and train ``--model``; returns the model and the training history."""
    import netslim
    from netslim.train import Trainer

    if getattr(args, "checkpoint", None) is not None:
        return netslim.load(args.checkpoint).train(), []
    if not args.model:
        raise NetslimError("give --model NAME to train, or --checkpoint FILE with a trained model")
    model = build_model(args, bundle)
    trainer = Trainer(
        model, bundle.train, bundle.val, config_from_args(args), run_dir=run_dir / "train", device=args.device
    )
    return trainer.model, trainer.fit()


def accuracy_fn(loader: Any, max_batches: int | None) -> Callable[[nn.Module], float]:
    """``evaluate_fn(model) -> top-1 accuracy`` on ``loader`` (at most ``max_batches`` batches)."""
    from netslim.train import evaluate

    def evaluate_fn(model: nn.Module) -> float:
        return float(evaluate(model, loader, max_batches=max_batches)["accuracy"])

    return evaluate_fn


def run_sensitivity(
    model: nn.Module, evaluate_fn: Callable[[nn.Module], float], args: argparse.Namespace, run_dir: Path
) -> tuple[Any, dict[str, dict[str, float]]]:
    """Sweep, write CSV/PNG/settings JSON into ``run_dir``; returns the result and per-layer settings."""
    from netslim.weights.sensitivity import (
        layer_settings_from_sensitivity,
        plot_sensitivity,
        sensitivity_analysis,
        sparsity_sweep,
        tolerated_sparsity,
        write_sensitivity_csv,
    )

    result = sensitivity_analysis(model, evaluate_fn, sparsity_sweep(args.step, args.max_sparsity))
    write_sensitivity_csv(result, run_dir / "sensitivity.csv")
    plot_sensitivity(result, run_dir / "sensitivity.png")
    tolerated = tolerated_sparsity(result, args.max_drop)
    quality = layer_settings_from_sensitivity(model, result, args.max_drop)
    settings = {
        name: {"sparsity": tolerated[name], "quality": quality[name].get("quality", 0.0)}
        for name in tolerated
    }
    payload = {"baseline_accuracy": result.baseline, "max_drop": args.max_drop, "layers": settings}
    (run_dir / "layer_settings.json").write_text(json.dumps(payload, indent=2))
    return result, settings


def run(args: argparse.Namespace) -> int:
    """Train or load, sweep, write the outputs and print the per-layer tolerated sparsity."""
    check_model_source(args)
    bundle = build_data(args)
    run_dir = Path(args.run_dir or default_run_dir("sensitivity", args.model, args.dataset))
    claim_from_args(args, "sensitivity", run_dir)  # netslim.runfolder: lock; never replace a finished run
    model, _ = prepare_model(args, bundle, run_dir)
    evaluate_fn = accuracy_fn(bundle.val or bundle.test, args.max_batches)
    result, settings = run_sensitivity(model, evaluate_fn, args, run_dir)
    print(f"netslim sensitivity: baseline accuracy {result.baseline:.2%}; tolerated drop {args.max_drop:.2%}")
    print("| Layer | Tolerated sparsity % | Han quality |\n|---|---:|---:|")
    for name, s in settings.items():
        print(f"| {name} | {100 * s['sparsity']:.0f} | {s['quality']:.3f} |")
    print(f"wrote {run_dir / 'sensitivity.csv'}, sensitivity.png, layer_settings.json")
    return 0
