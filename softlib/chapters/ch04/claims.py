"""The claims of papers 001 / 004 (Ozbulak et al.) that chapter 04 tests, as data plus tested functions.

Each :class:`softlib.claims.Claim` quotes 004 (the longer version; 001 has the same sentences
for section 2), gives the criterion and where it comes from, and maps the chapter's results to
a verdict. The results mapping:

- ``arrays``: the trajectories of :func:`softlib.chapters.ch04.runner.transfer_experiment` (per attack and
  source: ``top_act``, ``top_soft``, ``eval_steps``, ``targets``, ``observer/<other>``; ``y``);
- ``natural_max``: source name -> the highest class activation of any natural test image
  (:func:`softlib.chapters.ch04.aggregation.natural_activations`);
- optional ``n_boot`` (default 1000) and ``seed`` (default 0).

**The regime of the lemmas.** Lemma 2.1 speaks of examples whose float32 softmax already reads
exactly 1.0; 004's figures 3a / 4 describe over-optimised examples whose softmax "almost
immediately jumps to 100%". An example whose softmax is still below 1.0 is outside that regime:
there the softmax still moves with the logits, and a softmax that ranks transfer well says
nothing against the paper. So the over-optimised comparison of activation and softmax is made
only on the examples whose softmax reads 1.0 at the step compared (:func:`saturated_rho`);
multi-class examples are in Lemma 2.2's regime by construction (softmax held in [0.5, 1)).

Every number a verdict uses has a 95% bootstrap interval over the examples; a claim about "all
three models" is decided per ordered pair (or per source) and combined with
:func:`softlib.claims.all_of` (one pair not held refutes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from softlib.chapters.ch04 import aggregation
from softlib.claims import (
    UNDETERMINED,
    Claim,
    Estimate,
    Outcome,
    boot_args,
    bootstrap,
    combine,
    greater_than,
    paired_bootstrap_diff,
)

PAPER = "004"  # shared/papers/004_64e98d26cdc43e49.txt (001 is the short version)
CHAPTER = "04_overoptimization_transferability"


def pairs(arrays: Mapping[str, np.ndarray]) -> list[tuple[str, str]]:
    """Every ordered (source, other) pair of the models in ``arrays``."""
    names = aggregation.model_names(dict(arrays))
    return [(s, d) for s in names for d in names if s != d]


def first_true(mask: np.ndarray) -> np.ndarray:
    """Per row, the first column where ``mask`` is True; the number of columns when never."""
    m = np.asarray(mask, dtype=bool)
    return np.where(m.any(axis=1), m.argmax(axis=1), m.shape[1])


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho; NaN with fewer than 3 points or a constant side."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _median(v: np.ndarray) -> float:
    return float(np.median(v)) if len(v) else float("nan")


def mid_step(flags: np.ndarray) -> int:
    """The evaluated step (column) at which the share of examples transferred so far is closest to 50%."""
    return int(np.argmin(np.abs(aggregation.cumulative(flags).mean(axis=0) - 0.5)))


# ---------------------------------------------------------------------------- the numbers


def saturation_lead(results: Mapping[str, Any], src: str, dst: str) -> Estimate | None:
    """Over-optimised, ``src`` -> ``dst``: median over the retained examples of (first step at which
    the example has transferred) - (first step at which its float32 softmax reads 1.0), in evaluated
    steps; an example that never saturates counts as saturating after the last step. None if fewer
    than 2 retained examples."""
    values, flags, _ = aggregation.pair_data(dict(results["arrays"]), "overoptimized", src, dst)
    keep = aggregation.clean(flags)
    if keep.sum() < 2:
        return None
    lead = (first_true(aggregation.cumulative(flags)) - first_true(values["soft"] == 1.0))[keep].astype(float)
    return bootstrap(_median, lead, **boot_args(results))


def below_one_gap(results: Mapping[str, Any], src: str, dst: str) -> dict[str, Estimate] | None:
    """Share of transferred multi-class examples whose final softmax is below 1.0, the same share for
    over-optimised examples, and their difference (bootstrap over the images, both attacks together)."""
    arr = dict(results["arrays"])
    cols = []
    for attack in ("multiclass", "overoptimized"):
        values, flags, _ = aggregation.pair_data(arr, attack, src, dst)
        cols += [aggregation.clean(flags).astype(float), (values["soft"][:, -1] < 1.0).astype(float)]
    if cols[0].sum() < 1 or cols[2].sum() < 1:
        return None

    def share(keep: np.ndarray, below: np.ndarray) -> float:
        return float(below[keep > 0].mean()) if keep.sum() else float("nan")

    b = boot_args(results)
    return {"multi-class": bootstrap(share, cols[0], cols[1], **b),
            "over-optimised": bootstrap(share, cols[2], cols[3], **b),
            "difference": paired_bootstrap_diff(share, (cols[0], cols[1]), (cols[2], cols[3]), **b)}


def saturated_rho(results: Mapping[str, Any], src: str, dst: str) -> tuple[Estimate | None, int, int]:
    """Over-optimised, ``src`` -> ``dst``, at the mid-transfer step: Spearman rho between the top
    activation and "has transferred" over the examples whose softmax reads exactly 1.0 there (Lemma
    2.1's regime, where the softmax is constant and so carries no rank information).

    Returns ``(estimate or None, examples in the regime, step)``; None when fewer than 3 examples
    are in the regime or they all share one transfer outcome.
    """
    values, flags, steps = aggregation.pair_data(dict(results["arrays"]), "overoptimized", src, dst)
    j = mid_step(flags)
    sat = values["soft"][:, j] == 1.0
    act = values["act"][sat, j].astype(float)
    moved = aggregation.cumulative(flags)[sat, j].astype(float)
    if sat.sum() < 3 or np.ptp(moved) == 0:
        return None, int(sat.sum()), int(steps[j])
    return bootstrap(spearman, act, moved, **boot_args(results)), int(sat.sum()), int(steps[j])


def multiclass_rho_gap(results: Mapping[str, Any], src: str, dst: str) -> tuple[Estimate | None, int]:
    """Multi-class, ``src`` -> ``dst``, at the mid-transfer step, over all examples: rho(activation,
    transferred) - rho(softmax, transferred), paired bootstrap (a constant softmax counts as rho 0)."""
    values, flags, steps = aggregation.pair_data(dict(results["arrays"]), "multiclass", src, dst)
    j = mid_step(flags)
    moved = aggregation.cumulative(flags)[:, j].astype(float)
    if np.ptp(moved) == 0:
        return None, int(steps[j])

    def rho0(v: np.ndarray, f: np.ndarray) -> float:
        r = spearman(v, f)
        return 0.0 if np.isnan(r) and np.ptp(f) > 0 else r

    est = paired_bootstrap_diff(rho0, (values["act"][:, j].astype(float), moved),
                                (values["soft"][:, j].astype(float), moved), **boot_args(results))
    return est, int(steps[j])


def final_activation(results: Mapping[str, Any], src: str) -> Estimate:
    """Over-optimised examples of ``src``: median top activation after the last step, minus the
    highest top activation of any natural test image on ``src``."""
    top = np.asarray(results["arrays"][f"overoptimized/{src}/top_act"])[:, -1].astype(float)
    nat = float(results["natural_max"][src])
    return bootstrap(lambda v: _median(v) - nat, top, **boot_args(results))


# ---------------------------------------------------------------------------- the tests


def _per_pair(results: Mapping[str, Any], fn, label: str) -> Outcome:
    nums, parts, why = {}, [], []
    for src, dst in pairs(results["arrays"]):
        e = fn(results, src, dst)
        if e is None:
            parts.append(UNDETERMINED)
            why.append(f"{src} -> {dst}: too few examples")
            continue
        nums[f"{src} -> {dst}: {label}"] = e
        parts.append(greater_than(e, 0.0))
    return Outcome(combine(parts), nums, "; ".join(why) or f"{sum(p == 'held' for p in parts)} of {len(parts)} pairs held")


def check_saturates_first(results: Mapping[str, Any]) -> Outcome:
    """Over-optimised: the softmax reaches 1.0 before the example transfers (median lead > 0)."""
    return _per_pair(results, saturation_lead, "median steps from softmax 1.0 to transfer")


def check_multiclass_below_one(results: Mapping[str, Any]) -> Outcome:
    """Multi-class transferred examples stay below softmax 1.0 more often than over-optimised ones."""
    def gap(r, s, d):
        g = below_one_gap(r, s, d)
        return None if g is None else g["difference"]

    out = _per_pair(results, gap, "share below 1.0, multi-class - over-optimised")
    shares = {}
    for src, dst in pairs(results["arrays"]):
        g = below_one_gap(results, src, dst)
        if g is not None:
            shares[f"{src} -> {dst}: multi-class share below 1.0"] = g["multi-class"]
    return Outcome(out.verdict, {**out.numbers, **shares}, out.why)


def check_activation_saturated(results: Mapping[str, Any]) -> Outcome:
    """Over-optimised, Lemma 2.1's regime: the activation ranks transfer (rho > 0) where the softmax cannot."""
    nums, parts, why, sizes = {}, [], [], []
    for src, dst in pairs(results["arrays"]):
        e, n_sat, step = saturated_rho(results, src, dst)
        if e is None:
            parts.append(UNDETERMINED)
            why.append(f"{src} -> {dst}: {n_sat} examples at softmax 1.0 at step {step}, too few or one outcome")
            continue
        # the name stays the same across training seeds (their numbers pool by name); the sizes go to the why
        nums[f"{src} -> {dst}: rho(activation, transfer) at softmax 1.0"] = e
        sizes.append(f"{src} -> {dst} {n_sat} at step {step}")
        parts.append(greater_than(e, 0.0))
    held = f"{sum(p == 'held' for p in parts)} of {len(parts)} pairs held"
    return Outcome(combine(parts), nums, "; ".join(why) or f"{held} (examples at softmax 1.0: {', '.join(sizes)})")


def check_activation_multiclass(results: Mapping[str, Any]) -> Outcome:
    """Multi-class: rho(activation, transfer) above rho(softmax, transfer) at the mid-transfer step."""
    def gap(r, s, d):
        return multiclass_rho_gap(r, s, d)[0]

    return _per_pair(results, gap, "rho(activation) - rho(softmax)")


def check_beyond_natural(results: Mapping[str, Any]) -> Outcome:
    """Over-optimised activations end above the highest natural activation, for every source."""
    nums, parts = {}, []
    for src in aggregation.model_names(dict(results["arrays"])):
        e = final_activation(results, src)
        nums[f"{src}: median final activation - natural max"] = e
        parts.append(greater_than(e, 0.0))
    return Outcome(combine(parts), nums, f"{sum(p == 'held' for p in parts)} of {len(parts)} sources held")


CLAIMS: tuple[Claim, ...] = (
    Claim("04.saturates_first", CHAPTER, PAPER, "section 2, figure 3(a)",
          "As can be observed from Figure 3(a), the softmax confidence almost immediately jumps to 100%, making it "
          "from this point onwards impossible to differentiate between consecutive adversarial examples.",
          "over-optimised examples that transfer: the float32 softmax reads 1.0 before the example transfers "
          "(median of first-transfer step minus first-saturation step above 0), in every ordered pair",
          "the paper's own comparison: in figure 3(a) the softmax is at 100% before transferability rises",
          check_saturates_first),
    Claim("04.multiclass_below_one", CHAPTER, PAPER, "appendix B, experimental results",
          "The results from Figure 5 show that, in the end, almost all of the adversarial examples are predicted "
          "with less than 100% confidence by the generated model for the multi-class case, although all of them "
          "transferred.",
          "among transferred examples, the share whose final softmax is below 1.0 higher for multi-class than for "
          "over-optimised examples, in every ordered pair",
          "the paper's own comparison: figure 5 (multi-class) against figure 4 (over-optimised); 'almost all' "
          "gives no number", check_multiclass_below_one),
    Claim("04.activation_saturated", CHAPTER, PAPER, "appendix B, experimental results",
          "Compared to the output of the softmax function, class activations provide better clues on the strength "
          "of adversarial examples.",
          "over-optimised examples whose softmax reads 1.0 at the mid-transfer step (Lemma 2.1's regime, softmax "
          "constant): Spearman rho between top activation and transfer above 0, in every ordered pair",
          "the paper's own comparison (activation better than softmax; the softmax has rho 0 in this regime)",
          check_activation_saturated),
    Claim("04.activation_multiclass", CHAPTER, PAPER, "section 2, figure 3(b)",
          "Figure 3(b) shows that, in the case of multi-class optimization, the confidence is stuck at approximately "
          "0.6 throughout the graph, even though the transferability is increasing as the optimization is "
          "continued.",
          "multi-class examples at the mid-transfer step: rho(activation, transfer) - rho(softmax, transfer) above 0, "
          "in every ordered pair",
          "the paper's own comparison (activations, not the softmax, follow transferability)",
          check_activation_multiclass),
    Claim("04.beyond_natural", CHAPTER, PAPER, "section 2, figure 1",
          "All of the three adversarial examples have been over-optimized to produce class activations that are "
          "beyond the reach of any natural image",
          "median top activation of the over-optimised examples after the last step above the highest top "
          "activation of any natural test image, for every source model",
          "the paper's own comparison (4e3 against 52 on ResNet-50)", check_beyond_natural),
)


def pair_table(results: Mapping[str, Any]) -> pd.DataFrame:
    """Per ordered pair, every number the verdicts use, with its interval (for display)."""
    rows = []
    for src, dst in pairs(results["arrays"]):
        lead = saturation_lead(results, src, dst)
        gaps = below_one_gap(results, src, dst) or {}
        sr, n_sat, step = saturated_rho(results, src, dst)
        mg, mstep = multiclass_rho_gap(results, src, dst)
        rows.append({
            "source": src, "other": dst,
            "saturation lead (steps)": lead.fmt(1) if lead else "n/a",
            "multi-class below 1.0": gaps["multi-class"].fmt(2) if gaps else "n/a",
            "over-optimised below 1.0": gaps["over-optimised"].fmt(2) if gaps else "n/a",
            "saturated examples (step)": f"{n_sat} ({step})",
            "rho(act), saturated": sr.fmt(2) if sr else "n/a",
            "multi-class rho(act) - rho(soft)": mg.fmt(2) if mg else "n/a",
        })
    return pd.DataFrame(rows)
