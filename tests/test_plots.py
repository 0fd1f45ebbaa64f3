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
