"""Deep Compression storage of a pruned LeNet-300-100: pruning (P), + quantization (P+Q), + Huffman (P+Q+H).

Targets (Deep Compression Table 1 got 40x with P+Q+H on MNIST): P <= 12% of dense float32, P+Q >= 32x,
P+Q+H >= 40x. With ``--checkpoint`` a trained, pruned netslim checkpoint is compressed; otherwise
LeNet-300-100 is trained briefly on Fashion-MNIST, pruned per layer by magnitude to Han et al.'s
densities (fc1 8%, fc2 9%, fc3 26%) and retrained with the masks held. Writes
``benchmarks/results/compression.json`` and prints a markdown table.

    .venv/bin/python benchmarks/bench_compression.py [--checkpoint PRUNED.pt] [--epochs 1]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import netslim
from netslim.compression import compress_model, decompress
from netslim.models import create

HAN_DENSITY = {"classifier.0.weight": 0.08, "classifier.2.weight": 0.09, "classifier.4.weight": 0.26}
SETTINGS = {
    "P": {},
    "P+Q": {"quantize": True},
    "P+Q+H": {"quantize": True, "huffman": True},
    # Wider FC index fields: fewer filler entries, Huffman then codes the real gap distribution.
    "P+Q+H, 8-bit FC index": {"quantize": True, "huffman": True, "index_bits_fc": 8},
}


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (images uint8 N x 28 x 28 or labels uint8 N)."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion(data_dir: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as normalised float tensors: (x_train, y_train, x_test, y_test)."""
    parts = []
    for split in ("train", "t10k"):
        x = read_idx(data_dir / f"{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
        y = read_idx(data_dir / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
        parts += [torch.from_numpy((x - 0.2860) / 0.3530).unsqueeze(1), torch.from_numpy(y)]
    return parts[0], parts[1], parts[2], parts[3]


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float,
          masks: dict[str, torch.Tensor] | None = None, seed: int = 0) -> None:
    """Plain SGD with momentum; ``masks`` are re-applied after every step (pruned weights stay zero)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    params = dict(model.named_parameters())
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for start in range(0, x.shape[0], 128):
            idx = order[start : start + 128]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            if masks:
                with torch.no_grad():
                    for name, mask in masks.items():
                        params[name].mul_(mask)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    return float((model(x).argmax(1) == y).float().mean() * 100)


def prune_by_magnitude(model: nn.Module, density: dict[str, float]) -> dict[str, torch.Tensor]:
    """Keep the largest-|w| fraction ``density[name]`` of each named weight; returns the masks."""
    params = dict(model.named_parameters())
    masks = {}
    with torch.no_grad():
        for name, keep in density.items():
            w = params[name]
            k = max(1, round(keep * w.numel()))
            threshold = w.abs().flatten().kthvalue(w.numel() - k + 1).values
            masks[name] = (w.abs() >= threshold).to(w.dtype)
            w.mul_(masks[name])
    return masks


def build_pruned(args: argparse.Namespace, data: tuple[torch.Tensor, ...]) -> tuple[nn.Module, dict]:
    """Train, prune and retrain LeNet-300-100; returns the model and the accuracies along the way."""
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(args.seed)
    model = create("lenet300_100", num_classes=10, in_channels=1, input_size=28)
    t0 = time.perf_counter()
    train(model, x_tr, y_tr, args.epochs, lr=0.05, seed=args.seed)
    info = {"dense_acc": accuracy(model, x_te, y_te)}
    masks = prune_by_magnitude(model, HAN_DENSITY)
    info["pruned_acc_before_retrain"] = accuracy(model, x_te, y_te)
    train(model, x_tr, y_tr, args.retrain_epochs, lr=0.005, masks=masks, seed=args.seed + 1)
    info["pruned_acc"] = accuracy(model, x_te, y_te)
    info["train_seconds"] = round(time.perf_counter() - t0, 1)
    return model, info


def main() -> None:
    """Run the benchmark and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="trained, weight-pruned netslim checkpoint")
    parser.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--retrain-epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "compression.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_fashion(args.data_dir)
    x_te, y_te = data[2], data[3]
    if args.checkpoint:
        model = netslim.load(args.checkpoint)
        info = {"checkpoint": str(args.checkpoint), "pruned_acc": accuracy(model, x_te, y_te)}
    else:
        model, info = build_pruned(args, data)
    weights = [p for p in model.parameters() if p.dim() >= 2]
    info["weight_density"] = sum(int((p != 0).sum()) for p in weights) / sum(p.numel() for p in weights)

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
            "accuracy": accuracy(restored, x_te, y_te),
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
