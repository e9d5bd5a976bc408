"""Detection metrics: FPR at 95% TPR, AUROC, AUPR-In, AUPR-Out (on top of sklearn.metrics).

Two conventions exist for "positive" in OOD / adversarial detection, and they give
different FPR-at-95%-TPR numbers, so :func:`detection_metrics` names the convention
in its ``positive`` argument:

``positive="legit"`` (default; papers 000 section 4.3 and 002 section 3.2, "as in Liang et al." (ODIN))
    Legitimate (in-distribution / correctly classified) inputs are the positive class.
    A detector accepts an input as legitimate when its score is ``>= threshold``. The
    threshold is the highest one that accepts at least 95% of the legitimate inputs; the
    FPR is the share of OOD / adversarial inputs it also accepts.

``positive="ood"`` (OpenOOD, pytorch-ood)
    OOD / adversarial inputs are the positive class, flagged when the score is
    ``<= threshold``; the threshold flags at least 95% of them and the FPR is the share
    of legitimate inputs wrongly flagged.

Scores are always "higher = more legitimate" (softlib detectors' ``score_samples``).
AUROC, AUPR-In and AUPR-Out do not depend on the convention: AUROC is symmetric;
AUPR-In takes legitimate inputs as positive with the score as is, AUPR-Out the
OOD / adversarial inputs as positive with the negated score (Hendrycks & Gimpel 2017,
the framework both papers use).

AUPR has two conventions too (``aupr`` argument of :func:`detection_metrics`):

``aupr="ap"`` (default; Hendrycks & Gimpel's code)
    sklearn's ``average_precision_score``: the step-wise sum of precision x recall
    increments, no interpolation.
``aupr="trapezoid"`` (OpenOOD, pytorch-ood)
    ``sklearn.metrics.auc(recall, precision)`` on ``precision_recall_curve``: the PR curve
    integrated with the trapezoidal rule, which interpolates linearly between its points.

The gap between the two is not slight: 0.8 points on continuous scores with 20 inputs,
2.6 points with 10 legitimate against 10,000 other inputs, 7.9 with tied scores, and
``50 x (1 - prevalence)`` points when all scores are equal (AP is then the prevalence, while
the trapezoid joins (recall 0, precision 1) to (1, prevalence)): 31 points at a prevalence
of 0.38.
Use ``aupr="trapezoid"`` to compare with OpenOOD / pytorch-ood tables.

All rates are returned in percent, as the papers print them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from .validate import SoftlibError, check_choice, check_float

POSITIVES = ("legit", "ood")
AUPR_RULES = ("ap", "trapezoid")
METRIC_KEYS = ("fpr95", "auroc", "aupr_in", "aupr_out")


def _scores(what: str, s: Any) -> np.ndarray:
    """Check a 1-D, non-empty, finite score vector and return it as float64."""
    try:
        import torch

        if isinstance(s, torch.Tensor):
            s = s.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    arr = np.asarray(s)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise SoftlibError(f"{what} must be numeric scores, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise SoftlibError(f"{what} must be real-valued scores, got complex dtype {arr.dtype}")
    if arr.ndim != 1:
        raise SoftlibError(f"{what} must be a 1-D array of scores (one per input), got shape {arr.shape}")
    if arr.size == 0:
        raise SoftlibError(f"{what} is empty; need at least one score")
    if not np.isfinite(arr).all():
        raise SoftlibError(f"{what} contains NaN or inf ({int((~np.isfinite(arr)).sum())} of {arr.size})")
    return arr.astype(np.float64)


def _labels_and_scores(scores_legit: Any, scores_other: Any) -> tuple[np.ndarray, np.ndarray]:
    legit = _scores("scores_legit", scores_legit)
    other = _scores("scores_other", scores_other)
    y = np.concatenate([np.ones(legit.size, dtype=np.int64), np.zeros(other.size, dtype=np.int64)])
    return y, np.concatenate([legit, other])


def auroc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC in percent of each row pair: scores ``pos`` (B, n1) of legitimate inputs against ``neg`` (B, n0).

    The Mann-Whitney statistic with average ranks (ties count one half): ``roc_auc_score``'s value
    (to float rounding; here exact up to one division) without its per-call checks, which dominate a
    1000-resample bootstrap (chapter 02's: 8,000 calls, 40 s -> 1 s). No input checks of its own:
    callers validate once, outside their resampling loop.
    """
    from scipy.stats import rankdata

    n1, n0 = pos.shape[1], neg.shape[1]
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    return 100.0 * (ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def fpr_at_tpr(
    scores_legit: Any, scores_other: Any, *, tpr: float = 0.95, positive: str = "legit"
) -> tuple[float, float, float]:
    """FPR at the first threshold reaching ``tpr`` recall of the positive class.

    Returns ``(fpr, threshold, tpr_reached)`` as fractions in [0, 1]; ``threshold`` is in
    score units (see the module docstring for the direction of the test in each convention).
    With ties, the threshold is a score value and all inputs tied at it fall on the same
    side, so the TPR reached may exceed ``tpr``.
    """
    check_choice("positive", positive, POSITIVES)
    level = check_float("tpr", tpr, low=0.0, high=1.0)
    if level == 0.0:
        raise SoftlibError("tpr must be in (0, 1], got 0")
    y, s = _labels_and_scores(scores_legit, scores_other)
    if positive == "ood":
        y, s = 1 - y, -s
    fprs, tprs, thr = skm.roc_curve(y, s, drop_intermediate=False)
    # integer comparison of counts, so that e.g. 19/20 is exactly 95%
    n_pos = int(y.sum())
    tps = np.rint(tprs * n_pos)
    need = max(1, int(np.ceil(level * n_pos - 1e-9)))  # at least one accepted: TPR 0 is below any tpr > 0
    idx = int(np.argmax(tps >= need))
    threshold = float(thr[idx])
    fprs_i, tprs_i = fprs[idx], tprs[idx]
    if positive == "ood":
        threshold = -threshold
    return float(fprs_i), threshold, float(tprs_i)


def _aupr(y: np.ndarray, s: np.ndarray, rule: str) -> float:
    """Area under the precision-recall curve of positives ``y == 1`` ranked by ``s``."""
    if rule == "ap":
        return float(skm.average_precision_score(y, s))
    precision, recall, _ = skm.precision_recall_curve(y, s)
    return float(skm.auc(recall, precision))


def detection_metrics(
    scores_legit: Any, scores_other: Any, *, positive: str = "legit", tpr: float = 0.95, aupr: str = "ap"
) -> dict[str, float]:
    """The four metrics of 000 / 002 for one legitimate vs one other set, in percent.

    Args:
        scores_legit: scores of legitimate inputs (1-D, higher = more legitimate).
        scores_other: scores of the OOD / adversarial / misclassified inputs.
        positive: ``"legit"`` (papers 000/002, ODIN) or ``"ood"`` (OpenOOD); only changes
            ``fpr95``, ``threshold`` and ``tpr_at_threshold``.
        tpr: the TPR level of the FPR metric (0.95).
        aupr: ``"ap"`` (average precision, Hendrycks & Gimpel; default) or ``"trapezoid"``
            (OpenOOD / pytorch-ood); see the module docstring for how far apart they are.

    Returns:
        ``{"fpr95", "auroc", "aupr_in", "aupr_out", "tpr_at_threshold"}`` in percent, and
        ``"threshold"`` in score units (``positive="legit"``: accept when score >= threshold;
        ``"ood"``: flag when score <= threshold).

    >>> m = detection_metrics([3, 4, 5, 6], [0, 1, 2, 3.5])
    >>> m["auroc"], m["fpr95"], m["threshold"]
    (93.75, 25.0, 3.0)
    """
    check_choice("aupr", aupr, AUPR_RULES)
    y, s = _labels_and_scores(scores_legit, scores_other)
    fpr, threshold, tpr_reached = fpr_at_tpr(scores_legit, scores_other, tpr=tpr, positive=positive)
    return {
        "fpr95": 100.0 * fpr,
        "auroc": 100.0 * float(skm.roc_auc_score(y, s)),
        "aupr_in": 100.0 * _aupr(y, s, aupr),
        "aupr_out": 100.0 * _aupr(1 - y, -s, aupr),
        "threshold": threshold,
        "tpr_at_threshold": 100.0 * tpr_reached,
    }


def roc_points(scores_legit: Any, scores_other: Any) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr)`` with legitimate inputs positive (for figures)."""
    y, s = _labels_and_scores(scores_legit, scores_other)
    fprs, tprs, _ = skm.roc_curve(y, s)
    return fprs, tprs
