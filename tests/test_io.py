"""netslim.save / netslim.load: round trips, plans replayed on user classes, corrupt files, safe loading."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils import prune as torch_prune

import netslim
from netslim.errors import CorruptFileError, NetslimError
from netslim.io import VERSION, read_checkpoint
from netslim.models import create
from netslim.weights.masks import attach_mask


class MyNet(nn.Module):
    """A user's own model class (not in the zoo)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 12, 3, padding=1, bias=False),
            nn.BatchNorm2d(12),
            nn.ReLU(),
            nn.Conv2d(12, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Spread BN scales and running statistics so a wrong load would change the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.05)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def _zoo() -> nn.Module:
    torch.manual_seed(0)
    return _randomize(create("vgg11", num_classes=10, in_channels=1, input_size=28, width=0.125))


X = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(3))


def test_zoo_model_round_trip(tmp_path) -> None:
    model = _zoo()
    path = netslim.save(model, tmp_path / "m.pt", extra={"note": "hello", "acc": 0.5})
    loaded = netslim.load(path)
    assert type(loaded) is type(model) and not loaded.training
    torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=0)
    meta = read_checkpoint(path).meta
    assert meta["recipe"] == model.netslim_recipe and meta["extra"] == {"note": "hello", "acc": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"], "no temporary file is left behind"


def test_file_loads_with_weights_only(tmp_path) -> None:
    path = netslim.save(_zoo(), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "netslim" and payload["version"] == VERSION
    assert all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values())


def test_slimmed_zoo_model_round_trip(tmp_path) -> None:
    model = _zoo()
    slim = netslim.slim(model, X[:1], 0.5).model.eval()
    assert sum(p.numel() for p in slim.parameters()) < sum(p.numel() for p in model.parameters())
    loaded = netslim.load(netslim.save(slim, tmp_path / "slim.pt"))
    torch.testing.assert_close(loaded(X), slim(X), rtol=0, atol=0)
    assert len(loaded.netslim_plans) == 1
    # a second cut on the loaded model stacks plans and still round-trips
    twice = netslim.slim(loaded, X[:1], 0.3).model.eval()
    again = netslim.load(netslim.save(twice, tmp_path / "twice.pt"))
    assert len(again.netslim_plans) == 2
    torch.testing.assert_close(again(X), twice(X), rtol=0, atol=0)


def test_user_class_needs_fresh_instance_and_replays_plans(tmp_path) -> None:
    torch.manual_seed(1)
    model = _randomize(MyNet())
    slim = netslim.slim(model, X[:1], 0.4).model.eval()
    path = netslim.save(slim, tmp_path / "mine.pt")
    with pytest.raises(NetslimError, match="model="):
        netslim.load(path)
    loaded = netslim.load(path, model=MyNet())
    torch.testing.assert_close(loaded(X), slim(X), rtol=0, atol=0)
    with pytest.raises(NetslimError, match="do not fit"):
        netslim.load(netslim.save(_randomize(MyNet()), tmp_path / "plain.pt"), model=_zoo())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_raise_corrupt_file_error(tmp_path, damage: str) -> None:
    path = netslim.save(_zoo(), tmp_path / "m.pt")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    else:
        path.write_bytes(b"")
    with pytest.raises(CorruptFileError):
        netslim.load(path)


def test_foreign_and_missing_files(tmp_path) -> None:
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CorruptFileError, match="not a netslim checkpoint"):
        netslim.load(tmp_path / "foreign.pt")
    newer = {"format": "netslim", "version": VERSION + 1, "meta": "{}", "state_dict": {}}
    torch.save(newer, tmp_path / "new.pt")
    with pytest.raises(CorruptFileError, match="newer"):
        netslim.load(tmp_path / "new.pt")
    with pytest.raises(NetslimError, match="does not exist"):
        netslim.load(tmp_path / "missing.pt")


def test_extra_must_be_json(tmp_path) -> None:
    with pytest.raises(NetslimError, match="JSON"):
        netslim.save(_zoo(), tmp_path / "m.pt", extra={"bad": object()})
    assert not (tmp_path / "m.pt").exists()


def test_weight_masks_are_folded(tmp_path) -> None:
    torch.manual_seed(2)
    model = _randomize(MyNet())
    mask = (torch.rand_like(model.head.weight) > 0.5).float()
    attach_mask(model.head, "weight", mask)
    expected = model(X)
    loaded = netslim.load(netslim.save(model, tmp_path / "p.pt"), model=MyNet())
    torch.testing.assert_close(loaded(X), expected, rtol=0, atol=0)
    assert bool((loaded.head.weight[mask == 0] == 0).all())
    # the file holds plain weights; load masks the same tensors again (tests/weights/test_weights_persist.py)
    assert parametrize.is_parametrized(loaded.head) and not parametrize.is_parametrized(loaded.body)
    assert parametrize.is_parametrized(model.head), "saving does not change the caller's model"
    torch.testing.assert_close(model(X), expected, rtol=0, atol=0)


def test_prune_hooks_must_be_removed_first(tmp_path) -> None:
    model = MyNet()
    torch_prune.l1_unstructured(model.head, "weight", amount=0.5)
    with pytest.raises(NetslimError, match="prune"):
        netslim.save(model, tmp_path / "m.pt")
