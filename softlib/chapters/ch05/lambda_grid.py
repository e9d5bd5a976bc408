"""Chapter 05's grid of eq. (3) models: robustness against detection (paper 003 section 4.4, figure 5).

- **The grid** (003 section 4.4, figure 5): ResNets trained with eq. (3) over
  lambda1 x lambda2, each scored by PGD robust accuracy and PGD detection AUC;
  :func:`run_grid`. 003 gives no KDE bandwidth for these models; we use the CE value
  (lambda1 = lambda2 = 0 *is* CE), a choice stated in the chapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from softlib.chapters.ch05.detection import paper_bandwidth
from softlib.chapters.ch05.outcomes import DEFAULT_STEPS, example_outcomes, rates
from softlib.validate import SoftlibError, check_float, check_int


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
        test_acc = float(model.meta.get("test_acc", float("nan")))
        adv = rates(ex)
        rows.append({
            "lambda1": l1, "lambda2": l2, "clean_acc": float(ex["clean_correct"].mean()),
            "robust_acc": adv["accuracy"], "auc": adv["auc"], "n_legit": adv["n_legit"], "n_adv": adv["n_adv"],
            "test_acc": test_acc, "cache_key": model.key,
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
