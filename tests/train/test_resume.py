"""A training run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from helpers import subprocess_env, write_tiny_mnist
from netslim.io import read_checkpoint

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


def _train_cmd(data: Path, run: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
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
        "100",
        "--batch-size",
        "8",
        "--epochs",
        "3",
        "--lr",
        "0.05",
        "--deterministic",
        "--device",
        "cpu",
        "--run-dir",
        str(run),
        *extra,
    ]


def _kill_during_epoch_2(cmd: list[str], checkpoint: Path, timeout: float = 120.0) -> int:
    """Start ``cmd`` and SIGKILL it once epoch 1 is checkpointed and epoch 2's progress bar has appeared."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env())
    seen: list[bytes] = []

    def drain() -> None:  # tqdm writes the bar to stderr; read it without blocking the trainer
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            seen.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while b"epoch 2/3" not in b"".join(seen) or not checkpoint.exists():
            if proc.poll() is not None:
                raise AssertionError("training ended before the kill:\n" + b"".join(seen).decode()[-2000:])
            if time.monotonic() > deadline:
                raise AssertionError("epoch 2 never started:\n" + b"".join(seen).decode()[-2000:])
            time.sleep(0.005)
        time.sleep(0.05)  # let a few batches of epoch 2 run
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path):
    """Kill ``netslim train --deterministic`` in epoch 2 of 3, rerun with --resume: same final weights."""
    data = write_tiny_mnist(tmp_path / "data", n_train=900, n_test=64)
    full, cut = tmp_path / "full", tmp_path / "cut"
    env = subprocess_env()
    # the uninterrupted run goes on alongside the one that gets killed
    uninterrupted = subprocess.Popen(
        _train_cmd(data, full, "--no-progress"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        code = _kill_during_epoch_2(_train_cmd(data, cut), cut / "checkpoint.pt")
        assert code == -signal.SIGKILL
        assert torch.load(cut / "checkpoint.pt", weights_only=True)["epoch"] == 1, "kill landed after epoch 2"
        assert not (cut / "model.pt").exists()
        done = subprocess.run(
            _train_cmd(data, cut, "--resume", "--no-progress"), env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        output = uninterrupted.communicate(timeout=300)[0]
        assert uninterrupted.returncode == 0, output
    finally:
        if uninterrupted.poll() is None:
            uninterrupted.kill()
            uninterrupted.wait()
    expected, resumed = read_checkpoint(full / "model.pt"), read_checkpoint(cut / "model.pt")
    assert expected.state_dict.keys() == resumed.state_dict.keys()
    for name, tensor in expected.state_dict.items():
        assert torch.equal(tensor, resumed.state_dict[name]), name
    assert expected.meta["extra"]["test"] == resumed.meta["extra"]["test"]
    assert len((cut / "metrics.jsonl").read_text().splitlines()) == 3
