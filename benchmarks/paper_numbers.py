"""Published figures, as data, for the "paper" rows of docs/RESULTS.md. Nothing here was measured by netslim.

Sources: Liu et al., "Learning Efficient Convolutional Networks through Network Slimming", ICCV 2017
(arXiv 1708.06519), Tables 1, 4 and 6; Han et al., "Learning both Weights and Connections for Efficient
Neural Networks", NIPS 2015, Tables 1-3; Han et al., "Deep Compression", ICLR 2016, Table 1.
"""

from __future__ import annotations

SLIMMING_SOURCE = "Liu et al. 2017 (Network Slimming), Table 1, CIFAR-10"
# Paper Table 1, CIFAR-10: (model, setting, test error %, params, params pruned %, FLOPs, FLOPs pruned %).
SLIMMING_TABLE1_CIFAR10: list[dict[str, object]] = [
    {"model": "VGGNet (19)", "setting": "baseline", "error": 6.34, "params": 20.04e6, "flops": 7.97e8},
    {
        "model": "VGGNet (19)",
        "setting": "70% pruned",
        "error": 6.20,
        "params": 2.30e6,
        "params_pruned": 88.5,
        "flops": 3.91e8,
        "flops_pruned": 51.0,
    },
    {"model": "DenseNet-40", "setting": "baseline", "error": 6.11, "params": 1.02e6, "flops": 5.33e8},
    {
        "model": "DenseNet-40",
        "setting": "40% pruned",
        "error": 5.19,
        "params": 0.66e6,
        "params_pruned": 35.7,
        "flops": 3.81e8,
        "flops_pruned": 28.4,
    },
    {
        "model": "DenseNet-40",
        "setting": "70% pruned",
        "error": 5.65,
        "params": 0.35e6,
        "params_pruned": 65.2,
        "flops": 2.40e8,
        "flops_pruned": 55.0,
    },
    {"model": "ResNet-164", "setting": "baseline", "error": 5.42, "params": 1.70e6, "flops": 4.99e8},
    {
        "model": "ResNet-164",
        "setting": "40% pruned",
        "error": 5.08,
        "params": 1.44e6,
        "params_pruned": 14.9,
        "flops": 3.81e8,
        "flops_pruned": 23.7,
    },
    {
        "model": "ResNet-164",
        "setting": "60% pruned",
        "error": 5.27,
        "params": 1.10e6,
        "params_pruned": 35.2,
        "flops": 2.75e8,
        "flops_pruned": 44.9,
    },
]

# Paper Table 1, other data sets: (model, setting) -> CIFAR-100 / SVHN error %.
SLIMMING_TABLE1_OTHER: list[dict[str, object]] = [
    {"model": "VGGNet (19)", "cifar100": "26.74 -> 26.52 (50%)", "svhn": "2.17 -> 2.06 (60%)"},
    {
        "model": "DenseNet-40",
        "cifar100": "25.36 -> 25.28 (40%), 25.72 (60%)",
        "svhn": "1.89 -> 1.79 (40%), 1.81 (60%)",
    },
    {"model": "ResNet-164", "cifar100": "23.37 -> 22.87 (40%), 23.91 (60%)", "svhn": "1.78 -> 1.85 (40%)"},
]

MULTIPASS_SOURCE = "Liu et al. 2017, Table 4 (VGG, CIFAR-10; global 50% per pass, at most 50% of a layer)"
# Paper Table 4, CIFAR-10: per iteration, error of the trained / fine-tuned model, params / FLOPs pruned %.
# Iterations 2-4 appear in the paper without the pruned percentages in our reference copy (None).
MULTIPASS_TABLE4_CIFAR10: list[dict[str, object]] = [
    {"iter": 1, "trained": 6.38, "finetuned": 6.51, "params_pruned": 66.7, "flops_pruned": 38.6},
    {"iter": 2, "trained": 6.23, "finetuned": 6.11, "params_pruned": None, "flops_pruned": None},
    {"iter": 3, "trained": 5.87, "finetuned": 6.10, "params_pruned": None, "flops_pruned": None},
    {"iter": 4, "trained": 6.19, "finetuned": 6.59, "params_pruned": None, "flops_pruned": None},
    {"iter": 5, "trained": 5.96, "finetuned": 7.73, "params_pruned": 98.3, "flops_pruned": 88.7},
    {"iter": 6, "trained": 7.79, "finetuned": 9.70, "params_pruned": 99.4, "flops_pruned": 95.7},
]

HAN_SOURCE = "Han et al. 2015 (Learning both Weights and Connections), Tables 1-3, MNIST"
# Han et al. Table 1 (MNIST): error % reference -> pruned, parameters, compression rate.
HAN_TABLE1: dict[str, dict[str, float]] = {
    "lenet300_100": {
        "error": 1.64,
        "pruned_error": 1.59,
        "params": 267e3,
        "params_after": 22e3,
        "rate": 12.0,
    },
    "lenet5": {"error": 0.80, "pruned_error": 0.77, "params": 431e3, "params_after": 36e3, "rate": 12.0},
}
# Han et al. Tables 2-3: per layer (netslim layer name) weights kept % / FLOPs kept %.
HAN_PER_LAYER: dict[str, dict[str, tuple[float, float]]] = {
    "lenet300_100": {"classifier.0": (8, 8), "classifier.2": (9, 4), "classifier.4": (26, 17)},
    "lenet5": {
        "features.0": (66, 66),
        "features.2": (12, 10),
        "classifier.0": (8, 6),
        "classifier.2": (19, 10),
    },
}

DEEP_COMPRESSION_SOURCE = "Han et al. 2016 (Deep Compression), Table 1, MNIST (P+Q+H)"
# Deep Compression Table 1 and the P+Q totals of its text: sizes and rates.
DEEP_COMPRESSION: dict[str, dict[str, object]] = {
    "lenet300_100": {
        "dense_kb": 1070,
        "pqh_kb": 27,
        "pqh_rate": 40.0,
        "pq_rate": 32.0,
        "p_rate": 12.0,
        "error": 1.58,
    },
    "lenet5": {
        "dense_kb": 1720,
        "pqh_kb": 44,
        "pqh_rate": 39.0,
        "pq_rate": 33.0,
        "p_rate": 12.0,
        "error": 0.74,
    },
}

SPEED_SOURCE = "Liu et al. 2017, Table 6 (VGG, CIFAR-10, GTX 1080, batch 64); Deep Compression section 6.3"
SLIMMING_TABLE6 = {"baseline_s_per_iter": 0.009, "pruned70_s_per_iter": 0.005}
DC_SPARSE_FC_CPU_SPEEDUP_BATCH1 = (
    3.0  # Deep Compression: average sparse-vs-dense FC speedup, Core i7, batch 1
)

# Targets of issue 6, stated in points of test error / rates.
TARGET_SLIM_ERROR_POINTS = 0.3
TARGET_HAN_RATE = 12.0
TARGET_HAN_ERROR_POINTS = 0.3


def han_kept_fraction(model: str) -> dict[str, float]:
    """Han et al.'s per-layer share of weights kept (0-1) for ``model``, used as netslim's pruning targets."""
    return {layer: kept / 100.0 for layer, (kept, _) in HAN_PER_LAYER[model].items()}
