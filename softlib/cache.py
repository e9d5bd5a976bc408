"""A content-addressed cache for trained models and generated sets.

An entry is two files under ``<cache root>/<kind>/``: the payload
(``<key>.safetensors`` for weights, ``<key>.npz`` for arrays) and a JSON sidecar
``<key>.json`` written *last*, holding the payload's SHA-256, the spec that
produced it and facts about the run. The key is a hash of the spec: everything
that determines the payload (architecture, data, loss, hyper-parameters, seed,
the code version of the producing module).

- Writes are atomic (temp file in the same folder, fsync, ``os.replace``), so an
  interrupted run leaves at most a stray ``*.tmp`` file, never an entry.
- A sidecar is the commit marker: no sidecar, no entry.
- A payload whose hash does not match its sidecar is reported, removed and
  rebuilt; it is never loaded.
- Loading never unpickles: safetensors for weights, ``numpy.load(allow_pickle=False)``
  for arrays.
- A file lock per key makes two processes building the same entry cooperate:
  one builds, the other waits and then reuses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from .validate import CorruptEntryError, SoftlibError

#: Bump when the cache layout itself changes.
CACHE_FORMAT = 1


def user_dir(env_var: str, name: str) -> Path:
    """``$env_var`` if set, else ``$XDG_CACHE_HOME/<name>`` (``~/.cache/<name>``)."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / name


def cache_root() -> Path:
    """The cache folder: ``$SOFTLIB_CACHE``, else ``$XDG_CACHE_HOME/softlib`` (``~/.cache/softlib``)."""
    return user_dir("SOFTLIB_CACHE", "softlib")


def spec_key(spec: dict[str, Any]) -> str:
    """A stable 20-hex-digit key for ``spec`` (sorted-key JSON, SHA-256)."""
    blob = json.dumps({"cache_format": CACHE_FORMAT, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _ensure_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SoftlibError(
            f"cannot create cache folder {folder}: {exc.strerror}. "
            "Set SOFTLIB_CACHE to a writable folder."
        ) from exc
    if not os.access(folder, os.W_OK):
        raise SoftlibError(
            f"cache folder {folder} is not writable. Set SOFTLIB_CACHE to a writable folder."
        )


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, fsync it, rename it over ``path``.

    On any failure (disk full, interrupt) the temp file is removed and ``path``
    is untouched.
    """
    path = Path(path)
    _ensure_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SoftlibError(f"could not write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str)))


@contextlib.contextmanager
def entry_lock(kind: str, key: str, timeout: float = 6 * 3600) -> Iterator[None]:
    """Hold the per-entry file lock (``<kind>/<key>.lock``)."""
    folder = cache_root() / kind
    _ensure_dir(folder)
    lock = FileLock(str(folder / f"{key}.lock"), timeout=timeout)
    try:
        with lock:
            yield
    except Timeout as exc:  # pragma: no cover - only with a stuck peer
        raise SoftlibError(f"timed out waiting for another process building cache entry {kind}/{key}") from exc


class Entry:
    """Paths of one cache entry (payload + sidecar)."""

    def __init__(self, kind: str, key: str, suffix: str) -> None:
        self.kind, self.key = kind, key
        folder = cache_root() / kind
        self.payload = folder / f"{key}{suffix}"
        self.sidecar = folder / f"{key}.json"

    def read_valid(self) -> dict[str, Any] | None:
        """The sidecar if the entry is complete and intact; None if absent.

        A damaged entry (unreadable sidecar, missing payload, hash mismatch) is
        reported with a warning and deleted so that it is rebuilt.
        """
        if not self.sidecar.exists():
            return None
        try:
            meta = json.loads(self.sidecar.read_text())
            expected = meta["sha256"]
            if not self.payload.exists():
                raise CorruptEntryError(f"payload {self.payload.name} is missing")
            actual = sha256_file(self.payload)
            if actual != expected:
                raise CorruptEntryError(
                    f"payload {self.payload.name} has SHA-256 {actual[:12]}..., sidecar says {expected[:12]}..."
                )
            return meta
        except (CorruptEntryError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(
                f"cache entry {self.kind}/{self.key} is corrupt ({exc}); removing it and rebuilding",
                stacklevel=3,
            )
            self.remove()
            return None

    def remove(self) -> None:
        """Delete sidecar first (so the entry stops existing), then the payload."""
        self.sidecar.unlink(missing_ok=True)
        self.payload.unlink(missing_ok=True)

    def publish(self, write_payload: Callable[[Path], None], meta: dict[str, Any]) -> dict[str, Any]:
        """Write the payload atomically, then the sidecar (the commit marker)."""
        self.sidecar.unlink(missing_ok=True)
        atomic_write(self.payload, write_payload)
        meta = {**meta, "sha256": sha256_file(self.payload), "key": self.key, "kind": self.kind}
        atomic_write_json(self.sidecar, meta)
        return meta


def _save_npz(arrays: dict[str, np.ndarray]) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})

    return write


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Load an ``.npz`` without pickle (object arrays are refused)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        raise CorruptEntryError(f"{path} holds pickled objects and is refused: {exc}") from exc


def cached_arrays(
    kind: str,
    spec: dict[str, Any],
    build: Callable[[], tuple[dict[str, np.ndarray], dict[str, Any]]],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Return ``(arrays, meta)`` for ``spec``, building and caching them on a miss.

    ``build`` returns the arrays and extra metadata (success rate, wall time...).
    """
    key = spec_key({"kind": kind, **spec})
    entry = Entry(kind, key, ".npz")
    meta = entry.read_valid()
    if meta is None:
        with entry_lock(kind, key):
            meta = entry.read_valid()  # a peer may have built it while we waited
            if meta is None:
                arrays, extra = build()
                meta = entry.publish(_save_npz(arrays), {"spec": spec, **extra})
                return arrays, meta
    try:
        return load_npz(entry.payload), meta
    except CorruptEntryError:
        entry.remove()
        raise
