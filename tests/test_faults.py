"""Fault injection: bad arguments, bad files, file-system faults, concurrent runs and odd models.

Every case asserts the exit code, the one-line message (never a traceback) and that nothing was left
behind (no ``.NAME.tmp``, no half-written output, no stray run folder) or lost (an earlier run's files
unchanged). Most cases call ``netslim.cli.main`` in-process; subprocesses only where the fault needs one
(a file-size limit, a second live process, a killed process).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import netslim
from helpers import subprocess_env, write_tiny_mnist
from netslim._atomic import WriteError, atomic_torch_save, atomic_write, atomic_write_bytes
from netslim.cli import main
from netslim.errors import CorruptFileError, NetslimError
from netslim.io import read_checkpoint, write_checkpoint
from netslim.models import create
from netslim.pipelines.layout import LOCK
from netslim.runfolder import claim_run_dir, release_all
from netslim.slimming.tracing import trace_model

TRAIN = [
    "--dataset",
    "mnist",
    "--val-size",
    "16",
    "--batch-size",
    "16",
    "--epochs",
    "1",
    "--max-batches",
    "2",
    "--no-progress",
    "--device",
    "cpu",
]


# ---- fixtures and helpers ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny MNIST files, a small BN model, a NaN copy of it, and one finished `netslim train` run."""
    root = tmp_path_factory.mktemp("faults")
    data = write_tiny_mnist(root / "data", n_train=64, n_test=32)
    torch.manual_seed(0)
    model = create("vgg11", num_classes=10, in_channels=1, input_size=28, width=0.125)
    good = netslim.save(model, root / "vgg.pt", extra={"dataset": "mnist"})
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    bad = netslim.save(model, root / "vgg-nan.pt")
    run = root / "run"
    assert main(["train", "--model", "lenet5", "--data-dir", str(data), "--run-dir", str(run), *TRAIN]) == 0
    release_all()
    return {"root": root, "data": data, "model": good, "nan": bad, "run": run}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    rc = main([str(a) for a in argv])  # argparse errors too are an exit code
    out, err = capsys.readouterr()
    return rc, out, err


def fails(capsys: pytest.CaptureFixture[str], pattern: str, *argv: str) -> str:
    """Assert the command exits 2 with one error line matching ``pattern`` and no traceback."""
    rc, _, err = cli(capsys, *argv)
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert pattern.lower() in errors[0].lower(), err
    return errors[0]


def no_temp_files(folder: Path) -> bool:
    """No ``.NAME.*.tmp`` left anywhere under ``folder``."""
    return not [p for p in folder.rglob(".*.tmp")]


def snapshot(folder: Path) -> dict[str, bytes]:
    """The bytes of every file under ``folder`` (to show nothing was lost or changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def train_args(base: dict[str, Path], run: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--model",
        "lenet5",
        "--data-dir",
        str(base["data"]),
        "--run-dir",
        str(run),
        *TRAIN,
        *extra,
    ]


# ---- arguments: refused before any work, one line, exit 2 -------------------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "nan", "not a finite number"),
        ("--lr", "inf", "not a finite number"),
        ("--lr", "-inf", "not a finite number"),
        ("--momentum", "nan", "not a finite number"),
        ("--weight-decay", "inf", "not a finite number"),
        ("--width", "nan", "not a finite number"),
        ("--grad-clip", "nan", "not a finite number"),
        ("--milestones", "nan", "not a finite number"),
        ("--lr", "abc", "invalid number"),
        ("--lr", "0", "--lr must be > 0"),
        ("--lr", "-0.1", "--lr must be > 0"),
        ("--epochs", "0", "--epochs must be >= 1"),
        ("--batch-size", "0", "--batch-size must be >= 1"),
        ("--val-size", "-1", "--val-size must be >= 0"),
        ("--milestones", "1.5", "--milestones are fractions"),
        ("--grad-clip", "0", "--grad-clip must be > 0"),
        ("--momentum", "-0.5", "--momentum must be >= 0"),
        ("--threads", "0", "--threads must be >= 1"),
        ("--max-batches", "0", "--max-batches must be >= 1"),
        ("--limit-train", "0", "--limit-train must be >= 1"),
        ("--width", "0", "--width must be > 0"),
        ("--model-kwargs", "[1]", "must be a JSON object"),
        ("--model-kwargs", "{bad", "not valid JSON"),
        ("--device", "cuda", "CUDA is not available"),
        ("--device", "cuda:3", "CUDA is not available"),
        ("--device", "tpu9", "is not a device"),
    ],
)
def test_train_refuses_bad_arguments_before_any_work(capsys, tmp_path, base, option, value, message):
    if option == "--device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run = tmp_path / "run"
    fails(capsys, message, *train_args(base, run), f"{option}={value}")
    assert not run.exists()  # nothing was created


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["slim", "--model", "vgg11", "--sparsity", "nan"], "not a finite number"),
        (["slim", "--model", "vgg11", "--finetune-lr", "inf"], "not a finite number"),
        (["prune", "x.pt", "--ratio", "nan"], "not a finite number"),
        (["prune-weights", "--model", "lenet5", "--quality", "nan"], "not a finite number"),
        (["demo", "--sparsity", "inf"], "not a finite number"),
        (["train", "--model", "no-such-model"], "no-such-model"),
        (["train", "--model", "lenet5", "--resume"], "--resume needs --run-dir"),
        (["train", "--model", "lenet5", "--resume", "--run-dir", "r", "--overwrite"], "pass only one"),
        (["prune-weights", "--model", "lenet5", "--quality", "0.5", "--resume"], "--resume needs --run-dir"),
    ],
)
def test_other_commands_refuse_bad_arguments(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    fails(capsys, message, *argv)
    assert list(tmp_path.iterdir()) == []  # no run folder, no output


def test_data_dir_that_does_not_exist(capsys, tmp_path, base):
    fails(
        capsys,
        "does not exist",
        "train",
        "--model",
        "lenet5",
        "--data-dir",
        tmp_path / "nope",
        "--run-dir",
        tmp_path / "run",
        *TRAIN,
    )
    assert not (tmp_path / "run").exists()


def test_data_dir_that_is_a_file(capsys, tmp_path, base):
    (tmp_path / "f").write_text("x")
    fails(capsys, "is a file", "train", "--model", "lenet5", "--data-dir", tmp_path / "f", *TRAIN)


def test_data_dir_means_that_folder_only(capsys, tmp_path, base, monkeypatch):
    # the files exist in $NETSLIM_DATA, but --data-dir names an empty folder: no silent fallback
    write_tiny_mnist(tmp_path / "env" / "mnist", n_train=32, n_test=16)
    monkeypatch.setenv("NETSLIM_DATA", str(tmp_path / "env"))
    empty = tmp_path / "empty"
    empty.mkdir()
    line = fails(
        capsys,
        "not found in --data-dir",
        "train",
        "--model",
        "lenet5",
        "--data-dir",
        empty,
        "--run-dir",
        tmp_path / "run",
        *TRAIN,
    )
    assert "train-images-idx3-ubyte" in line and "/usr/share/datasets" not in line
    assert not (tmp_path / "run").exists()  # the failed run left no folder


def test_data_folder_used_is_printed_and_recorded(base):
    config = json.loads((base["run"] / "config.json").read_text())
    assert config["train"]["extra"]["data_dir"] == str(base["data"].resolve())


def test_run_dir_that_is_a_file(capsys, tmp_path, base):
    (tmp_path / "f").write_text("keep")
    fails(capsys, "is a file", *train_args(base, tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "keep"


def test_prune_needs_an_output(capsys, base):
    fails(capsys, "pass -o OUT", "prune", base["model"], "--ratio", "0.5")


def test_prune_input_shape_must_be_three_numbers(capsys, tmp_path, base):
    fails(
        capsys,
        "--input-shape takes three",
        "prune",
        base["model"],
        "--ratio",
        "0.5",
        "--input-shape",
        "1",
        "28",
        "-o",
        tmp_path / "p.pt",
    )
    assert not (tmp_path / "p.pt").exists()


def test_export_int8_without_calibration_writes_nothing(capsys, tmp_path, base):
    fails(
        capsys,
        "--int8 needs --calib-dataset",
        "export",
        base["model"],
        "--onnx",
        tmp_path / "m.onnx",
        "--int8",
    )
    assert list(tmp_path.iterdir()) == []


def test_eval_device_cuda_on_a_cpu_build(capsys, base):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    fails(
        capsys, "CUDA is not available", "eval", base["model"], "--device", "cuda", "--data-dir", base["data"]
    )


# ---- files: bad checkpoints, crafted recipes and plans ----------------------------------------------------
def test_random_bytes_are_not_a_checkpoint(capsys, tmp_path):
    (tmp_path / "x.pt").write_bytes(os.urandom(4096))
    line = fails(capsys, "not a netslim checkpoint (not a torch zip file)", "eval", tmp_path / "x.pt")
    assert "pickled" not in line


def test_empty_file_is_not_a_checkpoint(capsys, tmp_path):
    (tmp_path / "x.pt").write_bytes(b"")
    fails(capsys, "empty file", "eval", tmp_path / "x.pt")


def test_a_directory_is_a_directory(capsys, tmp_path):
    fails(capsys, "is a directory", "eval", tmp_path)


def test_a_missing_checkpoint(capsys, tmp_path):
    fails(capsys, "does not exist", "eval", tmp_path / "missing.pt")


def test_pickled_module_is_refused_without_running_it(capsys, tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "m.pt")
    fails(capsys, "pickled Python objects", "eval", tmp_path / "m.pt")


def test_compressed_file_points_to_decompress(capsys, tmp_path, base):
    assert cli(capsys, "compress", base["model"], "-o", tmp_path / "m.nsz")[0] == 0
    fails(capsys, "netslim decompress", "eval", tmp_path / "m.nsz")


def test_trainer_checkpoint_evaluates_like_the_model(capsys, base):
    rc, out, err = cli(capsys, "eval", base["run"] / "checkpoint.pt", "--data-dir", base["data"])
    assert rc == 0, err
    rc2, out2, _ = cli(capsys, "eval", base["run"] / "model.pt", "--data-dir", base["data"])
    assert rc2 == 0
    acc = [line for line in out.splitlines() if "accuracy" in line]
    assert acc == [line for line in out2.splitlines() if "accuracy" in line]


def test_eval_test_split_of_a_small_dataset(capsys, base):
    # 64 training images, default --val-size 5000: the test split does not need a validation split
    rc, out, err = cli(capsys, "eval", base["model"], "--data-dir", base["data"], "--dataset", "mnist")
    assert rc == 0, err
    assert "samples" in out


def test_crafted_recipe_fails_before_allocating(tmp_path, base):
    ckpt = read_checkpoint(base["model"])
    ckpt.meta["recipe"]["kwargs"]["width"] = 64.0  # ~38 G parameters if built
    write_checkpoint(tmp_path / "big.pt", ckpt)
    start = time.perf_counter()
    with pytest.raises(CorruptFileError, match="shape"):
        netslim.load(tmp_path / "big.pt")
    assert time.perf_counter() - start < 10  # (building it would take minutes and tens of GB)


def test_recipe_that_does_not_build(tmp_path, base):
    ckpt = read_checkpoint(base["model"])
    ckpt.meta["recipe"]["kwargs"]["depth"] = 7
    write_checkpoint(tmp_path / "odd.pt", ckpt)
    with pytest.raises(CorruptFileError, match="do not build a model"):
        netslim.load(tmp_path / "odd.pt")


@pytest.fixture(scope="module")
def slimmed(base: dict[str, Path]) -> Path:
    model = netslim.load(base["model"])
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features)
    small = netslim.slim(model, torch.zeros(1, 1, 28, 28), 0.5).model
    return netslim.save(small, base["root"] / "slim.pt")


def test_plan_index_out_of_range(capsys, tmp_path, slimmed):
    ckpt = read_checkpoint(slimmed)
    layer = next(lp for lp in ckpt.meta["plans"][0]["layers"].values() if lp.get("out_keep"))
    layer["out_keep"][-1] = 10_000
    write_checkpoint(tmp_path / "bad.pt", ckpt)
    with pytest.raises(CorruptFileError, match="out of range"):
        netslim.load(tmp_path / "bad.pt")
    fails(capsys, "out of range", "eval", tmp_path / "bad.pt")


def test_plan_without_layers(tmp_path, slimmed):
    ckpt = read_checkpoint(slimmed)
    ckpt.meta["plans"] = [{"no": "layers"}]
    write_checkpoint(tmp_path / "bad.pt", ckpt)
    with pytest.raises(CorruptFileError, match="malformed"):
        netslim.load(tmp_path / "bad.pt")


def test_slimmed_checkpoint_still_loads(slimmed):
    model = netslim.load(slimmed)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_idx_unknown_dimensions_gives_a_short_message(capsys, tmp_path, base):
    data = tmp_path / "d"
    write_tiny_mnist(data, n_train=32, n_test=16)
    raw = bytearray((data / "train-images-idx3-ubyte").read_bytes())
    raw[3] = 255  # 255 dimensions
    (data / "train-images-idx3-ubyte").write_bytes(bytes(raw))
    line = fails(capsys, "declares 255 dimensions", "eval", base["model"], "--data-dir", data)
    assert len(line) < 300


def test_idx_float_images_gives_a_short_message(capsys, tmp_path, base):
    data = tmp_path / "d"
    write_tiny_mnist(data, n_train=32, n_test=16)
    header = bytes([0, 0, 0x0D, 3]) + (1).to_bytes(4, "big") * 3
    (data / "train-images-idx3-ubyte").write_bytes(header + b"\0\0\0\0")
    line = fails(capsys, "expected unsigned-byte images", "eval", base["model"], "--data-dir", data)
    assert len(line) < 300


def test_idx_bad_magic(capsys, tmp_path, base):
    data = tmp_path / "d"
    write_tiny_mnist(data, n_train=32, n_test=16)
    (data / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x77\x01" + bytes(4))
    fails(capsys, "bad IDX magic", "eval", base["model"], "--data-dir", data)


# ---- non-finite weights ----------------------------------------------------------------------------------
def test_prune_refuses_nan_weights(capsys, tmp_path, base):
    fails(capsys, "nan/inf weights", "prune", base["nan"], "--ratio", "0.5", "-o", tmp_path / "p.pt")
    assert list(tmp_path.iterdir()) == []


def test_compress_refuses_nan_weights(capsys, tmp_path, base):
    fails(capsys, "nan/inf weights", "compress", base["nan"], "-o", tmp_path / "m.nsz")
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_nan_weights(capsys, tmp_path, base):
    fails(capsys, "nan/inf weights", "export", base["nan"], "--onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_slim_checkpoint_refuses_nan_weights(capsys, tmp_path, base):
    fails(
        capsys,
        "nan/inf weights",
        "slim",
        "--checkpoint",
        base["nan"],
        "--data-dir",
        base["data"],
        "--dataset",
        "mnist",
        "--run-dir",
        tmp_path / "run",
    )
    assert not (tmp_path / "run").exists()


def test_check_finite_names_the_tensor():
    from netslim.io import check_finite

    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    net[1].running_var[0] = float("inf")
    with pytest.raises(NetslimError, match=r"1 nan/inf weights \(first in 1.running_var; 1 tensor"):
        check_finite(net)


# ---- file-system faults ----------------------------------------------------------------------------------
def test_output_is_a_directory(capsys, tmp_path, base):
    (tmp_path / "out").mkdir()
    fails(capsys, "is a directory", "prune", base["model"], "--ratio", "0.5", "-o", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_output_under_a_file(capsys, tmp_path, base):
    (tmp_path / "f").write_text("keep")
    fails(capsys, "is a file", "prune", base["model"], "--ratio", "0.5", "-o", tmp_path / "f" / "p.pt")
    assert (tmp_path / "f").read_text() == "keep"


def test_compress_output_is_a_directory(capsys, tmp_path, base):
    fails(capsys, "is a directory", "compress", base["model"], "-o", tmp_path)
    assert no_temp_files(tmp_path)


def test_decompress_output_is_a_directory(capsys, tmp_path, base):
    assert cli(capsys, "compress", base["model"], "-o", tmp_path / "m.nsz")[0] == 0
    (tmp_path / "d").mkdir()
    fails(capsys, "is a directory", "decompress", tmp_path / "m.nsz", "-o", tmp_path / "d")
    assert no_temp_files(tmp_path)


def test_export_onnx_is_a_directory(capsys, tmp_path, base):
    fails(capsys, "is a directory", "export", base["model"], "--onnx", tmp_path)


def test_eval_json_is_a_directory(capsys, tmp_path, base):
    fails(capsys, "is a directory", "eval", base["model"], "--data-dir", base["data"], "--json", tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_output_folder(capsys, tmp_path, base):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        fails(capsys, "permission denied", "prune", base["model"], "--ratio", "0.5", "-o", locked / "p.pt")
    finally:
        locked.chmod(0o700)


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def boom(fh):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match="the disk is full"):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old" and no_temp_files(tmp_path)


def test_atomic_write_gives_the_usual_mode(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600
    target.chmod(0o640)
    atomic_write_bytes(target, b"newer")
    assert target.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode


def _limited(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_torch_save_leaves_no_temp_file(tmp_path):
    target = tmp_path / "big.pt"
    target.write_bytes(b"old")
    code = (
        "import sys, torch\n"
        "from netslim._atomic import atomic_torch_save, WriteError\n"
        "try:\n"
        f"    atomic_torch_save({{'w': torch.zeros(200_000)}}, {str(target)!r})\n"
        "except WriteError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        preexec_fn=_limited(100_000),
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    assert "cannot write" in proc.stdout and "Traceback" not in proc.stderr
    assert target.read_bytes() == b"old" and no_temp_files(tmp_path)


def test_full_disk_compress_cli(tmp_path, base):
    out = tmp_path / "m.nsz"
    proc = subprocess.run(
        [sys.executable, "-m", "netslim", "compress", str(base["model"]), "-o", str(out)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        preexec_fn=_limited(2_000),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "cannot write" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() and no_temp_files(tmp_path)


def test_atomic_torch_save_round_trip(tmp_path):
    atomic_torch_save({"a": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["a"], torch.arange(3))
    assert no_temp_files(tmp_path)


# ---- run folders: nothing replaced, one writer at a time -------------------------------------------------
def test_finished_run_is_not_replaced(capsys, base):
    before = snapshot(base["run"])
    line = fails(capsys, "already holds a run", *train_args(base, base["run"]))
    assert "--overwrite" in line and "--resume" in line
    assert snapshot(base["run"]) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["slim", "--model", "vgg11", "--width", "0.125", "--dataset", "mnist", "--val-size", "16"],
        ["slim", "--checkpoint", "MODEL", "--dataset", "mnist", "--val-size", "16"],
        [
            "prune-weights",
            "--model",
            "lenet5",
            "--quality",
            "0.5",
            "--dataset",
            "mnist",
            "--val-size",
            "16",
            "--batch-size",
            "16",
        ],
        ["sensitivity", "--model", "lenet5", "--dataset", "mnist", "--val-size", "16", "--batch-size", "16"],
        ["demo", "--dataset", "mnist", "--val-size", "16"],
    ],
)
def test_every_run_folder_command_refuses_a_finished_run(capsys, base, argv):
    before = snapshot(base["run"])
    argv = [str(base["model"]) if a == "MODEL" else a for a in argv]
    fails(capsys, "already holds a run", *argv, "--data-dir", base["data"], "--run-dir", base["run"])
    assert snapshot(base["run"]) == before


def test_overwrite_replaces_a_run(capsys, tmp_path, base):
    run = tmp_path / "run"
    assert cli(capsys, *train_args(base, run))[0] == 0
    first = (run / "model.pt").read_bytes()
    rc, _, err = cli(capsys, *train_args(base, run, "--overwrite", "--seed", "1"))
    assert rc == 0, err
    assert (run / "model.pt").read_bytes() != first
    assert not (run / LOCK).exists() and no_temp_files(run)


def test_resume_of_a_missing_folder(capsys, tmp_path, base):
    fails(capsys, "nothing to resume", *train_args(base, tmp_path / "nope", "--resume"))
    assert not (tmp_path / "nope").exists()


def test_lock_held_by_a_live_process(capsys, tmp_path, base):
    run = tmp_path / "run"
    run.mkdir()
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "command": "train", "started": time.time()}
    (run / LOCK).write_text(json.dumps(holder))
    line = fails(capsys, "is in use by", *train_args(base, run))
    assert f"pid {os.getppid()}" in line and socket.gethostname() in line and "train" in line
    assert json.loads((run / LOCK).read_text()) == holder  # the holder's lock is untouched


def test_lock_held_on_another_host(capsys, tmp_path, base):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "slim", "started": 0}))
    line = fails(capsys, "in use by pid 1 on elsewhere", *train_args(base, run))
    assert "delete" in line


def test_stale_lock_is_taken_over(capsys, tmp_path, base):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that is not running any more
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname(), "command": "train"}))
    rc, _, err = cli(capsys, *train_args(base, run))
    assert rc == 0, err
    assert f"taking over the stale lock of pid {proc.pid}" in err
    assert (run / "model.pt").is_file() and not (run / LOCK).exists()


def test_claim_is_reentrant_and_released(tmp_path):
    run = tmp_path / "run"
    claim_run_dir(run, command="x")
    claim_run_dir(run, command="x")
    assert (run / LOCK).is_file()
    release_all()
    assert not run.exists()  # created by the claim, left empty: removed


def test_failed_run_leaves_no_folder(capsys, tmp_path, base):
    run = tmp_path / "run"
    fails(capsys, "training samples for a batch size of 4096", *train_args(base, run, "--batch-size", "4096"))
    assert not run.exists()


def test_two_trainings_on_one_folder(capsys, tmp_path, base):
    """A second live process is refused at once; after a kill -9 the stale lock is taken over."""
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "netslim", *train_args(base, run, "--epochs", "100000")]
    first = subprocess.Popen(argv, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (run / LOCK).exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (run / LOCK).exists(), first.stderr.read().decode() if first.poll() is not None else "no lock"
        line = fails(capsys, "is in use by", *train_args(base, run, "--overwrite"))
        assert f"pid {first.pid}" in line
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()
    rc, _, err = cli(capsys, *train_args(base, run, "--overwrite"))
    assert rc == 0, err
    assert "taking over the stale lock" in err
    assert netslim.load(run / "model.pt") is not None


# ---- odd models: data-dependent control flow --------------------------------------------------------------
class Branchy(nn.Module):
    """The issue's example: the branch taken depends on the activations' mean."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())

        self.pre, self.a, self.b, self.c, self.d = block(1), block(8), block(8), block(8), block(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(self.pre(x))
        if h.mean() > 0.3:
            h = self.b(h)
        else:
            h = self.c(h)
        return self.fc(self.d(h).mean((2, 3)))


def _weak_gammas(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features) + 0.5
            m.weight.data[:3] = 1e-3
    return model.eval()


def test_data_dependent_branch_never_breaks_the_slimmed_model():
    model = _weak_gammas(Branchy())
    with pytest.warns(UserWarning, match=r"test_faults\.py:\d+ \(if h\.mean\(\) > 0\.3:\)"):
        small = netslim.slim(model, torch.zeros(1, 1, 8, 8), 0.2).model
    low, high = torch.randn(2, 1, 8, 8) * 0.01, torch.randn(2, 1, 8, 8) + 50
    taken = {bool(model.a(model.pre(x)).mean() > 0.3) for x in (low, high)}
    assert taken == {True, False}  # the two inputs take different branches
    for x in (low, high):
        assert small(x).shape == (2, 10)
    assert small.pre[0].out_channels < 8  # what lies before the branch is still pruned


class ShapeOnly(nn.Module):
    """Python on shapes only: never data-dependent."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8 * 4 * 4, 10)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        if x.shape[1] == 1 and x.size(0) > 0 and int(h.shape[1]) > 0 and self.scale.item() > 0:
            h = nn.functional.adaptive_avg_pool2d(h, 4)
        return self.fc(h.flatten(1))


def test_shape_only_python_traces_and_prunes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trace = trace_model(ShapeOnly(), torch.zeros(1, 1, 8, 8))
    assert trace.conversions == []
    small = netslim.slim(_weak_gammas(ShapeOnly()), torch.zeros(1, 1, 8, 8), 0.3).model
    assert small.conv[0].out_channels < 8


@pytest.mark.parametrize("convert", ["item", "tolist", "int", "float", "bool"])
def test_each_value_conversion_is_detected(convert):
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x)
            s = h.amax()
            value = {
                "item": s.item,
                "tolist": s.tolist,
                "int": lambda: int(s),
                "float": lambda: float(s),
                "bool": lambda: bool(s),
            }[convert]()
            assert value is not None
            return self.fc(h.mean((2, 3)))

    with pytest.warns(UserWarning, match="turned into a Python"):
        trace = trace_model(Net(), torch.zeros(1, 1, 6, 6))
    assert len(trace.conversions) == 1 and "test_faults.py:" in trace.conversions[0]


@pytest.mark.parametrize("name", ["vgg11", "resnet20", "mobilenetv2", "densenet40", "lenet5", "preresnet"])
def test_zoo_models_have_no_data_dependent_control_flow(name):
    model = create(name, num_classes=10, in_channels=1, input_size=28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert trace_model(model, torch.zeros(1, 1, 28, 28)).conversions == []
