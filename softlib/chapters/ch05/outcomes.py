"""Chapter 05's attacks and per-example outcomes: robustness and detection of one model (paper 003).

- **Robustness** (003 section 4.3, figure 4): accuracy on adversarial examples vs eps
  for FGSM, BIM (n = 10, step eps/n) and PGD (n = 10, step eps/10, random start), all
  L-infinity (003 leaves the norm open; torchattacks' FGSM/BIM/PGD are L-inf), built by
  :func:`softlib.attacks.run_attack`.

Every attacked image is scored by the KDE of :mod:`softlib.chapters.ch05.detection`; the
per-example rows let a bootstrap put an interval on every accuracy and AUC. Attacks are
cached with :func:`softlib.cache.cached_arrays`, keyed on the model's cache key and a hash
of the images.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from softlib.cache import cached_arrays
from softlib.chapters.ch05.detection import fast_auc, make_kde, paper_bandwidth
from softlib.chapters.ch05.views import PredictionView, hidden_and_predictions
from softlib.models import TrainedModel, model_loss
from softlib.validate import SoftlibError, check_choice, check_float, check_images, check_int

#: Bump when a change here changes what is computed for the same inputs (part of cache keys).
CODE_VERSION = "robustness-1"


#: The attacks of 003 section 4.3.
ATTACKS: tuple[str, ...] = ("fgsm", "bim", "pgd")


#: 003 section 4.3: n = 10 iterations for BIM and PGD.
DEFAULT_STEPS = 10


def _sha(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:20]


def adversarial_outputs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: str,
    eps: float,
    loss: str | None = None,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Attack ``x`` and return ``{"pred": (N,) int64, "hidden": (N, H) float32}`` of the adversarial images.

    ``attack`` in :data:`ATTACKS`; BIM and PGD take ``steps`` iterations of size
    ``eps / steps`` (003 section 4.3: n = 10, step eps/10; PGD starts at a uniform random
    point of the eps ball, Madry et al.). The attack sees :class:`PredictionView` (the RCE
    rule). ``eps = 0`` returns the clean outputs. Cached when ``model`` is a
    :class:`softlib.models.TrainedModel` (keyed on its ``key``).
    """
    check_choice("attack", attack, ATTACKS)
    eps = check_float("eps", eps, low=0.0, high=1.0)
    steps = check_int("steps", steps, low=1)
    check_images("x", x)
    if not isinstance(y, torch.Tensor) or y.shape != (len(x),):
        raise SoftlibError(f"y must be a tensor of shape ({len(x)},), got {tuple(getattr(y, 'shape', ()))}")
    loss = model_loss(model, loss)
    view = PredictionView(model, loss)

    def build() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        t0 = time.perf_counter()
        if eps == 0.0:
            x_adv = x
        else:
            from softlib.attacks import run_attack

            x_adv, _ = run_attack(
                attack, view, x, y, eps=eps,
                steps=1 if attack == "fgsm" else steps,
                step_size=None if attack == "fgsm" else eps / steps,
                batch_size=batch_size, seed=seed, success=False,  # the predictions come next, with the features
            )
        hidden, pred = hidden_and_predictions(view, x_adv, batch_size=batch_size)
        return {"pred": pred, "hidden": hidden}, {"wall_s": time.perf_counter() - t0}

    key = model.key if isinstance(model, TrainedModel) else None
    if key is None:
        return build()[0]
    spec = {
        "code": CODE_VERSION, "model": key, "loss": loss, "attack": attack, "eps": eps,
        "steps": steps, "seed": seed, "x_sha": _sha(x), "y_sha": _sha(y), "n": len(x),
    }
    arrays, _ = cached_arrays("robustness", spec, build)
    return arrays


def example_outcomes(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    fit_x: torch.Tensor,
    fit_y: torch.Tensor,
    loss: str | None = None,
    attacks: Sequence[str] = ATTACKS,
    eps_list: Iterable[float] = (0.3,),
    bandwidth: float | None = None,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> pd.DataFrame:
    """Per test example, per attack and eps: what the detector and the classifier saw.

    One row per (attack, eps, example) with columns ``loss, attack, eps, example`` (position in
    ``x``), ``clean_correct`` (the clean image is classified right, the RCE rule applied),
    ``adv_correct`` (the attacked image is), ``legit_score`` (KDE log density of the clean image
    under its predicted class; NaN unless ``clean_correct``: the AUC's negatives) and
    ``adv_score`` (log density of the attacked image; NaN unless the attack *succeeded* on a
    correctly classified image: the AUC's positives, Feinman et al.'s protocol), ``bandwidth``.
    Keeping the examples (not only the rates, :func:`rates_table`) is what lets a bootstrap over
    test examples put an interval on every accuracy and AUC. ``fit_x, fit_y``: training images the
    per-class KDE is fitted on.
    """
    loss = model_loss(model, loss)
    attacks = [check_choice("attack", a, ATTACKS) for a in attacks]
    eps_list = [check_float("eps", e, low=0.0, high=1.0) for e in eps_list]
    bw = paper_bandwidth(loss) if bandwidth is None else check_float("bandwidth", bandwidth, low=1e-12)
    check_images("fit_x", fit_x)
    view = PredictionView(model, loss)
    fit_h, _ = hidden_and_predictions(view, fit_x, batch_size=batch_size)
    kde = make_kde(bw).fit(fit_h, np.asarray(fit_y))
    clean_h, clean_pred = hidden_and_predictions(view, x, batch_size=batch_size)
    y_np = y.cpu().numpy()
    correct = clean_pred == y_np
    legit = np.full(len(x), np.nan)
    if correct.any():
        legit[correct] = kde.score_samples(clean_h[correct], clean_pred[correct])
    frames = []
    jobs = [(a, e) for a in attacks for e in eps_list]
    for attack, eps in tqdm(jobs, desc=f"attacks ({loss})", disable=not progress or len(jobs) < 2, leave=False):
        if eps == 0.0:  # no perturbation: the clean outputs, whatever the attack
            out = {"pred": clean_pred, "hidden": clean_h}
        else:
            out = adversarial_outputs(model, x, y, attack=attack, eps=eps, loss=loss, steps=steps, seed=seed,
                                      batch_size=batch_size)
        success = correct & (out["pred"] != y_np)
        adv = np.full(len(x), np.nan)
        if eps > 0 and success.any():
            adv[success] = kde.score_samples(out["hidden"][success], out["pred"][success])
        frames.append(pd.DataFrame({
            "loss": loss, "attack": attack, "eps": eps, "example": np.arange(len(x)), "clean_correct": correct,
            "adv_correct": out["pred"] == y_np, "legit_score": legit, "adv_score": adv, "bandwidth": bw,
        }))
    return pd.concat(frames, ignore_index=True)


def rates(examples: pd.DataFrame) -> dict[str, float]:
    """Accuracy, AUC, ``n_legit`` and ``n_adv`` of one (model, attack, eps) slice of :func:`example_outcomes`."""
    legit = examples["legit_score"].to_numpy(float)
    adv = examples["adv_score"].to_numpy(float)
    return {"accuracy": float(examples["adv_correct"].mean()), "auc": fast_auc(legit, adv),
            "n_legit": int(np.isfinite(legit).sum()), "n_adv": int(np.isfinite(adv).sum())}


def rates_table(examples: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and KDE detection AUC per (loss, attack, eps) of :func:`example_outcomes` rows.

    Columns ``loss, attack, eps, accuracy`` (on the adversarial images, the RCE rule applied),
    ``auc`` (KDE detection, in [0, 1]; NaN at eps 0 or without a successful attack), ``n_legit``
    (correctly classified clean images), ``n_adv`` (successful adversarial examples among them),
    ``bandwidth``; rows in the order of ``examples``.
    """
    missing = {"loss", "attack", "eps", "adv_correct", "legit_score", "adv_score", "bandwidth"} - set(examples.columns)
    if missing:
        raise SoftlibError(f"examples lack column(s) {sorted(missing)}: pass example_outcomes rows")
    rows = [{"loss": loss, "attack": attack, "eps": float(eps), **rates(sub), "bandwidth": float(sub["bandwidth"].iloc[0])}
            for (loss, attack, eps), sub in examples.groupby(["loss", "attack", "eps"], sort=False)]
    return pd.DataFrame(rows, columns=["loss", "attack", "eps", "accuracy", "auc", "n_legit", "n_adv", "bandwidth"])


def correct_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: str | None = None,
                     batch_size: int = 512) -> np.ndarray:
    """Per image of ``x``: classified right (bool, (N,)), with the loss' own prediction rule (RCE: argmax(-Z)).

    The per-example form of a test accuracy, so that the accuracy gets a bootstrap interval and
    two models scored on the same images a paired one.
    """
    _, pred = hidden_and_predictions(model, x, loss=loss, batch_size=batch_size)
    if not isinstance(y, torch.Tensor) or y.shape != (len(x),):
        raise SoftlibError(f"y must be a tensor of shape ({len(x)},), got {tuple(getattr(y, 'shape', ()))}")
    return pred == y.cpu().numpy()
