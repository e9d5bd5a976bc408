"""Chapter 02's claims (000 section 3.2, 002 section 2.3) and their tests.

The tests read the chapter's *results* mapping:

- ``"legit"``: the in-distribution set's name; ``"sets000"``: the sets 000 figure 1 compares
  with it (its adversarial and OOD sets); ``"fig2_sets"``: the sets of 000 figure 2;
- ``"avg_logit"`` / ``"max_logit"``: ``{set: per-example values}``;
- ``"separation"``: ``{set: {"y": 0/1 labels, "logits": scores, "softmax": scores}}``, the
  out-of-fold scores of a logistic regression on (min, max) telling the legitimate set from
  that set (:func:`softlib.stats.separability_scores`);
- ``"softmax_mean_dev"``: the largest ``|average softmax - 1/C|`` over all examples;
- ``"n_boot"``, ``"seed"``, ``"stand_in"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats as st

from softlib.claims import (
    HELD,
    NOT_HELD,
    NOT_TESTABLE,
    UNDETERMINED,
    Claim,
    Estimate,
    Outcome,
    all_of,
    greater_than,
    paired_bootstrap_diff,
    two_sample_diff,
)

CHAPTER = "02_logit_distributions"
#: 000 section 3.2 and 002 section 2.3: "statistically significant according to the Student's t-test (p < 0.0001)"
ALPHA = 1e-4
#: float64 rounding of a mean of C probabilities (the 1/C identity is exact in real arithmetic)
ROUNDING = 1e-12
#: 002 section 2.3 compares MNIST's max logit with these attacks
MAX_LOGIT_SETS = ("bim", "fgsm", "deepfool")


def higher_and_significant(legit: np.ndarray, other: np.ndarray, n_boot: int, seed: int) -> tuple[str, Estimate, float]:
    """Verdict for "legit is higher, p < 0.0001 (Student)": the interval of the mean difference and the p-value.

    Held: interval above 0 and p < ALPHA; not held: interval below 0; otherwise undetermined
    (a positive difference short of 000's significance level is a matter of sample size).
    """
    e = two_sample_diff(legit, other, n_boot=n_boot, seed=seed)
    p = float(st.ttest_ind(legit, other, equal_var=True).pvalue)
    v = greater_than(e)
    if v == HELD and not p < ALPHA:
        v = UNDETERMINED
    return v, e, p


def _per_set(r: Mapping[str, Any], key: str, sets: list[str]) -> Outcome:
    vals = r[key]
    legit = np.asarray(vals[r["legit"]], dtype=np.float64)
    nums, verdicts, notes = {}, [], []
    for s in sets:
        if s not in vals or len(vals[s]) < 2:
            notes.append(f"{s}: too few examples")
            verdicts.append(UNDETERMINED)
            continue
        v, e, p = higher_and_significant(legit, np.asarray(vals[s], dtype=np.float64), r["n_boot"], r["seed"])
        nums[f"{r['legit']} - {s}"] = e
        verdicts.append(v)
        if v != HELD:
            notes.append(f"{s}: {v} (p = {p:.2g})")
    why = "; ".join(notes) if notes else f"all {len(sets)} sets higher, p < {ALPHA:g}"
    return Outcome(all_of(verdicts), nums, why)


def avg_logit_highest(r: Mapping[str, Any]) -> Outcome:
    out = _per_set(r, "avg_logit", list(r["sets000"]))
    note = " (CIFAR-10 replaced by the natural-image stand-in)" if r.get("stand_in") else ""
    return Outcome(out.verdict, out.numbers, out.why + note)


def avg_logit_above_errors(r: Mapping[str, Any]) -> Outcome:
    if "errors" not in r["avg_logit"]:
        return Outcome(NOT_TESTABLE, {}, "no errors set in this run")
    return _per_set(r, "avg_logit", ["errors"])


def softmax_mean_is_1_over_c(r: Mapping[str, Any]) -> Outcome:
    dev = float(r["softmax_mean_dev"])
    e = Estimate.exact(dev, method="max over all examples")
    return Outcome(HELD if dev <= ROUNDING else NOT_HELD, {"max |mean softmax - 1/C|": e}, f"float64 rounding bound {ROUNDING:g}")


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    """AUROC in percent of label 1 against label 0 (roc_auc_score's value; fast inside the bootstrap)."""
    from softlib.metrics import auroc_rows

    pos, s = np.asarray(y) == 1, np.asarray(s, np.float64)
    return float(auroc_rows(s[pos][None], s[~pos][None])[0])


def minmax_separates_on_logits(r: Mapping[str, Any]) -> Outcome:
    nums, verdicts = {}, []
    for s in r["fig2_sets"]:
        if s == r["legit"]:
            continue
        d = r["separation"][s]
        e = paired_bootstrap_diff(_auroc, (d["y"], d["logits"]), (d["y"], d["softmax"]), n_boot=r["n_boot"],
                                  seed=r["seed"], stratify=d["y"])
        nums[f"{s}: AUROC logits - softmax"] = e
        verdicts.append(greater_than(e))
    note = " (CIFAR-10 = the natural-image stand-in)" if r.get("stand_in") else ""
    return Outcome(all_of(verdicts), nums, f"000 figure 2's {len(verdicts)} other sets{note}")


def max_logit_higher(r: Mapping[str, Any]) -> Outcome:
    return _per_set(r, "max_logit", [s for s in MAX_LOGIT_SETS])


def _claim(id_: str, paper: str, section: str, quote: str, criterion: str, source: str, test: Any) -> Claim:
    return Claim(f"02.{id_}", CHAPTER, paper, section, quote, criterion, source, test)


CLAIMS: list[Claim] = [
    _claim("avg_logit_highest", "000", "section 3.2, figure 1", "logits values are higher for MNIST images than for any "
           "other dataset. These differences are statistically significant according to the Student's t-test "
           "(p < 0.0001 between MNIST and any other dataset)",
           "for each of 000's 8 sets: mean average-logit of MNIST - set > 0 (95% bootstrap interval) and Student p < 0.0001",
           "000's words and p-value", avg_logit_highest),
    _claim("avg_logit_above_errors", "002", "section 2.3, figure 1", "logits values are higher for correctly classified "
           "MNIST images than for any other dataset", "mean average-logit of MNIST - errors > 0 and Student p < 0.0001",
           "002's words and p-value", avg_logit_above_errors),
    _claim("softmax_mean", "000", "section 3.2", "for softmax values, the average is always 1/C",
           f"max |mean softmax - 1/C| <= {ROUNDING:g}", "an identity; the bound is float64 rounding", softmax_mean_is_1_over_c),
    _claim("minmax_logits", "000", "section 3.2, figure 2", "these 2 simple statistics for logits are enough to separate "
           "fairly well legitimate examples from OOD and adversarial ones [...] the discriminating information is once "
           "again lost when we apply the softmax function",
           "on figure 2's sets (Gaussian, CIFAR-10, FGSM, MaxConfidence): AUROC of (min, max) on logits > on softmax",
           "000's own comparison (figure 2)", minmax_separates_on_logits),
    _claim("max_logit", "002", "section 2.3", "the distribution of the logit max values is significantly higher for MNIST "
           "(16.5 ± 5.0) than for BIM (10.8 ± 5.2), FGSM (8.8 ± 2.6) and DeepFool (3.4 ± 2.3)",
           "for BIM, FGSM, DeepFool: mean max-logit of MNIST - set > 0 and Student p < 0.0001", "002's words",
           max_logit_higher),
]

__all__ = ["CLAIMS", "HELD", "NOT_HELD", "higher_and_significant"]
