"""Search order, downloads (offline), splits, the TensorLoader (sharding, determinism, augmentation), CLI."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import idx_bytes, rng_images, write_cifar10_bin, write_idx_dataset
from netslim.cli import main as cli_main
from netslim.data import TensorLoader, get_loaders, list_datasets, load_dataset, locate, split_indices
from netslim.data.augment import AugmentParams, augment
from netslim.data.registry import AugmentSpec, Resource, get_spec
from netslim.errors import CorruptFileError, DataNotFoundError, NetslimError, UnknownNameError

LOCATE = importlib.import_module("netslim.data.locate")
DOWNLOAD = importlib.import_module("netslim.data.download")
REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Search roots pointing into tmp_path only; returns (home cache, system dir)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NETSLIM_DATA", raising=False)
    monkeypatch.setattr(LOCATE, "SYSTEM_DIR", tmp_path / "system")
    return tmp_path / "home" / ".cache" / "netslim", tmp_path / "system"


def test_search_order(tmp_path, monkeypatch, isolated):
    cache, system = isolated
    write_idx_dataset(system / "kmnist", seed=1)
    assert locate("kmnist") == system / "kmnist"
    write_idx_dataset(cache / "kmnist", seed=2)
    assert locate("kmnist") == cache / "kmnist"
    write_idx_dataset(cache, seed=2)  # loose files in a shared root are ambiguous across the MNISTs: ignored
    assert locate("mnist") is None
    monkeypatch.setenv("NETSLIM_DATA", str(tmp_path / "env"))
    write_idx_dataset(tmp_path / "env" / "kmnist" / "KMNIST" / "raw", seed=3)
    assert locate("kmnist") == tmp_path / "env" / "kmnist" / "KMNIST" / "raw"
    write_idx_dataset(tmp_path / "arg" / "kmnist", seed=4)
    assert locate("kmnist", data_dir=tmp_path / "arg") == tmp_path / "arg" / "kmnist"
    write_idx_dataset(tmp_path / "loose", seed=5)  # an explicit data_dir may hold the files directly
    assert locate("kmnist", data_dir=tmp_path / "loose") == tmp_path / "loose"


def test_missing_data_message_names_files(tmp_path, isolated):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("fashion-mnist", "train", data_dir=tmp_path / "mine")
    msg = str(info.value)  # one line: the files missing from the one folder searched, and how to fetch them
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg and "\n" not in msg
    assert str(tmp_path / "mine") in msg and "netslim datasets fashion-mnist --download --data-dir" in msg
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("fashion-mnist", "train")
    assert "amazonaws.com/train-images-idx3-ubyte.gz" in str(info.value)
    with pytest.raises(UnknownNameError, match="cifar10"):
        load_dataset("imagenet-1k")
    assert set(list_datasets()) == {"mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "svhn"}


def test_download_verifies_checksum(tmp_path, isolated, monkeypatch):
    source = tmp_path / "official.gz"
    source.write_bytes(gzip.compress(b"payload"))
    fetched = []

    def fake_fetch(url: str, dest: Path) -> None:
        fetched.append(url)
        dest.write_bytes(source.read_bytes())

    monkeypatch.setattr(DOWNLOAD, "_fetch", fake_fetch)
    good = Resource("f.gz", ("http://a/f.gz", "http://b/f.gz"), DOWNLOAD.file_md5(source))
    path = DOWNLOAD.fetch_verified(good, tmp_path / "dl")
    assert path.read_bytes() == source.read_bytes() and fetched == ["http://a/f.gz"]
    bad = Resource("g.gz", ("http://a/g.gz", "http://b/g.gz"), "0" * 32)
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        DOWNLOAD.fetch_verified(bad, tmp_path / "dl")
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["f.gz"]  # nothing half-written left
    with pytest.raises(CorruptFileError):
        DOWNLOAD.verify(source, "0" * 32)


def test_download_then_load(tmp_path, isolated, monkeypatch):
    spec = get_spec("mnist")
    files = {}
    for prefix, n in (("train", 30), ("t10k", 10)):
        files[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(idx_bytes(rng_images(n, (28, 28))))
        files[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(np.zeros(n, dtype=np.uint8)))
    resources = tuple(
        Resource(name, (f"http://mirror/{name}",), hashlib.md5(data).hexdigest())
        for name, data in files.items()
    )
    patched = dataclasses.replace(spec, resources=resources)
    monkeypatch.setattr(importlib.import_module("netslim.data.dataset"), "get_spec", lambda name: patched)
    monkeypatch.setattr(DOWNLOAD, "_fetch", lambda url, dest: dest.write_bytes(files[url.rsplit("/", 1)[1]]))
    ds = load_dataset("mnist", "train", data_dir=tmp_path / "d", download=True)
    assert len(ds) == 30 and (tmp_path / "d" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_val_split_deterministic_and_disjoint():
    a_keep, a_val = split_indices(100, 10, seed=3)
    _, b_val = split_indices(100, 10, seed=3)
    assert np.array_equal(a_val, b_val) and len(a_val) == 10
    assert not set(a_keep) & set(a_val) and len(a_keep) + len(a_val) == 100
    assert not np.array_equal(split_indices(100, 10, seed=4)[1], a_val)
    assert len(split_indices(100, 0.25, seed=0)[1]) == 25 and len(split_indices(100, 0, seed=0)[1]) == 0
    with pytest.raises(NetslimError):
        split_indices(100, 100, seed=0)


def _loader(n=40, **kw):
    images = torch.from_numpy(rng_images(n, (3, 8, 8)))
    labels = torch.arange(n)
    kw.setdefault("mean", (0.5, 0.5, 0.5))
    kw.setdefault("std", (0.25, 0.25, 0.25))
    return TensorLoader(images, labels, **kw)


def test_sharding_two_ranks_equal_one():
    spec = AugmentSpec(pad=2, flip=True)
    one = _loader(batch_size=8, shuffle=True, drop_last=True, augment=spec, seed=5)
    ranks = [
        _loader(batch_size=8, shuffle=True, drop_last=True, augment=spec, seed=5, rank=r, world_size=2)
        for r in (0, 1)
    ]
    for loader in (one, *ranks):
        loader.set_epoch(2)
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 5
    for (x, y), (x0, y0), (x1, y1) in zip(one, *ranks):
        assert x0.shape[0] == x1.shape[0] == 4
        assert torch.equal(torch.stack([y0, y1], 1).reshape(-1), y)
        assert torch.equal(torch.stack([x0, x1], 1).reshape(x.shape), x)
    with pytest.raises(NetslimError, match="multiple of world_size"):
        _loader(batch_size=7, drop_last=True, world_size=2)


def test_epoch_determinism_independent_of_global_rng():
    loader = _loader(batch_size=8, shuffle=True, drop_last=True, augment=AugmentSpec(2, True), seed=1)
    loader.set_epoch(3)
    first = [(x.clone(), y.clone()) for x, y in loader]
    torch.manual_seed(12345)  # global RNG state must not matter
    np.random.seed(0)
    fresh = _loader(batch_size=8, shuffle=True, drop_last=True, augment=AugmentSpec(2, True), seed=1)
    fresh.set_epoch(3)
    again = list(fresh)
    assert len(again) == len(first) == 5
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    loader.set_epoch(4)
    assert not torch.equal(next(iter(loader))[1], first[0][1])


def test_without_augment_gives_the_same_batches_unaugmented():
    spec = AugmentSpec(pad=2, flip=True)
    loader = _loader(batch_size=8, shuffle=True, drop_last=True, augment=spec, seed=3)
    plain = loader.without_augment()
    reference = _loader(batch_size=8, shuffle=True, drop_last=True, seed=3)
    for each in (loader, plain, reference):
        each.set_epoch(2)
    pairs = list(zip(plain, reference, strict=True))
    assert len(pairs) == 5
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
    assert loader.augment == spec and plain.images is loader.images  # the original still augments
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(loader, plain))


def test_eval_loader_order_len_and_normalization():
    loader = _loader(n=10, batch_size=4, max_batches=None)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([y for _, y in batches]), torch.arange(10))
    x = torch.cat([b[0] for b in batches])
    assert torch.allclose(x, (loader.images.float() / 255 - 0.5) / 0.25, atol=1e-5)
    assert len(_loader(n=10, batch_size=4, max_batches=2)) == 2


def test_augmentation_moves_pixels():
    x = torch.from_numpy(rng_images(4, (1, 6, 6)))
    spec = AugmentSpec(pad=2, flip=True)
    zero = torch.full((4,), 2)
    same = augment(x, spec, AugmentParams(zero, zero, torch.zeros(4, dtype=torch.bool)))
    assert torch.equal(same, x)  # centred crop, no flip = identity
    flipped = augment(x, spec, AugmentParams(zero, zero, torch.ones(4, dtype=torch.bool)))
    assert torch.equal(flipped, x.flip(3))
    top = torch.zeros(4, dtype=torch.long)
    shifted = augment(x, spec, AugmentParams(top, zero, torch.zeros(4, dtype=torch.bool)))
    assert shifted.shape == x.shape
    assert torch.equal(shifted[:, :, 2:], x[:, :, :4]) and shifted[:, :, :2].eq(0).all()


def test_get_loaders_on_tiny_idx(tmp_path, isolated):
    write_idx_dataset(tmp_path / "fashion-mnist", n_train=60, n_test=20)
    bundle = get_loaders(
        "fashion-mnist", data_dir=tmp_path, batch_size=8, eval_batch_size=16, val_size=10, limit=32
    )
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (10, 1, 28)
    assert bundle.train.num_samples == 32 and bundle.val.num_samples == 10 and bundle.test.num_samples == 20
    x, y = next(iter(bundle.train))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert bundle.train.augment == AugmentSpec(pad=2, flip=True)
    assert get_loaders("fashion-mnist", data_dir=tmp_path, batch_size=8, val_size=0).val is None
    with pytest.raises(NetslimError, match="batch size"):
        get_loaders("fashion-mnist", data_dir=tmp_path, batch_size=64, val_size=10)


def test_cli_datasets(tmp_path, isolated, capsys):
    write_idx_dataset(tmp_path / "kmnist")
    assert cli_main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"found    {tmp_path / 'kmnist'}" in out and "train_32x32.mat" in out
    assert cli_main(["datasets", "svhn", "--data-dir", str(tmp_path)]) == 1


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("NETSLIM_DATA", raising=False)
    train = load_dataset("fashion-mnist", "train", data_dir=REAL_FASHION)
    test = load_dataset("fashion-mnist", "test", data_dir=REAL_FASHION)
    assert train.images.shape == (60000, 1, 28, 28) and len(test) == 10000
    assert sorted(train.labels.unique().tolist()) == list(range(10)) and train.num_classes == 10


def test_download_unpacks_cifar_archive(tmp_path, isolated, monkeypatch):
    import tarfile

    x, _ = write_cifar10_bin(tmp_path / "src" / "cifar-10-batches-bin", per_batch=2)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    spec = dataclasses.replace(
        get_spec("cifar10"),
        resources=(Resource(archive.name, ("http://m/c.tgz",), DOWNLOAD.file_md5(archive), extract=True),),
    )
    monkeypatch.setattr(importlib.import_module("netslim.data.dataset"), "get_spec", lambda name: spec)
    monkeypatch.setattr(DOWNLOAD, "_fetch", lambda url, dest: dest.write_bytes(archive.read_bytes()))
    ds = load_dataset("cifar10", "train", data_dir=tmp_path / "data", download=True)
    assert np.array_equal(ds.images.numpy(), x)
    unpacked = tmp_path / "data" / "cifar10" / "cifar-10-batches-bin"
    assert locate("cifar10", data_dir=tmp_path / "data") == unpacked


def test_get_loaders_on_image_folder(tmp_path, isolated):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng_images(1, (16, 16, 3), seed=i)[0]).save(tmp_path / "imgs" / cls / f"{i}.png")
    bundle = get_loaders(f"folder:{tmp_path / 'imgs'}", batch_size=4, val_size=0.25)
    assert (bundle.num_classes, bundle.in_channels, bundle.image_size) == (2, 3, 16)
    assert bundle.val.num_samples == 4 and bundle.test.num_samples == 4 and bundle.train.num_samples == 12
    x, _ = next(iter(bundle.train))
    assert x.shape == (4, 3, 16, 16) and bundle.class_names == ["a", "b"]
