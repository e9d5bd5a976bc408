"""Benchmark: KDE and Trust Score scoring at the papers' sizes, ours vs reference implementations.

000 section 4.3 fits the detectors on 5000 legitimate inputs and scores 2000 images of
each set; this script fits on ``--n-fit`` (5000) synthetic 10-class features and scores
``--n-score`` (8000) rows, for 10-d "logits" and 128-d "hidden" features, in one process:

- KDE (Scott's rule): ours (:class:`softlib.detectors.KDE`, exact batched torch float64)
  vs ``scipy.stats.gaussian_kde.logpdf`` (what 000 used) and scikit-learn's
  ``KernelDensity`` on whitened data (``rtol=0``: exact tree-based evaluation).
- Trust Score: ours (``algorithm="auto"``, and both explicit algorithms) vs the authors'
  reference code path (one scikit-learn ``KDTree`` per class, ``query(k=2)``) and
  scikit-learn ``NearestNeighbors(algorithm="brute")`` per class.

Every reference also checks exactness (max absolute difference of the scores). The
references are timed on the first ``--n-ref`` (2000) queries and their time scaled to
``--n-score`` (all methods are linear in the number of queries) to keep the run short. Prints a
table with the ratio ours / each reference and merges a ``"detectors"`` key into
``results/bench-<device>.json``. Runs in well under 3 minutes on a 2-core CPU.

    python benchmarks/bench_detectors.py [--n-fit 5000] [--n-score 8000] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softlib.detectors import KDE, TrustScore  # noqa: E402
from softlib.runtime import get_device  # noqa: E402
from softlib.tooling.record import merge_json  # noqa: E402


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (CUDA synchronised) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _features(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """10 Gaussian class clusters in ``d`` dimensions with correlated noise."""
    y = rng.integers(0, 10, n)
    centres = np.random.default_rng(123).normal(scale=4.0, size=(10, d))
    mix = np.random.default_rng(321).normal(size=(d, d)) / np.sqrt(d)
    return centres[y] + rng.normal(size=(n, d)) @ (mix + np.eye(d)) + shift, y


def device_slug() -> str:
    """'cpu' or the GPU's name in lower-case-dashes (the results file suffix)."""
    if get_device().type == "cuda":
        return torch.cuda.get_device_name().lower().replace(" ", "-")
    return "cpu"


def bench(n_fit: int, n_score: int, dims: tuple[int, ...], n_ref: int) -> list[dict[str, Any]]:
    from scipy.stats import gaussian_kde
    from sklearn.neighbors import KDTree, KernelDensity, NearestNeighbors

    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    for d in dims:
        x, y = _features(rng, n_fit, d)
        q, _ = _features(rng, n_score, d, shift=0.5)
        q_pred = rng.integers(0, 10, n_score)
        # references run on the first n_ref queries (every method is linear in the number of
        # queries) and their time is scaled to n_score; ours runs on all n_score
        r = min(n_ref, n_score)
        qr, qr_pred, scale = q[:r], q_pred[:r], n_score / r
        kind = "logits" if d <= 16 else "hidden"

        # ---------------- KDE
        ours_fit = KDE(feature="hidden").fit(x)
        t_ours, s_ours = _time(lambda: ours_fit.score_samples(q), 3)
        refs: dict[str, tuple[float, np.ndarray]] = {}
        kde = gaussian_kde(x.T)
        refs["scipy gaussian_kde.logpdf"] = _time(lambda: kde.logpdf(qr.T), 1)
        # sklearn: isotropic kernel only, so whiten by the kernel covariance's Cholesky factor
        chol = np.linalg.cholesky(kde.covariance)
        w = np.linalg.inv(chol).T
        kd = KernelDensity(bandwidth=1.0, rtol=0.0, atol=0.0).fit(x @ w)
        logdet = np.log(np.diag(chol)).sum()
        refs["sklearn KernelDensity (whitened)"] = _time(lambda: kd.score_samples(qr @ w) - logdet, 1)
        rows += _rows(f"KDE score ({kind}, d={d})", t_ours, s_ours, refs, n_fit, n_score, scale)

        # ---------------- Trust Score
        algos = {}
        for algo in ("auto", "kd_tree", "brute"):
            # alpha=0: no high-density filtering, as in the two references below (like for like)
            ts = TrustScore(feature="hidden", algorithm=algo, alpha=0.0).fit(x, y)
            algos[algo] = (ts.algorithm_, *_time(lambda ts=ts: ts.score_samples(q, y_pred=q_pred), 2))

        def jiang() -> np.ndarray:  # the reference code's get_score, verbatim in spirit
            trees = [KDTree(x[y == c]) for c in range(10)]
            dd = np.stack([t.query(qr, k=2)[0][:, -1] for t in trees], axis=1)
            sd = np.sort(dd, axis=1)
            dp = dd[np.arange(len(qr)), qr_pred]
            dn = np.where(sd[:, 0] != dp, sd[:, 0], sd[:, 1])
            return dn / (dp + 1e-12)

        def sk_brute() -> np.ndarray:
            dd = np.stack([NearestNeighbors(n_neighbors=2, algorithm="brute").fit(x[y == c]).kneighbors(qr)[0][:, -1]
                           for c in range(10)], axis=1)
            dp = dd[np.arange(len(qr)), qr_pred]
            other = dd.copy()
            other[np.arange(len(qr)), qr_pred] = np.inf
            return other.min(1) / (dp + 1e-12)

        refs = {"Jiang et al. code (KDTree per class)": _time(jiang, 1),
                "sklearn NearestNeighbors brute": _time(sk_brute, 1)}
        chosen, t_auto, s_auto = algos["auto"]
        rows += _rows(f"Trust Score ({kind}, d={d}), ours auto={chosen}", t_auto, s_auto, refs, n_fit, n_score, scale)
        for algo in ("kd_tree", "brute"):
            rows[-1][f"ours_{algo}_s"] = round(algos[algo][1], 4)
    return rows


def _rows(task: str, t_ours: float, s_ours: np.ndarray, refs: dict[str, tuple[float, np.ndarray]],
          n_fit: int, n_score: int, scale: float) -> list[dict[str, Any]]:
    fastest = min(refs, key=lambda k: refs[k][0])
    return [{
        "task": task, "n_fit": n_fit, "n_score": n_score,
        "ours_s": round(t_ours, 4),
        "references_s": {k: round(v[0] * scale, 4) for k, v in refs.items()},
        "references_measured_on": int(round(n_score / scale)),
        "max_abs_diff": {k: float(np.max(np.abs(v[1] - s_ours[: len(v[1])]))) for k, v in refs.items()},
        "fastest_reference": fastest,
        "ratio_ours_over_fastest": round(t_ours / (refs[fastest][0] * scale), 3),
    }]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-fit", type=int, default=5000)
    ap.add_argument("--n-score", type=int, default=8000)
    ap.add_argument("--n-ref", type=int, default=2000,
                    help="queries the references are timed on (scaled to --n-score)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run of this script)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not touch results/")
    args = ap.parse_args(argv)
    n_fit, n_score = (500, 800) if args.quick else (args.n_fit, args.n_score)
    t0 = time.perf_counter()
    rows = bench(n_fit, n_score, (10, 128), args.n_ref)
    print(f"device: {get_device()} ({device_slug()}), torch threads: {torch.get_num_threads()}")
    print(f"fit {n_fit}, score {n_score} (references timed on {min(args.n_ref, n_score)} and scaled)")
    print(f"{'task':52s} {'ours s':>7s} {'reference':>37s} {'ref s':>7s} {'ours/ref':>8s} {'max|diff|':>9s}")
    for r in rows:
        for i, k in enumerate(sorted(r["references_s"], key=r["references_s"].get)):
            head = f"{r['task']:52s} {r['ours_s']:7.3f}" if i == 0 else f"{'':52s} {'':7s}"
            print(f"{head} {k:>37s} {r['references_s'][k]:7.3f} {r['ours_s'] / r['references_s'][k]:8.2f} "
                  f"{r['max_abs_diff'][k]:9.1e}")
    total = time.perf_counter() - t0
    print(f"total {total:.1f} s")
    if not args.no_write:
        out = ROOT / "results" / f"bench-{device_slug()}.json"
        merge_json(out, "detectors", {  # bench_attacks.py writes the "attacks" key of the same file
            "rows": rows, "device": str(get_device()), "platform": platform.platform(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "quick": bool(args.quick), "wall_s": round(total, 1)})
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
