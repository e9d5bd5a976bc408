"""Differentiable torch scoring paths of fitted :mod:`softlib.detectors` detectors.

An adaptive attacker (Carlini & Wagner, AISec 2017; Tramer et al., NeurIPS 2020) puts the
detector into the attack's loss, so it needs the detector's score as a differentiable
function of the features. :func:`torch_scorer` builds one *from a fitted detector*, reading
its fitted attributes (nothing is refitted), as a :class:`TorchScorer` module:

================  ==========================================================================
``sb``            max softmax probability (of ``softmax(x / T)`` on logits); exact
``maxlogit``      ``max_i x_i``; exact
``energy``        ``T logsumexp(x / T)``; exact
``kde``           Gaussian KDE log density (whitened distances + logsumexp); exact
``class_kde``     per-class KDE on the predicted class; exact (the class choice is piecewise
                  constant, as in the detector)
``mahalanobis``   ``-min_c (x - mu_c)^T P (x - mu_c)``; exact
``nn``            the fitted MLP on standardised features (000 section 4.1 / 002 section 3.1); exact
``ts``            Trust Score: ``forward`` is exact (distance to the ``neighbor``-th nearest point
                  via ``topk``: differentiable almost everywhere, but its gradient involves one
                  point per class and jumps); ``surrogate`` replaces each class distance by a
                  *soft nearest-neighbour distance* ``-tau logsumexp(-d_i / tau)`` over the
                  class's points (its ``neighbor - 1`` nearest left out, so ``tau -> 0`` gives
                  the exact ``neighbor``-th distance) and the min over the other classes by a
                  soft-min too, the smooth surrogate the adaptive attack differentiates (not BPDA)
================  ==========================================================================

Every scorer has ``forward(x, y_pred=None)`` (the exact score, equal to the detector's
``score_samples`` to float tolerance: tested) and ``surrogate(x, y_pred=None)`` (what an
attack should differentiate; the same function except for the Trust Score). ``x`` is the
(N, D) feature tensor of the detector's ``feature``; class-conditional scorers need
``y_pred`` (the model's predicted classes). Scores are float64, higher = more legitimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from . import detectors as D
from .validate import SoftlibError, check_float

#: Bump when a scoring path changes (chapter 06 caches nothing derived from it yet).
CODE_VERSION = "diffscore-2"


def _t(a: Any, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)


def _gauss_lse(q: torch.Tensor, p: torch.Tensor, half_p_sq: torch.Tensor) -> torch.Tensor:
    """``log sum_i exp(-||q - p_i||^2 / 2)`` per row of ``q`` (as detectors.gaussian_logsumexp)."""
    m = q @ p.T - half_p_sq[None, :]
    return torch.logsumexp(m, dim=1) - 0.5 * (q * q).sum(1)


class TorchScorer(nn.Module):
    """A detector's score as a torch function of its features (see the module docstring)."""

    #: registry name of the detector, its feature, whether ``y_pred`` is needed
    name: str = ""
    needs_prediction: bool = False
    #: True when ``surrogate`` is the exact score (False: Trust Score's soft version)
    surrogate_is_exact: bool = True

    def __init__(self, det: D.Detector) -> None:
        super().__init__()
        if not hasattr(det, "n_features_in_"):
            raise SoftlibError(f"{type(det).__name__} is not fitted yet; fit it before building its torch scorer")
        self.feature = str(det.feature)
        self.n_features = int(det.n_features_in_)

    def _check(self, x: torch.Tensor, y_pred: torch.Tensor | None) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.n_features:
            raise SoftlibError(f"x must be an (N, {self.n_features}) tensor of {self.feature} features, "
                               f"got {tuple(getattr(x, 'shape', ()))}")
        if self.needs_prediction and y_pred is None and self.feature == "hidden":
            raise SoftlibError(f"the {self.name} scorer on hidden features needs y_pred (the model's predictions)")
        # the fitted arrays follow the features: a scorer built from a CPU-fitted detector attacks a GPU model
        # (in place, as nn.Module.to; once, the first call on a new device)
        buf = next(self.buffers(), None)
        if buf is not None and buf.device != x.device:
            self.to(x.device)
        return x.to(torch.float64)

    def _pred(self, x: torch.Tensor, y_pred: torch.Tensor | None) -> torch.Tensor:
        return (x.argmax(1) if y_pred is None else torch.as_tensor(y_pred, device=x.device)).long()

    def score(self, x: torch.Tensor, y_pred: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y_pred: torch.Tensor | None = None) -> torch.Tensor:
        """The exact score (float64, differentiable where the detector is)."""
        return self.score(self._check(x, y_pred), y_pred)

    def surrogate(self, x: torch.Tensor, y_pred: torch.Tensor | None = None) -> torch.Tensor:
        """The function an attack differentiates (the exact score unless overridden)."""
        return self.forward(x, y_pred)


class _SB(TorchScorer):
    name = "sb"

    def __init__(self, det: D.SoftmaxBaseline) -> None:
        super().__init__(det)
        self.temperature = float(det.temperature)

    def score(self, x, y_pred=None):
        p = x if self.feature == "softmax" else torch.softmax(x / self.temperature, dim=1)
        return p.max(dim=1).values


class _MaxLogit(TorchScorer):
    name = "maxlogit"

    def score(self, x, y_pred=None):
        return x.max(dim=1).values


class _Energy(TorchScorer):
    name = "energy"

    def __init__(self, det: D.Energy) -> None:
        super().__init__(det)
        self.temperature = float(det.temperature)

    def score(self, x, y_pred=None):
        return self.temperature * torch.logsumexp(x / self.temperature, dim=1)


class _KDE(TorchScorer):
    """000 section 4.2: log density of the Gaussian KDE (Scott's rule), from its whitening."""

    name = "kde"

    def __init__(self, det: D.KDE) -> None:
        super().__init__(det)
        pts = det._points.detach().to("cpu", torch.float64)  # fitted, already whitened
        self.register_buffer("whiten", _t(det._inv_chol_T))
        self.register_buffer("points", pts)
        self.register_buffer("half_p_sq", 0.5 * (pts * pts).sum(1))
        self.log_norm = float(det.log_norm_)

    def score(self, x, y_pred=None):
        return _gauss_lse(x @ self.whiten, self.points, self.half_p_sq) + self.log_norm


class _ClassKDE(TorchScorer):
    """Feinman et al. (2017) / 003 eq. 2: the predicted class's KDE, fixed bandwidth."""

    name = "class_kde"
    needs_prediction = True

    def __init__(self, det: D.ClassConditionalKDE) -> None:
        super().__init__(det)
        self.h = float(det.bandwidth)
        self.classes = [int(c) for c in det.classes_]
        for c in self.classes:
            pts = det._points[c].detach().to("cpu", torch.float64)
            self.register_buffer(f"points_{c}", pts)
            self.register_buffer(f"half_p_sq_{c}", 0.5 * (pts * pts).sum(1))
        self.log_norm = {int(c): float(v) for c, v in det.log_norm_.items()}

    def score(self, x, y_pred=None):
        pred = self._pred(x, y_pred)
        out = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        for c in torch.unique(pred).tolist():
            if c not in self.log_norm:
                raise SoftlibError(f"predicted class {c} had no fit examples; fitted: {self.classes}")
            m = pred == c
            lse = _gauss_lse(x[m] / self.h, getattr(self, f"points_{c}"), getattr(self, f"half_p_sq_{c}"))
            out = out.index_put((m.nonzero(as_tuple=True)[0],), lse + self.log_norm[c])
        return out


class _Mahalanobis(TorchScorer):
    """Lee et al. (2018) eq. 2: minus the smallest squared Mahalanobis distance to a class mean."""

    name = "mahalanobis"

    def __init__(self, det: D.Mahalanobis) -> None:
        super().__init__(det)
        self.register_buffer("means", _t(det.means_))
        self.register_buffer("precision", _t(det.precision_))

    def score(self, x, y_pred=None):
        # the detector's own expansion x'Px - 2 x'P mu + mu'P mu (same rounding as score_samples)
        xp = x @ self.precision
        mu = self.means
        d = (xp * x).sum(1, keepdim=True) - 2 * xp @ mu.T + ((mu @ self.precision) * mu).sum(1)[None, :]
        return -d.clamp(min=0).min(dim=1).values


class _NN(TorchScorer):
    """000 section 4.1 / 002 section 3.1: the fitted regression MLP (eval mode: no dropout)."""

    name = "nn"

    def __init__(self, det: D.NNDetector) -> None:
        super().__init__(det)
        self.net = det.net_  # shared with the detector; only ever used in eval mode here
        self.register_buffer("mean", _t(det.mean_))
        self.register_buffer("scale", _t(det.scale_))

    def score(self, x, y_pred=None):
        self.net.eval()
        dev = next(self.net.parameters()).device
        z = ((x - self.mean.to(x.device)) / self.scale.to(x.device)).to(device=dev, dtype=torch.float32)
        return self.net(z).to(device=x.device, dtype=torch.float64)


class _TrustScore(TorchScorer):
    """Jiang et al. (2018): exact ratio in ``forward``; soft nearest-neighbour surrogate."""

    name = "ts"
    needs_prediction = True
    surrogate_is_exact = False

    def __init__(self, det: D.TrustScore, tau: float | None = None) -> None:
        super().__init__(det)
        self.neighbor = int(det.neighbor)
        self.min_dist = float(det.min_dist)
        self.classes = [int(c) for c in det.classes_]
        for c in self.classes:
            self.register_buffer(f"points_{c}", _t(det.points_[c]))
        self.tau = check_float("tau", tau, low=1e-12) if tau is not None else self._default_tau()

    def _default_tau(self) -> float:
        """10% of the median distance of fit points to their nearest other point of their class."""
        med = []
        for c in self.classes:
            p = getattr(self, f"points_{c}")[:256]
            d = torch.cdist(p, getattr(self, f"points_{c}"))
            med.append(torch.topk(d, 2, dim=1, largest=False).values[:, -1])
        return float(0.1 * torch.cat(med).median().clamp(min=1e-9))

    def _class_dists(self, x: torch.Tensor, soft: bool) -> torch.Tensor:
        out = []
        for c in self.classes:
            # direct differences, not the ||x||^2 - 2 x.p + ||p||^2 expansion: saturated softmax
            # features sit ~1e-7 from fit points, where the expansion cancels catastrophically
            d = torch.cdist(x, getattr(self, f"points_{c}"), compute_mode="donot_use_mm_for_euclid_dist")
            if soft:
                if self.neighbor > 1:
                    # the k-th neighbour: drop the k - 1 nearest points (a piecewise-constant choice,
                    # as the class choice), then a soft minimum over the rest; tau -> 0 gives the exact
                    near = torch.topk(d.detach(), self.neighbor - 1, dim=1, largest=False).indices
                    d = d.scatter(1, near, float("inf"))
                out.append(-self.tau * torch.logsumexp(-d / self.tau, dim=1))
            else:
                out.append(torch.topk(d, self.neighbor, dim=1, largest=False).values[:, -1])
        return torch.stack(out, dim=1)

    def _ratio(self, x: torch.Tensor, y_pred: torch.Tensor | None, soft: bool) -> torch.Tensor:
        pred = self._pred(x, y_pred)
        col = torch.as_tensor([self.classes.index(int(c)) if int(c) in self.classes else -1 for c in pred.tolist()],
                              device=x.device, dtype=torch.long)
        if bool((col < 0).any()):
            raise SoftlibError(f"y_pred holds classes absent from fit; fitted: {self.classes}")
        d = self._class_dists(x, soft)
        rows = torch.arange(len(x), device=x.device)
        d_pred = d[rows, col]
        other = d.masked_fill(torch.nn.functional.one_hot(col, d.shape[1]).bool(), float("inf"))
        if soft:
            d_other = -self.tau * torch.logsumexp(-other / self.tau, dim=1)
        else:
            d_other = other.min(dim=1).values
        return d_other / (d_pred + self.min_dist)

    def score(self, x, y_pred=None):
        return self._ratio(x, y_pred, soft=False)

    def surrogate(self, x: torch.Tensor, y_pred: torch.Tensor | None = None) -> torch.Tensor:
        return self._ratio(self._check(x, y_pred), y_pred, soft=True)


_SCORERS: dict[type, type[TorchScorer]] = {
    D.SoftmaxBaseline: _SB, D.MaxLogit: _MaxLogit, D.Energy: _Energy, D.KDE: _KDE,
    D.ClassConditionalKDE: _ClassKDE, D.Mahalanobis: _Mahalanobis, D.NNDetector: _NN, D.TrustScore: _TrustScore,
}


def torch_scorer(det: D.Detector, **opts: Any) -> TorchScorer:
    """The differentiable scoring path of a *fitted* detector.

    ``opts``: ``tau`` for the Trust Score's soft nearest-neighbour surrogate (default: 10% of
    the median within-class nearest-neighbour distance of its fit points). The scorer copies
    the fitted arrays (the NN detector's network is shared, used in eval mode).
    """
    cls = _SCORERS.get(type(det))
    if cls is None:
        raise SoftlibError(f"no torch scoring path for {type(det).__name__}; available for "
                           f"{sorted(c.__name__ for c in _SCORERS)}")
    if opts and cls is not _TrustScore:
        raise SoftlibError(f"options {sorted(opts)} only apply to the Trust Score scorer")
    unknown = sorted(set(opts) - {"tau"})
    if unknown:
        raise SoftlibError(f"unknown scorer option(s) {unknown}; allowed: ['tau']")
    return cls(det, **opts)


def features_of(model: nn.Module, x: torch.Tensor, feature: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, features)`` of images ``x``, differentiable: the representation a detector reads.

    ``"logits"``; ``"softmax"`` (float32 softmax of the logits, as ``detectors.feature_views``);
    ``"hidden"`` (the model's last hidden layer, ``forward_with_features``).
    """
    if feature == "hidden":
        hidden, logits = model.forward_with_features(x)
        return logits, hidden
    logits = model(x)
    if feature == "softmax":
        return logits, torch.softmax(logits.float(), dim=1)
    if feature == "logits":
        return logits, logits
    raise SoftlibError(f"feature must be one of {D.FEATURES}, got {feature!r}")
