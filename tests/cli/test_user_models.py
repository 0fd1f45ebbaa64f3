"""User models: ``FILE.py:FUNC`` and ``pkg.mod:FUNC`` specs, their checkpoint recipes and the CLI."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import netslim
from helpers import write_tiny_mnist
from netslim.cli import main
from netslim.errors import NetslimError
from netslim.io import read_checkpoint
from netslim.models import resolve

NET = textwrap.dedent(
    """
    from torch import nn

    CALLS = []


    def build(num_classes=10, in_channels=3, width=8):
        CALLS.append({"num_classes": num_classes, "in_channels": in_channels, "width": width})
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
        )


    def no_args():
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())


    def not_a_model():
        return 42
    """
)


@pytest.fixture()
def net_file(tmp_path: Path) -> Path:
    path = tmp_path / "mynet.py"
    path.write_text(NET)
    return path


def test_file_factory_gets_only_the_data_args_it_accepts(net_file) -> None:
    model = resolve(f"{net_file}:build", num_classes=7, in_channels=1, input_size=28, width=4)
    assert model[-1].out_features == 7 and model[0].in_channels == 1 and model[0].out_channels == 4
    recipe = model.netslim_recipe
    assert recipe["factory"]["kind"] == "file" and recipe["factory"]["function"] == "build"
    assert recipe["factory"]["path"] == str(net_file.resolve()) and len(recipe["factory"]["sha256"]) == 64
    # input_size is not in build's signature, so it is neither passed nor recorded
    assert recipe["kwargs"] == {"num_classes": 7, "in_channels": 1, "width": 4}
    assert recipe["name"] == "mynet-build"


def test_factory_errors_say_what_to_do(net_file, tmp_path) -> None:
    with pytest.raises(NetslimError, match="does not take depth"):
        resolve(f"{net_file}:build", depth=3)
    with pytest.raises(NetslimError, match="no function 'nope'"):
        resolve(f"{net_file}:nope")
    with pytest.raises(NetslimError, match=r"not a torch\.nn\.Module"):
        resolve(f"{net_file}:not_a_model")
    with pytest.raises(NetslimError, match="does not exist"):
        resolve(f"{tmp_path / 'missing.py'}:build")
    with pytest.raises(NetslimError, match="cannot import module"):
        resolve("no_such_package_xyz.models:build")
    with pytest.raises(NetslimError, match="should look like"):
        resolve(f"{net_file}:")


def test_module_factory_and_checkpoint_round_trip(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "pkg_usermodels"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = resolve("pkg_usermodels.nets:build", num_classes=5, in_channels=3, width=6).eval()
    assert model.netslim_recipe["factory"] == {
        "kind": "module",
        "module": "pkg_usermodels.nets",
        "function": "build",
    }
    x = torch.randn(2, 3, 16, 16)
    netslim.save(model, tmp_path / "m.pt")
    again = netslim.load(tmp_path / "m.pt")
    torch.testing.assert_close(again(x), model(x))
    sys.modules.pop("pkg_usermodels.nets", None)
    sys.modules.pop("pkg_usermodels", None)


def test_slimmed_file_model_reloads_and_missing_file_is_explained(net_file, tmp_path) -> None:
    model = resolve(f"{net_file}:build", num_classes=10, in_channels=1, width=8).eval()
    with torch.no_grad():
        model[1].weight[:3] = 0.01
    x = torch.randn(2, 1, 28, 28)
    small = netslim.slim(model, x, ratio=0.25).model.eval()
    path = netslim.save(small, tmp_path / "small.pt")
    loaded = netslim.load(path)
    torch.testing.assert_close(loaded(x), small(x))
    assert loaded[0].out_channels < 8

    net_file.write_text(NET + "\n# edited\n")
    with pytest.warns(UserWarning, match="changed since"):
        netslim.load(path)
    net_file.unlink()
    with pytest.raises(NetslimError, match=r"put .*mynet\.py back.*model="):
        netslim.load(path)
    # the escape hatch the message names: pass the unpruned architecture yourself
    sys.path.insert(0, str(tmp_path))
    try:
        torch.testing.assert_close(netslim.load(path, model=resolve_fresh(tmp_path)).eval()(x), small(x))
    finally:
        sys.path.remove(str(tmp_path))


def resolve_fresh(tmp_path: Path) -> torch.nn.Module:
    """The same architecture from a copy of the file under another name."""
    copy = tmp_path / "copy_of_net.py"
    copy.write_text(NET)
    return resolve(f"{copy}:build", num_classes=10, in_channels=1, width=8)


def test_cli_slim_with_a_user_file_end_to_end(net_file, tmp_path, capsys) -> None:
    data = write_tiny_mnist(tmp_path / "data", n_train=160, n_test=32)
    common = [
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        str(data),
        "--val-size",
        "32",
        "--batch-size",
        "32",
        "--no-progress",
        "--device",
        "cpu",
    ]
    run = tmp_path / "run"
    code = main(
        [
            "slim",
            "--model",
            f"{net_file}:build",
            "--model-kwargs",
            '{"width": 6}',
            *common,
            "--epochs",
            "1",
            "--max-batches",
            "2",
            "--ratio",
            "0.3",
            "--finetune-epochs",
            "1",
            "--no-latency",
            "--no-plots",
            "--no-plain-cut",
            "--run-dir",
            str(run),
        ]
    )
    assert code == 0, capsys.readouterr().err
    recipe = read_checkpoint(run / "finetuned.pt").recipe
    assert recipe["factory"]["function"] == "build" and recipe["kwargs"]["width"] == 6
    assert recipe["kwargs"]["in_channels"] == 1 and recipe["input_shape"] == [1, 28, 28]
    final = netslim.load(run / "finetuned.pt")
    assert final[0].out_channels < 6 or final[4].out_channels < 12
    capsys.readouterr()
    # eval and prune rebuild the factory model from the checkpoint; prune traces with the recorded shape
    assert main(["eval", str(run / "finetuned.pt"), *common[:6]]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["prune", str(run / "sparse.pt"), "--ratio", "0.3", "-o", str(tmp_path / "p.pt")]) == 0
    assert (
        json.loads(json.dumps(read_checkpoint(tmp_path / "p.pt").recipe))
        == read_checkpoint(run / "sparse.pt").recipe
    )


def test_cli_rejects_a_bad_spec_in_one_line(tmp_path, capsys) -> None:
    code = main(["train", "--model", f"{tmp_path / 'nope.py'}:build", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "does not exist" in err


def test_a_recorded_file_runs_only_when_present_and_not_when_a_model_is_passed(tmp_path) -> None:
    marker = tmp_path / "ran.txt"
    src = tmp_path / "side_effect.py"
    src.write_text(NET + f"\nopen({str(marker)!r}, 'a').write('x')\n")
    model = resolve(f"{src}:build", num_classes=3, in_channels=1, width=4)
    path = netslim.save(model, tmp_path / "m.pt")
    assert marker.read_text() == "x"
    marker.unlink()
    # with the architecture passed in, the recorded factory file is not touched
    netslim.load(path, model=resolve_fresh_small(tmp_path))
    assert not marker.exists()
    src.unlink()
    with pytest.raises(NetslimError, match="missing"):
        netslim.load(path)
    assert not marker.exists()


def resolve_fresh_small(tmp_path: Path) -> torch.nn.Module:
    copy = tmp_path / "plain_copy.py"
    copy.write_text(NET)
    return resolve(f"{copy}:build", num_classes=3, in_channels=1, width=4)


def test_input_shape_fills_the_input_and_is_recorded(net_file) -> None:
    model = resolve(f"{net_file}:build", input_shape=(3, 40, 40), width=4)
    assert model[0].in_channels == 3 and model.netslim_recipe["input_shape"] == [3, 40, 40]
    from netslim.measurement.resolve import default_input_size

    assert default_input_size(model) == (3, 40, 40)
    with pytest.raises(NetslimError, match="--input-shape has 3 channels but the data has 1"):
        resolve(f"{net_file}:build", in_channels=1, input_shape=(3, 40, 40))
