"""``netslim train`` / ``netslim eval`` and the shared CLI helpers, on tiny MNIST-format files."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from helpers import write_tiny_mnist
from netslim.cli import main
from netslim.cli._common import (
    add_data_args,
    add_model_args,
    add_run_args,
    add_train_args,
    build_model,
    config_from_args,
    default_run_dir,
    model_kwargs,
)
from netslim.errors import NetslimError
from netslim.io import read_checkpoint


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_model_args(p)
    add_data_args(p)
    add_train_args(p, epochs=7, lr=0.02)
    add_run_args(p)
    return p


def test_config_from_args_maps_every_option():
    args = _parser().parse_args(
        [
            "--model",
            "vgg11",
            "--epochs",
            "4",
            "--optimizer",
            "sgd",
            "--momentum",
            "0.8",
            "--nesterov",
            "--weight-decay",
            "5e-4",
            "--no-decay-bn-bias",
            "--schedule",
            "cosine",
            "--amp",
            "--seed",
            "3",
            "--deterministic",
            "--max-batches",
            "5",
            "--no-progress",
            "--milestones",
            "0.3",
            "0.6",
            "--sync-bn",
        ]
    )
    cfg = config_from_args(args, stage="baseline")
    assert (cfg.epochs, cfg.lr, cfg.momentum, cfg.nesterov, cfg.weight_decay) == (4, 0.02, 0.8, True, 5e-4)
    assert not cfg.decay_bn_and_bias and cfg.schedule == "cosine" and cfg.amp and cfg.seed == 3
    assert cfg.deterministic and cfg.max_batches == 5 and not cfg.progress and cfg.milestones == (0.3, 0.6)
    assert cfg.sync_bn
    assert cfg.extra == {"model": "vgg11", "dataset": "fashion-mnist", "stage": "baseline"}
    defaults = config_from_args(_parser().parse_args(["--model", "vgg11"]))
    assert defaults.epochs == 7 and defaults.lr == 0.02 and defaults.decay_bn_and_bias


def test_bad_option_values_raise_netslim_error():
    with pytest.raises(NetslimError, match="epochs"):
        config_from_args(_parser().parse_args(["--model", "m", "--epochs", "0"]))
    with pytest.raises(NetslimError, match="JSON"):
        model_kwargs(_parser().parse_args(["--model", "m", "--model-kwargs", "{depth: 3"]))
    with pytest.raises(NetslimError, match="object"):
        model_kwargs(_parser().parse_args(["--model", "m", "--model-kwargs", "[1]"]))
    args = _parser().parse_args(["--model", "m", "--model-kwargs", '{"depth": 20}', "--width", "0.5"])
    assert model_kwargs(args) == {"depth": 20, "width": 0.5}


def test_default_run_dir_names_the_run():
    path = default_run_dir("train", "vgg11", "fashion-mnist")
    assert path.parent == Path("runs")
    assert re.fullmatch(r"train-vgg11-fashion-mnist-\d{8}-\d{6}", path.name)


def test_build_model_shapes_the_model_for_the_data():
    args = _parser().parse_args(["--model", "lenet300_100", "--model-kwargs", '{"hidden": [20, 10]}'])
    bundle = SimpleNamespace(num_classes=4, in_channels=1, image_size=12)
    model = build_model(args, bundle)
    assert model(torch.zeros(2, 1, 12, 12)).shape == (2, 4)
    assert model.netslim_recipe["name"] == "lenet300_100"


def test_train_then_eval_end_to_end(tmp_path, capsys):
    """train writes the run folder and prints a table; eval reproduces the stored test accuracy."""
    data = write_tiny_mnist(tmp_path / "data")
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            "lenet300_100",
            "--dataset",
            "mnist",
            "--data-dir",
            str(data),
            "--val-size",
            "64",
            "--batch-size",
            "32",
            "--epochs",
            "2",
            "--lr",
            "0.05",
            "--no-progress",
            "--run-dir",
            str(run),
            "--device",
            "cpu",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert {"config.json", "metrics.csv", "metrics.jsonl", "checkpoint.pt", "model.pt"} <= {
        p.name for p in run.iterdir()
    }
    assert "test loss / acc" in out and str(run) in out
    extra = read_checkpoint(run / "model.pt").meta["extra"]
    assert extra["dataset"] == "mnist" and extra["final_epoch"]["epoch"] == 2
    assert extra["test"]["accuracy"] > 0.3  # chance is 0.1; the bar position is easy to learn
    assert json.loads((run / "config.json").read_text())["train"]["extra"]["model"] == "lenet300_100"

    report = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                str(run / "model.pt"),
                "--data-dir",
                str(data),
                "--val-size",
                "64",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    assert "accuracy" in capsys.readouterr().out
    result = json.loads(report.read_text())
    assert result["dataset"] == "mnist" and result["n"] == 64
    assert result["accuracy"] == pytest.approx(extra["test"]["accuracy"])


def test_unknown_names_are_one_line_errors(tmp_path, capsys):
    data = write_tiny_mnist(tmp_path / "data", n_train=80, n_test=16)
    common = [
        "--data-dir",
        str(data),
        "--val-size",
        "16",
        "--epochs",
        "1",
        "--no-progress",
        "--run-dir",
        str(tmp_path / "run"),
    ]
    assert main(["train", "--model", "no-such-net", "--dataset", "mnist", *common]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netslim train: error:") and "lenet300_100" in err and "Traceback" not in err
    assert main(["train", "--model", "lenet300_100", "--dataset", "no-such-data", *common]) == 2
    assert "mnist" in capsys.readouterr().err


def test_unknown_model_or_missing_checkpoint_fails_before_data_is_read(tmp_path, capsys):
    run_dir = tmp_path / "run"
    no_data = ["--dataset", "mnist", "--data-dir", str(tmp_path / "empty"), "--run-dir", str(run_dir)]
    assert main(["train", "--model", "bogus", *no_data]) == 2
    assert "unknown model 'bogus'" in capsys.readouterr().err
    assert main(["sensitivity", "--checkpoint", str(tmp_path / "missing.pt"), *no_data]) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err
    assert not run_dir.exists()


def test_no_command_module_imports_another() -> None:
    """What commands share lives in cli/_common.py or the library, so each command reads on its own."""
    import ast

    import netslim.cli

    folder = Path(netslim.cli.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("netslim.cli"):
                names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
                others = [n for n in names if n.startswith("netslim.cli.") and "_common" not in n]
                assert not others, f"{path.name} imports {others}"
