"""Chapter 05's KDE detection and its AUC (paper 003 section 4.2, table 3).

- **Detection** (003 section 4.2, table 3): Feinman et al. (2017) style kernel density
  on the last hidden layer. One KDE per class, fitted on training-set features of that
  class (:class:`softlib.detectors.ClassConditionalKDE`, see :func:`make_kde`), and a test
  point is scored under the KDE of its *predicted* class with 003 eq. (2): :math:`\\hat f_\\sigma(x) = \\frac{1}{|X_c|}\\sum_{x_i \\in X_c}\\exp(-\\|x_i - x\\|^2/\\sigma^2)`,
  bandwidth :math:`\\sigma = 1/0.26` for CE and :math:`0.1/0.26` for RCE/OVM
  (003 section 4.2). The AUC compares correctly classified clean test images
  (negatives) with the *successful* adversarial examples built from them (positives),
  score = minus the log density (Feinman et al.'s protocol keeps successful attacks only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from softlib.losses import LOSSES
from softlib.paper import detection_vs_robustness as p003
from softlib.validate import check_choice, check_float


def make_kde(sigma: float) -> Any:
    """The per-class KDE of 003 eq. (2) with bandwidth ``sigma``, as a :mod:`softlib.detectors` detector.

    003 writes the kernel ``exp(-||x_i - x||^2 / sigma^2)``;
    :class:`softlib.detectors.ClassConditionalKDE` uses scikit-learn's
    ``exp(-||x_i - x||^2 / (2 h^2))``, so ``h = sigma / sqrt(2)`` gives 003's kernel. Its other
    factors are the per-class ``1/|X_c|`` of eq. (2) and a constant shared by all classes
    (no effect on an AUC). ``fit(hidden, labels)``; ``score_samples(hidden, y_pred)`` =
    log density under the predicted class (higher = more legitimate).
    """
    from softlib.detectors import ClassConditionalKDE

    sigma = check_float("bandwidth", sigma, low=1e-12)
    return ClassConditionalKDE(feature="hidden", bandwidth=sigma / np.sqrt(2.0))


def paper_bandwidth(loss: str) -> float:
    """003 section 4.2: 1/0.26 for CE, 0.1/0.26 for RCE and OVM; CE's for ``ls_lsq`` (our choice)."""
    check_choice("loss", loss, LOSSES)
    return p003.KDE_BANDWIDTH["ce" if loss == "ls_lsq" else loss]


def fast_auc(legit_scores: Any, adv_scores: Any) -> float:
    """ROC AUC of telling adversarial from legitimate when *lower* scores mean adversarial, NaN entries dropped.

    The Mann-Whitney form, :math:`(R_{adv} - n_a(n_a+1)/2) / (n_a n_l)` on ``-score`` with
    average ranks for ties, equal to scikit-learn's ROC AUC but without its overhead, so that a
    1000-resample bootstrap stays cheap. NaN when either side is empty.
    """
    from scipy.stats import rankdata

    legit = np.asarray(legit_scores, np.float64).ravel()
    adv = np.asarray(adv_scores, np.float64).ravel()
    legit, adv = legit[np.isfinite(legit)], adv[np.isfinite(adv)]
    na, nl = len(adv), len(legit)
    if na == 0 or nl == 0:
        return float("nan")
    r = rankdata(-np.r_[legit, adv])
    return float((r[nl:].sum() - na * (na + 1) / 2) / (na * nl))
