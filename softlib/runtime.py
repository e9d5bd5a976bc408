"""Where computation runs and how it is seeded.

CUDA is used automatically when present; every run is seeded (python, numpy,
torch) so the smoke and quick profiles give identical numbers twice on a machine.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def _check_device(choice: object, source: str) -> torch.device:
    """A device torch knows and this machine has: ``cpu``, ``cuda`` / ``cuda:N``, ``mps``."""
    from .validate import SoftlibError

    allowed = "'cpu', 'cuda', 'cuda:N' (N < the number of GPUs), 'mps' (Apple GPUs)"
    if isinstance(choice, torch.device):
        choice = str(choice)
    if not isinstance(choice, str):
        raise SoftlibError(f"{source} must be a device name, got {choice!r}; allowed: {allowed}")
    kind, _, index = choice.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise SoftlibError(f"unknown device {choice!r} in {source}; allowed: {allowed}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise SoftlibError(f"device {choice!r} ({source}) requested but CUDA is not available; use 'cpu'")
        if index and int(index) >= torch.cuda.device_count():
            raise SoftlibError(f"device {choice!r} ({source}): this machine has {torch.cuda.device_count()} GPU(s)")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SoftlibError(f"device {choice!r} ({source}) requested but MPS is not available; use 'cpu'")
    return torch.device(choice)


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return ``prefer`` if given, else CUDA when available, else CPU.

    ``SOFTLIB_DEVICE`` in the environment overrides the automatic choice. Either is
    checked (a name torch does not know, or a GPU this machine lacks, is refused here
    rather than deep inside torch).
    """
    if prefer is not None:
        return _check_device(prefer, "device")
    env = os.environ.get("SOFTLIB_DEVICE")
    if env:
        return _check_device(env, "SOFTLIB_DEVICE")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; ask torch for deterministic kernels.

    ``warn_only`` keeps CUDA kernels without a deterministic variant usable (they
    warn); on CPU every op we use is deterministic. ``seed`` must be in ``[0, 2**32 - 1]``.
    """
    from .validate import check_seed

    seed = check_seed("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False


def generator(seed: int) -> torch.Generator:
    """A CPU torch generator seeded with ``seed`` (for data order and noise)."""
    from .validate import check_seed

    seed = check_seed("seed", seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def batched(n: int, batch_size: int):
    """Yield ``slice`` objects covering ``range(n)`` in chunks of ``batch_size``."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def display_path(path: str | Path) -> str:
    """``path`` as a reader's page shows it: ``~/...`` under the home folder, else unchanged.

    Pages must not carry the building machine's absolute paths (the browser test checks).
    """
    p, home = Path(path), Path.home()
    try:
        return str(Path("~") / p.relative_to(home))
    except ValueError:
        return str(p)
