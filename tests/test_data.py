"""Data: checksums, torchvision layouts, the real loaders on synthetic files, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from softlib import data
from softlib.validate import CorruptEntryError, MissingDataError, SoftlibError


def test_mnist_present_verified_and_full_size():
    data.verify("mnist")  # raises on any MD5 mismatch
    x, y = data.load_split("mnist", train=True)
    xt, yt = data.load_split("mnist", train=False)
    assert x.shape == (60_000, 1, 28, 28) and xt.shape == (10_000, 1, 28, 28)
    assert x.dtype == torch.float32 and float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert sorted(torch.unique(y).tolist()) == list(range(10))
    assert torch.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_fashion_present_and_balanced():
    data.verify("fashion_mnist")
    x, y = data.load_split("fashion_mnist", train=True)
    assert x.shape == (60_000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [6000] * 10


def test_torchvision_reads_our_layout():
    """The data root is in torchvision's own layout: its dataset class works with download=False."""
    ds = torchvision.datasets.MNIST(str(data.data_root()), train=False, download=False)
    x, _ = data.load_split("mnist", train=False)
    img, label = ds[0]
    assert np.array_equal(np.asarray(img, dtype=np.float32) / 255.0, x[0, 0].numpy())
    fds = torchvision.datasets.FashionMNIST(str(data.data_root()), train=True, download=False)
    assert len(fds) == 60_000


def test_synthetic_idx_roundtrip_and_checksum_error(tmp_path):
    rng = np.random.default_rng(0)
    folder = data.dataset_dir("mnist", tmp_path)
    for prefix, n in (("train", 20), ("t10k", 7)):
        data.write_mnist_idx(folder, rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n), prefix=prefix)
    x, y = data.load_split("mnist", train=False, root=tmp_path, check=False)
    assert x.shape == (7, 1, 28, 28) and y.shape == (7,)
    with pytest.raises(CorruptEntryError, match="MD5"):
        data.verify("mnist", tmp_path)


def test_truncated_idx_is_refused(tmp_path):
    folder = data.dataset_dir("mnist", tmp_path)
    for prefix in ("train", "t10k"):
        data.write_mnist_idx(folder, np.zeros((5, 28, 28)), np.zeros(5), prefix=prefix)
    p = folder / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(CorruptEntryError, match="truncated"):
        data.load_split("mnist", train=True, root=tmp_path, check=False)


def test_cifar10_loader_on_synthetic_batches(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 60)
    data.write_cifar10_batches(tmp_path, x, y)
    assert data.available("cifar10", tmp_path)
    xtr, ytr = data.load_split("cifar10", train=True, root=tmp_path, check=False)
    xte, yte = data.load_split("cifar10", train=False, root=tmp_path, check=False)
    assert xtr.shape == (50, 3, 32, 32) and xte.shape == (10, 3, 32, 32)
    # row-major RGB planes, as the real files: pixel (0, 0) of image 0 keeps its colour
    assert np.allclose(xtr[0, :, 0, 0].numpy() * 255, x[0, 0, 0])
    assert ytr.tolist() == y[:50].tolist()
    with pytest.raises(CorruptEntryError, match="MD5"):
        data.verify("cifar10", tmp_path)  # synthetic files are not the real CIFAR-10


def test_cifar10_malicious_pickle_refused(tmp_path):
    import pickle

    data.write_cifar10_batches(tmp_path, np.zeros((12, 32, 32, 3), np.uint8), np.zeros(12, int))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(CorruptEntryError, match="refusing to unpickle builtins.print"):
        data.load_split("cifar10", train=False, root=tmp_path, check=False)


def test_missing_cifar_says_where(tmp_path):
    with pytest.raises(MissingDataError) as err:
        data.load_split("cifar10", train=True, root=tmp_path)
    assert "cifar-10-batches-py" in str(err.value) and "data_batch_1" in str(err.value)
    with pytest.raises(MissingDataError):
        data.fetch("cifar10", tmp_path)


def test_bad_names_and_arguments():
    with pytest.raises(SoftlibError, match="unknown data set 'svhn'; allowed: 'mnist'"):
        data.load_split("svhn", train=True)
    with pytest.raises(SoftlibError, match="train must be True or False"):
        data.load_split("mnist", train="yes")


def test_fetch_into_unwritable_root(tmp_path):
    """A data root that cannot be created (below a plain file: fails for root too)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SoftlibError, match="cannot create data root .* SOFTLIB_DATA"):
        data.fetch("mnist", blocker / "root", try_torchvision=False)


def test_status_command(capsys):
    assert data.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "mnist" in out and "ok (MD5 verified)" in out and "cifar10" in out
