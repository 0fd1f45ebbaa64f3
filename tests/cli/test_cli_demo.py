"""`netslim demo` (the README's main job) runs the slimming pipeline and prints the before/after table."""

from __future__ import annotations

import json

from helpers import write_tiny_mnist
from netslim.cli import main


def test_demo_runs_end_to_end_and_writes_report(tmp_path, capsys):
    data = write_tiny_mnist(tmp_path / "data", n_train=320, n_test=64)
    run_dir = tmp_path / "run"
    code = main(
        [
            "demo",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            str(data),
            "--epochs",
            "1",
            "--finetune-epochs",
            "1",
            "--max-batches",
            "3",
            "--val-size",
            "64",
            "--batch-size",
            "32",
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for row in ("test accuracy", "params", "FLOPs", "CPU latency"):
        assert row in out
    results = json.loads((run_dir / "results.json").read_text())
    assert results["after"]["params"] < results["before"]["params"]
    assert results["after"]["flops"] < results["before"]["flops"]
    for name in ("plan.json", "finetuned.pt", "report.html", "report.md"):
        assert (run_dir / name).is_file(), name


def test_demo_rejects_zero_epochs(tmp_path, capsys):
    assert main(["demo", "--epochs", "0", "--run-dir", str(tmp_path / "r")]) == 2
    assert "--epochs" in capsys.readouterr().err
