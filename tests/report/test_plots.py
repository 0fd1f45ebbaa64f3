"""Every plot writes a readable PNG of non-trivial size from plain data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from netslim import plots
from netslim.errors import NetslimError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_bytes: int = 5000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > min_bytes
    with Image.open(path) as img:
        img.load()
        pixels = np.asarray(img.convert("L"))
    assert img.width > 300 and img.height > 200
    assert pixels.std() > 5  # not a blank canvas


def test_gamma_histograms_from_records_and_raw_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    records = []
    for epoch in range(8):
        gammas = np.abs(rng.normal(0.5 / (1 + epoch), 0.1, size=500))
        counts, edges = np.histogram(gammas, bins=30)
        records.append({"epoch": epoch, "bin_edges": edges.tolist(), "counts": counts.tolist()})
    jsonl = tmp_path / "gamma_hist.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + '\n{"epoch": 9, "bin')  # torn last line
    rows = plots.read_jsonl(jsonl)
    assert len(rows) == 8
    assert_png(plots.gamma_histograms(rows, tmp_path / "gamma.png"))
    raw = [rng.normal(0, s, 300) for s in (1.0, 0.1)]
    out = plots.gamma_histograms(raw, tmp_path / "raw.png", labels=["lambda=0", "lambda=1e-4"])
    assert_png(out)


def test_channels_per_layer(tmp_path: Path) -> None:
    widths = {f"features.{i}": (64 * (1 + i // 4), 10 + 7 * i) for i in range(16)}
    assert_png(plots.channels_per_layer(widths, tmp_path / "channels.png"))


def test_accuracy_vs_ratio_and_training_and_sensitivity(tmp_path: Path) -> None:
    series = {"no fine-tune": [(0.5, 0.93), (0.6, 0.4), (0.7, 0.1)], "fine-tuned": [(0.5, 0.94), (0.7, 0.93)]}
    assert_png(plots.accuracy_vs_ratio(series, tmp_path / "acc.png", baseline=0.937))
    assert_png(plots.accuracy_vs_ratio([(1e6, 0.9), (2e6, 0.92)], tmp_path / "acc2.png", xlabel="params"))
    rows = [
        {"epoch": e, "train_loss": 2 / (e + 1), "val_acc": 0.5 + e / 40, "lr": 0.1 * 0.1 ** (e // 5)}
        for e in range(10)
    ]
    assert_png(plots.training_curves(rows, tmp_path / "train.png"))
    curves = {f"conv{i}": [(s, 0.95 - s ** (1 + i) * 0.5) for s in np.linspace(0, 0.9, 7)] for i in range(4)}
    assert_png(plots.sensitivity_curves(curves, tmp_path / "sens.png"))


def test_empty_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(NetslimError, match="at least one"):
        plots.channels_per_layer({}, tmp_path / "x.png")
    with pytest.raises(NetslimError, match="bin_edges"):
        plots.gamma_histograms([{"epoch": 1}], tmp_path / "x.png")


def _red_pixels(path: Path) -> int:
    """Pixels of the threshold red (#d62728) in a PNG."""
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB")).astype(int)
    target = np.array([0xD6, 0x27, 0x28])
    return int((np.abs(rgb - target).sum(axis=2) < 40).sum())


def test_gamma_histograms_mark_the_cut_threshold_on_log_bins(tmp_path: Path) -> None:
    edges = np.logspace(-6, 1, 36)
    rng = np.random.default_rng(1)
    records = []
    for epoch in range(3):
        g = np.abs(rng.normal(0.3 / (1 + 3 * epoch), 0.05, 400))
        counts, _ = np.histogram(g, bins=edges)
        records.append({"epoch": epoch, "log_bin_edges": edges.tolist(), "log_counts": counts.tolist(),
                        "log_below": 5})  # fmt: skip
    with_line = plots.gamma_histograms(records, tmp_path / "with.png", threshold=0.02)
    without = plots.gamma_histograms(records, tmp_path / "without.png")
    assert_png(with_line)
    assert _red_pixels(with_line) > 100 > _red_pixels(without)


def test_channels_chart_grows_with_the_group_count(tmp_path: Path) -> None:
    """A 164-layer ResNet has ~160 prunable groups: one readable bar each, not a squeezed axis."""
    small = plots.channels_per_layer({f"g{i}": (64, 20) for i in range(8)}, tmp_path / "small.png")
    widths = {f"layer{s}.{b}.conv{c}": (16 * 2**s, 5 + (b * c) % 11) for s in range(3) for b in range(18)
              for c in range(1, 4)}  # fmt: skip
    big = plots.channels_per_layer(widths, tmp_path / "big.png")
    assert_png(big)
    with Image.open(small) as a, Image.open(big) as b:
        assert b.height > 10 * len(widths) > a.height  # at least ~10 px of height per group


def test_training_curves_over_phases_with_l1_strength(tmp_path: Path) -> None:
    sparsity = [{"epoch": e, "train_loss": 2 / e, "val_acc": 0.1 * e, "lr": 0.1, "l1_strength": 1e-4,
                 "near_zero_share": 0.05 * e} for e in range(1, 6)]  # fmt: skip
    finetune = [{"epoch": e, "train_loss": 0.5, "val_acc": 0.6, "lr": 0.01} for e in range(1, 4)]
    two_rows = plots.training_curves({"sparsity": sparsity, "finetune": finetune}, tmp_path / "phases.png")
    one_row = plots.training_curves(finetune, tmp_path / "plain.png")
    assert_png(two_rows)
    with Image.open(two_rows) as a, Image.open(one_row) as b:
        assert a.height > 1.5 * b.height  # the L1-strength and near-zero panels form a second row


def test_weights_kept_and_storage_sizes(tmp_path: Path) -> None:
    rows = [{"name": f"fc{i}", "weights": 1000 * i, "kept_pct": 10.0 * i, "flops_kept_pct": 9.0 * i}
            for i in range(1, 4)]  # fmt: skip
    assert_png(plots.weights_kept(rows, tmp_path / "kept.png"))
    sizes = {"dense": 1_066_440, "P": 212_000, "P+Q": 60_000, "P+Q+H": 40_000}
    assert_png(plots.storage_sizes(sizes, tmp_path / "sizes.png"), min_bytes=3000)
    with pytest.raises(NetslimError, match="kept_pct"):
        plots.weights_kept([{"name": "x"}], tmp_path / "x.png")


def test_gamma_over_epochs_shows_every_epoch_with_the_threshold(tmp_path: Path) -> None:
    edges = np.logspace(-6, 1, 36)
    rng = np.random.default_rng(2)
    records = []
    for epoch in range(12):
        g = np.abs(rng.normal(0.3 / (1 + epoch), 0.05, 300))
        records.append({"epoch": epoch, "log_bin_edges": edges.tolist(),
                        "log_counts": np.histogram(g, bins=edges)[0].tolist()})  # fmt: skip
    out = plots.gamma_over_epochs(records, tmp_path / "epochs.png", threshold=0.01)
    assert_png(out)
    assert _red_pixels(out) > 100
    with pytest.raises(NetslimError, match="log_counts"):
        plots.gamma_over_epochs([{"epoch": 0, "counts": [1]}], tmp_path / "x.png")
