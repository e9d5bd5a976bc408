"""Over-optimised and multi-class optimised adversarial examples (chapter 04).

Paper 004 (Ozbulak, De Neve, Van Messem, "How the Softmax Output is Misleading
for Evaluating the Strength of Adversarial Examples", appendix B) generates
adversarial examples by plain gradient ascent on *class activations* (logits),
not on a loss:

- over-optimised (004 appendix B, "Generating Over-optimized Adversarial
  Examples"): :math:`X_{i+1} = X_i + \\alpha \\nabla_X g(\\theta, X_i)_c`, with
  :math:`\\alpha = 0.15`. The paper writes a minus sign with its own sign
  convention; what it describes (and what we do) is the step that *raises* the
  logit :math:`g_c` of the target class :math:`c`.
- multi-class optimised (004 appendix B, "Generating Multi-class Optimized
  Adversarial Examples"): :math:`X_{i+1} = X_i + \\alpha \\nabla g_c + \\beta
  \\nabla g_d` with :math:`\\alpha, \\beta \\in [0.05, 0.1]` and the larger
  multiplier on the currently *less* likely of the two classes, re-chosen at
  every step, so that the softmax confidence stays in :math:`[0.5, 1)` while
  both logits keep rising.

**Pixel scale.** The paper's image :math:`X` has integer values in
:math:`[0, 255]` (004 appendix B, notation). softlib models take
:math:`x = X / 255 \\in [0, 1]` (normalisation inside the model), so with
:math:`g(X) = f(X / 255)` the chain rule gives
:math:`\\nabla_X g = \\nabla_x f / 255` and the paper's step
:math:`X \\leftarrow X + \\alpha \\nabla_X g` becomes, divided by 255,

.. math:: x \\leftarrow x + \\frac{\\alpha}{255^2} \\nabla_x f(x).

We write this with a general ``pixel_scale`` :math:`S` (the number the image is
multiplied by to get the units the step is taken in): the step on :math:`x` is
:math:`\\alpha \\nabla_x f / S^2`. ``pixel_scale=255`` is the paper's formula
taken literally; ``pixel_scale=1`` applies :math:`\\alpha` on the :math:`[0, 1]`
scale; ``pixel_scale=1/std`` applies it on the model's normalised input (what a
PyTorch implementation that differentiates w.r.t. the normalised tensor does).
Chapter 04 measures which of these reproduces the paper's activations.

**Valid images.** 004 appendix B keeps every iterate a valid image,
:math:`X \\in [0, 255]^n` with integer values (the "discretization constraint").
We clip to :math:`[0, 1]` every step and, with ``quantize=True`` (default,
following the paper), the image the model sees at every step lies on the
0..255 grid. Rounding alone would stall the attack: a step smaller than half a
grey level (:math:`0.5 / 255`) on every pixel is rounded away and the next
iterate equals the previous one for ever. We therefore keep a float *latent*
image that accumulates the steps and show the model its rounding
``round(255 * latent) / 255`` (gradients are taken at that valid image), so
sub-level steps add up until they cross a grid level instead of being lost.
``quantize="round"`` instead replaces the iterate by its rounding after every
step, as the authors' public code does (``recreate_image`` in
github.com/utkuozbulak/pytorch-cnn-adversarial-attacks rounds to uint8 after each
step on the normalised tensor): there, sub-level steps are lost and an example
can stop moving for good, which is one reading of 004's remark that "the
optimization may halt" (appendix B, data cleaning). ``quantize=False`` keeps
float images (clipped only).

Both attacks are batched (the whole batch moves each step; CUDA when present)
and record, per step and per example, the top class activation, its softmax
(float32), the second activation, the target logit(s), the source model's
prediction and, every ``eval_every`` steps, the predictions of other models
("observers", evaluated in ``torch.inference_mode``) for transferability.

The torchattacks-style wrappers :class:`OverOptimized` and
:class:`MultiClassOptimized` return only the final images, for use like any
other ``torchattacks.Attack``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torchattacks.attack import Attack
from tqdm.auto import tqdm

from softlib.runtime import get_device
from softlib.validate import SoftlibError, check_alloc, check_float, check_images, check_int, check_model_input

#: 004 appendix B: alpha = 0.15 for over-optimised examples.
ALPHA_OVER = 0.15
#: 004 appendix B: alpha, beta in [0.05, 0.1] for multi-class examples; the larger on the less likely class.
ALPHA_HIGH = 0.1
ALPHA_LOW = 0.05
#: 004 appendix B notation: X in [0, 255].
PAPER_PIXEL_SCALE = 255.0

#: Per-step records (float32 unless noted) returned by :func:`over_optimize` / :func:`multiclass_optimize`.
RECORDS = ("top_act", "top_soft", "second_act", "target_act", "target_soft", "pred")


def step_size(alpha: float, pixel_scale: float) -> float:
    """The multiplier of :math:`\\nabla_x f` on the [0, 1] scale: :math:`\\alpha / S^2`.

    See the module docstring: with :math:`X = S x`, the step
    :math:`X \\leftarrow X + \\alpha \\nabla_X g` is
    :math:`x \\leftarrow x + (\\alpha / S^2) \\nabla_x f`.

    >>> step_size(0.15, 1.0)
    0.15
    """
    alpha = check_float("alpha", alpha, low=0.0)
    pixel_scale = check_float("pixel_scale", pixel_scale, low=1e-6)
    return alpha / pixel_scale**2


def to_grid(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] images to the 0..255 grid (004 appendix B discretisation constraint)."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


QUANTIZE_MODES = ("latent", "round", "none")


def quantize_mode(quantize: bool | str) -> str:
    """Normalise the ``quantize`` argument: True -> "latent", False -> "none", or a name of :data:`QUANTIZE_MODES`."""
    if isinstance(quantize, bool):
        return "latent" if quantize else "none"
    from softlib.validate import check_choice

    return check_choice("quantize", quantize, QUANTIZE_MODES)


def second_target(logits: torch.Tensor, target: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The second class :math:`d` of the multi-class attack.

    001 section 2 optimises "the second most likely class" besides the target
    :math:`c`. At the start the most likely class is the true label, which we
    exclude (an image predicted as its own label is not adversarial): :math:`d` is
    the most likely class at the start among the classes other than :math:`c` and
    the label.
    """
    masked = logits.detach().clone().float()
    rows = torch.arange(len(masked), device=masked.device)
    masked[rows, target.to(masked.device)] = -torch.inf
    masked[rows, label.to(masked.device)] = -torch.inf
    return masked.argmax(dim=1)


def _check_targets(what: str, t: torch.Tensor | np.ndarray | Sequence[int], n: int, num_classes: int) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    try:
        arr = np.asarray(t)
    except (ValueError, TypeError) as exc:
        raise SoftlibError(f"{what} must be a 1-D array of {n} class indices, got {type(t).__name__}") from exc
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise SoftlibError(f"{what} must hold integer class indices, got dtype {arr.dtype}")
    t = torch.as_tensor(arr.astype(np.int64) if arr.size else np.zeros(arr.shape, np.int64))
    if t.ndim != 1 or len(t) != n:
        raise SoftlibError(f"{what} must be a 1-D array of {n} class indices, got shape {tuple(t.shape)}")
    if n and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise SoftlibError(f"{what} must hold class indices in [0, {num_classes - 1}], got range [{int(t.min())}, {int(t.max())}]")
    return t


def record_bytes(n: int, iters: int, *, k: int = 1, n_observers: int = 0, eval_every: int = 1,
                 image_shape: Sequence[int] = (), n_keep: int = 0) -> float:
    """Bytes of the records one run of :func:`over_optimize` / :func:`multiclass_optimize` preallocates.

    Per image and step: three float32 curves, ``k`` float32 target activations and
    probabilities, an int16 prediction; int16 observer predictions per evaluated step;
    ``n_keep`` float32 images.
    """
    steps = float(iters) + 1
    per_image = steps * (3 * 4 + 2 * 4 * k + 2) + n_observers * 2 * (steps / max(eval_every, 1) + 1)
    per_image += n_keep * 4 * float(np.prod(image_shape) if len(image_shape) else 0)
    return float(n) * per_image


def _num_classes(model: nn.Module, x: torch.Tensor, device: torch.device) -> int:
    with torch.inference_mode():
        return int(model(x[:1].to(device)).shape[1])


# A weighting rule: (logits (B, C), targets (B, k)) -> multipliers (B, k) of each target logit's gradient.
WeightRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _ascend(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    rule: WeightRule,
    *,
    iters: int,
    pixel_scale: float,
    quantize: bool | str,
    observers: Mapping[str, nn.Module] | None,
    eval_every: int,
    keep_steps: Sequence[int],
    batch_size: int,
    device: torch.device | None,
    progress: bool,
    desc: str,
) -> dict[str, np.ndarray]:
    """Gradient ascent on weighted target logits; the shared loop of both attacks."""
    check_images("x", x)
    iters = check_int("iters", iters, low=0)
    eval_every = check_int("eval_every", eval_every, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    scale = 1.0 / check_float("pixel_scale", pixel_scale, low=1e-6) ** 2
    if isinstance(keep_steps, (str, bytes)) or not isinstance(keep_steps, (list, tuple, range, np.ndarray)):
        raise SoftlibError(f"keep_steps must be a list of step numbers, got {keep_steps!r}")
    keep_steps = sorted({check_int("keep_steps entry", s, low=0, high=iters) for s in keep_steps})
    mode = quantize_mode(quantize)
    device = get_device(device)
    observers = dict(observers or {})
    check_alloc(f"the records of {len(x)} images x {iters} iterations",
                record_bytes(len(x), iters, k=targets.shape[1], n_observers=len(observers), eval_every=eval_every,
                             image_shape=tuple(x.shape[1:]), n_keep=len(keep_steps)))
    model = model.eval().to(device)
    for m in observers.values():
        m.eval().to(device)
    n, k = targets.shape
    eval_steps = np.array(sorted(set(range(0, iters + 1, eval_every)) | {iters}), dtype=np.int64)
    eval_pos = {int(s): j for j, s in enumerate(eval_steps)}
    out: dict[str, np.ndarray] = {
        "top_act": np.zeros((n, iters + 1), np.float32),
        "top_soft": np.zeros((n, iters + 1), np.float32),
        "second_act": np.zeros((n, iters + 1), np.float32),
        "target_act": np.zeros((n, iters + 1, k), np.float32),
        "target_soft": np.zeros((n, iters + 1, k), np.float32),
        "pred": np.zeros((n, iters + 1), np.int16),
        "eval_steps": eval_steps,
    }
    for name in observers:
        out[f"observer/{name}"] = np.full((n, len(eval_steps)), -1, np.int16)
    if keep_steps:
        out["images"] = np.zeros((n, len(keep_steps), *x.shape[1:]), np.float32)
        out["image_steps"] = np.array(keep_steps, dtype=np.int64)
    bar = tqdm(total=n * iters, desc=desc, disable=not progress or n * iters == 0, unit="img-step")
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        latent = x[sl].to(device, torch.float32).clone()
        if mode == "round":
            latent = to_grid(latent)
        tgt = targets[sl].to(device)
        rows = torch.arange(len(latent), device=device)
        for i in range(iters + 1):
            img = latent if mode == "none" else to_grid(latent)
            img = img.detach().requires_grad_(i < iters)
            with torch.enable_grad() if i < iters else torch.inference_mode():
                logits = model(img)
            with torch.no_grad():
                z = logits.detach().float()
                soft = torch.softmax(z, dim=1)  # float32, as a reader's evaluation would compute it
                top2 = z.topk(2, dim=1)
                out["top_act"][sl, i] = top2.values[:, 0].cpu().numpy()
                out["second_act"][sl, i] = top2.values[:, 1].cpu().numpy()
                out["top_soft"][sl, i] = soft.max(dim=1).values.cpu().numpy()
                out["pred"][sl, i] = top2.indices[:, 0].cpu().numpy()
                out["target_act"][sl, i] = z.gather(1, tgt).cpu().numpy()
                out["target_soft"][sl, i] = soft.gather(1, tgt).cpu().numpy()
                if i in eval_pos and observers:
                    with torch.inference_mode():
                        xi = img.detach()
                        for name, m in observers.items():
                            out[f"observer/{name}"][sl, eval_pos[i]] = m(xi).argmax(dim=1).cpu().numpy()
                if keep_steps and i in keep_steps:
                    out["images"][sl, keep_steps.index(i)] = img.detach().cpu().numpy()
            if i == iters:
                break
            w = rule(z, tgt)  # (B, k) multipliers
            objective = (logits.gather(1, tgt) * w).sum()
            (grad,) = torch.autograd.grad(objective, img)
            with torch.no_grad():
                latent = (latent + scale * grad).clamp_(0.0, 1.0)
                if mode == "round":  # the iterate itself is rounded: sub-level steps are lost
                    latent = to_grid(latent)
            bar.update(len(rows))
    bar.close()
    return out


def over_optimize(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor | np.ndarray | Sequence[int],
    *,
    iters: int,
    alpha: float = ALPHA_OVER,
    pixel_scale: float = PAPER_PIXEL_SCALE,
    quantize: bool | str = True,
    observers: Mapping[str, nn.Module] | None = None,
    eval_every: int = 1,
    keep_steps: Sequence[int] = (),
    batch_size: int = 256,
    device: torch.device | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Over-optimised adversarial examples: ascend the raw logit of ``target`` (004 appendix B).

    Step: :math:`x \\leftarrow \\mathrm{clip}_{[0,1]}(x + (\\alpha / S^2) \\nabla_x f_c(x))`
    with :math:`S` = ``pixel_scale`` (255: the paper's [0, 255] scale, see the
    module docstring for the derivation), images on the 0..255 grid when
    ``quantize``.

    Args:
        model: logits model taking [0, 1] images.
        x: images (N, C, H, W) in [0, 1].
        target: target class per image (N,).
        iters: number of ascent steps (004: 500).
        alpha: step multiplier (004: 0.15).
        pixel_scale: units the step is taken in (255 = paper's notation).
        quantize: True / "latent": the model sees images on the 0..255 grid (004's
            discretisation constraint) while a float latent accumulates the steps;
            "round": the iterate itself is rounded (sub-level steps lost, can stall);
            False / "none": float images.
        observers: other models whose predictions are recorded (transferability).
        eval_every: evaluate observers every this many steps (and at the last step).
        keep_steps: steps whose images are returned (for figures).
        batch_size: images moved together.
        device: default :func:`softlib.runtime.get_device`.
        progress: show a tqdm bar.

    Returns:
        dict of numpy arrays: ``top_act``, ``top_soft``, ``second_act`` (N, T+1);
        ``target_act``, ``target_soft`` (N, T+1, 1); ``pred`` (N, T+1) int16;
        ``eval_steps`` (E,); ``observer/<name>`` (N, E) int16 predictions;
        ``images``/``image_steps`` when ``keep_steps``; ``targets`` (N, 1).
        Step 0 is the unperturbed image.
    """
    device = get_device(device)
    check_model_input("x", x, model)
    num_classes = _num_classes(model.eval().to(device), x, device) if len(x) else 1
    t = _check_targets("target", target, len(x), num_classes)[:, None]
    alpha = check_float("alpha", alpha, low=0.0)

    def rule(z: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        return torch.full(tgt.shape, alpha, device=z.device, dtype=z.dtype)

    out = _ascend(
        model, x, t, rule, iters=iters, pixel_scale=pixel_scale, quantize=quantize, observers=observers,
        eval_every=eval_every, keep_steps=keep_steps, batch_size=batch_size, device=device,
        progress=progress, desc="over-optimising",
    )
    out["targets"] = t.numpy().astype(np.int64)
    return out


def multiclass_optimize(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor | np.ndarray | Sequence[int],
    second: torch.Tensor | np.ndarray | Sequence[int],
    *,
    iters: int,
    alpha_high: float = ALPHA_HIGH,
    alpha_low: float = ALPHA_LOW,
    pixel_scale: float = PAPER_PIXEL_SCALE,
    quantize: bool | str = True,
    observers: Mapping[str, nn.Module] | None = None,
    eval_every: int = 1,
    keep_steps: Sequence[int] = (),
    batch_size: int = 256,
    device: torch.device | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Multi-class optimised adversarial examples: ascend two logits at once (004 appendix B).

    Step: :math:`x \\leftarrow x + (a_c \\nabla f_c + a_d \\nabla f_d) / S^2`,
    where at every step and for every image the currently *less* likely of
    :math:`c` (``target``) and :math:`d` (``second``, see :func:`second_target`)
    gets ``alpha_high`` and the other ``alpha_low`` (004: both in [0.05, 0.1]).
    This keeps the two logits close, so the softmax confidence stays in
    :math:`[0.5, 1)` (once the two dominate) while both keep rising (Lemma 2.2).

    Arguments and returns as :func:`over_optimize`; ``target_act`` /
    ``target_soft`` have two columns (c, d) and ``targets`` is (N, 2).
    """
    device = get_device(device)
    check_model_input("x", x, model)
    num_classes = _num_classes(model.eval().to(device), x, device) if len(x) else 1
    c = _check_targets("target", target, len(x), num_classes)
    d = _check_targets("second", second, len(x), num_classes)
    if len(x) and bool((c == d).any()):
        raise SoftlibError("target and second must differ for every image (two classes are optimised)")
    hi = check_float("alpha_high", alpha_high, low=0.0)
    lo = check_float("alpha_low", alpha_low, low=0.0, high=hi)
    t = torch.stack([c, d], dim=1)

    def rule(z: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        zt = z.gather(1, tgt)
        c_less = (zt[:, 0] < zt[:, 1]).to(z.dtype)  # 1 where c is the less likely one
        w_c = lo + (hi - lo) * c_less
        w_d = lo + (hi - lo) * (1.0 - c_less)
        return torch.stack([w_c, w_d], dim=1)

    out = _ascend(
        model, x, t, rule, iters=iters, pixel_scale=pixel_scale, quantize=quantize, observers=observers,
        eval_every=eval_every, keep_steps=keep_steps, batch_size=batch_size, device=device,
        progress=progress, desc="multi-class optimising",
    )
    out["targets"] = t.numpy().astype(np.int64)
    return out


class OverOptimized(Attack):
    """torchattacks wrapper of :func:`over_optimize`; ``attack(images, target_labels)`` -> final images.

    Targeted only (the labels passed are the target classes), as in 004.

    >>> # atk = OverOptimized(model, steps=500); adv = atk(images, targets)
    """

    def __init__(self, model: nn.Module, alpha: float = ALPHA_OVER, steps: int = 500,
                 pixel_scale: float = PAPER_PIXEL_SCALE, quantize: bool = True) -> None:
        super().__init__("OverOptimized", model)
        self.alpha, self.steps, self.pixel_scale, self.quantize = alpha, steps, pixel_scale, quantize
        self.supported_mode = ["default", "targeted"]

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = over_optimize(self.model, images.detach().cpu(), labels.cpu(), iters=self.steps, alpha=self.alpha,
                            pixel_scale=self.pixel_scale, quantize=self.quantize, keep_steps=(self.steps,),
                            device=self.device, progress=False)
        return torch.from_numpy(out["images"][:, 0]).to(images.device)


class MultiClassOptimized(Attack):
    """torchattacks wrapper of :func:`multiclass_optimize`; ``attack(images, target_labels)`` -> final images.

    The second class is chosen by :func:`second_target` from the start logits,
    excluding the target and the model's own prediction (which is the label for
    correctly classified images).
    """

    def __init__(self, model: nn.Module, alpha_high: float = ALPHA_HIGH, alpha_low: float = ALPHA_LOW,
                 steps: int = 500, pixel_scale: float = PAPER_PIXEL_SCALE, quantize: bool = True) -> None:
        super().__init__("MultiClassOptimized", model)
        self.alpha_high, self.alpha_low, self.steps = alpha_high, alpha_low, steps
        self.pixel_scale, self.quantize = pixel_scale, quantize
        self.supported_mode = ["default", "targeted"]

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # noqa: D102
        with torch.inference_mode():
            z = self.get_logits(images.to(self.device))
        d = second_target(z, labels.to(z.device), z.argmax(dim=1))
        out = multiclass_optimize(self.model, images.detach().cpu(), labels.cpu(), d.cpu(), iters=self.steps,
                                  alpha_high=self.alpha_high, alpha_low=self.alpha_low,
                                  pixel_scale=self.pixel_scale, quantize=self.quantize,
                                  keep_steps=(self.steps,), device=self.device, progress=False)
        return torch.from_numpy(out["images"][:, 0]).to(images.device)
