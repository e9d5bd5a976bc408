"""Robustness and KDE detection of chapter 05 (paper 003, Lemesle & Vernade).

What 003 measures, and how this module measures it:

- **Robustness** (003 section 4.3, figure 4): accuracy on adversarial examples vs eps
  for FGSM, BIM (n = 10, step eps/n) and PGD (n = 10, step eps/10, random start), all
  L-infinity (003 leaves the norm open; torchattacks' FGSM/BIM/PGD are L-inf), built by
  :func:`softlib.attacks.run_attack`.
- **Detection** (003 section 4.2, table 3): Feinman et al. (2017) style kernel density
  on the last hidden layer. One KDE per class, fitted on training-set features of that
  class (:class:`softlib.detectors.ClassConditionalKDE`, see :func:`make_kde`), and a test
  point is scored under the KDE of its *predicted* class with 003 eq. (2): :math:`\\hat f_\\sigma(x) = \\frac{1}{|X_c|}\\sum_{x_i \\in X_c}\\exp(-\\|x_i - x\\|^2/\\sigma^2)`,
  bandwidth :math:`\\sigma = 1/0.26` for CE and :math:`0.1/0.26` for RCE/OVM
  (003 section 4.2). The AUC compares correctly classified clean test images
  (negatives) with the *successful* adversarial examples built from them (positives),
  score = minus the log density (Feinman et al.'s protocol keeps successful attacks only).
- **The RCE prediction rule.** An RCE model predicts ``argmax(-Z)`` (Pang et al. 2018;
  see :mod:`softlib.losses`). :class:`PredictionView` wraps a model so that its output is
  ``-Z`` for RCE (unchanged otherwise): torchattacks' cross-entropy attacks then push
  away from the class the model actually predicts, and argmax accuracy is right. The
  hidden layer is not affected.
- **The grid** (003 section 4.4, figure 5): ResNets trained with eq. (3) over
  lambda1 x lambda2, each scored by PGD robust accuracy and PGD detection AUC;
  :func:`run_grid`. 003 gives no KDE bandwidth for these models; we use the CE value
  (lambda1 = lambda2 = 0 *is* CE), a choice stated in the chapter.

Everything expensive (attacks, t-SNE) is cached with :func:`softlib.cache.cached_arrays`,
keyed on the model's ``cache_key`` and a hash of the images.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from tqdm.auto import tqdm

from softlib.cache import cached_arrays
from softlib.losses import LOSSES, prediction_logits
from softlib.paper import detection_vs_robustness as p003
from softlib.runtime import batched
from softlib.validate import SoftlibError, check_choice, check_features, check_float, check_images, check_int

#: Bump when a change here changes what is computed for the same inputs (part of cache keys).
CODE_VERSION = "robustness-1"

#: The attacks of 003 section 4.3.
ATTACKS: tuple[str, ...] = ("fgsm", "bim", "pgd")

#: 003 section 4.3: n = 10 iterations for BIM and PGD.
DEFAULT_STEPS = 10


# ---------------------------------------------------------------------------- prediction rule


class PredictionView(nn.Module):
    """``model`` seen through the prediction rule of the loss it was trained with.

    ``forward`` returns :func:`softlib.losses.prediction_logits` (``-Z`` for ``"rce"``, ``Z``
    otherwise), so argmax is the prediction and the softmax / cross-entropy of the output
    mean what attacks assume. ``features`` and ``forward_with_features`` keep the model's
    last hidden layer. The view deliberately has no ``meta`` (so code that reads
    ``model.meta["loss"]`` does not apply the rule a second time).
    """

    def __init__(self, model: nn.Module, loss: str) -> None:
        super().__init__()
        self.model = model
        self.loss = check_choice("loss", loss, LOSSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return prediction_logits(self.loss, self.model(x))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, z = self.model.forward_with_features(x)
        return h, prediction_logits(self.loss, z)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)


def model_loss(model: nn.Module, loss: str | None = None) -> str:
    """The training loss of ``model``: ``loss`` if given, else what ``model.meta`` records
    (``meta["spec"]["loss"]`` for :mod:`softlib.zoo` models, or ``meta["loss"]``), else ``"ce"``."""
    if loss is None:
        meta = getattr(model, "meta", None)
        loss = "ce"
        if isinstance(meta, dict):
            spec = meta.get("spec")
            loss = spec.get("loss", "ce") if isinstance(spec, dict) else meta.get("loss", "ce")
    return check_choice("loss", loss, LOSSES)


def _device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def hidden_and_predictions(
    model: nn.Module, x: torch.Tensor, *, loss: str | None = None, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Last hidden layer (N, H) float32 and predicted labels (N,) int64, batched, inference mode."""
    check_images("x", x)
    view = model if isinstance(model, PredictionView) else PredictionView(model, model_loss(model, loss))
    dev = _device(view)
    was_training = view.training
    view.eval()
    hs, ps = [], []
    try:
        with torch.inference_mode():
            for sl in batched(len(x), batch_size):
                h, z = view.forward_with_features(x[sl].to(dev))
                hs.append(h.float().cpu())
                ps.append(z.argmax(dim=1).cpu())
    finally:
        view.train(was_training)
    if not hs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return torch.cat(hs).numpy(), torch.cat(ps).numpy().astype(np.int64)


# ---------------------------------------------------------------------------- KDE detector


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


def detection_auc(legit_scores: Any, adv_scores: Any) -> float:
    """ROC AUC of telling adversarial from legitimate when *lower* scores mean adversarial.

    NaN when either side is empty (no successful attack, or nothing to compare).
    """
    legit = np.asarray(legit_scores, np.float64).ravel()
    adv = np.asarray(adv_scores, np.float64).ravel()
    if len(legit) == 0 or len(adv) == 0:
        return float("nan")
    labels = np.r_[np.zeros(len(legit)), np.ones(len(adv))]
    return float(roc_auc_score(labels, -np.r_[legit, adv]))


def paper_bandwidth(loss: str) -> float:
    """003 section 4.2: 1/0.26 for CE, 0.1/0.26 for RCE and OVM; CE's for ``ls_lsq`` (our choice)."""
    check_choice("loss", loss, LOSSES)
    return p003.KDE_BANDWIDTH["ce" if loss == "ls_lsq" else loss]


# ---------------------------------------------------------------------------- attacks


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
    rule). ``eps = 0`` returns the clean outputs. Cached when ``model`` has a ``cache_key``.
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
                batch_size=batch_size, seed=seed, predict=lambda z: z.argmax(dim=1),
            )
        hidden, pred = hidden_and_predictions(view, x_adv, batch_size=batch_size)
        return {"pred": pred, "hidden": hidden}, {"wall_s": time.perf_counter() - t0}

    key = getattr(model, "cache_key", None)
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
    Keeping the examples (not only the rates) is what lets a bootstrap over test examples put an
    interval on every accuracy and AUC (:func:`summarize`). ``fit_x, fit_y``: training images the
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


def evaluate_model(
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
    """Accuracy and KDE detection AUC of ``model`` per attack and eps (:func:`example_outcomes`, aggregated).

    Returns one row per (attack, eps) with columns ``loss, attack, eps, accuracy`` (on
    the adversarial images, the RCE rule applied), ``auc`` (KDE detection, in [0, 1];
    NaN at eps 0 or without a successful attack), ``n_legit`` (correctly classified clean
    images), ``n_adv`` (successful adversarial examples among them), ``bandwidth``.
    """
    ex = example_outcomes(model, x, y, fit_x=fit_x, fit_y=fit_y, loss=loss, attacks=attacks, eps_list=eps_list,
                          bandwidth=bandwidth, steps=steps, seed=seed, batch_size=batch_size, progress=progress)
    rows = []
    for (attack, eps), sub in ex.groupby(["attack", "eps"], sort=False):
        rows.append({"loss": sub["loss"].iloc[0], "attack": attack, "eps": float(eps), **rates(sub),
                     "bandwidth": float(sub["bandwidth"].iloc[0])})
    out = pd.DataFrame(rows)
    return out[["loss", "attack", "eps", "accuracy", "auc", "n_legit", "n_adv", "bandwidth"]]


def fast_auc(legit_scores: Any, adv_scores: Any) -> float:
    """:func:`detection_auc` (lower score = adversarial) by ranks, NaN entries dropped.

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


# ---------------------------------------------------------------------------- data and the grid


def eval_subset(dataset: str, n: int, *, train: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of a split, drawn without replacement with a seeded permutation."""
    from softlib.data import load_split

    n = check_int("n", n, low=1)
    x, y = load_split(dataset, train=train)
    g = torch.Generator().manual_seed(seed + (7919 if train else 0))
    idx = torch.randperm(len(x), generator=g)[: min(n, len(x))]
    return x[idx].contiguous(), y[idx].contiguous()


def run_grid(
    lambdas1: Sequence[float],
    lambdas2: Sequence[float],
    profile: Any,
    dataset: str = "mnist",
    seed: int = 0,
    eps: float = 0.3,
    *,
    steps: int | None = None,
    bandwidth: float | None = None,
    epochs: int | None = None,
    progress: bool = True,
    return_examples: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """003 section 4.4: train (or load) one ResNet per (lambda1, lambda2) with eq. (3) and score it.

    Each cell: ResNet-``profile.resnet_depth`` trained ``epochs`` epochs (default
    ``profile.resnet_grid_epochs``; 003 does not give them) on ``profile.grid_train_size``
    training images (None: the profile's ``train_size``) by :func:`softlib.zoo.get_model` with loss ``"ls_lsq"``
    (the cell lambda1 = lambda2 = 0 with loss ``"ce"``, the same function); PGD (``steps`` iterations, default ``min(10, profile.attack_steps)``, step
    eps/steps; 003 "same parameters as in section 4.3") at ``eps`` on ``profile.n_test`` test
    images; KDE fitted on ``profile.n_fit`` training images with ``bandwidth`` (default the
    CE value of 003 section 4.2). Returns columns ``lambda1, lambda2, clean_acc, robust_acc,
    auc, n_legit, n_adv, test_acc`` (the zoo's full test-set accuracy) and ``cache_key``.
    With ``return_examples=True`` also the per-example outcomes of every cell
    (:func:`example_outcomes` rows of the PGD attack plus ``lambda1, lambda2, test_acc``), which
    the chapter's bootstrap of the rank correlation resamples.
    """
    from softlib import zoo

    l1s = [check_float("lambda1", v, low=0.0) for v in lambdas1]
    l2s = [check_float("lambda2", v, low=0.0) for v in lambdas2]
    if not l1s or not l2s:
        raise SoftlibError("lambdas1 and lambdas2 must each hold at least one value")
    eps = check_float("eps", eps, low=0.0, high=1.0)
    steps = min(DEFAULT_STEPS, int(profile.attack_steps)) if steps is None else check_int("steps", steps, low=1)
    bw = paper_bandwidth("ls_lsq") if bandwidth is None else check_float("bandwidth", bandwidth, low=1e-12)
    epochs = int(profile.resnet_grid_epochs) if epochs is None else check_int("epochs", epochs, low=1)
    x, y = eval_subset(dataset, profile.n_test, train=False, seed=seed)
    fit_x, fit_y = eval_subset(dataset, profile.n_fit, train=True, seed=seed)
    rows, frames = [], []
    cells = [(a, b) for a in l1s for b in l2s]
    for l1, l2 in tqdm(cells, desc="grid", disable=not progress, leave=False):
        # eq. 3 with lambda1 = lambda2 = 0 *is* CE (eq. 1): that cell is the CE model of section 4.1
        # (the chapter's own CE ResNet when epochs and training set agree: one model fewer to train)
        loss, params = ("ce", None) if l1 == 0 and l2 == 0 else ("ls_lsq", {"lambda1": l1, "lambda2": l2})
        model = zoo.get_model(
            "resnet", dataset, profile, seed, loss=loss, loss_params=params,
            depth=profile.resnet_depth, epochs=epochs, train_size=getattr(profile, "grid_train_size", None),
        )
        ex = example_outcomes(model, x, y, fit_x=fit_x, fit_y=fit_y, loss=loss, attacks=("pgd",),
                              eps_list=(eps,), bandwidth=bw, steps=steps, seed=seed,
                              batch_size=profile.eval_batch, progress=False)
        test_acc = float(getattr(model, "meta", {}).get("test_acc", float("nan")))
        adv = rates(ex)
        rows.append({
            "lambda1": l1, "lambda2": l2, "clean_acc": float(ex["clean_correct"].mean()),
            "robust_acc": adv["accuracy"], "auc": adv["auc"], "n_legit": adv["n_legit"], "n_adv": adv["n_adv"],
            "test_acc": test_acc, "cache_key": getattr(model, "cache_key", ""),
        })
        frames.append(ex.assign(lambda1=l1, lambda2=l2, test_acc=test_acc))
    table = pd.DataFrame(rows)
    return (table, pd.concat(frames, ignore_index=True)) if return_examples else table


def grid_correlation(grid: pd.DataFrame) -> dict[str, float]:
    """Spearman rank correlation between robust accuracy and detection AUC over grid cells.

    Returns ``rho``, the two-sided ``p_value`` (:func:`scipy.stats.spearmanr`) and ``n``
    (cells with a finite AUC). NaN when fewer than 3 cells or a constant column.
    """
    from scipy.stats import spearmanr

    missing = {"robust_acc", "auc"} - set(grid.columns)
    if missing:
        raise SoftlibError(f"grid frame lacks column(s) {sorted(missing)}")
    ok = grid[np.isfinite(grid["auc"].to_numpy(float)) & np.isfinite(grid["robust_acc"].to_numpy(float))]
    n = len(ok)
    if n < 3 or ok["auc"].nunique() < 2 or ok["robust_acc"].nunique() < 2:
        return {"rho": float("nan"), "p_value": float("nan"), "n": n}
    res = spearmanr(ok["robust_acc"], ok["auc"])
    return {"rho": float(res.statistic), "p_value": float(res.pvalue), "n": n}


# ---------------------------------------------------------------------------- t-SNE


def tsne_embedding(
    features: Any, labels: Any, *, n: int = 1000, seed: int = 0, perplexity: float = 30.0
) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE (van der Maaten & Hinton 2008) of a seeded subsample of ``features``.

    Returns ``(embedding (m, 2), labels (m,))`` with ``m = min(n, N)``; PCA initialisation,
    ``random_state=seed``; perplexity capped at ``(m - 1) / 3``. Cached on a hash of the input.
    """
    from sklearn.manifold import TSNE

    X = check_features("features", features)
    labels = np.asarray(labels)
    if labels.shape != (len(X),):
        raise SoftlibError(f"labels must have shape ({len(X)},), got {labels.shape}")
    n = check_int("n", n, low=5)
    perplexity = check_float("perplexity", perplexity, low=1.0)
    if len(X) < 5:
        raise SoftlibError(f"t-SNE needs at least 5 points, got {len(X)}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))
    sub, lab = X[idx].astype(np.float32), labels[idx]
    perp = min(perplexity, (len(sub) - 1) / 3)

    def build() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        emb = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(sub)
        return {"embedding": emb.astype(np.float32)}, {}

    spec = {"code": CODE_VERSION, "what": "tsne", "sha": hashlib.sha256(sub.tobytes()).hexdigest()[:20],
            "seed": seed, "perplexity": perp}
    arrays, _ = cached_arrays("tsne", spec, build)
    return arrays["embedding"], lab


# ---------------------------------------------------------------------------- tables and summaries


def class_compactness(hidden: Any, labels: Any) -> float:
    """How tight the classes are in a feature space: mean distance of a point to its class
    mean divided by the mean distance between class means (scale-free; lower = more compact).

    A number for what 003 figures 2-3 show with t-SNE ("more compact distributions").
    """
    H = check_features("hidden", hidden)
    labels = np.asarray(labels)
    if labels.shape != (len(H),):
        raise SoftlibError(f"labels must have shape ({len(H)},), got {labels.shape}")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise SoftlibError("class_compactness needs at least 2 classes")
    means = np.stack([H[labels == c].mean(0) for c in classes])
    within = np.mean(np.linalg.norm(H - means[np.searchsorted(classes, labels)], axis=1))
    between = np.mean([np.linalg.norm(a - b) for i, a in enumerate(means) for b in means[i + 1:]])
    return float(within / between) if between > 0 else float("inf")


def accuracy_table(ours: dict[str, float]) -> pd.DataFrame:
    """003 table 2 beside ours: columns loss, paper, ours, diff (percent; ``ours`` given in [0, 1])."""
    rows = []
    for loss in p003.LOSSES:
        if loss in ours:
            o = 100.0 * float(ours[loss])
            rows.append({"loss": p003.LOSS_NAMES[loss], "paper": p003.TABLE2[loss], "ours": o,
                         "diff": o - p003.TABLE2[loss]})
    return pd.DataFrame(rows)


def auc_table(results: pd.DataFrame, eps: float) -> pd.DataFrame:
    """003 table 3 beside ours at ``eps``: one row per (loss, attack), AUC in percent."""
    missing = {"loss", "attack", "eps", "auc"} - set(results.columns)
    if missing:
        raise SoftlibError(f"results lack column(s) {sorted(missing)}")
    sel = results[np.isclose(results["eps"].to_numpy(float), eps)]
    rows = []
    for loss in p003.LOSSES:
        for att in p003.ATTACKS:
            hit = sel[(sel["loss"] == loss) & (sel["attack"] == att)]
            if hit.empty:
                continue
            o = 100.0 * float(hit["auc"].iloc[0])
            rows.append({"loss": p003.LOSS_NAMES[loss], "attack": att.upper(), "paper": p003.TABLE3[loss][att],
                         "ours": o, "diff": o - p003.TABLE3[loss][att], "n_adv": int(hit["n_adv"].iloc[0])})
    return pd.DataFrame(rows)
