"""Adversarial attacks as torchattacks ``Attack`` objects, and one batched runner.

Paper 000 (section 3.1) builds four adversarial sets with CleverHans v2.1: FGSM,
BIM, DeepFool and MaxConfidence, "all ... generated using the l-infinity norm with
eps = 0.3" on MNIST. Chapter 05 adds PGD with 003's settings (section 4.3).

=============  =======================================================================
name           implementation and default settings
=============  =======================================================================
``fgsm``       ``torchattacks.FGSM`` (one signed-gradient step of size eps).
``bim``        ``torchattacks.BIM``; default step ``eps / 6`` (CleverHans v2.1
               ``BasicIterativeMethod`` defaults: eps 0.3, eps_iter 0.05, nb_iter 10,
               i.e. the step is eps/6), 10 steps. Chapter 05 passes 003's eps/n.
``pgd``        ``torchattacks.PGD`` with a uniform random start in the eps ball
               (Madry et al.); default step ``eps / 10`` and 10 steps (003 section 4.3:
               n = 10, D_step = eps/10).
``deepfool``   :class:`BatchedDeepFool`: the L2 DeepFool of Moosavi-Dezfooli et al.
               (overshoot 0.02, CleverHans's max_iter 50) for a whole batch at once:
               torchattacks' update with the step restricted to pixels the [0, 1]
               box lets move (``variant="box"``: otherwise examples end on exact
               ties of the top-2 logits); ``variant="torchattacks"`` reproduces
               ``torchattacks.DeepFool`` exactly. Its result is
               then *projected onto the L-inf ball of radius eps* so that the "all with
               eps = 0.3" of 000 holds; an example counts as a success only if it is
               still misclassified after the projection (our choice; CleverHans's
               DeepFool has no eps, so 000 cannot have bounded it).
``maxconf``    :class:`MaxConfidence` (Goodfellow, Qin & Berthelot 2019, cited in 000):
               a targeted PGD toward every wrong class, keeping per example the result
               with the most confident wrong class. Base attack = CleverHans's
               ``ProjectedGradientDescent`` defaults (eps_iter 0.05 = eps/6, nb_iter 10,
               random start in the eps ball).
=============  =======================================================================

eps: 0.3 for MNIST and Fashion-MNIST (000 section 3.1); 000 does not give one for
CIFAR-10, we use the common 8/255 (:func:`default_eps`).

Every model takes pixels in [0, 1] and returns one (N, C) logit tensor.
:func:`run_attack` runs an attack batch by batch, checks the L-inf bound and the
[0, 1] range of what came out (raising :class:`AttackBoundError` if violated) and
returns the adversarial images with a per-example success mask (prediction differs
from the label). Keeping only the successes is :mod:`softlib.sets`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchattacks
from torchattacks.attack import Attack
from tqdm.auto import tqdm

from .models import model_device, prediction_rule
from .validate import SoftlibError, check_choice, check_float, check_int

#: Bump when an attack's output for the same inputs changes (part of every set's cache key).
CODE_VERSION = "attacks-1"

ATTACKS = ("fgsm", "bim", "deepfool", "maxconf", "pgd")

#: Human-readable names for tables and figures.
ATTACK_NAMES = {"fgsm": "FGSM", "bim": "BIM", "deepfool": "DeepFool", "maxconf": "MaxConfidence", "pgd": "PGD"}

#: Default number of iterations (CleverHans v2.1 BIM nb_iter 10; CleverHans PGD nb_iter 10 as
#: MaxConfidence's base attack; CleverHans DeepFool max_iter 50; 003 section 4.3 PGD n = 10).
DEFAULT_STEPS = {"fgsm": 1, "bim": 10, "deepfool": 50, "maxconf": 10, "pgd": 10}

#: Default step size as a fraction of eps (CleverHans eps_iter 0.05 at eps 0.3 = eps/6 for
#: BIM and MaxConfidence's PGD; 003 section 4.3 D_step = eps/10 for PGD).
DEFAULT_STEP_FRACTION = {"bim": 1 / 6, "maxconf": 1 / 6, "pgd": 1 / 10}

#: DeepFool overshoot (Moosavi-Dezfooli et al. 2016; torchattacks and CleverHans default).
DEEPFOOL_OVERSHOOT = 0.02

#: Tolerance of the bound check (float32 rounding of x + delta).
BOUND_TOL = 1e-5


class AttackBoundError(SoftlibError):
    """An attack returned images outside the eps ball or outside [0, 1]."""


def default_eps(dataset: str) -> float:
    """The L-inf budget used for ``dataset``.

    0.3 on MNIST-like data (000 section 3.1); 8/255 on CIFAR-10 (000 gives none; 8/255 is
    the usual CIFAR-10 budget, our choice).
    """
    check_choice("data set", dataset, ("mnist", "fashion_mnist", "cifar10"))
    return 8 / 255 if dataset == "cifar10" else 0.3


# ---------------------------------------------------------------------------- attacks


class BatchedDeepFool(Attack):
    r"""DeepFool (Moosavi-Dezfooli et al. 2016) for a whole batch at once (L2 linearisation).

    At the current point of every still-correct example, with logits :math:`f`,
    true class :math:`y`, :math:`f'_k = f_k - f_y` and :math:`w'_k = \nabla f_k - \nabla f_y`,
    the closest linearised boundary is :math:`\hat l = \arg\min_{k \ne y} |f'_k| / \|w'_k\|_2`
    and the step toward it :math:`r = |f'_{\hat l}|\,w'_{\hat l} / \|w'_{\hat l}\|_2^2`.
    An example stops once it is misclassified or after ``steps`` steps. Two
    variants of the update:

    - ``"box"`` (default): the same step, restricted to the pixels that can move:
      a pixel at 0 whose gradient component points down, or at 1 pointing up, is
      left out of :math:`w'_k` (for the choice of :math:`\hat l` and for the step).
      Without it, the [0, 1] clip eats part of every step, the iterates creep toward
      the boundary and stop on a tie (top-2 logits equal to ~1e-7), where
      "misclassified" is decided by rounding noise (it flips with the batch size).
    - ``"torchattacks"``: exactly ``torchattacks.DeepFool`` (3.5.1), whose examples
      end on such ties; kept to check our batching against torchattacks.

    The Jacobian is built with one backward pass per class over the whole batch
    (torchattacks does one per class *per image*). ``eps``: if not None, the final
    result is projected onto the L-inf ball of radius ``eps`` (then clipped to [0, 1]).
    """

    VARIANTS = ("box", "torchattacks")

    def __init__(self, model: nn.Module, steps: int = 50, overshoot: float = DEEPFOOL_OVERSHOOT,
                 eps: float | None = None, variant: str = "box") -> None:
        super().__init__("BatchedDeepFool", model)
        check_choice("DeepFool variant", variant, self.VARIANTS)
        self.steps = steps
        self.overshoot = overshoot
        self.eps = eps
        self.variant = variant
        self.supported_mode = ["default"]

    def _jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (M, C) and their Jacobian w.r.t. the flattened input (M, C, D)."""
        x = x.clone().requires_grad_(True)
        logits = self.get_logits(x)
        num_classes = logits.shape[1]
        grads = []
        for k in range(num_classes):
            (g,) = torch.autograd.grad(logits[:, k].sum(), x, retain_graph=k + 1 < num_classes)
            grads.append(g.reshape(len(x), -1))
        return logits.detach(), torch.stack(grads, dim=1)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Return adversarial images (same shape as ``images``)."""
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        flat0 = images.reshape(len(images), -1)
        adv = flat0.clone()
        shape = images.shape[1:]
        active = torch.ones(len(images), dtype=torch.bool, device=images.device)
        for _ in range(self.steps):
            idx = active.nonzero(as_tuple=True)[0]
            if len(idx) == 0:
                break
            logits, jac = self._jacobian(adv[idx].reshape(-1, *shape))
            y = labels[idx]
            still = logits.argmax(dim=1) == y
            active[idx[~still]] = False  # misclassified: stop here, point unchanged
            if not bool(still.any()):
                break
            idx, logits, jac, y = idx[still], logits[still], jac[still], y[still]
            rows = torch.arange(len(idx), device=images.device)
            f_prime = logits - logits[rows, y][:, None]  # (M, C)
            w_prime = jac - jac[rows, y][:, None, :]  # (M, C, D)
            if self.variant == "box":  # drop pixels the [0, 1] box stops from moving along +w'
                p = adv[idx][:, None, :]
                w_prime = w_prime.masked_fill(((p <= 0) & (w_prime < 0)) | ((p >= 1) & (w_prime > 0)), 0.0)
            norms = w_prime.norm(dim=2)  # (M, C)
            value = f_prime.abs() / norms
            value[rows, y] = float("inf")
            hat_l = value.argmin(dim=1)
            w_l = w_prime[rows, hat_l]  # (M, D)
            r = (f_prime[rows, hat_l].abs() / norms[rows, hat_l] ** 2)[:, None] * w_l
            adv[idx] = torch.clamp(adv[idx] + (1 + self.overshoot) * r, 0, 1)
        adv = adv.reshape(images.shape)
        if self.eps is not None:
            adv = torch.clamp(images + torch.clamp(adv - images, -self.eps, self.eps), 0, 1)
        return adv.detach()


class MaxConfidence(Attack):
    """MaxConfidence (Goodfellow, Qin & Berthelot 2019; CleverHans ``MaxConfidence``).

    For every class ``t`` a targeted L-inf PGD toward ``t`` is run on the examples
    whose label is not ``t``. Per example the result kept is the one with the highest
    probability of a wrong class among results that are misclassified; if none is
    misclassified, the one with the highest wrong-class probability (CleverHans keeps an
    arbitrary one; ties go to the lowest class). Base attack: CleverHans
    ``ProjectedGradientDescent`` defaults (random start uniform in the eps ball, ``steps``
    signed-gradient steps of size ``alpha``).

    ``batched=True`` (default) runs the C-1 targeted PGDs of a batch as one stacked batch
    of at most ``max_rows`` rows (one forward/backward per step instead of C-1);
    ``batched=False`` loops over the targets. Both draw the random starts in the same
    order (target by target), so they give the same images up to float rounding.
    """

    def __init__(self, model: nn.Module, eps: float = 0.3, alpha: float = 0.05, steps: int = 10,
                 random_start: bool = True, batched: bool = True, max_rows: int = 4096) -> None:
        super().__init__("MaxConfidence", model)
        self.eps, self.alpha, self.steps, self.random_start = eps, alpha, steps, random_start
        self.batched, self.max_rows = batched, max(1, int(max_rows))
        self.supported_mode = ["default"]

    def _start(self, x: torch.Tensor) -> torch.Tensor:
        if not self.random_start:
            return x.clone()
        return torch.clamp(x + torch.empty_like(x).uniform_(-self.eps, self.eps), 0, 1)

    def _targeted_pgd(self, x: torch.Tensor, target: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        adv = self._start(x) if start is None else start
        for _ in range(self.steps):
            adv.requires_grad_(True)
            # sum, not mean: each row's gradient is its own (the sign is the same; no 1/M rounding)
            loss = F.cross_entropy(self.get_logits(adv), target, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
            adv = adv.detach() - self.alpha * grad.sign()
            adv = torch.clamp(x + torch.clamp(adv - x, -self.eps, self.eps), 0, 1)
        return adv.detach()

    def _runs(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int
              ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(example index, target, adversarial)`` for every (example, wrong class), target-major."""
        if not self.batched:
            out = []
            for t in range(num_classes):
                idx = (labels != t).nonzero(as_tuple=True)[0]
                if len(idx):
                    tgt = torch.full_like(labels[idx], t)
                    out.append((idx, tgt, self._targeted_pgd(images[idx], tgt)))
            return out
        idxs = [(labels != t).nonzero(as_tuple=True)[0] for t in range(num_classes)]
        idx = torch.cat(idxs)
        tgt = torch.cat([torch.full_like(i, t) for t, i in enumerate(idxs)])
        # random starts drawn target by target, as the loop draws them
        start = torch.cat([self._start(images[i]) for i in idxs])
        out = []
        for s in range(0, len(idx), self.max_rows):
            sl = slice(s, s + self.max_rows)
            out.append((idx[sl], tgt[sl], self._targeted_pgd(images[idx[sl]], tgt[sl], start[sl])))
        return out

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Return the most confidently misclassified result per example."""
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        with torch.no_grad():
            num_classes = self.get_logits(images[:1]).shape[1]
        best = images.clone()
        best_score = torch.full((len(images),), -float("inf"), device=images.device)
        for idx, _, adv in self._runs(images, labels, num_classes):
            with torch.no_grad():
                probs = F.softmax(self.get_logits(adv), dim=1)
            rows = torch.arange(len(idx), device=images.device)
            wrong = probs.clone()
            wrong[rows, labels[idx]] = -1.0
            eligible = probs.argmax(dim=1) != labels[idx]
            score = wrong.max(dim=1).values + eligible.float()  # misclassified results always win
            # rows come target by target: a strict > keeps the lowest target on ties, as the loop
            for t_rows in _first_per_example(idx):
                better = score[t_rows] > best_score[idx[t_rows]]
                best[idx[t_rows][better]] = adv[t_rows][better]
                best_score[idx[t_rows][better]] = score[t_rows][better]
        return best


def _first_per_example(idx: torch.Tensor) -> list[torch.Tensor]:
    """Split row positions into groups in which every example index occurs at most once (in order).

    Rows are target-major, so each group is one target's rows; the update ``best[idx] = ...``
    with repeated indices would otherwise keep an arbitrary one.
    """
    if len(idx) == 0:
        return []
    # a new group starts where the example index stops increasing (targets are concatenated)
    starts = torch.nonzero(idx[1:] <= idx[:-1], as_tuple=True)[0] + 1
    bounds = [0, *starts.tolist(), len(idx)]
    return [torch.arange(a, b, device=idx.device) for a, b in zip(bounds[:-1], bounds[1:])]


# ---------------------------------------------------------------------------- registry


def make_attack(name: str, model: nn.Module, *, eps: float, steps: int | None = None,
                step_size: float | None = None, random_start: bool = True,
                overshoot: float = DEEPFOOL_OVERSHOOT, project: bool = True,
                variant: str = "box") -> Attack:
    """Build the attack ``name`` (one of :data:`ATTACKS`) on ``model``.

    ``eps``: L-inf budget in [0, 1]. ``steps``: iterations (default
    :data:`DEFAULT_STEPS`; FGSM only accepts 1). ``step_size``: BIM / PGD /
    MaxConfidence step (default ``eps * DEFAULT_STEP_FRACTION[name]``).
    ``random_start``: PGD and MaxConfidence only. ``overshoot``, ``project``
    (project DeepFool's result onto the eps ball) and ``variant`` (see
    :class:`BatchedDeepFool`): DeepFool only.
    """
    check_choice("attack", name, ATTACKS)
    if not isinstance(model, nn.Module):
        raise SoftlibError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    eps = check_float("eps", eps, low=0.0, high=1.0)
    # 004 runs the longest attack of the papers, 500 iterations; 100,000 bounds a typo's run time
    steps = DEFAULT_STEPS[name] if steps is None else check_int("steps", steps, low=1, high=100_000)
    if name == "fgsm" and steps != 1:
        raise SoftlibError(f"FGSM is a single-step attack: steps must be 1 (or None), got {steps}")
    if step_size is None:
        step_size = eps * DEFAULT_STEP_FRACTION.get(name, 1.0)
    step_size = check_float("step_size", step_size, low=0.0, high=1.0)
    if name == "fgsm":
        return torchattacks.FGSM(model, eps=eps)
    if name == "bim":
        return torchattacks.BIM(model, eps=eps, alpha=step_size, steps=steps)
    if name == "pgd":
        return torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, random_start=bool(random_start))
    if name == "maxconf":
        return MaxConfidence(model, eps=eps, alpha=step_size, steps=steps, random_start=bool(random_start))
    overshoot = check_float("overshoot", overshoot, low=0.0, high=1.0)
    return BatchedDeepFool(model, steps=steps, overshoot=overshoot, eps=eps if project else None,
                           variant=variant)


def attack_params(name: str, *, eps: float, steps: int | None = None, step_size: float | None = None,
                  **opts: Any) -> dict[str, Any]:
    """The fully resolved settings of an attack (for cache keys and tables)."""
    check_choice("attack", name, ATTACKS)
    steps = DEFAULT_STEPS[name] if steps is None else int(steps)
    out: dict[str, Any] = {"attack": name, "eps": float(eps), "steps": steps, "code": CODE_VERSION}
    if name in DEFAULT_STEP_FRACTION:
        out["step_size"] = float(eps * DEFAULT_STEP_FRACTION[name] if step_size is None else step_size)
    if name in ("pgd", "maxconf"):
        out["random_start"] = bool(opts.get("random_start", True))
    if name == "deepfool":
        out["overshoot"] = float(opts.get("overshoot", DEEPFOOL_OVERSHOOT))
        out["project"] = bool(opts.get("project", True))
        out["variant"] = str(opts.get("variant", "box"))
    return out


def _num_outputs(model: nn.Module, x: torch.Tensor) -> int | None:
    """The model's number of classes (``num_classes``, else one probe forward pass)."""
    n = getattr(model, "num_classes", None)
    if isinstance(n, int) or not len(x):
        return n
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return int(model(x[:1].to(model_device(model))).shape[-1])
    finally:
        model.train(was_training)


# the device helper and the prediction rule live in softlib.models (these names are kept for softlib.sets)
_model_device = model_device
default_predict = prediction_rule


def check_bound(x: torch.Tensor, x_adv: torch.Tensor, eps: float, *, name: str = "attack") -> None:
    """Raise :class:`AttackBoundError` unless ``|x_adv - x|_inf <= eps`` and ``x_adv`` in [0, 1]."""
    if x_adv.shape != x.shape:
        raise AttackBoundError(f"{name} returned shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
    if not x_adv.numel():
        return
    # one pass for the range (min/max propagate NaN, so a NaN or inf pixel shows up here too), and one
    # device-to-host read of the three numbers: on a GPU each read waits for the attack to finish
    lo_t, hi_t = torch.aminmax(x_adv)
    lo, hi, dist = torch.stack([lo_t, hi_t, (x_adv - x).abs().amax().to(lo_t.dtype)]).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise AttackBoundError(f"{name} returned NaN or inf pixels")
    if lo < 0.0 or hi > 1.0:
        raise AttackBoundError(f"{name} left [0, 1]: pixel range [{lo:.6g}, {hi:.6g}]")
    if dist > eps + BOUND_TOL:
        raise AttackBoundError(f"{name} exceeded its L-inf budget: max |x_adv - x| = {dist:.6g} > eps = {eps:.6g}")


def run_attack(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
               steps: int | None = None, step_size: float | None = None, batch_size: int = 256,
               seed: int = 0, progress: bool | None = None,
               predict: Callable[[torch.Tensor], torch.Tensor] | None = None,
               success: bool = True,
               **opts: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attack ``x`` (N, C, H, W in [0, 1]) with labels ``y``; return ``(x_adv, success)`` on the CPU.

    Runs on the model's device in batches of ``batch_size``; random starts are
    drawn from a torch RNG seeded with ``seed`` (the global RNG state is restored
    afterwards). ``success[i]`` is True when the model's prediction on
    ``x_adv[i]`` differs from ``y[i]``. The L-inf bound (``eps``; DeepFool without
    projection is exempt) and the [0, 1] range are checked on every batch.
    ``success=False`` returns ``(x_adv, None)`` and skips the extra forward pass the mask
    costs (a third of FGSM's work): for callers that compute predictions on ``x_adv`` anyway.
    """
    from .validate import check_labels, check_model_input, check_seed

    check_choice("attack", name, ATTACKS)
    check_model_input("x", x, model)
    y = check_labels("y", y, len(x), _num_outputs(model, x))
    batch_size = check_int("batch_size", batch_size, low=1)
    seed = check_seed("seed", seed)
    if not isinstance(success, bool):
        raise SoftlibError(f"success must be True or False, got {success!r}")
    attack = make_attack(name, model, eps=eps, steps=steps, step_size=step_size, **opts)
    bounded = not (name == "deepfool" and not opts.get("project", True))
    predict = predict or prediction_rule(model)
    device = model_device(model)
    was_training = model.training
    model.eval()
    # the attacks differentiate w.r.t. the input only: frozen weights spare autograd their bookkeeping
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    outs, succ = [], []
    show = (len(x) > 4 * batch_size) if progress is None else progress
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for start in tqdm(range(0, len(x), batch_size), desc=name, disable=not show, leave=False):
                xb = x[start:start + batch_size].to(device)
                yb = y[start:start + batch_size].to(device)
                adv = attack(xb, yb).detach()
                check_bound(xb, adv, eps if bounded else 1.0, name=name)
                outs.append(adv.cpu())
                if success:
                    with torch.inference_mode():
                        succ.append((predict(model(adv)) != yb).cpu())
    finally:
        for p in frozen:
            p.requires_grad_(True)
        model.train(was_training)
    if not outs:
        return x.clone(), torch.zeros(0, dtype=torch.bool) if success else None
    return torch.cat(outs), torch.cat(succ) if success else None
