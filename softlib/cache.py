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
  one builds, the other waits and then reuses it. The holder's PID is written beside
  the lock (``<key>.lock.owner``); a waiter says whom it waits for, and gives up with
  the PID, the lock file and what to do when the holder is stopped (``SIGSTOP``, a
  suspended job) or after ``$SOFTLIB_LOCK_TIMEOUT`` seconds (default 6 h: a paper
  model can train that long).
- Faults survived: a folder where an entry's file or lock should be is removed; a
  corrupt entry in a read-only cache is reported with what to delete; when the disk
  fills while an entry is written, the built payload is kept in a rescue folder
  (``$SOFTLIB_RESCUE``, default ``<tmp>/softlib-rescue-<user>``) and the next run
  restores it from there instead of recomputing it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
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
    """``$env_var`` if set (a relative path is taken from the current folder), else
    ``$XDG_CACHE_HOME/<name>`` (``~/.cache/<name>``); always absolute."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / name


def cache_root() -> Path:
    """The cache folder: ``$SOFTLIB_CACHE``, else ``$XDG_CACHE_HOME/softlib`` (``~/.cache/softlib``)."""
    return user_dir("SOFTLIB_CACHE", "softlib")


def spec_key(spec: dict[str, Any]) -> str:
    """A stable 20-hex-digit key for ``spec`` (sorted-key JSON, SHA-256)."""
    blob = json.dumps({"cache_format": CACHE_FORMAT, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (read in 1 MiB chunks), by any :mod:`hashlib` algorithm."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return file_digest(path, "sha256")


def ensure_dir(folder: Path, what: str = "cache", env_var: str | None = "SOFTLIB_CACHE") -> Path:
    """Create ``folder`` if needed and check it is writable; the error names ``env_var`` to fix it."""
    folder = Path(folder)
    hint = f" Set {env_var} to a writable folder." if env_var else ""
    if folder.exists() and not folder.is_dir():
        raise SoftlibError(f"{what} folder {folder} is a file, not a folder.{hint}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SoftlibError(f"cannot create {what} folder {folder}: {exc.strerror or exc}.{hint}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SoftlibError(f"{what} folder {folder} is not writable.{hint}")
    return folder


def _ensure_dir(folder: Path) -> None:
    ensure_dir(folder, "cache", "SOFTLIB_CACHE")


def clear_planted_dir(path: Path) -> None:
    """A folder where one of our files should be (a mistaken ``mkdir``) is removed, with a warning."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        warnings.warn(f"{path} is a folder where a cache file belongs; removing it", stacklevel=3)
        try:
            shutil.rmtree(path)
        except OSError as exc:
            raise SoftlibError(f"{path} is a folder where a cache file belongs and cannot be removed "
                               f"({exc.strerror or exc}); delete it by hand") from exc


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, fsync it, rename it over ``path``.

    On any failure (disk full, interrupt) the temp file is removed and ``path``
    is untouched.
    """
    path = Path(path)
    ensure_dir(path.parent, "output", None)
    clear_planted_dir(path)
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


def lock_timeout() -> float:
    """``$SOFTLIB_LOCK_TIMEOUT`` seconds (default 6 h): the longest wait for a peer building an entry."""
    from .validate import check_float

    env = os.environ.get("SOFTLIB_LOCK_TIMEOUT")
    if not env:
        return 6 * 3600.0
    try:
        value = float(env)
    except ValueError:
        raise SoftlibError(f"SOFTLIB_LOCK_TIMEOUT must be a number of seconds, got {env!r}") from None
    return check_float("SOFTLIB_LOCK_TIMEOUT", value, low=0.0)


#: A holder seen stopped (SIGSTOP, Ctrl-Z) this long is given up on; a stopped process never finishes.
STOPPED_GRACE_S = 30.0


def _process_state(pid: int) -> str | None:
    """``/proc/<pid>/stat``'s state letter (R, S, D, T, t, Z...), or None when unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return None


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def entry_lock(kind: str, key: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the per-entry file lock (``<kind>/<key>.lock``); the holder's PID goes in ``<key>.lock.owner``.

    A waiter reports once whom it waits for, gives up when the holder has been stopped for
    :data:`STOPPED_GRACE_S` seconds, or after ``timeout`` (``$SOFTLIB_LOCK_TIMEOUT``, 6 h), with
    the holder's PID, the lock file and how to proceed.
    """
    folder = cache_root() / kind
    _ensure_dir(folder)
    path, owner = folder / f"{key}.lock", folder / f"{key}.lock.owner"
    clear_planted_dir(path)
    clear_planted_dir(owner)
    limit = lock_timeout() if timeout is None else float(timeout)
    lock = FileLock(str(path))
    t0 = time.monotonic()
    told = False
    stopped_since: float | None = None
    while True:
        try:
            lock.acquire(timeout=max(0.0, min(1.0, limit - (time.monotonic() - t0))))
            break
        except Timeout:
            pass
        except IsADirectoryError:  # planted meanwhile
            clear_planted_dir(path)
            continue
        waited = time.monotonic() - t0
        info = _read_owner(owner)
        pid = info.get("pid")
        state = _process_state(pid) if isinstance(pid, int) and info.get("host") == socket.gethostname() else None
        who = f"process {pid} on {info.get('host', '?')} (since {info.get('since', '?')})" if pid else "another process"
        if not told:
            print(f"softlib: waiting for {who}, which is building cache entry {kind}/{key} (lock {path})",
                  file=sys.stderr, flush=True)
            told = True
        stopped_since = (stopped_since or time.monotonic()) if state in ("T", "t") else None
        stopped = stopped_since is not None and time.monotonic() - stopped_since >= STOPPED_GRACE_S
        if stopped or waited >= limit:
            why = (f"its holder, {who}, is stopped" if stopped else
                   f"waited {waited:.0f} s (SOFTLIB_LOCK_TIMEOUT) for {who}"
                   + (f", state {state!r}" if state else ""))
            raise SoftlibError(
                f"cache entry {kind}/{key} is locked: {why}; lock file {path}. "
                + (f"Resume it (kill -CONT {pid}) or end it (kill {pid}); " if pid else
                   "Find the process holding it (e.g. `fuser " + str(path) + "`) and resume or end it; ")
                + "the lock is released when its holder exits, so nothing needs deleting. "
                "If it is still working, wait for it or raise SOFTLIB_LOCK_TIMEOUT."
            )
    try:
        try:
            atomic_write_json(owner, {"pid": os.getpid(), "host": socket.gethostname(),
                                      "since": time.strftime("%Y-%m-%dT%H:%M:%S")})
        except SoftlibError:
            pass  # the owner note is a courtesy to waiters; a full disk shows up in the write that matters
        yield
    finally:
        with contextlib.suppress(OSError):
            owner.unlink()
        lock.release()


def rescue_root() -> Path:
    """Where a built entry is kept when the cache cannot take it (disk full): ``$SOFTLIB_RESCUE``."""
    env = os.environ.get("SOFTLIB_RESCUE")
    if env:
        return Path(env).expanduser().absolute()
    user = os.environ.get("USER") or str(os.getuid() if hasattr(os, "getuid") else "user")
    return Path(tempfile.gettempdir()) / f"softlib-rescue-{user}"


class Entry:
    """Paths of one cache entry (payload + sidecar)."""

    def __init__(self, kind: str, key: str, suffix: str) -> None:
        self.kind, self.key = kind, key
        folder = cache_root() / kind
        self.payload = folder / f"{key}{suffix}"
        self.sidecar = folder / f"{key}.json"
        rescue = rescue_root() / kind
        self.rescue_payload, self.rescue_sidecar = rescue / self.payload.name, rescue / self.sidecar.name

    def read_valid(self) -> dict[str, Any] | None:
        """The sidecar if the entry is complete and intact; None if absent.

        A damaged entry (unreadable sidecar, missing payload, hash mismatch) is
        reported with a warning and deleted so that it is rebuilt. An entry kept in
        the rescue folder by an earlier failed write is restored first.
        """
        clear_planted_dir(self.sidecar)
        clear_planted_dir(self.payload)
        if not self.sidecar.exists():
            return self._restore_rescued()
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
        except PermissionError as exc:
            raise SoftlibError(f"cannot read cache entry {self.kind}/{self.key} ({exc.filename}: {exc.strerror}); "
                               "fix its permissions or set SOFTLIB_CACHE to another folder") from exc
        except (CorruptEntryError, ValueError, KeyError, TypeError, OSError) as exc:
            self.remove(because=str(exc))
            warnings.warn(
                f"cache entry {self.kind}/{self.key} is corrupt ({exc}); removed it, rebuilding",
                stacklevel=3,
            )
            return None

    def remove(self, because: str | None = None) -> None:
        """Delete sidecar first (so the entry stops existing), then the payload.

        In a read-only cache a corrupt entry cannot be removed: that is reported with
        the files to delete (it would otherwise fail again on every run).
        """
        try:
            for f in (self.sidecar, self.payload):
                clear_planted_dir(f)
                f.unlink(missing_ok=True)
        except OSError as exc:
            raise SoftlibError(
                f"cache entry {self.kind}/{self.key} is corrupt ({because or 'unusable'}) and cannot be removed: "
                f"{exc.strerror or exc} in {self.sidecar.parent}. Delete {self.sidecar} and {self.payload} "
                "by hand, or set SOFTLIB_CACHE to a writable folder"
            ) from exc

    def publish(self, write_payload: Callable[[Path], None], meta: dict[str, Any]) -> dict[str, Any]:
        """Write the payload atomically, then the sidecar (the commit marker).

        When the cache cannot take it (disk full, folder gone read-only), the payload is
        kept in the rescue folder and the error says so: the next run restores it from
        there (:meth:`read_valid`) instead of rebuilding it.
        """
        try:
            self.sidecar.unlink(missing_ok=True)
            atomic_write(self.payload, write_payload)
            full = {**meta, "sha256": sha256_file(self.payload), "key": self.key, "kind": self.kind}
            atomic_write_json(self.sidecar, full)
            return full
        except (SoftlibError, OSError) as exc:
            with contextlib.suppress(OSError):
                self.sidecar.unlink(missing_ok=True)
                self.payload.unlink(missing_ok=True)
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            reason = getattr(cause, "strerror", None) or str(cause)
            if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
                reason = "no space left on device"
            try:
                atomic_write(self.rescue_payload, write_payload)
                atomic_write_json(self.rescue_sidecar, {**meta, "sha256": sha256_file(self.rescue_payload),
                                                        "key": self.key, "kind": self.kind})
            except (SoftlibError, OSError) as exc2:
                raise SoftlibError(
                    f"could not write cache entry {self.kind}/{self.key} to {self.payload.parent} ({reason}), "
                    f"nor keep it in the rescue folder {self.rescue_payload.parent} ({exc2}); the result is lost. "
                    "Free some space (or set SOFTLIB_CACHE / SOFTLIB_RESCUE to a folder with room) and run again"
                ) from exc
            raise SoftlibError(
                f"could not write cache entry {self.kind}/{self.key} to {self.payload.parent} ({reason}). "
                f"The result was kept in {self.rescue_payload}: free some space in {self.payload.parent} "
                "(or set SOFTLIB_CACHE to a folder with room) and run again; it is restored from there "
                "without being recomputed"
            ) from exc

    def _restore_rescued(self) -> dict[str, Any] | None:
        """Move an entry kept by a failed :meth:`publish` into the cache (hash-checked); None if there is none."""
        if not (self.rescue_sidecar.is_file() and self.rescue_payload.is_file()):
            return None
        try:
            meta = json.loads(self.rescue_sidecar.read_text())
            if sha256_file(self.rescue_payload) != meta["sha256"]:
                raise CorruptEntryError("hash mismatch")
        except (OSError, ValueError, KeyError, TypeError, CorruptEntryError) as exc:
            warnings.warn(f"rescued entry {self.rescue_payload} is unusable ({exc}); ignoring it", stacklevel=3)
            return None
        src = self.rescue_payload
        self.publish(lambda tmp: shutil.copyfile(src, tmp), {k: v for k, v in meta.items()
                                                            if k not in ("sha256", "key", "kind")})
        for f in (self.rescue_sidecar, self.rescue_payload):
            f.unlink(missing_ok=True)
        warnings.warn(f"restored cache entry {self.kind}/{self.key} from the rescue folder {src.parent}", stacklevel=3)
        return json.loads(self.sidecar.read_text())


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
    except (OSError, EOFError, KeyError) as exc:  # hash matched, content unreadable (e.g. zip damage)
        raise CorruptEntryError(f"{path} could not be read ({exc}); it was removed, run again") from exc


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
    except CorruptEntryError as exc:
        entry.remove(because=str(exc))
        raise
