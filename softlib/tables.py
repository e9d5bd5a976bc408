"""Result tables: our metrics per set and group, side by side with the papers' values.

Long format everywhere (one row per value) until the last step:

- :func:`metrics_frame`: detection metrics of every (detector, feature) on every set
  against the legitimate test set (columns detector, feature, set, group, metric, value);
- :func:`group_means`: 000's presentation, the average of each metric over the sets of a
  group ("adversarial", "ood") and over all of them ("all"; 000 section 4.3: "we only
  display the average of these metrics over OOD and adversarial datasets");
- :func:`side_by_side`: paper / ours / difference columns per metric, for display.

Which sets make up 000's groups for an in-distribution data set, and which of our sets
stands in for one the machine lacks, is :func:`paper_sets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .metrics import METRIC_KEYS, detection_metrics
from .validate import SoftlibError, check_choice

METRIC_LABELS = {"fpr95": "FPR95", "auroc": "AUROC", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out"}
#: For each metric, whether larger is better (FPR: smaller is better).
HIGHER_IS_BETTER = {"fpr95": False, "auroc": True, "aupr_in": True, "aupr_out": True}


def paper_sets(dataset: str, available: Sequence[str], *, paper: str = "000") -> dict[str, list[str]]:
    """Our set names for each group of the paper's tables, with stand-ins where needed.

    000 sections 3.1 / 4.3: adversarial = FGSM, BIM, DeepFool, MaxConfidence; OOD =
    Gaussian, uniform, CIFAR-10 (MNIST when CIFAR-10 is the in-distribution data),
    Fashion-MNIST. 002 section 2.2: errors; adversarial = BIM, FGSM, DeepFool; the same OOD.
    CIFAR-10 missing -> ``"natural"`` (the stand-in of :mod:`softlib.ood`) if available.
    """
    check_choice("dataset", dataset, ("mnist", "cifar10"))
    check_choice("paper", paper, ("000", "002"))
    natural_image = "cifar10" if dataset == "mnist" else "mnist"
    if natural_image not in available:
        if natural_image == "cifar10" and "natural" in available:
            natural_image = "natural"
        else:
            raise SoftlibError(f"neither {natural_image!r} nor a stand-in is available; available sets: {list(available)}")
    ood = ["gaussian", "uniform", natural_image, "fashion_mnist"]
    groups = ({"adversarial": ["fgsm", "bim", "deepfool", "maxconf"], "ood": ood} if paper == "000" else
              {"errors": ["errors"], "adversarial": ["bim", "fgsm", "deepfool"], "ood": ood})
    missing = [s for sets in groups.values() for s in sets if s not in available]
    if missing:
        raise SoftlibError(f"sets {missing} are not available here; available: {list(available)}")
    return groups


def paper_set_name(name: str) -> str:
    """The paper's name of one of our sets (the stand-in ``natural`` plays ``cifar10``)."""
    return "cifar10" if name == "natural" else name


def metrics_frame(
    scores: Mapping[tuple[str, str], Mapping[str, np.ndarray]],
    legit: str,
    groups: Mapping[str, Sequence[str]],
    *,
    positive: str = "legit",
    aupr: str = "ap",
) -> pd.DataFrame:
    """Detection metrics of each (detector, feature) on each set vs the legitimate set.

    ``scores[(detector, feature)][set_name]`` are the detector's scores (higher = more
    legitimate); ``scores[...][legit]`` must be present. ``positive`` and ``aupr`` (``"ap"``,
    the papers' average precision, or ``"trapezoid"``, OpenOOD's) go to
    :func:`softlib.metrics.detection_metrics`. Returns the long frame with
    columns detector, feature, set, group, metric, value (percent), n_legit, n_other.
    """
    group_of = {s: g for g, sets in groups.items() for s in sets}
    rows: list[dict[str, Any]] = []
    for (det, feat), by_set in scores.items():
        if legit not in by_set:
            raise SoftlibError(f"scores of {det!r} on {feat!r} lack the legitimate set {legit!r}")
        for s, sc in by_set.items():
            if s == legit or s not in group_of:
                continue
            m = detection_metrics(by_set[legit], sc, positive=positive, aupr=aupr)
            for metric in METRIC_KEYS:
                rows.append({"detector": det, "feature": feat, "set": s, "group": group_of[s], "metric": metric,
                             "value": m[metric], "n_legit": len(by_set[legit]), "n_other": len(sc)})
    return pd.DataFrame(rows)


def pooled_frame(
    scores: Mapping[tuple[str, str], Mapping[str, np.ndarray]], legit: str, sets: Sequence[str],
    *, positive: str = "legit",
) -> pd.DataFrame:
    """Metrics against all ``sets`` pooled into one "other" set (for ROC-style summaries)."""
    rows = []
    for (det, feat), by_set in scores.items():
        other = np.concatenate([np.asarray(by_set[s]) for s in sets])
        m = detection_metrics(by_set[legit], other, positive=positive)
        rows += [{"detector": det, "feature": feat, "metric": k, "value": m[k]} for k in METRIC_KEYS]
    return pd.DataFrame(rows)


def group_means(frame: pd.DataFrame, *, all_groups: Sequence[str] = ("adversarial", "ood")) -> pd.DataFrame:
    """Mean of each metric over the sets of each group, plus ``"all"`` over ``all_groups``' sets.

    000 averages over sets ("all" = the 8 adversarial and OOD sets; with 4 sets in each group
    this is also the mean of the two group means).
    """
    keys = ["detector", "feature", "metric"]
    per_group = frame.groupby([*keys, "group"], sort=False)["value"].mean().reset_index()
    every = (frame[frame["group"].isin(all_groups)].groupby(keys, sort=False)["value"].mean().reset_index()
             .assign(group="all"))
    return pd.concat([per_group, every], ignore_index=True)


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame, rows: Sequence[str],
                 metrics: Sequence[str] = METRIC_KEYS, *, decimals: int = 1) -> pd.DataFrame:
    """Wide display frame: index ``rows``, columns (metric, paper / ours / diff).

    ``ours`` and ``paper`` are long frames with the ``rows`` columns, ``metric`` and
    ``value``; diff = ours - paper. Cells the paper does not have stay empty (NaN).
    """
    missing = [c for c in [*rows, "metric", "value"] if c not in ours.columns]
    if missing:
        raise SoftlibError(f"ours lacks columns {missing}")
    keys = [*rows, "metric"]
    p = paper[[c for c in keys if c in paper.columns] + ["value"]].rename(columns={"value": "paper"})
    o = ours[keys + ["value"]].rename(columns={"value": "ours"})
    merged = o.merge(p, on=[c for c in keys if c in p.columns], how="left")
    merged["diff"] = merged["ours"] - merged["paper"]
    merged = merged[merged["metric"].isin(metrics)]
    wide = merged.pivot_table(index=list(rows), columns="metric", values=["paper", "ours", "diff"],
                              sort=False, dropna=False)
    wide = wide.swaplevel(0, 1, axis=1)
    order = [(m, part) for m in metrics for part in ("paper", "ours", "diff")]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(order))
    wide.columns = pd.MultiIndex.from_tuples([(METRIC_LABELS[m], part) for m, part in wide.columns])
    return wide.round(decimals)


def value(frame: pd.DataFrame, **where: Any) -> float:
    """The single ``value`` of the rows matching ``where`` (e.g. detector="nn", metric="auroc")."""
    sel = frame
    for k, v in where.items():
        sel = sel[sel[k] == v]
    if len(sel) != 1:
        raise SoftlibError(f"{len(sel)} rows match {where}; expected exactly 1")
    return float(sel["value"].iloc[0])
