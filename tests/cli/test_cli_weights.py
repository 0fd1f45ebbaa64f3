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
from netslim.weights import has_masks


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
    assert "| Layer | Weights | Weights kept % | Input act. non-zero % | FLOPs kept % |" in out
    results = json.loads((run_dir / "results.json").read_text())
    layers = {r["name"]: r for r in results["layers"]}
    assert layers["classifier.0"]["kept_pct"] == pytest.approx(10.0, abs=0.1)  # tolerated 90% from the sweep
    assert layers["classifier.4"]["kept_pct"] == pytest.approx(50.0, abs=0.1)  # explicit setting wins
    # FLOPs kept discount zero activations: never more than the weights kept, and 2 FLOPs per MAC
    for row in layers.values():
        assert row["flops_kept_pct"] <= row["kept_pct"] + 1e-9
        assert row["flops_kept"] == pytest.approx(2 * row["macs_kept"])
    assert results["flops_kept"] == pytest.approx(2 * results["macs_kept"])
    assert [r["round"] for r in results["rounds"]] == [1, 2]
    sizes = results["sizes_bytes"]
    assert sizes["P+Q+H"] <= sizes["P+Q"] < sizes["P"] < sizes["dense"]
    rows = list(csv.DictReader((run_dir / "sensitivity.csv").open()))
    assert len(rows) == 1 + 3 * 3  # baseline + 3 layers x {0, 0.45, 0.9}
    model = netslim.load(run_dir / "pruned.pt")
    assert float((model.classifier[0].weight == 0).float().mean()) == pytest.approx(0.9, abs=1e-3)
    assert has_masks(model)  # pruned.pt keeps its masks: further training keeps the zeros
    baseline = netslim.load(run_dir / "baseline.pt")
    assert not has_masks(baseline) and bool((baseline.classifier[0].weight != 0).all())
    assert (run_dir / "report.html").is_file()


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


def _prune_weights(mnist_dir: Path, run_dir: Path, *extra: str) -> int:
    return main(
        [
            "prune-weights",
            "--data-dir",
            str(mnist_dir),
            *COMMON,
            "--epochs",
            "1",
            "--retrain-epochs",
            "1",
            "--run-dir",
            str(run_dir),
            *extra,
        ]
    )


def test_readme_line_runs_with_hans_per_layer_amounts(
    mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`prune-weights --model lenet300_100 --rounds 3` (README) runs: no criterion = Han's per-layer 12x."""
    run_dir = tmp_path / "run"
    assert _prune_weights(mnist_dir, run_dir, "--model", "lenet300_100", "--rounds", "3") == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["preset"] == "han"
    kept = {r["name"]: r["kept_pct"] for r in results["layers"]}
    assert kept == pytest.approx({"classifier.0": 8.0, "classifier.2": 9.0, "classifier.4": 26.0}, abs=0.01)
    assert results["compression_rate"] >= 12.0
    assert [r["round"] for r in results["rounds"]] == [1, 2, 3]
    assert "(12." in capsys.readouterr().out  # the printed rate


def test_preset_han_reaches_12x_on_lenet5(mnist_dir: Path, tmp_path: Path) -> None:
    """--preset han on LeNet-5 scales the tables' rounded shares to Table 1's 12x."""
    run_dir = tmp_path / "run"
    rc = _prune_weights(mnist_dir, run_dir, "--model", "lenet5", "--rounds", "1", "--preset", "han")
    assert rc == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert 12.0 <= results["compression_rate"] < 12.2
    kept = [r["kept_pct"] for r in results["layers"]]
    assert kept[0] > kept[1] and kept[0] > 60  # conv1 is the most sensitive layer, pruned least


def test_list_layers_names_the_layers_and_the_help_example_exists(
    mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--list-layers prints the prunable layer names (and trains nothing); the help's example names exist."""
    from netslim.cli.prune_weights import LAYER_SETTINGS_EXAMPLE

    run_dir = tmp_path / "run"
    assert _prune_weights(mnist_dir, run_dir, "--model", "lenet5", "--list-layers") == 0
    out = capsys.readouterr().out
    for name in json.loads(LAYER_SETTINGS_EXAMPLE):
        assert f"  {name} " in out
    assert "classifier.2" in out and not run_dir.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer-settings", '{"fc9": {"quality": 1.0}}'], "'fc9' matches no prunable layer"),
        (["--layer-settings", '{"classifier.0": {"amount": 1.5}}'], "sparsity in [0, 1]"),
        (["--target-sparsity", "1.5"], "--target-sparsity"),
        (["--layer-settings", "[1, 2]"], "must be a JSON object"),
    ],
)
def test_bad_settings_fail_before_the_baseline_trains(
    mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    """Bad pruning settings: exit 2 with one line on stderr, and no training ran (no trainer folder)."""
    run_dir = tmp_path / "run"
    assert _prune_weights(mnist_dir, run_dir, "--model", "lenet300_100", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (run_dir / "train").exists()


def test_max_batches_bounds_evaluation_too(mnist_dir: Path, tmp_path: Path) -> None:
    """--max-batches caps the evaluation loaders, not only training (smoke runs stay fast)."""
    run_dir = tmp_path / "run"
    rc = _prune_weights(mnist_dir, run_dir, "--model", "lenet300_100", "--rounds", "1",
                        "--max-batches", "1", "--eval-batch-size", "8")  # fmt: skip
    assert rc == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test_before"]["n"] == 8 and results["test_after"]["n"] == 8


def test_resume_skips_finished_phases_and_ends_like_an_uninterrupted_run(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed in round 2 resumes after round 1: the baseline is not retrained, round 1 not redone,
    and the result equals an uninterrupted run's."""
    import netslim.weights.procedure as procedure
    from netslim.train import Trainer

    args = ["--model", "lenet300_100", "--rounds", "2", "--target-sparsity", "0.8", "--no-compress"]
    full = tmp_path / "full"
    assert _prune_weights(mnist_dir, full, *args) == 0

    original = procedure.prune_round

    def killed_in_round_2(model, config, round_index, *a, **kw):  # type: ignore[no-untyped-def]
        if round_index == 1:
            raise KeyboardInterrupt
        return original(model, config, round_index, *a, **kw)

    cut = tmp_path / "cut"
    monkeypatch.setattr(procedure, "prune_round", killed_in_round_2)
    assert _prune_weights(mnist_dir, cut, *args) == 130  # the CLI's exit code for an interrupted run
    assert (cut / "baseline.pt").is_file() and (cut / "round-1.pt").is_file()
    monkeypatch.setattr(procedure, "prune_round", original)

    fits: list[str] = []
    real_fit = Trainer.fit

    def counting_fit(self, resume=False):  # type: ignore[no-untyped-def]
        fits.append(self.run_dir.name)
        return real_fit(self, resume=resume)

    monkeypatch.setattr(Trainer, "fit", counting_fit)
    assert _prune_weights(mnist_dir, cut, *args, "--resume") == 0
    assert fits == ["round2_all"]  # neither the baseline nor round 1 trained again
    a = json.loads((full / "results.json").read_text())
    b = json.loads((cut / "results.json").read_text())
    assert [r["round"] for r in b["rounds"]] == [1, 2] and b["train_epochs"] == a["train_epochs"] == 1
    assert b["layers"] == a["layers"] and b["test_after"] == a["test_after"]


def test_sensitivity_resume_reuses_the_baseline(mnist_dir: Path, tmp_path: Path) -> None:
    """`sensitivity --resume` after a finished baseline does not train again."""
    run_dir = tmp_path / "sens"
    args = ["sensitivity", "--model", "lenet300_100", "--data-dir", str(mnist_dir), *COMMON, "--epochs", "1",
            "--step", "0.5", "--max-sparsity", "0.5", "--run-dir", str(run_dir)]  # fmt: skip
    assert main(args) == 0
    first = (run_dir / "baseline.pt").stat().st_mtime_ns
    (run_dir / "layer_settings.json").unlink()  # as if the sweep had been cut off
    assert main([*args, "--resume"]) == 0
    assert (run_dir / "baseline.pt").stat().st_mtime_ns == first
    assert (run_dir / "layer_settings.json").is_file()


def test_defaults_per_model_family() -> None:
    """The LeNets train at Caffe's LeNet rate without augmentation by default; the flags override it."""
    from netslim.pipelines.weights import WeightPruningConfig

    for name in ("lenet5", "lenet300_100"):
        config = WeightPruningConfig(model=name)
        assert config.baseline_config().lr == 0.01 and not config.uses_augmentation()
    assert WeightPruningConfig(model="lenet5", augment=True).uses_augmentation()
    assert WeightPruningConfig(model="vgg16_fc").uses_augmentation()


def test_prune_weights_from_a_checkpoint_uses_its_zoo_recipe(mnist_dir: Path, tmp_path: Path) -> None:
    """--checkpoint: nothing trains; the paper's amounts follow the checkpoint's zoo model (LeNet-5)."""
    import torch

    torch.manual_seed(0)
    ckpt = netslim.save(create("lenet5", num_classes=10, in_channels=1, input_size=28), tmp_path / "m.pt")
    run_dir = tmp_path / "run"
    assert _prune_weights(mnist_dir, run_dir, "--checkpoint", str(ckpt), "--rounds", "1") == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["preset"] == "han" and results["train_epochs"] == 0
    assert results["compression_rate"] >= 12.0 and not (run_dir / "train").exists()


def test_python_api_with_a_model_of_your_own(mnist_dir: Path, tmp_path: Path) -> None:
    """run_weight_pruning on a user's nn.Module: trained, pruned to the target, saved masked, resumable."""
    import torch
    from torch import nn

    from netslim.pipelines.weights import WeightPruningConfig, run_weight_pruning
    from netslim.train import TrainConfig

    def mlp() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))

    config = WeightPruningConfig(
        dataset="mnist", data_dir=str(mnist_dir), val_size=32, batch_size=16, augment=False,
        train=TrainConfig(epochs=1, lr=0.05, progress=False), rounds=2, target_sparsity=0.5,
        retrain_epochs=1, compress=False,
    )  # fmt: skip
    result = run_weight_pruning(config, tmp_path / "run", model=mlp())
    assert has_masks(result.model)
    assert result.results["layers"][0]["kept_pct"] == pytest.approx(50.0, abs=0.1)
    again = run_weight_pruning(config, tmp_path / "run", model=mlp(), resume=True)  # everything finished
    assert again.results["layers"] == result.results["layers"]
    loaded = netslim.load(tmp_path / "run" / "pruned.pt", model=mlp())
    assert has_masks(loaded)


def test_defaults_follow_the_checkpoints_zoo_model(tmp_path: Path) -> None:
    """From a LeNet checkpoint, retraining defaults to no augmentation and the LeNet rate, as from --model."""
    from netslim.pipelines.weights import WeightPruningConfig

    ckpt = netslim.save(create("lenet300_100", num_classes=10, in_channels=1), tmp_path / "m.pt")
    config = WeightPruningConfig(checkpoint=str(ckpt))
    assert config.zoo_name() == "lenet300_100" and not config.uses_augmentation()
    assert config.baseline_config().lr == 0.01
