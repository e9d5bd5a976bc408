"""Chapter 04's data cleaning and aggregation (004 appendix B, figures 4 and 5), pure numpy.

**Transfer.** "Transfers" means the other model is fooled the way the attack
intends: criterion ``"target"`` (default) = the other model predicts the target
class :math:`c` (over-optimised) or one of the two optimised classes :math:`c, d`
(multi-class: 001 section 2, the example is "almost surely being predicted as one
of those two classes"); criterion ``"untargeted"`` = the other model's prediction
differs from the true label. The raw predictions are stored, so both are available.

**Transferred by step i.** An example counts as transferred at step i if it
transferred at any step up to i (004 observes that once transferred an example
"more often than not" keeps transferring; the cumulative definition makes the x
axis monotone, from 0% to 100% of the retained examples).

**Confidence interval.** Student-t: :math:`\\bar v \\pm t_{0.975, n-1} s / \\sqrt n`
(``scipy.stats.t``), ``s`` the sample standard deviation (ddof=1); 004 says "95%
confidence interval" without more.

**Reference points** (001 section 2): where the float32 softmax first reads 1.0
(:func:`softmax_saturation`) and how high natural images' activations go
(:func:`natural_activations`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from softlib.chapters.ch04.runner import ATTACKS
from softlib.models import predict
from softlib.runtime import get_device
from softlib.validate import SoftlibError, check_choice, check_float

if TYPE_CHECKING:
    import pandas as pd


CRITERIA = ("target", "untargeted")


CLEANING = ("last", "ever")


def transfer_flags(observer_pred: np.ndarray, y: np.ndarray, targets: np.ndarray, criterion: str = "target") -> np.ndarray:
    """Did each example transfer at each evaluated step? bool (N, E).

    ``observer_pred`` (N, E): the other model's predictions; ``targets`` (N,) or
    (N, k): the attack's target classes. ``"target"``: prediction is one of the
    targets; ``"untargeted"``: prediction differs from ``y``.
    """
    check_choice("criterion", criterion, CRITERIA)
    pred = np.asarray(observer_pred)
    y = np.asarray(y)
    if criterion == "untargeted":
        return pred != y[:, None]
    t = np.asarray(targets)
    t = t[:, None] if t.ndim == 1 else t
    return (pred[:, :, None] == t[:, None, :]).any(axis=2)


def cumulative(flags: np.ndarray) -> np.ndarray:
    """Transferred *by* each step: ``logical_or`` accumulated along the steps (axis 1)."""
    return np.logical_or.accumulate(np.asarray(flags, dtype=bool), axis=1)


def clean(flags: np.ndarray, rule: str = "last") -> np.ndarray:
    """Which examples to keep (N,) bool: 004's data cleaning.

    ``"last"`` (004): transferred at the last step; ``"ever"``: at any step.
    """
    check_choice("cleaning rule", rule, CLEANING)
    flags = np.asarray(flags, dtype=bool)
    return flags[:, -1] if rule == "last" else flags.any(axis=1)


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means of ``values`` (n, S) and their Student-t ``level`` confidence interval.

    Half-width :math:`t_{(1+level)/2,\\,n-1}\\, s / \\sqrt{n}` with ``s`` the sample
    standard deviation (ddof=1). With n < 2 the interval is NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    level = check_float("level", level, low=0.0, high=1.0)
    n = v.shape[0]
    if n == 0:
        nan = np.full(v.shape[1], np.nan)
        return nan, nan, nan
    mean = v.mean(axis=0)
    if n < 2:
        nan = np.full(v.shape[1], np.nan)
        return mean, nan, nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * v.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def aggregate(values: dict[str, np.ndarray], flags: np.ndarray, keep: np.ndarray | None = None,
              level: float = 0.95) -> dict[str, np.ndarray]:
    """004's data aggregation for one (source, other) pair.

    Args:
        values: name -> (N, S) per-example series at the evaluated steps (e.g.
            ``{"act": top activation, "soft": top softmax}``).
        flags: (N, S) bool, transferred at each step (not yet cumulative).
        keep: (N,) bool, the retained examples (default: :func:`clean` ``"last"``).

    Returns:
        ``pct`` (S,): percent of retained examples transferred by each step; for each
        value name ``<name>_mean``, ``<name>_lo``, ``<name>_hi`` (S,); ``n`` (retained count).
    """
    flags = np.asarray(flags, dtype=bool)
    keep = clean(flags) if keep is None else np.asarray(keep, dtype=bool)
    if keep.shape != (flags.shape[0],):
        raise SoftlibError(f"keep must have shape ({flags.shape[0]},), got {keep.shape}")
    kept = cumulative(flags[keep])
    out: dict[str, np.ndarray] = {
        "pct": 100.0 * kept.mean(axis=0) if len(kept) else np.full(flags.shape[1], np.nan),
        "n": np.array(int(keep.sum())),
    }
    for name, v in values.items():
        v = np.asarray(v)
        if v.shape != flags.shape:
            raise SoftlibError(f"values[{name!r}] has shape {v.shape}, flags {flags.shape}")
        out[f"{name}_mean"], out[f"{name}_lo"], out[f"{name}_hi"] = mean_ci(v[keep], level)
    return out


def pair_data(arrays: dict[str, np.ndarray], attack: str, src: str, dst: str,
              criterion: str = "target") -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per-example series at the evaluated steps for ``src`` -> ``dst``: (values, flags, steps)."""
    check_choice("attack", attack, ATTACKS)
    pre = f"{attack}/{src}"
    if f"{pre}/observer/{dst}" not in arrays:
        raise SoftlibError(f"no trajectories for {attack} {src} -> {dst}; have {sorted({k.split('/')[1] for k in arrays if '/' in k})}")
    steps = arrays[f"{pre}/eval_steps"]
    flags = transfer_flags(arrays[f"{pre}/observer/{dst}"], arrays["y"], arrays[f"{pre}/targets"], criterion)
    values = {"act": arrays[f"{pre}/top_act"][:, steps], "soft": arrays[f"{pre}/top_soft"][:, steps]}
    return values, flags, steps


def model_names(arrays: dict[str, np.ndarray]) -> list[str]:
    """Source model names present in ``arrays`` (in insertion order)."""
    names: list[str] = []
    for k in arrays:
        parts = k.split("/")
        if len(parts) >= 3 and parts[0] in ATTACKS and parts[1] not in names:
            names.append(parts[1])
    return names


def ordered_pairs(arrays: dict[str, np.ndarray], attack: str, criterion: str = "target") -> Iterator[
        tuple[str, str, dict[str, np.ndarray], np.ndarray, np.ndarray]]:
    """``(source, other, values, flags, steps)`` of :func:`pair_data` for every ordered pair of models."""
    names = model_names(arrays)
    for src in names:
        for dst in names:
            if dst != src:
                yield (src, dst, *pair_data(arrays, attack, src, dst, criterion))


def pair_curves(arrays: dict[str, np.ndarray], attack: str, *, criterion: str = "target", rule: str = "last",
                level: float = 0.95) -> pd.DataFrame:
    """Long table of the aggregated curves of every ordered pair (004 figures 4 and 5).

    Columns: source, other, step, pct, act_mean/lo/hi, soft_mean/lo/hi, n_kept, n_total.
    """
    import pandas as pd

    rows = []
    for src, dst, values, flags, steps in ordered_pairs(arrays, attack, criterion):
        agg = aggregate(values, flags, clean(flags, rule), level)
        rows.append(pd.DataFrame({
            "source": src, "other": dst, "step": steps, "pct": agg["pct"],
            **{k: agg[k] for k in agg if k.startswith(("act_", "soft_"))},
            "n_kept": int(agg["n"]), "n_total": len(flags),
        }))
    return pd.concat(rows, ignore_index=True)


def softmax_saturation(arrays: dict[str, np.ndarray], attack: str, src: str) -> dict[str, float]:
    """Where the float32 softmax first reads exactly 1.0 along the trajectories of ``src``.

    Returns the fraction of examples that reach 1.0, and the median / minimum top
    activation and top-minus-second gap at the first such step (NaN if none).
    Theory (chapter 01): with one competitor the float32 softmax rounds to 1 once
    the gap exceeds :math:`\\ln 2^{24} \\approx 16.6`.
    """
    top = arrays[f"{attack}/{src}/top_act"]
    sec = arrays[f"{attack}/{src}/second_act"]
    soft = arrays[f"{attack}/{src}/top_soft"]
    hit = soft == 1.0
    reached = hit.any(axis=1)
    first = hit.argmax(axis=1)
    rows = np.flatnonzero(reached)
    act = top[rows, first[rows]]
    gap = act - sec[rows, first[rows]]
    nan = float("nan")
    return {
        "fraction": float(reached.mean()) if len(reached) else nan,
        "act_median": float(np.median(act)) if len(act) else nan,
        "act_min": float(act.min()) if len(act) else nan,
        "gap_median": float(np.median(gap)) if len(gap) else nan,
        "gap_min": float(gap.min()) if len(gap) else nan,
        "first_step_median": float(np.median(first[rows])) if len(rows) else nan,
    }


def natural_activations(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512,
                        device: torch.device | None = None) -> dict[str, Any]:
    """Highest class activations natural images reach (001 section 2's point of reference).

    Returns ``max`` (highest top activation over ``x``), ``per_class`` (C,) the
    highest activation of each class over ``x``, ``soft_one`` the fraction of
    images whose float32 softmax already reads exactly 1.0 and ``min_act_soft_one``
    the smallest top activation among them.
    """
    z = torch.from_numpy(predict(model, x, batch_size=batch_size, device=device or get_device(), features=False)["logits"])
    soft1 = torch.softmax(z, dim=1).max(dim=1).values == 1.0
    return {
        "max": float(z.max()),
        "per_class": z.max(dim=0).values.numpy(),
        "soft_one": float(soft1.float().mean()),
        "min_act_soft_one": float(z.max(dim=1).values[soft1].min()) if bool(soft1.any()) else float("nan"),
    }


def nan_median(values: Any) -> float:
    """Median ignoring NaN; NaN (no warning) when nothing is left."""
    v = np.asarray(values, dtype=float)
    return float(np.median(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")


def saturation_table(arrays: dict[str, np.ndarray], natural: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """How far the attacks go, per attack and source: :func:`softmax_saturation` and final activations.

    ``natural``: :func:`natural_activations` per source model (its ``max`` is the natural maximum).
    """
    import pandas as pd

    rows = []
    for a in ATTACKS:
        for src in model_names(arrays):
            s = softmax_saturation(arrays, a, src)
            top, soft = arrays[f"{a}/{src}/top_act"], arrays[f"{a}/{src}/top_soft"]
            rows.append({
                "attack": a, "source": src,
                "reach softmax 1.0": s["fraction"],
                "CA1 when softmax hits 1.0 (median)": s["act_median"],
                "gap when softmax hits 1.0 (median)": s["gap_median"],
                "step (median)": s["first_step_median"],
                "final CA1 median": float(np.median(top[:, -1])),
                "final CA1 max": float(top[:, -1].max()),
                "final softmax median": float(np.median(soft[:, -1])),
                "natural max CA": natural[src]["max"],
            })
    return pd.DataFrame(rows)
