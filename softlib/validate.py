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
    if arr.shape[1] == 0:
        raise SoftlibError(f"{what} has zero columns (shape {arr.shape}); need at least one feature")
    if dim is not None and arr.shape[1] != dim:
        raise SoftlibError(f"{what} must have {dim} columns (as at fit time), got {arr.shape[1]}")
    if arr.size and not np.isfinite(arr).all():
        raise SoftlibError(f"{what} contains NaN or inf")
    check_finite_scale(what, arr)
    return arr.astype(np.float64, copy=False)


# ---------------------------------------------------------------- seeds, lists, labels, model inputs

#: Seeds are in [0, 2**32 - 1]: numpy's legacy seeding range; torch accepts more, so every
#: seed softlib takes works for python, numpy and torch alike (torch fails on 2**64).
SEED_MAX = 2**32 - 1


def check_seed(what: str, value: Any) -> int:
    """Return a seed in ``[0, SEED_MAX]``, else raise."""
    return check_int(what, value, low=0, high=SEED_MAX)


def check_list(what: str, value: Any, allowed: Iterable[str] | None = None, *, min_len: int = 1,
               item: str = "name") -> list[Any]:
    """A list (or tuple) of ``allowed`` names, duplicates dropped; a bare string is refused.

    A string where a list is expected would otherwise be read one character at a time
    (``-p attacks fgsm`` gives 'f', 'g', ...); we say how to pass a list instead.
    """
    if isinstance(value, (str, bytes)):
        raise SoftlibError(
            f"{what} must be a list of {item}s, got the string {value!r}; pass a list, e.g. [{value!r}] "
            f"(with papermill: -y \"{what}: [{value if isinstance(value, str) else ''}]\")"
        )
    if not isinstance(value, (list, tuple)):
        raise SoftlibError(f"{what} must be a list of {item}s, got {value!r} ({type(value).__name__})")
    if allowed is not None:
        allowed = list(allowed)
        value = [check_choice(f"{item} in {what}", v, allowed) for v in value]
    out = list(dict.fromkeys(value)) if all(isinstance(v, str) for v in value) else list(value)
    if len(out) < min_len:
        raise SoftlibError(f"{what} must name at least {min_len} {item}(s), got {value!r}")
    return out


def check_labels(what: str, y: Any, n: int, num_classes: int | None = None) -> Any:
    """Integer class labels (a 1-D torch tensor of ``n`` entries, each in ``[0, num_classes)``)."""
    import torch

    if not isinstance(y, torch.Tensor):
        raise SoftlibError(f"{what} must be a 1-D torch.Tensor of {n} class labels, got {type(y).__name__}")
    if y.ndim != 1 or len(y) != n:
        raise SoftlibError(f"{what} must be a 1-D tensor with one label per image ({n}), got shape {tuple(y.shape)}")
    if y.dtype == torch.bool or torch.is_floating_point(y) or torch.is_complex(y):
        raise SoftlibError(f"{what} must hold integer class labels, got dtype {y.dtype}")
    if n and int(y.min()) < 0:
        raise SoftlibError(f"{what} must hold class labels >= 0, got {int(y.min())}")
    if n and num_classes is not None and int(y.max()) >= num_classes:
        raise SoftlibError(f"{what} must hold class labels in [0, {num_classes - 1}] (the model has "
                           f"{num_classes} outputs), got {int(y.max())}")
    return y.long()


def model_in_channels(model: Any) -> int | None:
    """The channel count a model's first layer expects (None when it cannot be told)."""
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
        if isinstance(m, nn.Linear):
            size = getattr(model, "image_size", None)
            return int(m.in_features // (size * size)) if size else None
    return None


def check_model_input(what: str, x: Any, model: Any) -> Any:
    """``x`` is a valid image batch for ``model``: :func:`check_images` plus the model's channel count."""
    from torch import nn

    if not isinstance(model, nn.Module):
        raise SoftlibError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(what, x)
    ch = model_in_channels(model)
    if ch is not None and x.shape[1] != ch:
        raise SoftlibError(f"{what} has {x.shape[1]} channel(s) (shape {tuple(x.shape)}) but the model "
                           f"expects {ch}; e.g. a CIFAR-10 model takes 3, an MNIST model 1")
    return x


#: Finite features larger than this overflow float64 in squared distances and covariances.
FEATURE_MAX = 1e150


def check_finite_scale(what: str, arr: np.ndarray) -> np.ndarray:
    """Refuse complex, zero-width and overflowing (``|x| >`` :data:`FEATURE_MAX`) arrays."""
    if np.iscomplexobj(arr):
        raise SoftlibError(f"{what} must be real-valued, got complex dtype {arr.dtype}")
    # compared as a Python float: numpy would cast FEATURE_MAX to a float32 array's dtype (an overflow warning)
    if arr.size and float(np.abs(arr[np.isfinite(arr)]).max(initial=0.0)) > FEATURE_MAX:
        raise SoftlibError(f"{what} has values of magnitude {float(np.abs(arr).max()):.3g}, above {FEATURE_MAX:g}: "
                           "their squares overflow float64; rescale them")
    return arr


# ---------------------------------------------------------------- memory bounds


def total_memory_bytes() -> int:
    """Physical memory of this machine (``os.sysconf``), or 8 GiB when it cannot be read."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


#: One allocation may take at most this share of physical memory (unless SOFTLIB_MAX_ALLOC_GB says otherwise).
ALLOC_FRACTION = 0.5


def max_alloc_bytes() -> int:
    """The cap on one allocation: ``$SOFTLIB_MAX_ALLOC_GB`` GiB, else half the machine's memory."""
    import os

    env = os.environ.get("SOFTLIB_MAX_ALLOC_GB")
    if env is None or env == "":
        return int(total_memory_bytes() * ALLOC_FRACTION)
    try:
        gb = float(env)
    except ValueError:
        raise SoftlibError(f"SOFTLIB_MAX_ALLOC_GB must be a number of GiB, got {env!r}") from None
    if not math.isfinite(gb) or gb <= 0:
        raise SoftlibError(f"SOFTLIB_MAX_ALLOC_GB must be a positive number of GiB, got {env!r}")
    return int(gb * (1 << 30))


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.3g} GiB"


def check_alloc(what: str, n_bytes: float) -> int:
    """Refuse an allocation of ``n_bytes`` above :func:`max_alloc_bytes` before it is made."""
    import os

    cap = max_alloc_bytes()
    if not math.isfinite(n_bytes) or n_bytes > cap:
        source = ("SOFTLIB_MAX_ALLOC_GB" if os.environ.get("SOFTLIB_MAX_ALLOC_GB")
                  else f"{ALLOC_FRACTION:.0%} of this machine's {_gib(total_memory_bytes())}")
        raise SoftlibError(
            f"{what} needs about {_gib(n_bytes)} of memory, above the cap of {_gib(cap)} ({source}); "
            "use a smaller value, or set SOFTLIB_MAX_ALLOC_GB to raise the cap"
        )
    return int(n_bytes)


# ---------------------------------------------------------------- notebooks and the environment


def _assigned_names(source: str) -> list[str]:
    """Names bound by top-level assignments in ``source`` (a parameters cell)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for t in targets:
            names += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
    return names


#: papermill's injected cell starts with this comment (papermill.translators, ``codify``).
INJECTED_HEADER = "# Parameters"


def check_notebook_parameters(declared: Iterable[str] | None = None, *, history: list[str] | None = None) -> list[str]:
    """Refuse parameters injected by papermill that the notebook does not declare; check the environment.

    papermill only warns about an unknown name (``-p num_clases 3``) and runs the notebook
    with its default, so a typo silently changes nothing. Call this first in the validation
    cell: it finds papermill's injected cell (``# Parameters``) in the kernel's input
    history and compares its names with ``declared``, by default the names assigned in the
    cell executed just before it (the ``parameters`` cell, after which papermill injects).
    Outside papermill (no injected cell) it only checks the environment. Returns the
    injected names.
    """
    if history is None:
        try:
            from IPython import get_ipython

            ip = get_ipython()
        except ImportError:  # pragma: no cover - IPython comes with the kernel
            ip = None
        history = list(ip.user_ns.get("In", [])) if ip is not None else []
    injected: list[str] = []
    for i in range(len(history) - 1, -1, -1):
        src = history[i] or ""
        if src.lstrip().startswith(INJECTED_HEADER):
            injected = _assigned_names(src)
            if declared is None:
                before = [h for h in history[:i] if h and h.strip()]
                declared = _assigned_names(before[-1]) if before else []
            break
    if injected:
        allowed = list(dict.fromkeys(declared or []))
        unknown = [n for n in injected if n not in allowed]
        if unknown:
            raise SoftlibError(
                f"unknown notebook parameter(s) {', '.join(map(repr, unknown))}; this notebook declares: "
                f"{', '.join(map(repr, allowed))}"
            )
    check_environment()
    return injected


def check_environment() -> None:
    """Check the SOFTLIB_* variables a run reads, before the run's expensive work."""
    from .paths import check_results_dir
    from .runtime import get_device

    max_alloc_bytes()
    get_device()
    check_results_dir()
