"""Han et al. rows (Tables 1-3) and Deep Compression sizes (Table 1) for the LeNets on Fashion-MNIST.

Each row runs the library's pipeline (:func:`netslim.pipelines.weights.run_weight_pruning`, the same
function ``netslim prune-weights --preset han`` calls): train the dense baseline, prune -> retrain towards
Han et al.'s per-layer densities (cubic schedule over the rounds), report weights and FLOPs kept per layer
(zero weights and zero activations, on test images), then store the pruned model with pruning only,
+ quantization and + Huffman coding (:data:`SETTINGS`), time encoding and decoding, and re-evaluate each
decoded copy.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.rows_slimming import load_data, test_error, train_config
from benchmarks.suite import RowContext, row

# Deep Compression's storage settings, each measured on the pruned model and re-evaluated after decoding.
SETTINGS: dict[str, dict[str, Any]] = {
    "P": {},
    "P+Q": {"quantize": True},
    "P+Q+H": {"quantize": True, "huffman": True},
    # Wider FC index fields: fewer filler entries, Huffman then codes the real gap distribution.
    "P+Q+H, 8-bit FC index": {"quantize": True, "huffman": True, "index_bits_fc": 8},
}


def _han_row(ctx: RowContext, name: str) -> dict[str, Any]:
    from netslim.compression import compress_model, decompress
    from netslim.models import create
    from netslim.pipelines.weights import WeightPruningConfig, run_weight_pruning

    data = load_data(ctx, train_limit=(128, 20000, None))

    def fresh() -> torch.nn.Module:
        return create(
            name, num_classes=data.num_classes, in_channels=data.in_channels, input_size=data.input_shape[-1]
        )

    base_cfg = train_config(ctx, ctx.scale(1, 4, 20), lr=0.05, schedule="cosine")
    config = WeightPruningConfig(
        model=name,
        dataset=ctx.dataset,
        train=base_cfg,
        preset="han",
        rounds=ctx.scale(1, 3, 5),
        retrain_epochs=ctx.scale(1, 2, 8),
        retrain_lr_factor=0.1,
        retrain_schedule="cosine",  # as the published rows were measured: cosine from lr/10
        compress=False,  # the row measures each setting itself, with the decoded copy's error
        device="cpu",
    )
    torch.manual_seed(0)
    result = run_weight_pruning(config, ctx.work_dir / name, data=data, model=fresh(), resume=True)
    model, res = result.model.cpu(), result.results

    sizes: dict[str, Any] = {}
    for label, options in SETTINGS.items():
        start = time.perf_counter()
        blob, report = compress_model(model, **options)
        encoded = time.perf_counter()
        state, _ = decompress(blob)
        decoded = time.perf_counter()
        restored = fresh()
        restored.load_state_dict(state)
        sizes[label] = {
            "options": options,
            "bytes": report.total_bytes,
            "dense_bytes": report.dense_bytes,
            "ratio": report.ratio,
            "test_error": test_error(restored, data),
            "encode_seconds": round(encoded - start, 4),
            "decode_seconds": round(decoded - encoded, 4),
        }
    return {
        "model": name,
        "dataset": ctx.dataset,
        "baseline_epochs": base_cfg.epochs,
        "rounds": config.rounds,
        "retrain_epochs": config.retrain_epochs,
        "baseline_error": 100.0 * (1.0 - res["test_before"]["accuracy"]),
        "pruned_error": 100.0 * (1.0 - res["test_after"]["accuracy"]),
        "pruned_error_before_retrain": 100.0 * (1.0 - res["rounds"][0]["accuracy_pruned"]),
        "weights": res["weights"],
        "weights_kept": res["weights_kept"],
        "compression_rate": res["compression_rate"],
        "flops_kept_pct": res["flops_kept_pct"],
        "macs": res["macs"],
        "macs_kept": res["macs_kept"],
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_nonzero": sum(int((p != 0).sum()) for p in model.parameters()),
        "layers": res["layers"],
        "sizes": sizes,
    }


@row("han_lenet300_100", "weights")
def han_lenet300(ctx: RowContext) -> dict[str, Any]:
    """LeNet-300-100: Han et al.'s procedure, per-layer table and Deep Compression sizes."""
    return _han_row(ctx, "lenet300_100")


@row("han_lenet5", "weights")
def han_lenet5(ctx: RowContext) -> dict[str, Any]:
    """LeNet-5: Han et al.'s procedure, per-layer table and Deep Compression sizes."""
    return _han_row(ctx, "lenet5")
