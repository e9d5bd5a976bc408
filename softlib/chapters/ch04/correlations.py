"""Chapter 04's rank correlations: does activation or softmax go with transfer? (004 appendix B).

**Rank correlations** (:func:`rank_correlations`, ``scipy.stats.spearmanr``), two
readings of "the softmax says nothing about transferability, activations do":

- *curve*: across the steps of an aggregated curve, Spearman's rho of the
  transfer percentage against the mean top activation and against the mean
  softmax (what the figures show);
- *examples*: at the step where the transfer percentage is closest to 50%,
  across all examples (dropped ones included), Spearman's rho of the top
  activation and of the softmax against the 0/1 "has transferred" flag (does a
  larger activation / softmax at the same step go with transfer?).

A constant series (e.g. a softmax that is 1.0 everywhere) has no rank
correlation: rho and p are NaN and the table says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from softlib.chapters.ch04.aggregation import aggregate, clean, cumulative, nan_median, ordered_pairs

if TYPE_CHECKING:
    import pandas as pd


def _spearman(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    res = stats.spearmanr(a, b)
    return float(res.statistic), float(res.pvalue)


def rank_correlations(arrays: dict[str, np.ndarray], attack: str, *, criterion: str = "target",
                      rule: str = "last") -> pd.DataFrame:
    """Spearman correlations of activation / softmax with transfer, per ordered pair (see module docstring).

    Columns: source, other, n_kept, rho/p of the curve (``curve_act_rho``,
    ``curve_act_p``, ``curve_soft_rho``, ``curve_soft_p``), the step used for the
    example-level test (``mid_step``, its ``mid_pct`` over all examples) and
    ``ex_act_rho``, ``ex_act_p``, ``ex_soft_rho``, ``ex_soft_p``;
    ``soft_constant`` flags a softmax with no variation across examples at ``mid_step``
    (e.g. all 1.0), where no rank correlation exists.
    """
    import pandas as pd

    rows = []
    for src, dst, values, flags, steps in ordered_pairs(arrays, attack, criterion):
        keep = clean(flags, rule)
        agg = aggregate(values, flags, keep)
        ca, pa = _spearman(agg["pct"], agg["act_mean"])
        cs, ps = _spearman(agg["pct"], agg["soft_mean"])
        cum = cumulative(flags)
        frac = cum.mean(axis=0)
        j = int(np.argmin(np.abs(frac - 0.5)))
        ea, epa = _spearman(values["act"][:, j], cum[:, j])
        es, eps = _spearman(values["soft"][:, j], cum[:, j])
        rows.append({
            "source": src, "other": dst, "n_kept": int(keep.sum()), "n_total": len(keep),
            "curve_act_rho": ca, "curve_act_p": pa, "curve_soft_rho": cs, "curve_soft_p": ps,
            "mid_step": int(steps[j]), "mid_pct": 100.0 * float(frac[j]),
            "ex_act_rho": ea, "ex_act_p": epa, "ex_soft_rho": es, "ex_soft_p": eps,
            "soft_constant": bool(np.ptp(values["soft"][:, j]) == 0),
        })
    return pd.DataFrame(rows)


def correlation_summary(corr: pd.DataFrame, attack: str) -> dict[str, Any]:
    """Medians over pairs of the four rank correlations of ``attack`` (rows of :func:`rank_correlations`
    with an ``attack`` column), and in how many pairs each is positive with p < 0.05."""
    d = corr[corr["attack"] == attack]
    out: dict[str, Any] = {"pairs": len(d)}
    for what in ("curve_act", "curve_soft", "ex_act", "ex_soft"):
        rho = d[f"{what}_rho"].to_numpy(float)
        out[f"{what}_median"] = nan_median(rho)
        out[f"{what}_significant"] = int(((rho > 0) & (d[f"{what}_p"].to_numpy(float) < 0.05)).sum())
    return out
