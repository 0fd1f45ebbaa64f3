"""``netslim prune-weights``: Han et al. 2015 connection pruning, end to end.

train (or ``--checkpoint``) -> optional sensitivity sweep -> ``--rounds`` of prune/retrain -> report:
per-layer weights kept % and FLOPs kept % (the layout of Han's Tables 2-5), accuracy before/after, and
compressed sizes (P, P+Q, P+Q+H) through :mod:`netslim.compression`. Writes ``pruned.pt`` (finalized,
plain modules), ``results.json`` and, with ``--sensitivity``, the sweep's CSV/PNG into ``--run-dir``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from torch import nn

from netslim.cli._common import (
    add_training_command_args,
    build_data,
    check_model_source,
    config_from_args,
    default_run_dir,
    json_object_arg,
)
from netslim.cli.sensitivity import accuracy_fn, add_sensitivity_args, prepare_model, run_sensitivity
from netslim.errors import NetslimError
from netslim.runfolder import claim_from_args


def register(subparsers: Any) -> None:
    """Add the ``prune-weights`` sub-command."""
    p = subparsers.add_parser(
        "prune-weights",
        help="Han-style connection pruning: iterative prune/retrain, report, compressed sizes",
        description="Train MODEL (or load --checkpoint), optionally sweep per-layer sensitivity, then run "
        "--rounds of magnitude pruning and retraining at a reduced learning rate.",
    )
    add_training_command_args(p, model_required=False, epochs=5, lr=0.05)
    g = p.add_argument_group("pruning")
    g.add_argument("--checkpoint", type=Path, metavar="FILE", help="start from this trained model")
    g.add_argument("--rounds", type=int, default=3, help="prune/retrain rounds (default: 3)")
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
        help='per-layer settings by name or glob, e.g. \'{"fc3": {"quality": 0.5}, "conv1": null}\'',
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
    p.set_defaults(func=run)


def pruning_config(args: argparse.Namespace, overrides: dict[str, Any]) -> Any:
    """The :class:`IterativePruningConfig` the options describe (``overrides``: per-layer settings)."""
    from netslim.weights.procedure import IterativePruningConfig

    quality, target = args.quality, args.target_sparsity
    if quality is None and target is None:
        if not args.sensitivity:
            raise NetslimError("give --quality Q (Han's rule), --target-sparsity S, or --sensitivity")
        target = 0.0  # every layer gets its own target from the sweep
    return IterativePruningConfig(
        rounds=args.rounds,
        quality=quality,
        quality_step=args.quality_step,
        target_sparsity=target,
        overrides=overrides,
        protect_first=args.protect_first,
        prune_bias=args.prune_bias,
        std_mode=args.std_mode,
        retrain_epochs=args.retrain_epochs,
        retrain_lr_factor=args.retrain_lr_factor,
        reg=args.reg,
        l1_strength=args.l1_strength,
        adjust_dropout=not args.no_dropout_adjust,
        phases=tuple(p.strip() for p in args.phases.split(",") if p.strip()),
        freeze=args.freeze,
    )


def compressed_sizes(model: nn.Module) -> dict[str, int]:
    """File sizes in bytes of the finalized model stored dense and as P, P+Q, P+Q+H (Deep Compression)."""
    from netslim.compression import compress_model

    dense = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    sizes = {"dense": dense}
    for key, opts in (("P", {}), ("P+Q", {"quantize": True}), ("P+Q+H", {"quantize": True, "huffman": True})):
        _, report = compress_model(model, **opts)
        sizes[key] = report.total_bytes
    return sizes


def run(args: argparse.Namespace) -> int:
    """Train or load, (sweep), prune/retrain, report and save. Returns the exit code."""
    import netslim
    from netslim.train import Trainer, evaluate
    from netslim.weights.masks import finalize
    from netslim.weights.procedure import iterative_prune
    from netslim.weights.report import format_report, sparsity_report

    overrides = json_object_arg(args.layer_settings, "--layer-settings", '{"fc1": {"quality": 1.0}}')
    pruning_config(args, overrides)  # validate the options before any training
    check_model_source(args)
    bundle = build_data(args)
    run_dir = Path(args.run_dir or default_run_dir("prune-weights", args.model, args.dataset))
    claim_from_args(args, "prune-weights", run_dir)  # netslim.runfolder: lock; never replace a finished run
    train_cfg = config_from_args(args)
    model, train_history = prepare_model(args, bundle, run_dir)
    val_loader = bundle.val or bundle.test
    evaluate_fn = accuracy_fn(val_loader, args.max_batches)
    test_before = evaluate(model, bundle.test, max_batches=args.max_batches)

    results: dict[str, Any] = {
        "command": "prune-weights",
        "model": args.model,
        "dataset": args.dataset,
        "test_before": test_before,
        "train_epochs": len(train_history),
    }
    if args.sensitivity:
        sens, settings = run_sensitivity(model, evaluate_fn, args, run_dir)
        derived = {name: {"amount": s["sparsity"]} for name, s in settings.items()}
        overrides = {**derived, **overrides}  # explicit settings win
        results["sensitivity"] = {"baseline": sens.baseline, "layers": settings}
    config = pruning_config(args, overrides)

    def make_trainer(m: nn.Module, cfg: Any, callbacks: list[Any], tag: str) -> Any:
        return Trainer(
            m, bundle.train, bundle.val, cfg, callbacks=callbacks, run_dir=run_dir / tag, device=args.device
        )

    history = iterative_prune(model, config, make_trainer, train_cfg, evaluate_fn=evaluate_fn)
    example = next(iter(bundle.test))[0][:1].to(next(model.parameters()).device)
    rows = sparsity_report(model, example)
    finalize(model)
    test_after = evaluate(model, bundle.test, max_batches=args.max_batches)
    results.update(rounds=history, layers=rows, test_after=test_after)
    if not args.no_compress:
        results["sizes_bytes"] = compressed_sizes(model.cpu())
    netslim.save(model, run_dir / "pruned.pt", extra={"command": "prune-weights", "test": test_after})
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))

    print(f"netslim prune-weights: {args.model or args.checkpoint} on {args.dataset}, {config.rounds} rounds")
    print(format_report(rows))
    print(f"test accuracy: {test_before['accuracy']:.2%} before, {test_after['accuracy']:.2%} after pruning")
    if "sizes_bytes" in results:
        s = results["sizes_bytes"]
        print("sizes: " + ", ".join(f"{k} {v / 1024:.1f} KiB ({s['dense'] / v:.1f}x)" for k, v in s.items()))
    print(f"wrote {run_dir / 'pruned.pt'} and {run_dir / 'results.json'}")
    return 0
