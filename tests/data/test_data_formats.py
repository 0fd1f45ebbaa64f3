"""Every on-disk format read back exactly; damaged files raise CorruptFileError; pickles cannot run code."""

from __future__ import annotations

import gzip
import importlib
import os
import pickle

import numpy as np
import pytest
import torch

from helpers import (
    cifar_bin_bytes,
    idx_bytes,
    rng_images,
    write_cifar10_bin,
    write_cifar_py,
    write_idx_dataset,
)
from netslim.data import load_dataset
from netslim.data.formats.cifar import read_cifar_bin, read_cifar_py
from netslim.data.formats.idx import read_idx, read_idx_pair
from netslim.data.safe_pickle import safe_loads
from netslim.errors import CorruptFileError


@pytest.fixture(autouse=True)
def _isolated_search(tmp_path, monkeypatch):
    """No test sees the real ~/.cache, $NETSLIM_DATA or /usr/share/datasets."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NETSLIM_DATA", raising=False)
    monkeypatch.setattr(importlib.import_module("netslim.data.locate"), "SYSTEM_DIR", tmp_path / "system")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    written = write_idx_dataset(tmp_path / "mnist", gz=gz)
    for split in ("train", "test"):
        ds = load_dataset("mnist", split, data_dir=tmp_path)
        images, labels = written[split]
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(images), 1, 28, 28)
        assert ds.labels.dtype == torch.int64
        assert np.array_equal(ds.images[:, 0].numpy(), images)
        assert np.array_equal(ds.labels.numpy(), labels)
    assert ds.class_names == [str(i) for i in range(10)]


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\x01\x02\x08\x03" + bytes(20))
    with pytest.raises(CorruptFileError, match="bad IDX magic"):
        read_idx(path)


@pytest.mark.parametrize("cut", [1, 100])
def test_idx_truncated_raw_and_gz(tmp_path, cut):
    data = idx_bytes(rng_images(5, (28, 28)))
    raw = tmp_path / "raw"
    raw.write_bytes(data[:-cut])
    with pytest.raises(CorruptFileError, match="size mismatch with header") as info:
        read_idx(raw)
    assert "raw" in str(info.value)
    gz = tmp_path / "cut.gz"
    gz.write_bytes(gzip.compress(data)[: -cut - 8])
    with pytest.raises(CorruptFileError, match=r"cut\.gz"):
        read_idx(gz)


def test_idx_label_checks(tmp_path):
    images = tmp_path / "i"
    images.write_bytes(idx_bytes(rng_images(4, (28, 28))))
    labels = tmp_path / "l"
    labels.write_bytes(idx_bytes(np.array([0, 1, 2], dtype=np.uint8)))
    with pytest.raises(CorruptFileError, match="label/image count mismatch"):
        read_idx_pair(images, labels, 10)
    labels.write_bytes(idx_bytes(np.array([0, 1, 2, 12], dtype=np.uint8)))
    with pytest.raises(CorruptFileError, match="label out of range"):
        read_idx_pair(images, labels, 10)


def test_cifar10_bin_round_trip(tmp_path):
    x, y = write_cifar10_bin(tmp_path / "cifar10" / "cifar-10-batches-bin")
    ds = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert ds.images.shape == (20, 3, 32, 32)
    assert np.array_equal(ds.images.numpy(), x) and np.array_equal(ds.labels.numpy(), y)
    assert ds.class_names[0] == "airplane" and len(load_dataset("cifar10", "test", data_dir=tmp_path)) == 4


def test_cifar100_bin_uses_fine_labels(tmp_path):
    d = tmp_path / "cifar-100-binary"
    d.mkdir()
    x = rng_images(6, (3, 32, 32))
    fine = np.array([0, 99, 50, 7, 8, 9])
    coarse = np.array([0, 19, 10, 1, 2, 3])
    (d / "train.bin").write_bytes(cifar_bin_bytes(x, fine, coarse))
    (d / "test.bin").write_bytes(cifar_bin_bytes(x[:2], fine[:2], coarse[:2]))
    (d / "fine_label_names.txt").write_text("\n".join(f"class{i}" for i in range(100)) + "\n")
    ds = load_dataset("cifar100", "train", data_dir=tmp_path)
    assert np.array_equal(ds.labels.numpy(), fine) and np.array_equal(ds.images.numpy(), x)
    assert ds.class_names[99] == "class99"
    (d / "train.bin").write_bytes(cifar_bin_bytes(x, fine, np.array([0, 25, 0, 0, 0, 0])))
    with pytest.raises(CorruptFileError, match="coarse labels"):
        load_dataset("cifar100", "train", data_dir=tmp_path)


def test_cifar_bin_corrupt(tmp_path):
    x = rng_images(3, (3, 32, 32))
    path = tmp_path / "b.bin"
    path.write_bytes(cifar_bin_bytes(x, np.array([1, 2, 3]))[:-10])
    with pytest.raises(CorruptFileError, match="not a multiple"):
        read_cifar_bin([path], 10)
    path.write_bytes(cifar_bin_bytes(x, np.array([1, 2, 10])))
    with pytest.raises(CorruptFileError, match="label out of range"):
        read_cifar_bin([path], 10)


def test_cifar_python_pickles(tmp_path):
    d = tmp_path / "cifar10" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    xs = []
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x = rng_images(3, (3, 32, 32), seed=i)
        write_cifar_py(d / name, x, [i % 10, (i + 1) % 10, (i + 2) % 10])
        xs.append(x)
    (d / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": [c.encode() for c in "abcdefghij"]}, protocol=2)
    )
    ds = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert np.array_equal(ds.images.numpy(), np.concatenate(xs[:5]))
    assert ds.labels.tolist()[:3] == [0, 1, 2] and ds.class_names[:2] == ["a", "b"]
    # CIFAR-100 python version keys its labels "fine_labels"
    write_cifar_py(tmp_path / "train100", xs[0], [5, 99, 0], label_key="fine_labels")
    _, y = read_cifar_py([tmp_path / "train100"], 100)
    assert y.tolist() == [5, 99, 0]
    write_cifar_py(tmp_path / "short", xs[0], [1, 2])
    with pytest.raises(CorruptFileError, match="label/image count mismatch"):
        read_cifar_py([tmp_path / "short"], 10)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = pickle.dumps({"data": _Evil()}, protocol=2)
    assert b"system" in payload
    with pytest.raises(CorruptFileError, match="not allowed"):
        safe_loads(payload, "evil")
    assert not (tmp_path / "PWNED").exists()
    # a bytes payload decoded with anything but latin1 is refused too
    sneaky = pickle.dumps(b"x", protocol=2).replace(b"latin1", b"rot_13")
    with pytest.raises(CorruptFileError):
        safe_loads(sneaky, "sneaky")
    with pytest.raises(CorruptFileError, match="damaged or truncated"):
        safe_loads(pickle.dumps({"a": [1, 2, 3]}, protocol=2)[:-3], "cut")


def test_svhn_mat(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    d = tmp_path / "svhn"
    d.mkdir()
    x = rng_images(5, (32, 32, 3)).transpose(1, 2, 3, 0)  # (H, W, C, N) as in the .mat files
    y = np.array([[10], [1], [2], [9], [10]], dtype=np.uint8)
    scipy_io.savemat(d / "train_32x32.mat", {"X": x, "y": y})
    scipy_io.savemat(d / "test_32x32.mat", {"X": x[..., :2], "y": y[:2]})
    ds = load_dataset("svhn", "train", data_dir=tmp_path)
    assert ds.labels.tolist() == [0, 1, 2, 9, 0]
    assert np.array_equal(ds.images.numpy(), x.transpose(3, 2, 0, 1))
    scipy_io.savemat(d / "train_32x32.mat", {"X": x, "y": np.array([[1], [2], [11], [3], [4]])})
    with pytest.raises(CorruptFileError, match="label out of range"):
        load_dataset("svhn", "train", data_dir=tmp_path)
    (d / "train_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match=r"train_32x32\.mat"):
        load_dataset("svhn", "train", data_dir=tmp_path)


def test_image_folder(tmp_path):
    from PIL import Image

    root = tmp_path / "pets"
    expected = {}
    for label, cls in enumerate(["cat", "dog"]):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            arr = rng_images(1, (12, 10, 3), seed=10 * label + i)[0]
            Image.fromarray(arr).save(root / cls / f"{i}.png")
            expected[(label, i)] = arr
    # one odd-sized image is resized to the common size
    Image.fromarray(rng_images(1, (20, 20, 3))[0]).save(root / "dog" / "big.png")
    train = load_dataset(f"folder:{root}", "train")
    test = load_dataset(f"folder:{root}", "test")
    assert train.class_names == ["cat", "dog"]
    assert train.images.shape[1:] == (3, 12, 10)
    assert len(train) + len(test) == 11 and len(test) == 2
    both = torch.cat([train.images, test.images]).permute(0, 2, 3, 1).numpy()
    for arr in expected.values():  # every PNG decoded exactly
        assert any(np.array_equal(arr, b) for b in both)
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CorruptFileError, match=r"broken\.png"):
        load_dataset(f"folder:{root}", "train")


def test_image_folder_with_split_dirs_grey(tmp_path):
    from PIL import Image

    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng_images(1, (8, 8))[0]).save(tmp_path / split / cls / f"{i}.png")
    ds = load_dataset("folder", "test", data_dir=tmp_path)
    assert ds.images.shape == (4, 1, 8, 8) and ds.labels.tolist() == [0, 0, 1, 1]
