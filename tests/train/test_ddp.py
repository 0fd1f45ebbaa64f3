"""``torchrun --nproc_per_node=2 -m netslim train`` (Gloo, CPU) equals one process with the same global batch.

lenet300_100 has no BatchNorm, so the only differences are floating-point summation order: DDP averages two
half-batch gradients where one process averages the whole batch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

from helpers import free_port, subprocess_env, write_tiny_mnist
from netslim.io import read_checkpoint

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="needs torch.distributed with the Gloo backend",
)


def test_two_process_ddp_matches_one_process(tmp_path):
    data = write_tiny_mnist(tmp_path / "data", n_train=320, n_test=50)
    train = [
        "-m",
        "netslim",
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
        "16",
        "--epochs",
        "2",
        "--lr",
        "0.05",
        "--no-augment",
        "--no-progress",
        "--device",
        "cpu",
    ]
    env = subprocess_env()
    single = subprocess.Popen(
        [sys.executable, *train, "--run-dir", str(tmp_path / "one")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
    ]
    double = subprocess.run(
        [*torchrun, *train, "--run-dir", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    single_out = single.communicate(timeout=300)[0]
    assert single.returncode == 0, single_out
    assert double.returncode == 0, double.stdout + double.stderr

    one, two = read_checkpoint(tmp_path / "one" / "model.pt"), read_checkpoint(tmp_path / "two" / "model.pt")
    for name, tensor in one.state_dict.items():
        torch.testing.assert_close(two.state_dict[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    assert two.meta["extra"]["test"]["n"] == 50  # both ranks' shards of the test set were counted
    # one test image may flip its argmax under rounding differences
    acc_one, acc_two = one.meta["extra"]["test"]["accuracy"], two.meta["extra"]["test"]["accuracy"]
    assert acc_two == pytest.approx(acc_one, abs=0.021)
    rows = [
        [json.loads(line) for line in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
        for r in ("one", "two")
    ]
    for a, b in zip(*rows):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["world_size"] == 2
    files = [sorted(p.name for p in (tmp_path / r).iterdir()) for r in ("one", "two")]
    assert files[0] == files[1]


@pytest.mark.slow
def test_two_process_divergence_stops_every_rank(tmp_path):
    """A NaN loss under torchrun stops both ranks with the one-line error (no rank left waiting)."""
    data = write_tiny_mnist(tmp_path / "data", n_train=128, n_test=16)
    train = [
        "-m",
        "netslim",
        "train",
        "--model",
        "lenet300_100",
        "--dataset",
        "mnist",
        "--data-dir",
        str(data),
        "--val-size",
        "32",
        "--batch-size",
        "16",
        "--epochs",
        "2",
        "--lr",
        "1e12",
        "--no-progress",
        "--device",
        "cpu",
        "--run-dir",
        str(tmp_path / "run"),
    ]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
    ]
    done = subprocess.run(
        [*torchrun, *train], env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    assert (done.stdout + done.stderr).count("training diverged in epoch 1") == 2, done.stdout + done.stderr
    assert not (tmp_path / "run" / "model.pt").exists()
