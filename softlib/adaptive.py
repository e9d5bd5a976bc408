"""Adaptive attacks on detectors: the attacker knows the detector (chapter 06).

Carlini & Wagner ("Adversarial examples are not easily detected", AISec 2017) broke ten
detectors, the KDE of Feinman et al. among them, by adding the detector to the attack's
loss; Tramer, Carlini, Brendel & Madry (NeurIPS 2020) made it the method of choice. Two
torchattacks ``Attack`` subclasses:

:class:`AdaptivePGD`
    L-inf PGD maximising ``L_mis - lambda * L_det`` per example, where ``L_mis`` is the
    misclassification loss (``"ce"``: cross-entropy, as BIM; ``"margin"``: C&W's f6,
    ``min(max_{k != y} z_k - z_y, kappa)``) and ``L_det = relu((thr - s(x)) / scale + margin)``
    pushes the detector score ``s`` (a :class:`softlib.diffscore.TorchScorer` on the
    detector's representation) above its 95%-TPR threshold ``thr``; ``scale`` puts the
    detectors' scores in comparable units (the std of legitimate scores). ``lambda`` is found
    per example by a search as in C&W (``search_steps`` rounds: an example that ends
    misclassified but detected gets a 10x larger lambda, one that ends correctly classified a
    10x smaller one, a bisection once both sides are known); an example that succeeded
    (misclassified and undetected) is kept and not attacked again. Random restarts; the
    best iterate of every run is kept (``keep_best``). With ``lam=0``, ``loss="ce"``,
    ``random_start=False``, ``restarts=1``, ``keep_best=False`` the update is exactly
    torchattacks' BIM (tested), i.e. chapter 02/03's BIM set.

:class:`LogitMatching`
    A detector-agnostic attack on logit-based detectors: L-inf PGD that moves the logits
    toward the mean logit vector of *clean* images of a target class (per-dimension
    standardised squared distance), so the adversarial logits look like legitimate ones of
    that class. Target: the runner-up class of the clean image by default.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchattacks.attack import Attack

from .diffscore import TorchScorer, features_of
from .validate import SoftlibError, check_choice, check_float, check_int

#: Bump when an attack's output for the same inputs changes.
CODE_VERSION = "adaptive-1"
LOSSES = ("ce", "margin")


def _project(adv: torch.Tensor, ori: torch.Tensor, eps: float) -> torch.Tensor:
    """Onto the L-inf ball around ``ori`` and [0, 1], with the same operations as torchattacks' BIM."""
    a = torch.clamp(ori - eps, min=0)
    b = (adv >= a).float() * adv + (adv < a).float() * a
    c = (b > ori + eps).float() * (ori + eps) + (b <= ori + eps).float() * b
    return torch.clamp(c, max=1)


def _check_common(eps: Any, alpha: Any, steps: Any, restarts: Any) -> tuple[float, float, int, int]:
    eps = check_float("eps", eps, low=0.0, high=1.0)
    alpha = eps / 10 if alpha is None else check_float("alpha", alpha, low=0.0, high=1.0)
    return eps, alpha, check_int("steps", steps, low=1), check_int("restarts", restarts, low=1)


def search_update(lam: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                  status: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One round of the per-example lambda search (C&W 2017's binary search on their constant).

    ``status``: 2 succeeded (kept as is), 1 misclassified but detected (lambda too small:
    ``lo = lambda``), 0 still correctly classified (lambda too large: ``hi = lambda``). The new
    lambda is 10x / 0.1x while only one side is known, then the geometric midpoint of
    ``(lo, hi)``; a lambda of 0 that was detected becomes 1. Returns ``(lam, lo, hi)``.
    """
    lam, lo, hi = lam.clone(), lo.clone(), hi.clone()
    up, down = status == 1, status == 0
    lo[up] = lam[up]
    hi[down] = lam[down]
    both = torch.isfinite(hi) & (lo > 0)
    new = torch.where(both, (lo * hi).sqrt(), torch.where(torch.isfinite(hi), hi / 10, lam * 10))
    new = torch.where(up & (lam == 0), torch.ones_like(lam), new)
    lam = torch.where(up | down, new, lam)
    return lam, lo, hi


class AdaptivePGD(Attack):
    """PGD on misclassification loss + lambda x detector loss (see the module docstring).

    ``scorer=None`` attacks the undefended model (every misclassification counts).
    ``feature``: the representation the scorer reads (``"logits"``, ``"softmax"``, ``"hidden"``).
    ``threshold``: accept as legitimate when ``score >= threshold`` (the 95%-TPR threshold of
    :func:`softlib.metrics.fpr_at_tpr`). ``lam``: the initial lambda (the only one when
    ``search_steps=0``). After :meth:`forward`, ``last_lambda`` holds each example's final lambda.
    """

    def __init__(self, model: nn.Module, scorer: TorchScorer | None = None, *, feature: str = "logits",
                 threshold: float | None = None, score_scale: float = 1.0, eps: float = 0.3,
                 alpha: float | None = None, steps: int = 40, restarts: int = 1, random_start: bool = True,
                 loss: str = "margin", kappa: float = 0.0, lam: float = 1.0, search_steps: int = 0,
                 det_margin: float = 0.0, keep_best: bool = True) -> None:
        super().__init__("AdaptivePGD", model)
        self.eps, self.alpha, self.steps, self.restarts = _check_common(eps, alpha, steps, restarts)
        self.loss = check_choice("loss", loss, LOSSES)
        self.kappa = check_float("kappa", kappa, low=0.0)
        self.lam = check_float("lam", lam, low=0.0)
        self.search_steps = check_int("search_steps", search_steps, low=0)
        self.det_margin = check_float("det_margin", det_margin, low=0.0)
        self.score_scale = check_float("score_scale", score_scale, low=1e-12)
        self.feature = check_choice("feature", feature, ("logits", "softmax", "hidden"))
        if scorer is not None:
            if not isinstance(scorer, TorchScorer):
                raise SoftlibError(f"scorer must be a softlib.diffscore.TorchScorer, got {type(scorer).__name__}")
            if scorer.feature != feature:
                raise SoftlibError(f"the scorer reads {scorer.feature!r} features but feature={feature!r}")
            if threshold is None:
                raise SoftlibError("threshold is needed with a scorer (accept when score >= threshold)")
            threshold = check_float("threshold", threshold)
        self.scorer, self.threshold = scorer, threshold
        self.random_start, self.keep_best = bool(random_start), bool(keep_best)
        self.supported_mode = ["default"]
        self.last_lambda: torch.Tensor | None = None

    # --------------------------------------------------------------- pieces
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, grad: bool):
        """Objective (to maximise), misclassified mask, detector score (exact) at ``x``."""
        logits, feat = features_of(self.model, x, self.feature)
        if self.loss == "ce":
            l_mis = F.cross_entropy(logits, y, reduction="none")
        else:
            z_y = logits.gather(1, y[:, None])[:, 0]
            other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).max(1).values
            l_mis = torch.clamp(other - z_y, max=self.kappa)
        mis = logits.detach().argmax(1) != y
        obj = l_mis
        score = None
        if self.scorer is not None:
            pred = logits.detach().argmax(1)
            if self.scorer.surrogate_is_exact:
                s = self.scorer(feat, pred)
                score = s.detach()
            else:
                s = self.scorer.surrogate(feat, pred)
                with torch.no_grad():
                    score = self.scorer(feat.detach(), pred)
            if grad and bool((lam > 0).any()):
                l_det = F.relu((self.threshold - s) / self.score_scale + self.det_margin)
                obj = obj - lam.to(l_det.dtype) * l_det
        return obj, mis, score

    def _status(self, mis: torch.Tensor, score: torch.Tensor | None) -> torch.Tensor:
        """2 = misclassified and accepted by the detector, 1 = misclassified but detected, 0 = correct."""
        if score is None:
            return mis.long() * 2
        return torch.where(mis, 1 + (score >= self.threshold).long(), torch.zeros_like(mis, dtype=torch.long))

    def _rank(self, status: torch.Tensor, score: torch.Tensor | None) -> torch.Tensor:
        """Larger is a better adversarial example (status first, then the detector score)."""
        tail = torch.zeros_like(status, dtype=torch.float64) if score is None else torch.atan(score.double()) / 4
        return status.double() + tail  # atan/4 in (-0.4, 0.4): never crosses a status level

    def _run(self, x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, start: torch.Tensor):
        """One PGD run from ``start``; returns (adversarial, status, rank) per example."""
        adv = start.clone().detach()
        best = adv.clone()
        best_rank = torch.full((len(x),), -1.0, dtype=torch.float64, device=x.device)
        best_status = torch.zeros(len(x), dtype=torch.long, device=x.device)
        for step in range(self.steps + 1):
            last = step == self.steps
            adv.requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                obj, mis, score = self._evaluate(adv, y, lam, grad=not last)
            status = self._status(mis, score)
            if self.keep_best or last:
                rank = self._rank(status, score)
                better = rank > best_rank if self.keep_best else torch.ones_like(status, dtype=torch.bool)
                best[better] = adv.detach()[better]
                best_rank[better] = rank[better]
                best_status[better] = status[better]
            if last:
                break
            # mean over the batch as torchattacks' BIM (nn.CrossEntropyLoss): identical signs at lam=0
            (grad,) = torch.autograd.grad(obj.mean(), adv)
            adv = _project(adv.detach() + self.alpha * grad.sign(), x, self.eps).detach()
        return best, best_status, best_rank

    # --------------------------------------------------------------- attack
    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial images (same shape as ``images``), within eps of them and in [0, 1]."""
        x = images.clone().detach().to(self.device)
        y = labels.clone().detach().to(self.device)
        n = len(x)
        lam = torch.full((n,), self.lam, dtype=torch.float64, device=x.device)
        lo = torch.zeros(n, dtype=torch.float64, device=x.device)
        hi = torch.full((n,), float("inf"), dtype=torch.float64, device=x.device)
        best = x.clone()
        best_rank = torch.full((n,), -1.0, dtype=torch.float64, device=x.device)
        final_lam = lam.clone()
        todo = torch.arange(n, device=x.device)
        rounds = 1 + (self.search_steps if self.scorer is not None else 0)
        for _ in range(rounds):
            if len(todo) == 0:
                break
            status_round = torch.zeros(len(todo), dtype=torch.long, device=x.device)
            for r in range(self.restarts):
                xs, ys = x[todo], y[todo]
                start = xs  # restarts after the first always start at a random point of the ball
                if self.random_start or r > 0:
                    start = torch.clamp(xs + torch.empty_like(xs).uniform_(-self.eps, self.eps), 0, 1)
                adv, status, rank = self._run(xs, ys, lam[todo], start)
                better = rank > best_rank[todo]
                idx = todo[better]
                best[idx] = adv[better]
                best_rank[idx] = rank[better]
                final_lam[idx] = lam[idx]
                status_round = torch.maximum(status_round, status)
            done = status_round == 2
            lam_t, lo_t, hi_t = search_update(lam[todo], lo[todo], hi[todo], status_round)
            lam[todo], lo[todo], hi[todo] = lam_t, lo_t, hi_t
            todo = todo[~done]
        self.last_lambda = final_lam.detach().cpu()
        return best.detach()


class LogitMatching(Attack):
    """Move the logits toward clean logits of a target class (see the module docstring).

    ``class_means`` (C, C): mean logit vector of clean, correctly classified images of each
    class; ``class_scales`` (C, C) or (C,): per-dimension std used to standardise the distance
    (default 1). ``target``: ``"runner_up"`` (second most likely class of the clean image) or
    ``"least_likely"``. The best iterate per example is the misclassified one closest to the
    target mean (or, if none is misclassified, the last).
    """

    TARGETS = ("runner_up", "least_likely")

    def __init__(self, model: nn.Module, class_means: torch.Tensor, class_scales: torch.Tensor | None = None, *,
                 eps: float = 0.3, alpha: float | None = None, steps: int = 40, restarts: int = 1,
                 random_start: bool = True, target: str = "runner_up") -> None:
        super().__init__("LogitMatching", model)
        self.eps, self.alpha, self.steps, self.restarts = _check_common(eps, alpha, steps, restarts)
        means = torch.as_tensor(class_means, dtype=torch.float32)
        if means.ndim != 2 or means.shape[0] != means.shape[1] or not bool(torch.isfinite(means).all()):
            raise SoftlibError(f"class_means must be a finite (C, C) matrix (one mean logit vector per class), "
                               f"got shape {tuple(means.shape)}")
        scales = torch.ones_like(means) if class_scales is None else torch.as_tensor(class_scales, dtype=torch.float32)
        scales = scales.expand_as(means) if scales.ndim == 1 else scales
        if scales.shape != means.shape or bool((scales <= 0).any()):
            raise SoftlibError(f"class_scales must be positive, of shape (C,) or {tuple(means.shape)}")
        self.class_means, self.class_scales = means, scales
        self.target = check_choice("target", target, self.TARGETS)
        self.random_start = bool(random_start)
        self.supported_mode = ["default"]

    def targets(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The target class of each example from its clean logits."""
        z = logits.detach().masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("nan"))
        if self.target == "runner_up":
            return torch.nan_to_num(z, nan=float("-inf")).argmax(1)
        return torch.nan_to_num(z, nan=float("inf")).argmin(1)

    def _distance(self, logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mu, sd = self.class_means.to(logits.device)[t], self.class_scales.to(logits.device)[t]
        return (((logits - mu) / sd) ** 2).mean(1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = images.clone().detach().to(self.device)
        y = labels.clone().detach().to(self.device)
        with torch.no_grad():
            t = self.targets(self.get_logits(x), y)
        best = x.clone()
        best_key = torch.full((len(x),), float("inf"), device=x.device)
        for _ in range(self.restarts):
            adv = x.clone()
            if self.random_start:
                adv = torch.clamp(x + torch.empty_like(x).uniform_(-self.eps, self.eps), 0, 1)
            for step in range(self.steps + 1):
                last = step == self.steps
                adv.requires_grad_(not last)
                with torch.set_grad_enabled(not last):
                    logits = self.get_logits(adv)
                    dist = self._distance(logits, t)
                # key: misclassified first (offset), then the distance to the target's clean logits
                key = dist.detach() + 1e6 * (logits.detach().argmax(1) == y).float()
                better = key < best_key
                best[better] = adv.detach()[better]
                best_key[better] = key[better]
                if last:
                    break
                (grad,) = torch.autograd.grad(dist.mean(), adv)
                adv = _project(adv.detach() - self.alpha * grad.sign(), x, self.eps).detach()
        return best.detach()
