"""Where the book's files are: the repository root and the results folder.

softlib may be installed without its repository (a wheel in site-packages), so the root is
never derived from the package's own location. It is, in order:

1. ``$SOFTLIB_REPO``, when set (it must be a folder holding softlib's ``pyproject.toml``);
2. the nearest folder, from the current directory upwards, holding softlib's ``pyproject.toml``.

The notebook runner sets ``SOFTLIB_REPO`` for the kernels it starts, so a chapter executed
anywhere finds the repository it came from.
"""

from __future__ import annotations

import os
from pathlib import Path

from .validate import SoftlibError

#: The environment variable naming the repository root.
REPO_ENV = "SOFTLIB_REPO"
#: The environment variable naming the results folder (default: ``results/`` in the repository).
RESULTS_ENV = "SOFTLIB_RESULTS"


def _is_repo(folder: Path) -> bool:
    """A folder holding the ``pyproject.toml`` of the softlib project (not any Python project)."""
    pp = folder / "pyproject.toml"
    try:
        return pp.is_file() and 'name = "softlib"' in pp.read_text(errors="replace")
    except OSError:
        return False


def repo_root(start: Path | str | None = None) -> Path:
    """The repository root: ``$SOFTLIB_REPO``, else the nearest softlib ``pyproject.toml`` above ``start``.

    ``start`` defaults to the current directory. Raises :class:`SoftlibError` naming
    ``SOFTLIB_REPO`` when neither gives a softlib checkout.
    """
    env = os.environ.get(REPO_ENV)
    if env:
        root = Path(env).expanduser().absolute()
        if not _is_repo(root):
            raise SoftlibError(f"{REPO_ENV}={env!r} is not the softlib repository (no softlib pyproject.toml "
                               "there); set it to the folder holding the book's pyproject.toml, or unset it")
        return root
    here = Path(start if start is not None else Path.cwd()).expanduser().absolute()
    for folder in (here, *here.parents):
        if _is_repo(folder):
            return folder
    raise SoftlibError(f"no softlib repository found from {here} upwards (no pyproject.toml of softlib); "
                       f"run from inside the repository or set {REPO_ENV} to its root folder")


def results_dir() -> Path:
    """``$SOFTLIB_RESULTS`` (made absolute), else ``results/`` in the repository."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env).expanduser().absolute() if env else repo_root() / "results"


def check_results_dir() -> Path:
    """The results folder, checked *before* the work whose numbers go there (creatable, writable)."""
    from .cache import ensure_dir

    return ensure_dir(results_dir(), "results", RESULTS_ENV)
