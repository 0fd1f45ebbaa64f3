"""End to end: ``netslim prune-weights`` and ``netslim sensitivity`` on tiny IDX files in tmp_path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import netslim
from helpers import write_tiny_mnist
from netslim.cli import main
from netslim.models import create


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mnist(
        tmp_path_factory.mktemp("mnist"), n_train=96, n_test=32, noise=40, bar_height=1, bar_cols=(0, 28)
    )


COMMON = [
    "--dataset",
    "mnist",
    "--batch-size",
    "16",
    "--val-size",
    "32",
    "--no-progress",
    "--no-augment",
    "--lr",
    "0.05",
    "--eval-batch-size",
    "32",
]


def test_prune_weights_end_to_end(
    mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Train 1 epoch, sweep, 2 rounds of prune/retrain: report, results.json, finalized pruned.pt."""
    run_dir = tmp_path / "run"
    rc = main(
        [
            "prune-weights",
            "--model",
            "lenet300_100",
            "--data-dir",
            str(mnist_dir),
            *COMMON,
            "--epochs",
            "1",
            "--rounds",
            "2",
            "--target-sparsity",
            "0.8",
            "--retrain-epochs",
            "1",
            "--sensitivity",
            "--step",
            "0.45",
            "--max-sparsity",
            "0.9",
            "--max-drop",
            "1.0",
            "--layer-settings",
            '{"classifier.4": {"amount": 0.5}}',
            "--run-dir",
            str(run_dir),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| Layer | Weights | Weights kept % | FLOP kept % |" in out
    results = json.loads((run_dir / "results.json").read_text())
    layers = {r["name"]: r for r in results["layers"]}
    assert layers["classifier.0"]["kept_pct"] == pytest.approx(10.0, abs=0.1)  # tolerated 90% from the sweep
    assert layers["classifier.4"]["kept_pct"] == pytest.approx(50.0, abs=0.1)  # explicit setting wins
    assert layers["classifier.0"]["flops_kept_pct"] == pytest.approx(layers["classifier.0"]["kept_pct"])
    assert [r["round"] for r in results["rounds"]] == [1, 2]
    sizes = results["sizes_bytes"]
    assert sizes["P+Q+H"] <= sizes["P+Q"] < sizes["P"] < sizes["dense"]
    rows = list(csv.DictReader((run_dir / "sensitivity.csv").open()))
    assert len(rows) == 1 + 3 * 3  # baseline + 3 layers x {0, 0.45, 0.9}
    model = netslim.load(run_dir / "pruned.pt")
    assert float((model.classifier[0].weight == 0).float().mean()) == pytest.approx(0.9, abs=1e-3)


def test_sensitivity_cli_from_checkpoint(mnist_dir: Path, tmp_path: Path) -> None:
    """The sensitivity command on a saved model writes CSV, PNG and per-layer settings."""
    import torch

    torch.manual_seed(0)
    model = create("lenet300_100", num_classes=10, in_channels=1, input_size=28)
    ckpt = netslim.save(model, tmp_path / "m.pt")
    run_dir = tmp_path / "sens"
    rc = main(
        [
            "sensitivity",
            "--checkpoint",
            str(ckpt),
            "--data-dir",
            str(mnist_dir),
            *COMMON,
            "--step",
            "0.5",
            "--max-sparsity",
            "0.5",
            "--run-dir",
            str(run_dir),
        ]
    )
    assert rc == 0
    settings = json.loads((run_dir / "layer_settings.json").read_text())
    assert set(settings["layers"]) == {"classifier.0", "classifier.2", "classifier.4"}
    assert (run_dir / "sensitivity.png").stat().st_size > 0


def test_prune_weights_needs_a_criterion(
    mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --quality/--target-sparsity/--sensitivity the command fails with a one-line error."""
    rc = main(
        [
            "prune-weights",
            "--model",
            "lenet300_100",
            "--data-dir",
            str(mnist_dir),
            *COMMON,
            "--run-dir",
            str(tmp_path / "x"),
        ]
    )
    assert rc == 2
    assert "--quality" in capsys.readouterr().err
