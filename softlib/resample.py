"""Bootstrap replicates of per-set AUROCs, shared by every detector (a paired bootstrap).

Chapter 03's verdicts compare detectors and representations *on the same test images*.
:func:`auroc_replicates` draws one set of resampled indices per test set (the legitimate
set included, resampled once per replicate and shared by all sets) and applies it to every
detector, so a difference between two detectors carries only the noise that does not cancel.
Column 0 of every replicate vector is the plain estimate on the real sample; columns 1..B
are the bootstrap replicates. :func:`estimate` turns such a vector into an
:class:`~softlib.claims.Estimate` with a 95% percentile interval.

The AUROC is the Mann-Whitney statistic (ties count one half), in percent, legitimate =
positive, higher score = more legitimate: the convention of :mod:`softlib.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .claims import MAX_BOOT, Estimate
from .metrics import auroc_rows
from .validate import SoftlibError, check_int

#: the replicate vectors of one detector: set name -> (1 + n_boot,) AUROCs in percent
Replicates = dict[str, np.ndarray]


def draw_indices(sizes: Mapping[str, int], n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """For each set, ``(1 + n_boot, n)`` row indices: row 0 the identity, then resamples."""
    check_int("n_boot", n_boot, low=0, high=MAX_BOOT)
    check_int("seed", seed, low=0, high=2**32 - 1)
    rng = np.random.default_rng(seed)
    out = {}
    for name in sorted(sizes):  # sorted: the same sets give the same draws whatever the dict order
        n = check_int(f"size of set {name!r}", sizes[name], low=1)
        if n_boot * n > 200_000_000:
            raise SoftlibError(f"bootstrap of set {name!r}: {n_boot} x {n} indices is too large; "
                               f"lower n_boot (at most {200_000_000 // n})")
        out[name] = np.vstack([np.arange(n)[None], rng.integers(0, n, size=(n_boot, n))])
    return out


def auroc_replicates(scores: Mapping[object, Mapping[str, np.ndarray]], legit: str, *,
                     n_boot: int = 1000, seed: int = 0) -> dict[object, Replicates]:
    """Per detector key and per set, the AUROC of ``legit`` against that set, with replicates.

    ``scores[key][set]`` holds one score per example. Every key must score the same sets
    with the same number of examples (they are paired); sets missing for a key are skipped
    for that key.
    """
    if not scores:
        raise SoftlibError("auroc_replicates: no scores given")
    sizes: dict[str, int] = {}
    for key, by_set in scores.items():
        if legit not in by_set:
            raise SoftlibError(f"auroc_replicates: detector {key!r} has no scores for the legitimate set {legit!r}")
        for s, v in by_set.items():
            v = np.asarray(v)
            if v.ndim != 1 or not np.isfinite(v).all() or np.iscomplexobj(v):
                raise SoftlibError(f"auroc_replicates: scores of {key!r} on {s!r} must be a finite 1-d real array")
            if sizes.setdefault(s, len(v)) != len(v):
                raise SoftlibError(f"auroc_replicates: set {s!r} has {len(v)} scores for {key!r} but "
                                   f"{sizes[s]} for another detector; paired comparisons need the same examples")
    idx = draw_indices(sizes, n_boot, seed)
    out: dict[object, Replicates] = {}
    for key, by_set in scores.items():
        pos = np.asarray(by_set[legit], dtype=np.float64)[idx[legit]]
        out[key] = {s: auroc_rows(pos, np.asarray(v, dtype=np.float64)[idx[s]])
                    for s, v in by_set.items() if s != legit}
    return out


def group_mean(reps: Replicates, sets: Sequence[str]) -> np.ndarray:
    """The average AUROC over ``sets`` (000's group averages), replicate by replicate."""
    missing = [s for s in sets if s not in reps]
    if missing or not sets:
        raise KeyError(f"sets {missing or list(sets)} (group average)")
    return np.mean([reps[s] for s in sets], axis=0)


def estimate(reps: np.ndarray, *, method: str = "paired bootstrap, 95%") -> Estimate:
    """Column 0 as the value, the 2.5 / 97.5 percentiles of the others as the interval."""
    r = np.asarray(reps, dtype=np.float64)
    if r.ndim != 1 or r.size < 1:
        raise SoftlibError(f"estimate needs a 1-d replicate vector, got shape {r.shape}")
    point = float(r[0])
    if r.size < 3:
        return Estimate(point, point, point, method="no resamples")
    lo, hi = np.percentile(r[1:], [2.5, 97.5])
    return Estimate(point, float(min(lo, point)), float(max(hi, point)), method=f"{method} ({r.size - 1})")
