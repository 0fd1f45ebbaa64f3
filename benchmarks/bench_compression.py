"""Deep Compression storage of a pruned LeNet-300-100: pruning (P), + quantization (P+Q), + Huffman (P+Q+H).

Targets (Deep Compression Table 1 got 40x with P+Q+H on MNIST): P <= 12% of dense float32, P+Q >= 32x,
P+Q+H >= 40x. With ``--checkpoint`` a trained, pruned netslim checkpoint is compressed; otherwise
LeNet-300-100 is trained briefly on Fashion-MNIST with :class:`netslim.train.Trainer`, pruned once per
layer by magnitude to Han et al.'s densities (fc1 8%, fc2 9%, fc3 26%;
:func:`netslim.weights.prune_by_amount`) and retrained with the masks held
(:class:`netslim.weights.MaskCallback`), then the masks are folded in. This is one-shot pruning, not
Han's iterative procedure. Writes ``benchmarks/results/compression.json`` and prints a markdown table.

    .venv/bin/python benchmarks/bench_compression.py [--checkpoint PRUNED.pt] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import netslim
from netslim.compression import compress_model, decompress
from netslim.data import get_loaders
from netslim.models import create
from netslim.train import TrainConfig, Trainer
from netslim.train.trainer import evaluate
from netslim.weights import MaskCallback, finalize, prune_by_amount

HAN_DENSITY = {"classifier.0": 0.08, "classifier.2": 0.09, "classifier.4": 0.26}
SETTINGS = {
    "P": {},
    "P+Q": {"quantize": True},
    "P+Q+H": {"quantize": True, "huffman": True},
    # Wider FC index fields: fewer filler entries, Huffman then codes the real gap distribution.
    "P+Q+H, 8-bit FC index": {"quantize": True, "huffman": True, "index_bits_fc": 8},
}


def accuracy(model: nn.Module, loader: Any) -> float:
    """Top-1 test accuracy in percent."""
    return 100.0 * float(evaluate(model, loader, "cpu")["accuracy"])


def _fit(model: nn.Module, data: Any, epochs: int, lr: float, seed: int, callbacks: list[Any]) -> None:
    config = TrainConfig(epochs=epochs, lr=lr, schedule="constant", seed=seed, progress=False,
                         checkpoint_every=0)
    Trainer(model, data.train, data.val, config=config, callbacks=callbacks, device="cpu").fit()


def build_pruned(args: argparse.Namespace, data: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Train, prune and retrain LeNet-300-100; returns the (finalized) model and accuracies along the way."""
    torch.manual_seed(args.seed)
    model = create("lenet300_100", num_classes=10, in_channels=1, input_size=28)
    t0 = time.perf_counter()
    _fit(model, data, args.epochs, lr=0.05, seed=args.seed, callbacks=[])
    info: dict[str, Any] = {"dense_acc": accuracy(model, data.test)}
    overrides = {layer: {"amount": 1.0 - keep} for layer, keep in HAN_DENSITY.items()}
    prune_by_amount(model, 0.0, overrides=overrides)
    info["pruned_acc_before_retrain"] = accuracy(model, data.test)
    _fit(model, data, args.retrain_epochs, lr=0.005, seed=args.seed + 1, callbacks=[MaskCallback()])
    finalize(model)
    info["pruned_acc"] = accuracy(model, data.test)
    info["train_seconds"] = round(time.perf_counter() - t0, 1)
    return model, info


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="trained, weight-pruned netslim checkpoint")
    parser.add_argument("--data-dir", type=Path, default=None, help="Fashion-MNIST folder (default: search)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--retrain-epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "compression.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = get_loaders("fashion-mnist", data_dir=args.data_dir, batch_size=128, augment=False, seed=args.seed)
    if args.checkpoint:
        model = netslim.load(args.checkpoint)
        info = {"checkpoint": str(args.checkpoint), "pruned_acc": accuracy(model, data.test)}
    else:
        model, info = build_pruned(args, data)
    weights = [p for p in model.parameters() if p.dim() >= 2]
    info["weight_density"] = sum(int((p != 0).sum()) for p in weights) / sum(p.numel() for p in weights)
    info["layer_density"] = {
        name: int((p != 0).sum()) / p.numel() for name, p in model.named_parameters() if p.dim() >= 2
    }

    results = {"model": "lenet300_100", "dataset": "fashion-mnist", **info, "settings": {}}
    for label, opts in SETTINGS.items():
        t0 = time.perf_counter()
        blob, report = compress_model(model, **opts)
        t1 = time.perf_counter()
        state, _ = decompress(blob)
        t2 = time.perf_counter()
        restored = create("lenet300_100", num_classes=10, in_channels=1, input_size=28)
        restored.load_state_dict(state)
        results["settings"][label] = {
            "options": opts,
            "bytes": report.total_bytes,
            "dense_bytes": report.dense_bytes,
            "percent_of_dense": 100.0 * report.total_bytes / report.dense_bytes,
            "ratio": report.ratio,
            "accuracy": accuracy(restored, data.test),
            "compress_seconds": round(t1 - t0, 3),
            "decompress_seconds": round(t2 - t1, 3),
            "layers": report.to_dict()["layers"],
        }
        print(f"\n## {label}\n\n```\n{report.render()}\n```")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\ndense accuracy {info.get('dense_acc', float('nan')):.2f}%, pruned {info['pruned_acc']:.2f}%, "
          f"weight density {100 * info['weight_density']:.2f}%\n")
    print("| setting | bytes | % of dense | ratio | test acc % |")
    print("|---|---|---|---|---|")
    for label, row in results["settings"].items():
        print(f"| {label} | {row['bytes']} | {row['percent_of_dense']:.2f} | {row['ratio']:.1f}x "
              f"| {row['accuracy']:.2f} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
