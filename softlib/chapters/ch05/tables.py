"""Chapter 05's tables: 003 tables 2 and 3 beside ours."""

from __future__ import annotations

import numpy as np
import pandas as pd

from softlib.paper import detection_vs_robustness as p003
from softlib.validate import SoftlibError


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
