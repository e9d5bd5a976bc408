"""Recording a chapter's key numbers as JSON (with commit, device, versions, wall time).

Notebooks call :func:`record` at the end; the files land in
``results/<profile>/<chapter>.json`` (or ``$SOFTLIB_RESULTS``). Recorded files are
committed (the quick run now; the paper run once a GPU has made it) and listed with
their provenance on the book's "Recorded runs" page; the test suite compares two
smoke runs through them.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from softlib.paths import check_results_dir, repo_root, results_dir
from softlib.validate import SoftlibError

if TYPE_CHECKING:  # only for the annotations: record.py stays light to import
    import pandas as pd

    from softlib.claims import Claim
    from softlib.profiles import Profile


def _plain(v: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if hasattr(v, "to_dict"):  # pandas objects
        return _plain(v.to_dict())
    return v


def device_label() -> str:
    """The GPU's name, or ``cpu (N cores)``: what recorded numbers and timings ran on."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"


def git_commit(*, dirty: bool = False) -> str:
    """The short commit of this checkout; in an offline kit's source (no .git) the commit the kit was built
    from (its ``KIT_COMMIT`` file, :mod:`softlib.tooling.kit`); else "unknown".

    ``dirty=True`` appends ``+dirty`` when tracked files differ from that commit.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root(), capture_output=True,
                                text=True, timeout=10).stdout.strip()
        if commit and dirty and subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                               cwd=repo_root(), capture_output=True, text=True,
                                               timeout=10).stdout.strip():
            commit += "+dirty"
    except (OSError, subprocess.SubprocessError, SoftlibError):
        commit = ""
    if commit:
        return commit
    try:
        kit = (repo_root() / "KIT_COMMIT").read_text().strip()
    except (OSError, SoftlibError):
        kit = ""
    return f"{kit} (kit)" if kit else "unknown"


def replicate_path(chapter: str, profile: str, seed: int) -> Path:
    """Where the run of ``chapter`` with training seed ``seed`` != 0 is recorded (a seed replicate)."""
    return results_dir() / profile / "seeds" / f"{chapter}-seed{seed}.json"


def record(chapter: str, profile: str, numbers: dict[str, Any], *, wall_s: float | None = None,
           seed: int = 0) -> Path:
    """Write ``numbers`` (JSON-able after numpy conversion) for ``chapter`` under ``profile``.

    Seed 0 is the book's run (``results/<profile>/<chapter>.json``); any other seed is a
    *seed replicate* (:func:`replicate_path`), which the seed-0 run pools into its verdicts
    (:func:`seed_replicates`, :func:`softlib.claims.evaluate`).
    """
    import torch

    from softlib.cache import atomic_write_json

    if not isinstance(numbers, dict):
        raise SoftlibError(f"numbers must be a dict, got {type(numbers).__name__}")
    for what, v in (("chapter", chapter), ("profile", profile)):
        if not isinstance(v, str) or not v or any(c in v for c in "/\\\0") or v in (".", ".."):
            raise SoftlibError(f"{what} must be a plain name (no path separators), got {v!r}")
    if wall_s is not None:
        from softlib.validate import check_float

        wall_s = check_float("wall_s", wall_s, low=0.0)
    from softlib.validate import check_seed

    seed = check_seed("seed", seed)
    check_results_dir()
    payload = {"chapter": chapter, "profile": profile, "commit": git_commit(), "device": device_label(),
               "platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "wall_s": wall_s, "numbers": _plain(numbers)}
    path = results_dir() / profile / f"{chapter}.json" if seed == 0 else replicate_path(chapter, profile, seed)
    atomic_write_json(path, payload)
    return path


def read_replicate(chapter: str, profile: str, seed: int) -> Any:
    """The recorded seed replicate of ``chapter`` (parsed JSON), or None when it was never run."""
    path = replicate_path(chapter, profile, seed)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SoftlibError(f"seed replicate {path} is not readable JSON ({exc}); delete it or run it again") from None


def replicate_matches(run: Any, model_key: str) -> bool:
    """Whether a recorded replicate holds claims and was run on the model with ``model_key``."""
    nums = run.get("numbers", {}) if isinstance(run, dict) else {}
    return isinstance(nums, dict) and nums.get("model_key") == model_key and isinstance(nums.get("claims"), list)


def seed_replicates(chapter: str, profile: str, model_keys: dict[int, str]) -> tuple[list[list[dict[str, Any]]], str]:
    """The recorded claims of ``chapter``'s seed replicates, and one line saying what was used.

    ``model_keys`` maps each replicate seed to the cache key of the model that seed must have
    trained (:func:`softlib.zoo.model_key`): a replicate recorded for another model (another
    recipe, profile or data set) is not pooled, and the line says so.
    """
    used, skipped, got = [], [], []
    for s, key in sorted(model_keys.items()):
        run = read_replicate(chapter, profile, s)
        if run is None:
            skipped.append(f"seed {s} not run")
            continue
        nums = run.get("numbers", {}) if isinstance(run, dict) else {}
        if not replicate_matches(run, key):
            skipped.append(f"seed {s} recorded for another model ({nums.get('model_key')}, expected {key})")
            continue
        got.append(nums["claims"])
        used.append(f"{s} (commit {run.get('commit', '?')})")
    line = (f"Verdicts pooled over training seeds: this run and seed(s) {', '.join(used)}." if used
            else "Verdicts from one trained model (bootstrap over test examples only).")
    if skipped:
        line += f" Not pooled: {'; '.join(skipped)} (`python -m softlib.tooling.notebooks run` runs the replicates first)."
    return got, line


def pooled_claims(chapter: str, chapter_claims: Sequence[Claim], results: Mapping[str, Any], *, arch: str,
                  dataset: str, profile: Profile, seed: int,
                  models_key: Callable[[int], str] | None = None) -> tuple[pd.DataFrame, str]:
    """Decide ``chapter_claims`` on ``results``, pooled over the chapter's recorded seed replicates.

    The book's run (``seed`` 0) pools the replicates of training seeds 1 .. ``profile.cnn_seeds`` - 1
    (:func:`seed_replicates`), each checked against the model that seed must have trained
    (:func:`softlib.zoo.model_key` of ``arch`` on ``dataset``, or ``models_key(seed)`` for a chapter that
    trains several networks per seed); a run with any other seed is itself a
    replicate and pools nothing. Returns :func:`softlib.claims.evaluate`'s table and the line saying
    which seeds were pooled (the chapters print it under their claims table).
    """
    from softlib.claims import evaluate
    from softlib.profiles import Profile as _Profile
    from softlib.validate import check_seed
    from softlib.zoo import model_key

    if not isinstance(profile, _Profile):
        raise SoftlibError(f"profile must be a softlib.profiles.Profile (get_profile(name)), got {profile!r}")
    if not isinstance(chapter, str) or not chapter or any(c in chapter for c in "/\\\0") or chapter in (".", ".."):
        raise SoftlibError(f"chapter must be a plain name (no path separators), got {chapter!r}")
    seed = check_seed("seed", seed)
    key_of = models_key or (lambda k: model_key(arch, dataset, profile, k))
    keys = {k: key_of(k) for k in range(1, profile.cnn_seeds)} if seed == 0 else {}
    replicates, line = seed_replicates(chapter, profile.name, keys)
    return evaluate(chapter_claims, results, replicates), line


def merge_json(path: Path, key: str, value: Any) -> None:
    """Set ``key`` of the JSON object in ``path`` under a file lock (benchmarks share one file per device)."""
    from filelock import FileLock

    from softlib.cache import atomic_write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        data = json.loads(path.read_text()) if path.exists() else {}
        data[key] = _plain(value)
        atomic_write_json(path, data)
    Path(str(path) + ".lock").unlink(missing_ok=True)
