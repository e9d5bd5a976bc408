"""OOD / adversarial / misclassification detectors with one scikit-learn-style interface.

Every detector has ``fit(X, y=None)`` and ``score_samples(X, y_pred=None)``; the score
is **higher = more legitimate** (feed it to :func:`softlib.metrics.detection_metrics`).
Fitted state lives in attributes ending with ``_``. ``X`` is any feature matrix (N, D);
the ``feature`` parameter says which one, because some detectors need it:

- ``"logits"``: pre-softmax outputs; the predicted class is their argmax.
- ``"softmax"``: probabilities (rows in [0, 1] summing to 1); predicted class = argmax.
- ``"hidden"``: the last hidden layer (or anything else); class-conditional
  detectors then need ``y_pred`` (the model's predictions) at scoring time.

What ``fit`` wants as ``y`` is the class attribute ``fit_target``:
``"none"`` (unsupervised, fit on legitimate inputs only), ``"class"`` (legitimate inputs
with their class labels) or ``"legit"`` (a mixture, y = 1 legitimate / 0 otherwise).

Detectors (registry :data:`DETECTORS`, factory :func:`make_detector`):

================  ================================================================================
``sb``            Softmax Baseline (Hendrycks & Gimpel 2017): max softmax probability
``ts``            Trust Score (Jiang et al. 2018): per-class nearest-neighbour distance ratio
``kde``           Gaussian KDE of legitimate features, Scott's rule, as scipy (000 section 4.2)
``class_kde``     per-class KDE with a fixed bandwidth, scored on the predicted class (Feinman et al. 2017;
                  003 section 4.2 eq. 2)
``nn``            regression MLP detector (000 section 4.1) = Introspection-Net (002 section 3.1)
``maxlogit``      max logit (Hendrycks et al. 2022), beyond the papers
``energy``        T * logsumexp(logits / T) (Liu et al. 2020), beyond the papers
``mahalanobis``   -min_c squared Mahalanobis distance to the class means, tied covariance (Lee et al. 2018)
================  ================================================================================

Exact and fast: the KDE and Trust Score computations are exact (no approximate
neighbours, no kernel truncation) and batched on :func:`softlib.runtime.get_device`;
``benchmarks/bench_detectors.py`` compares them with scipy / scikit-learn.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.neighbors import KDTree
from torch import nn

from .runtime import batched, get_device
from .validate import SoftlibError, check_choice, check_features, check_float, check_int

FEATURES = ("logits", "softmax", "hidden")
#: Bump when a change here changes fitted detectors or their scores (for caches of scores).
CODE_VERSION = "detectors-2"
#: Trust Score filtering fraction: the reference code's filtering example (k=10, alpha=0.1,
#: "density"); 000 section 2.3 / 002 section 1 say the training set is filtered, not by how much.
TRUST_ALPHA = 0.1
# memory budget for one (queries x points) float64 distance block
_BLOCK_ELEMS = 8_000_000


# --------------------------------------------------------------------------- helpers
def _labels(what: str, y: Any, n: int) -> np.ndarray:
    """Check integer labels of length ``n``."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise SoftlibError(f"{what} must be a 1-D array of {n} labels, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        elif arr.dtype == bool:
            arr = arr.astype(np.int64)
        else:
            raise SoftlibError(f"{what} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _softmax_np(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    from .stats import softmax  # the one numpy softmax

    return softmax(z / temperature)


def _logsumexp_np(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1))


def _device(device: str | torch.device | None) -> torch.device:
    return get_device(device)


def gaussian_logsumexp(points: torch.Tensor, queries: np.ndarray, device: torch.device) -> np.ndarray:
    """``log sum_i exp(-||q - p_i||^2 / 2)`` for every query row, exactly, in blocks.

    The workhorse of both KDEs (after whitening by the kernel's Cholesky factor). Uses
    ``-||q - p||^2 / 2 = q.p - ||p||^2 / 2 - ||q||^2 / 2``: one fused GEMM per block, the
    ``||q||^2`` term added after the logsumexp (float64: the cancellation costs ~1e-13).
    """
    half_p_sq = 0.5 * (points * points).sum(1)
    bs = max(1, _BLOCK_ELEMS // max(1, points.shape[0]))
    out = np.empty(len(queries), dtype=np.float64)
    with torch.inference_mode():
        for sl in batched(len(queries), bs):
            q = torch.as_tensor(queries[sl], dtype=torch.float64, device=device)
            m = torch.addmm(half_p_sq[None, :], q, points.T, alpha=1.0, beta=-1.0)  # q.p - ||p||^2/2
            out[sl] = (torch.logsumexp(m, dim=1) - 0.5 * (q * q).sum(1)).cpu().numpy()
    return out


class Detector(BaseEstimator):
    """Base class: input checks shared by all detectors."""

    fit_target: ClassVar[str] = "none"
    allowed_features: ClassVar[tuple[str, ...]] = FEATURES
    #: Class-conditional detectors need a predicted class per scored input.
    needs_prediction: ClassVar[bool] = False

    def _check_feature(self) -> str:
        return check_choice(f"feature of {type(self).__name__}", self.feature, self.allowed_features)

    def _check_X(self, X: Any, *, fitting: bool) -> np.ndarray:
        feat = self._check_feature()
        arr = check_features("X", X, dim=None if fitting else getattr(self, "n_features_in_", None))
        if len(arr) == 0:
            raise SoftlibError("X is empty; need at least one row")
        if fitting and len(arr) < 2 and type(self).__name__ not in ("SoftmaxBaseline", "MaxLogit", "Energy"):
            # one row has no spread: the fitted statistics are degenerate and every score would be equal
            raise SoftlibError(f"{type(self).__name__} needs at least 2 rows of X to fit, got {len(arr)}")
        if feat == "softmax":
            if arr.min() < -1e-6 or arr.max() > 1 + 1e-6 or not np.allclose(arr.sum(1), 1.0, atol=1e-3):
                raise SoftlibError(
                    "X was declared feature='softmax' but its rows are not probabilities "
                    "(in [0, 1], summing to 1); pass feature='logits' for pre-softmax outputs"
                )
        if not fitting and not hasattr(self, "n_features_in_"):
            raise SoftlibError(f"{type(self).__name__} is not fitted yet; call fit(X, ...) first")
        return arr

    def _predicted(self, X: np.ndarray, y_pred: Any) -> np.ndarray:
        if y_pred is None:
            if self.feature == "hidden":
                raise SoftlibError(
                    f"{type(self).__name__} on feature='hidden' needs y_pred (the model's predicted "
                    "classes); the argmax of hidden features is not a prediction"
                )
            return X.argmax(axis=1)
        return _labels("y_pred", y_pred, len(X))

    def fit(self, X: Any, y: Any = None) -> Detector:  # pragma: no cover - overridden
        raise NotImplementedError

    def score_samples(self, X: Any, y_pred: Any = None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


# --------------------------------------------------------------------------- output-based
class SoftmaxBaseline(Detector):
    """Hendrycks & Gimpel (2017): the max softmax probability (000 / 002 "Softmax Baseline").

    ``feature="logits"`` applies ``softmax(X / temperature)`` first; ``feature="softmax"``
    takes the max of the given probabilities (``temperature`` must then be 1).
    """

    allowed_features = ("logits", "softmax")

    def __init__(self, feature: str = "logits", temperature: float = 1.0) -> None:
        self.feature = feature
        self.temperature = temperature

    def fit(self, X: Any, y: Any = None) -> SoftmaxBaseline:
        """Nothing to learn; records the feature width."""
        arr = self._check_X(X, fitting=True)
        check_float("temperature", self.temperature, low=1e-6)
        if self.feature == "softmax" and self.temperature != 1.0:
            raise SoftlibError("temperature only applies to feature='logits'")
        self.n_features_in_ = arr.shape[1]
        return self

    def score_samples(self, X: Any, y_pred: Any = None) -> np.ndarray:
        arr = self._check_X(X, fitting=False)
        p = arr if self.feature == "softmax" else _softmax_np(arr, float(self.temperature))
        return p.max(axis=1)


class MaxLogit(Detector):
    """The largest logit (Hendrycks et al. 2022, "Scaling OOD detection"); beyond the papers."""

    allowed_features = ("logits",)

    def __init__(self, feature: str = "logits") -> None:
        self.feature = feature

    def fit(self, X: Any, y: Any = None) -> MaxLogit:
        self.n_features_in_ = self._check_X(X, fitting=True).shape[1]
        return self

    def score_samples(self, X: Any, y_pred: Any = None) -> np.ndarray:
        return self._check_X(X, fitting=False).max(axis=1)


class Energy(Detector):
    """Negative free energy ``T * logsumexp(logits / T)`` (Liu et al. 2020); beyond the papers.

    The energy is ``E(x) = -T logsumexp(f(x) / T)``; low energy = in-distribution, so the
    score (higher = legitimate) is ``-E(x)``.
    """

    allowed_features = ("logits",)

    def __init__(self, feature: str = "logits", temperature: float = 1.0) -> None:
        self.feature = feature
        self.temperature = temperature

    def fit(self, X: Any, y: Any = None) -> Energy:
        check_float("temperature", self.temperature, low=1e-6)
        self.n_features_in_ = self._check_X(X, fitting=True).shape[1]
        return self

    def score_samples(self, X: Any, y_pred: Any = None) -> np.ndarray:
        t = float(self.temperature)
        return t * _logsumexp_np(self._check_X(X, fitting=False) / t)


# --------------------------------------------------------------------------- density / distance
class KDE(Detector):
    """Gaussian kernel density of legitimate features (000 section 4.2), score = log density.

    Same estimator as ``scipy.stats.gaussian_kde`` (000 used scipy): kernel covariance =
    sample covariance x factor^2, with Scott's rule factor ``n ** (-1 / (d + 4))`` by default
    (``bandwidth="scott"``; ``"silverman"`` or a number = the factor itself). Scoring is
    exact and batched in float64 on :func:`get_device` (whitened squared distances +
    logsumexp), and matches ``gaussian_kde.logpdf`` to ~1e-9.

    Singular covariance: softmax features sum to 1, so their covariance has a zero
    eigenvalue, and dead ReLU units do the same to hidden features. Here, when the
    covariance's smallest eigenvalue is below ``rcond`` x its largest, ``rcond`` x the largest
    eigenvalue is added to the diagonal (a ridge); ``ridge_`` records what was added (0.0
    when nothing was). scipy 1.17's ``gaussian_kde`` does not fail on such features: it
    regularises the zero-variance direction its own way and returns log densities shifted
    by a nearly constant offset from ours (about 9-10 nats on 10-class softmax features,
    spread ~1e-8 across queries), so the ranking, and every detection metric, is the same.
    """

    def __init__(self, feature: str = "logits", bandwidth: str | float = "scott", rcond: float = 1e-8,
                 device: str | None = None) -> None:
        self.feature = feature
        self.bandwidth = bandwidth
        self.rcond = rcond
        self.device = device

    def fit(self, X: Any, y: Any = None) -> KDE:
        """Fit on legitimate features only (``y`` is ignored)."""
        arr = self._check_X(X, fitting=True)
        n, d = arr.shape
        if n < 2:
            raise SoftlibError(f"KDE needs at least 2 points to estimate a covariance, got {n}")
        if isinstance(self.bandwidth, str):
            check_choice("bandwidth", self.bandwidth, ("scott", "silverman"))
            factor = n ** (-1.0 / (d + 4)) if self.bandwidth == "scott" else (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
        else:
            factor = check_float("bandwidth", self.bandwidth, low=1e-12)
        cov = np.atleast_2d(np.cov(arr, rowvar=False))
        eig = np.linalg.eigvalsh(cov)
        ridge = 0.0
        if eig.max() <= 0:
            raise SoftlibError("KDE: all fit features are identical (zero covariance); nothing to estimate")
        if eig.min() <= self.rcond * eig.max():
            ridge = float(self.rcond * eig.max())
            cov = cov + ridge * np.eye(d)
        kcov = cov * factor**2
        chol = np.linalg.cholesky(kcov)
        self.factor_ = float(factor)
        self.ridge_ = ridge
        self.covariance_ = kcov
        self._inv_chol_T = np.linalg.inv(chol).T  # whitening: z = x @ inv(L).T
        # log normaliser: -log n - d/2 log(2 pi) - log det L
        self.log_norm_ = float(-math.log(n) - 0.5 * d * math.log(2 * math.pi) - np.log(np.diag(chol)).sum())
        dev = _device(self.device)
        self._points = torch.as_tensor(arr @ self._inv_chol_T, dtype=torch.float64, device=dev)
        self.n_features_in_ = d
        self.n_fit_ = n
        return self

    def score_samples(self, X: Any, y_pred: Any = None) -> np.ndarray:
        """Log density of each row under the fitted KDE."""
        arr = self._check_X(X, fitting=False)
        return gaussian_logsumexp(self._points, arr @ self._inv_chol_T, self._points.device) + self.log_norm_


class ClassConditionalKDE(Detector):
    """Per-class Gaussian KDE with a fixed isotropic bandwidth (Feinman et al. 2017).

    Fit on legitimate features with their class labels; the score of an input is the log
    density of its *predicted* class's KDE (003 section 4.2 eq. 2). Near the data it equals
    scikit-learn's ``KernelDensity(bandwidth=bandwidth).score_samples`` (to ~1e-9); away from
    the data it does not: scikit-learn's tree evaluation is off by tens of nats for queries
    some bandwidths from the fit points (15 and 67 nats measured at 5 and 10 units from 5-D
    standard-normal data with bandwidth 0.7; up to ~130 seen; scikit-learn issue #7492),
    while ours is an exact logsumexp at every distance. 003 uses the last hidden layer with
    bandwidth 1/0.26 (cross-entropy) or 0.1/0.26 (RCE / OVM).
    """

    fit_target = "class"
    needs_prediction = True

    def __init__(self, feature: str = "hidden", bandwidth: float = 1.0, device: str | None = None) -> None:
        self.feature = feature
        self.bandwidth = bandwidth
        self.device = device

    def fit(self, X: Any, y: Any = None) -> ClassConditionalKDE:
        arr = self._check_X(X, fitting=True)
        if y is None:
            raise SoftlibError("ClassConditionalKDE.fit needs y, the class labels of the legitimate inputs")
        labels = _labels("y", y, len(arr))
        h = check_float("bandwidth", self.bandwidth, low=1e-12)
        dev = _device(self.device)
        self.classes_ = np.unique(labels)
        self._points = {int(c): torch.as_tensor(arr[labels == c] / h, dtype=torch.float64, device=dev)
                        for c in self.classes_}
        d = arr.shape[1]
        self.log_norm_ = {int(c): -math.log(int((labels == c).sum())) - 0.5 * d * math.log(2 * math.pi * h * h)
                          for c in self.classes_}
        self.n_features_in_ = d
        return self

    def score_samples(self, X: Any, y_pred: Any = None) -> np.ndarray:
        arr = self._check_X(X, fitting=False)
        pred = self._predicted(arr, y_pred)
        unknown = sorted(set(np.unique(pred).tolist()) - set(self.classes_.tolist()))
        if unknown:
            raise SoftlibError(f"y_pred holds classes {unknown} that had no fit examples; fitted: {self.classes_.tolist()}")
        h = float(self.bandwidth)
        out = np.empty(len(arr))
        for c, pts in self._points.items():
            idx = np.flatnonzero(pred == c)
            if idx.size:
                out[idx] = gaussian_logsumexp(pts, arr[idx] / h, pts.device) + self.log_norm_[c]
        return out


class TrustScore(Detector):
    """Trust Score (Jiang et al. 2018), as in the authors' reference code (google/TrustScore).

    ``fit(X, y)`` builds one point set per class from training features ``X`` with labels
    ``y``. With ``alpha > 0`` the ``alpha`` fraction of each class with the largest
    distance to its ``k``-th neighbour (lowest k-NN density; the point itself counts as
    its first neighbour) is removed first: Jiang et al.'s alpha-high-density set
    (Algorithm 1), the reference code's ``filtering="density"``. ``score_samples(X,
    y_pred)`` is ``d(x, closest other class) / d(x, predicted class)``, where ``d(x,
    class)`` is the distance to that class's ``neighbor``-th nearest kept point: 2 in the
    reference code (``query(X, k=2)[0][:, -1]``), kept as default.

    Default ``alpha``: 000 (section 2.3) and 002 (section 1) both describe the Trust Score
    as "applied on a filtered version of the training set", so it is filtered here by
    default, with the settings of the reference code's filtering example (README and
    notebook: ``TrustScore(k=10, alpha=0.1, filtering="density")``), :data:`TRUST_ALPHA`.
    The reference constructor's own default, ``alpha=0`` (``filtering="none"``), keeps every
    point; pass ``alpha=0`` for it. Neither 000 nor 002 gives its alpha.

    ``algorithm``: ``"kd_tree"`` (scikit-learn ``KDTree``, the reference code's choice),
    ``"brute"`` (exact blocked distances in float64 with torch on :func:`get_device`) or
    ``"auto"`` (brute on CUDA or for more than 16 features, KD-tree otherwise; chosen by
    ``benchmarks/bench_detectors.py``). All give the same scores up to float rounding: the
    brute path centres the features on the mean of the kept points first (distances do not
    change), because it expands ``|q - p|^2 = |q|^2 - 2 q.p + |p|^2``, which loses digits to
    cancellation when all features share a large offset (relative error 1.5e-3 at an offset
    of 1e5 without the centring).
    """

    fit_target = "class"
    needs_prediction = True

    def __init__(self, feature: str = "logits", k: int = 10, alpha: float = TRUST_ALPHA, neighbor: int = 2,
                 min_dist: float = 1e-12, algorithm: str = "auto", device: str | None = None) -> None:
        self.feature = feature
        self.k = k
        self.alpha = alpha
        self.neighbor = neighbor
        self.min_dist = min_dist
        self.algorithm = algorithm
        self.device = device

    def _algorithm(self, d: int) -> str:
        algo = check_choice("algorithm", self.algorithm, ("auto", "kd_tree", "brute"))
        if algo == "auto":
            return "brute" if (_device(self.device).type == "cuda" or d > 16) else "kd_tree"
        return algo

    def fit(self, X: Any, y: Any = None) -> TrustScore:
        arr = self._check_X(X, fitting=True)
        if y is None:
            raise SoftlibError("TrustScore.fit needs y, the class labels of the training inputs")
        labels = _labels("y", y, len(arr))
        alpha = check_float("alpha", self.alpha, low=0.0, high=0.99)
        k = check_int("k", self.k, low=1)
        neighbor = check_int("neighbor", self.neighbor, low=1)
        self.classes_ = np.unique(labels)
        if len(self.classes_) < 2:
            raise SoftlibError(f"TrustScore needs at least 2 classes in y, got {self.classes_.tolist()}")
        self.algorithm_ = self._algorithm(arr.shape[1])
        dev = _device(self.device)
        self.points_: dict[int, np.ndarray] = {}
        self._trees: dict[int, Any] = {}
        for c in self.classes_:
            pts = arr[labels == c]
            if alpha > 0:
                if len(pts) < k:  # the reference code would crash; use every point of the class instead
                    warnings.warn(f"TrustScore: class {c} has {len(pts)} points, fewer than k={k}; its density "
                                  f"filter uses k={len(pts)}", stacklevel=2)
                radii = KDTree(pts).query(pts, k=min(k, len(pts)))[0][:, -1]
                pts = pts[radii <= np.percentile(radii, (1 - alpha) * 100)]
            if len(pts) < neighbor:
                raise SoftlibError(
                    f"class {c} keeps {len(pts)} point(s) after filtering, fewer than neighbor={neighbor}; "
                    "lower alpha or give more training points"
                )
            self.points_[int(c)] = pts
            if self.algorithm_ == "kd_tree":
                self._trees[int(c)] = KDTree(pts)
        if self.algorithm_ == "brute":  # all classes in one matrix, one GEMM per query block
            allp = np.concatenate([self.points_[int(c)] for c in self.classes_]).astype(np.float64)
            # centre: the expanded |q|^2 - 2 q.p + |p|^2 cancels badly under a shared large offset
            self._centre = allp.mean(0)
            t = torch.as_tensor(allp - self._centre, dtype=torch.float64, device=dev)
            self._brute = (t, (t * t).sum(1), np.cumsum([0] + [len(self.points_[int(c)]) for c in self.classes_]))
        self.n_features_in_ = arr.shape[1]
        return self

    def class_distances(self, X: Any) -> np.ndarray:
        """(N, n_classes) distance of each row to each class's ``neighbor``-th nearest point."""
        arr = self._check_X(X, fitting=False)
        nb = int(self.neighbor)
        d = np.empty((len(arr), len(self.classes_)))
        if self.algorithm_ == "kd_tree":
            for j, c in enumerate(self.classes_):
                d[:, j] = self._trees[int(c)].query(arr, k=nb)[0][:, -1]
            return d
        pts, p_sq, bounds = self._brute
        bs = max(1, _BLOCK_ELEMS // len(pts))
        with torch.inference_mode():
            for sl in batched(len(arr), bs):
                q = torch.as_tensor(arr[sl].astype(np.float64) - self._centre, dtype=torch.float64, device=pts.device)
                part = torch.addmm(p_sq[None, :], q, pts.T, alpha=-2.0)  # ||p||^2 - 2 q.p
                kth = torch.stack([torch.topk(part[:, a:b], nb, dim=1, largest=False).values[:, -1]
                                   for a, b in zip(bounds[:-1], bounds[1:])], dim=1)
                kth += (q * q).sum(1, keepdim=True)
                d[sl] = kth.clamp_(min=0.0).sqrt_().cpu().numpy()
        return d

    def score_samples(self, X: Any, y_pred: Any = None) -> np.ndarray:
        arr = self._check_X(X, fitting=False)
        pred = self._predicted(arr, y_pred)
        col = np.searchsorted(self.classes_, pred)
        bad = (col >= len(self.classes_)) | (self.classes_[np.minimum(col, len(self.classes_) - 1)] != pred)
        if bad.any():
            raise SoftlibError(f"y_pred holds classes {sorted(set(pred[bad].tolist()))} absent from fit; "
                               f"fitted: {self.classes_.tolist()}")
        d = self.class_distances(arr)
        rows = np.arange(len(arr))
        d_pred = d[rows, col]
        other = d.copy()
        other[rows, col] = np.inf
        return other.min(axis=1) / (d_pred + float(self.min_dist))


class Mahalanobis(Detector):
    """Lee et al. (2018): class means and one tied covariance of (hidden) features.

    Score = ``-min_c (x - mu_c)^T Sigma^+ (x - mu_c)`` (Lee et al. eq. 2, without input
    pre-processing or layer ensembles). ``Sigma`` is the maximum-likelihood tied covariance
    (divided by N, as scikit-learn's ``EmpiricalCovariance`` in the authors' code) and
    ``Sigma^+`` its pseudo-inverse (``scipy.linalg.pinvh``), so singular features work.
    """

    fit_target = "class"

    def __init__(self, feature: str = "hidden", device: str | None = None) -> None:
        self.feature = feature
        self.device = device

    def fit(self, X: Any, y: Any = None) -> Mahalanobis:
        from scipy.linalg import pinvh

        arr = self._check_X(X, fitting=True)
        if y is None:
            raise SoftlibError("Mahalanobis.fit needs y, the class labels of the legitimate inputs")
        labels = _labels("y", y, len(arr))
        self.classes_ = np.unique(labels)
        self.means_ = np.stack([arr[labels == c].mean(0) for c in self.classes_])
        centred = arr - self.means_[np.searchsorted(self.classes_, labels)]
        self.covariance_ = centred.T @ centred / len(arr)
        if not np.any(self.covariance_):
            raise SoftlibError("Mahalanobis: the fit features do not vary within any class (zero covariance, "
                               "e.g. one row per class); every score would be equal")
        self.precision_ = pinvh(self.covariance_)
        self.n_features_in_ = arr.shape[1]
        return self

    def distances(self, X: Any) -> np.ndarray:
        """(N, n_classes) squared Mahalanobis distances to the class means."""
        arr = self._check_X(X, fitting=False)
        dev = _device(self.device)
        with torch.inference_mode():
            x = torch.as_tensor(arr, dtype=torch.float64, device=dev)
            mu = torch.as_tensor(self.means_, dtype=torch.float64, device=dev)
            p = torch.as_tensor(self.precision_, dtype=torch.float64, device=dev)
            xp = x @ p
            d = (xp * x).sum(1, keepdim=True) - 2 * xp @ mu.T + ((mu @ p) * mu).sum(1)[None, :]
            return d.clamp(min=0).cpu().numpy()

    def score_samples(self, X: Any, y_pred: Any = None) -> np.ndarray:
        return -self.distances(X).min(axis=1)


# --------------------------------------------------------------------------- NN detector
class _DetectorNet(nn.Module):
    """000 section 4.1 / 002 section 3.1: 3 dense layers of 128 ReLU units, dropout 0.2
    after the first two, batch norm after the second dropout, one linear output unit."""

    def __init__(self, d_in: int, width: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_in, width), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout),
            nn.BatchNorm1d(width, momentum=0.01, eps=1e-3),  # Keras defaults (momentum 0.99)
            nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, 1),
        )
        for m in self.modules():  # Keras defaults: Glorot-uniform weights, zero biases
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class NNDetector(Detector):
    """The supervised detector of 000 section 4.1 (= Introspection-Net, 002 section 3.1).

    A regression MLP predicting 1 for legitimate / correctly classified inputs and 0
    otherwise, trained with MSE and RMSprop (Keras defaults: lr 1e-3, rho 0.9, eps 1e-7,
    batch 32) for ``epochs`` epochs (60 in both papers); a seeded, class-stratified
    ``validation_split`` (10%) is held out (000 section 4.3) and the weights of the epoch with
    the lowest validation loss are kept (``history_``, ``best_epoch_``, ``val_loss_``): *our
    choice*, the papers do not say what the validation split is used for. The output
    unit is linear (the papers say "regression" and name no output activation). Inputs
    are standardised with the training mean / std (``standardize=True``; also ours, not in the
    papers: an affine map the first layer could learn, it only helps RMSprop). Score = the
    network's output.
    """

    fit_target = "legit"

    def __init__(self, feature: str = "logits", epochs: int = 60, batch_size: int = 32, lr: float = 1e-3,
                 width: int = 128, dropout: float = 0.2, validation_split: float = 0.1,
                 standardize: bool = True, seed: int = 0, device: str | None = None,
                 progress: bool = False) -> None:
        self.feature = feature
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.width = width
        self.dropout = dropout
        self.validation_split = validation_split
        self.standardize = standardize
        self.seed = seed
        self.device = device
        self.progress = progress

    def _split(self, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        frac = float(self.validation_split)
        if frac == 0:
            return rng.permutation(len(y)), np.array([], dtype=np.int64)
        val = []
        for c in (0, 1):
            idx = rng.permutation(np.flatnonzero(y == c))
            val.append(idx[: max(1, int(round(frac * len(idx))))])
        val_idx = np.sort(np.concatenate(val))
        train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
        return train_idx, val_idx

    def fit(self, X: Any, y: Any = None) -> NNDetector:
        """Train on features ``X`` with ``y`` = 1 legitimate / 0 other (both must occur)."""
        arr = self._check_X(X, fitting=True)
        if y is None:
            raise SoftlibError("NNDetector.fit needs y: 1 for legitimate inputs, 0 for the others")
        target = _labels("y", y, len(arr))
        if not set(np.unique(target).tolist()) <= {0, 1} or len(np.unique(target)) < 2:
            raise SoftlibError(f"NNDetector.fit needs y in {{0, 1}} with both values present, got {np.unique(target).tolist()}")
        epochs = check_int("epochs", self.epochs, low=1)
        bs = check_int("batch_size", self.batch_size, low=1)
        check_float("validation_split", self.validation_split, low=0.0, high=0.5)
        check_float("lr", self.lr, low=1e-8)
        dev = _device(self.device)
        from .validate import check_seed

        check_seed("seed", self.seed)
        rng = np.random.default_rng(int(self.seed))
        tr, va = self._split(target, rng)
        if len(tr) < 2:
            raise SoftlibError(f"NNDetector needs at least 2 training rows after the validation split, got {len(tr)}")
        self.mean_ = arr[tr].mean(0) if self.standardize else np.zeros(arr.shape[1])
        std = arr[tr].std(0) if self.standardize else np.ones(arr.shape[1])
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        z = torch.as_tensor((arr - self.mean_) / self.scale_, dtype=torch.float32, device=dev)
        t = torch.as_tensor(target, dtype=torch.float32, device=dev)
        g = torch.Generator().manual_seed(int(self.seed))
        devices = [dev.index or 0] if dev.type == "cuda" else []
        t0 = time.perf_counter()
        # A 128-wide MLP on batches of 32 is too small for intra-op threads: on CPU one thread is
        # several times faster per step (measured 3 ms vs 22 ms on a 2-core machine), so fit with one.
        threads = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(1)
        try:
            self._train(z, t, tr, va, g, devices, epochs, bs)
        finally:
            torch.set_num_threads(threads)
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_features_in_ = arr.shape[1]
        return self

    def _train(self, z: torch.Tensor, t: torch.Tensor, tr: np.ndarray, va: np.ndarray, g: torch.Generator,
               devices: list[int], epochs: int, bs: int) -> None:
        """The training loop of :meth:`fit`: seeded, the best validation epoch's weights kept."""
        from tqdm.auto import tqdm

        dev = z.device
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self.seed))
            net = _DetectorNet(z.shape[1], int(self.width), float(self.dropout)).to(dev)
            opt = torch.optim.RMSprop(net.parameters(), lr=float(self.lr), alpha=0.9, eps=1e-7)
            tr_t = torch.as_tensor(tr, device=dev)
            va_t = torch.as_tensor(va, device=dev)
            best, best_state, history = math.inf, None, []
            for epoch in tqdm(range(epochs), desc="NN detector", disable=not self.progress, leave=False):
                net.train()
                order = tr_t[torch.randperm(len(tr), generator=g).to(dev)]
                total = 0.0
                for sl in batched(len(order), bs):
                    idx = order[sl]
                    if len(idx) < 2:  # batch norm needs 2 rows
                        continue
                    loss = torch.mean((net(z[idx]) - t[idx]) ** 2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                net.eval()
                with torch.inference_mode():
                    vloss = float(torch.mean((net(z[va_t]) - t[va_t]) ** 2)) if len(va) else total / len(tr)
                history.append({"epoch": epoch + 1, "train_loss": total / len(tr), "val_loss": vloss})
                if vloss < best:
                    best = vloss
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                    self.best_epoch_ = epoch + 1
            net.load_state_dict(best_state)
        net.eval()
        self.net_ = net
        self.history_ = history
        self.val_loss_ = best

    def score_samples(self, X: Any, y_pred: Any = None) -> np.ndarray:
        arr = self._check_X(X, fitting=False)
        dev = next(self.net_.parameters()).device
        out = np.empty(len(arr))
        with torch.inference_mode():
            for sl in batched(len(arr), 8192):
                zb = torch.as_tensor((arr[sl] - self.mean_) / self.scale_, dtype=torch.float32, device=dev)
                out[sl] = self.net_(zb).double().cpu().numpy()
        return out


def introspection_net(**kw: Any) -> NNDetector:
    """Introspection-Net (002 section 3.1): the NN detector on logits.

    Same network and optimiser as :class:`NNDetector`; what differs in 002 is the data
    (section 3.2): 5000 in-distribution inputs and 700 of each other set, the errors set
    included (profile field ``n_train_other_introspection``), and the target is "correctly
    classified" rather than "legitimate". Keyword arguments override NNDetector's.
    """
    return NNDetector(**{"feature": "logits", **kw})


# --------------------------------------------------------------------------- glue for chapters
def feature_views(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{"logits", "softmax", "hidden", "pred"}`` from :func:`softlib.models.predict` output.

    The softmax is computed in float32 from the logits, as the network's own softmax layer
    would output it (its saturation is part of what 000 measures); ``pred`` = argmax of the
    logits (cross-entropy models).
    """
    logits = np.asarray(outputs["logits"], dtype=np.float32)
    with torch.inference_mode():
        soft = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    return {"logits": logits, "softmax": soft, "hidden": np.asarray(outputs["hidden"], dtype=np.float32),
            "pred": logits.argmax(axis=1)}


def fit_on(det: Detector, *, fit_x: Any, fit_labels: Any = None, train_x: Any = None,
           train_target: Any = None) -> Detector:
    """Fit ``det`` on the data its ``fit_target`` asks for.

    ``fit_x`` / ``fit_labels``: legitimate inputs and their classes (unsupervised and
    class-conditional detectors); ``train_x`` / ``train_target``: the labelled mixture
    (1 legitimate / 0 other) for supervised detectors.
    """
    if det.fit_target == "legit":
        if train_x is None or train_target is None:
            raise SoftlibError(f"{type(det).__name__} is supervised: pass train_x and train_target")
        return det.fit(train_x, train_target)
    if det.fit_target == "class":
        return det.fit(fit_x, fit_labels)
    return det.fit(fit_x)


def score_sets(det: Detector, features: dict[str, Any], preds: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """``det.score_samples`` on every set of ``features`` (set name -> matrix).

    Class-conditional detectors get ``preds[set]`` (the model's predictions) as ``y_pred``.
    """
    out = {}
    for name, x in features.items():
        y_pred = preds[name] if (det.needs_prediction and preds is not None) else None
        out[name] = det.score_samples(x, y_pred=y_pred)
    return out


# --------------------------------------------------------------------------- registry
DETECTORS: dict[str, type[Detector]] = {
    "sb": SoftmaxBaseline,
    "ts": TrustScore,
    "kde": KDE,
    "class_kde": ClassConditionalKDE,
    "nn": NNDetector,
    "maxlogit": MaxLogit,
    "energy": Energy,
    "mahalanobis": Mahalanobis,
}

#: Display names for tables.
DETECTOR_NAMES = {"sb": "Softmax Baseline", "ts": "Trust Score", "kde": "KDE", "class_kde": "class KDE",
                  "nn": "NN", "maxlogit": "MaxLogit", "energy": "Energy", "mahalanobis": "Mahalanobis"}


def make_detector(name: str, **kw: Any) -> Detector:
    """A detector by registry name, e.g. ``make_detector("kde", feature="softmax")``."""
    check_choice("detector", name, DETECTORS)
    cls = DETECTORS[name]
    allowed = sorted(cls().get_params())
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise SoftlibError(f"unknown option(s) {unknown} for detector {name!r}; allowed: {allowed}")
    det = cls(**kw)
    det._check_feature()
    return det
