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


def get_device(prefer: str | None = None) -> torch.device:
    """Return ``prefer`` if given, else CUDA when available, else CPU.

    ``SOFTLIB_DEVICE`` in the environment overrides the automatic choice.
    """
    choice = prefer or os.environ.get("SOFTLIB_DEVICE")
    if choice:
        if choice.startswith("cuda") and not torch.cuda.is_available():
            from .validate import SoftlibError

            raise SoftlibError(f"device {choice!r} requested but CUDA is not available; use 'cpu'")
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; ask torch for deterministic kernels.

    ``warn_only`` keeps CUDA kernels without a deterministic variant usable (they
    warn); on CPU every op we use is deterministic.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False


def generator(seed: int) -> torch.Generator:
    """A CPU torch generator seeded with ``seed`` (for data order and noise)."""
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
