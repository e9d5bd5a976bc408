"""Per-example statistics of logits and softmax, t-tests and summary tables (chapter 02).

000 section 3.2 compares the distribution of the *average logit* of each example across
sets with Student's t-test, and the minimum / maximum logit and softmax values in scatter
plots; 002 section 2.3 quotes the mean +- std of the *max logit* per set. Everything
here takes plain numpy arrays of logits, one row per example.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import special, stats

from .validate import SoftlibError, check_features

STATISTICS = ("mean", "min", "max")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (scipy's, numerically stable)."""
    z = check_features("logits", logits)
    return special.softmax(z, axis=1)


def row_stats(values: np.ndarray) -> pd.DataFrame:
    """Per example (row): mean, min and max of ``values`` (logits or probabilities)."""
    v = check_features("values", values)
    return pd.DataFrame({"mean": v.mean(axis=1), "min": v.min(axis=1), "max": v.max(axis=1)})


def long_stats(logits_by_set: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per (set, example, representation) with mean / min / max, for seaborn.

    Columns: ``set``, ``representation`` (``"logits"`` / ``"softmax"``), ``mean``, ``min``, ``max``.
    """
    frames = []
    for name, z in logits_by_set.items():
        for rep, v in (("logits", check_features(f"logits of {name}", z)), ("softmax", softmax(z))):
            f = row_stats(v)
            f.insert(0, "representation", rep)
            f.insert(0, "set", name)
            frames.append(f)
    if not frames:
        raise SoftlibError("logits_by_set is empty")
    return pd.concat(frames, ignore_index=True)


def ttest_table(reference: np.ndarray, others: Mapping[str, np.ndarray], *, reference_name: str = "reference",
                alpha: float = 1e-4) -> pd.DataFrame:
    """Two-sample t-tests of ``reference`` against each array of ``others``.

    Both Student's test (equal variances, what 000 section 3.2 names) and Welch's
    (unequal variances; the safer one when the spreads differ, as here) are given, two-sided,
    with the means, the difference and Cohen's d (pooled standard deviation).
    ``significant`` means both p-values are below ``alpha`` (000: p < 0.0001).
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    if ref.size < 2:
        raise SoftlibError(f"the reference sample needs at least 2 values, got {ref.size}")
    rows = []
    for name, vals in others.items():
        v = np.asarray(vals, dtype=np.float64).ravel()
        row = {"set": name, "n": v.size, f"mean {reference_name}": ref.mean(), "mean set": np.nan,
               "difference": np.nan, "cohen d": np.nan, "t (Student)": np.nan, "p (Student)": np.nan,
               "t (Welch)": np.nan, "p (Welch)": np.nan, "significant": False}
        if v.size >= 2:
            student = stats.ttest_ind(ref, v, equal_var=True)
            welch = stats.ttest_ind(ref, v, equal_var=False)
            pooled = np.sqrt(((ref.size - 1) * ref.var(ddof=1) + (v.size - 1) * v.var(ddof=1))
                             / (ref.size + v.size - 2))
            row.update({"mean set": v.mean(), "difference": ref.mean() - v.mean(),
                        "cohen d": (ref.mean() - v.mean()) / pooled if pooled > 0 else np.nan,
                        "t (Student)": float(student.statistic), "p (Student)": float(student.pvalue),
                        "t (Welch)": float(welch.statistic), "p (Welch)": float(welch.pvalue),
                        "significant": bool(student.pvalue < alpha and welch.pvalue < alpha)})
        rows.append(row)
    return pd.DataFrame(rows)


def format_p(p: float) -> str:
    """A p-value for a table: '< 1e-300' when it underflows, else 3 significant digits."""
    if p is None or not np.isfinite(p):
        return ""
    if p < 1e-300:
        return "< 1e-300"
    return f"{p:.3g}"


def mean_std_table(values_by_set: Mapping[str, np.ndarray],
                   paper: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """mean and std (ddof=1) per set, beside the paper's (mean, std) where it has one, and the differences."""
    rows = []
    for name, vals in values_by_set.items():
        v = np.asarray(vals, dtype=np.float64).ravel()
        m = v.mean() if v.size else np.nan
        s = v.std(ddof=1) if v.size > 1 else np.nan
        pm, ps = (paper or {}).get(name, (np.nan, np.nan))
        rows.append({"set": name, "n": v.size, "mean": m, "std": s, "paper mean": pm, "paper std": ps,
                     "mean - paper": m - pm, "std - paper": s - ps})
    return pd.DataFrame(rows)


def separability_scores(legit: np.ndarray, other: np.ndarray, *, folds: int = 5,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """Out-of-fold scores of a logistic regression telling ``legit`` rows (label 1) from ``other`` rows (0).

    Features are standardised inside each fold. Returns ``(labels, scores)``, or None when a
    set has fewer than ``folds`` rows. The AUROC of these scores is :func:`separability`; a
    bootstrap over them gives its interval (the classifier is not refitted per resample).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = check_features("legit", legit), check_features("other", other, dim=np.asarray(legit).shape[1])
    if len(a) < folds or len(b) < folds:
        return None
    x = np.concatenate([a, b])
    t = np.concatenate([np.ones(len(a), int), np.zeros(len(b), int)])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return t, cross_val_predict(clf, x, t, cv=cv, method="decision_function")


def separability(legit: np.ndarray, other: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated AUROC of a logistic regression telling ``legit`` rows from ``other`` rows.

    A number for "these few statistics separate the two sets" (000 section 3.2 says it
    qualitatively from figure 2): 0.5 = no separation, 1.0 = perfect. Returns NaN when a set
    has fewer than ``folds`` rows.
    """
    from sklearn.metrics import roc_auc_score

    out = separability_scores(legit, other, folds=folds, seed=seed)
    return float("nan") if out is None else float(roc_auc_score(*out))
