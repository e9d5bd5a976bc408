"""Input validation with errors a reader can act on.

Every public entry point of :mod:`softlib` (and every notebook parameter) goes
through these helpers, so a bad value fails early with a message that names the
value and what is allowed, instead of a traceback from deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


class SoftlibError(ValueError):
    """A user-facing error: bad parameter, missing data, corrupt cache entry."""


class MissingDataError(SoftlibError, FileNotFoundError):
    """A data set is not in the data root and could not be obtained."""


class CorruptEntryError(SoftlibError):
    """A cached file or data file failed its integrity check."""


def check_choice(what: str, value: Any, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise naming both."""
    allowed = list(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise SoftlibError(f"unknown {what} {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value


def check_int(what: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int within ``[low, high]``, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise SoftlibError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if low is not None and value < low:
        raise SoftlibError(f"{what} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise SoftlibError(f"{what} must be <= {high}, got {value}")
    return value


def check_float(what: str, value: Any, *, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` as a finite float within ``[low, high]``, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SoftlibError(f"{what} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise SoftlibError(f"{what} must be finite, got {value}")
    if low is not None and value < low:
        raise SoftlibError(f"{what} must be in [{low}, {high if high is not None else 'inf'}], got {value}")
    if high is not None and value > high:
        raise SoftlibError(f"{what} must be in [{low if low is not None else '-inf'}, {high}], got {value}")
    return value


def check_images(what: str, x: Any, *, channels: int | None = None) -> Any:
    """Check a batch of images: a float tensor (N, C, H, W), finite, in [0, 1].

    Models in softlib take pixels in [0, 1] and normalise inside (papers 000 and
    003 both fix the input range), so anything else is a caller's mistake.
    """
    import torch

    if not isinstance(x, torch.Tensor):
        raise SoftlibError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise SoftlibError(f"{what} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise SoftlibError(f"{what} must have {channels} channel(s), got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise SoftlibError(f"{what} must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise SoftlibError(f"{what} contains NaN or inf")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise SoftlibError(
            f"{what} must have pixels in [0, 1], got range [{float(x.min()):.3g}, {float(x.max()):.3g}]"
        )
    return x


def check_features(what: str, x: Any, *, dim: int | None = None) -> np.ndarray:
    """Check a 2-D finite feature matrix (N, D) and return it as float64 numpy."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise SoftlibError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise SoftlibError(f"{what} must have shape (N, D), got {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise SoftlibError(f"{what} must have {dim} columns (as at fit time), got {arr.shape[1]}")
    if arr.size and not np.isfinite(arr).all():
        raise SoftlibError(f"{what} contains NaN or inf")
    return arr.astype(np.float64, copy=False)
