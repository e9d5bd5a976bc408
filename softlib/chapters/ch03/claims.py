"""Chapter 03's claims (papers 000 section 4.4-4.5 and 002 section 3.3) and their tests.

Each test takes the chapter's *results* mapping:

- ``"setting"``: ``(model, dataset)`` in 000's terms, e.g. ``("custom", "mnist")``;
- ``"auroc"``: ``{(detector, feature): {set: replicates}}`` from
  :func:`softlib.resample.auroc_replicates` (legitimate test set against each other set);
- ``"groups"``: 000's groups ``{"adversarial": [...], "ood": [...]}``;
- ``"auroc002"``: ``{detector: {set: replicates}}`` for 002's experiment (positives: the
  correctly classified legitimate images), with ``"groups002"``;
- ``"stand_in"``: True when the natural-image stand-in replaces CIFAR-10.

Criteria come from the papers' words or numbers (quoted in each :class:`~softlib.claims.Claim`);
where a sentence only compares ("A outperforms B"), the criterion is that comparison, decided by a
paired bootstrap interval of the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from softlib.claims import HELD, NOT_TESTABLE, Claim, Outcome, all_of, at_least, greater_than, less_than
from softlib.resample import estimate, group_mean

CHAPTER = "03_detectors"
#: 000 table 2 / 3: which representation each detector of table 2 uses
TABLE2 = {"sb": "softmax", "ts": "logits", "kde": "logits", "nn": "logits"}
GROUPS = ("adversarial", "ood", "all")
#: 000 section 4.4 calls TS-vs-KDE gaps of 1.9 (91.6 vs 89.7) and 8.6 (71.1 vs 79.7) AUROC points
#: "slight" and the two detectors "comparable": the largest of those is our bound for "comparable".
COMPARABLE_GAP = 8.6
#: 002 table 2 (experiment 1): the lowest OOD AUROC of Introspection-Net, which 002 section 3.3
#: calls "close to perfect" (Fashion-MNIST, 99.8).
CLOSE_TO_PERFECT = 99.8


def _sets(r: Mapping[str, Any], group: str, key: str = "groups") -> list[str]:
    groups = r[key]
    return [s for g in groups.values() for s in g] if group == "all" else list(groups[group])


def grp(r: Mapping[str, Any], det: str, feat: str, group: str) -> np.ndarray:
    """Replicates of the group-average AUROC of ``det`` on ``feat`` (000's table cells)."""
    return group_mean(r["auroc"][(det, feat)], _sets(r, group))


def _stand_in_note(r: Mapping[str, Any], group: str) -> str:
    return " (OOD group holds the natural-image stand-in, not CIFAR-10)" if r.get("stand_in") and group != "adversarial" else ""


def nn_best(r: Mapping[str, Any]) -> Outcome:
    nums, verdicts = {}, []
    for g in GROUPS:
        others = np.max([grp(r, d, f, g) for d, f in TABLE2.items() if d != "nn"], axis=0)
        e = estimate(grp(r, "nn", "logits", g) - others)
        nums[f"NN - best other, {g}"] = e
        verdicts.append(greater_than(e))
    return Outcome(all_of(verdicts), nums, "AUROC of the NN on logits minus the best of SB, TS, KDE, per group"
                   + _stand_in_note(r, "ood"))


def nn_over_99(r: Mapping[str, Any]) -> Outcome:
    if r["setting"][1] != "mnist":
        return Outcome(NOT_TESTABLE, {}, "the 99% statement is about MNIST")
    e = estimate(grp(r, "nn", "logits", "all"))
    return Outcome(greater_than(e, 99.0), {"NN All AUROC": e}, "average over all 8 sets" + _stand_in_note(r, "all"))


def ts_kde_comparable(r: Mapping[str, Any]) -> Outcome:
    d = grp(r, "ts", "logits", "all") - grp(r, "kde", "logits", "all")
    e = estimate(np.abs(d))
    return Outcome(less_than(e, COMPARABLE_GAP), {"|TS - KDE| All": e, "TS - KDE All": estimate(d)},
                   f"comparable = a gap below {COMPARABLE_GAP}, the largest 000 calls slight" + _stand_in_note(r, "all"))


def ts_above_kde(r: Mapping[str, Any]) -> Outcome:
    model, data = r["setting"]
    if model != "custom":
        return Outcome(NOT_TESTABLE, {}, "000 gives a direction only for the custom network")
    e = estimate(grp(r, "ts", "logits", "all") - grp(r, "kde", "logits", "all"))
    verdict = greater_than(e) if data == "mnist" else less_than(e)
    return Outcome(verdict, {"TS - KDE All": e}, ("TS above KDE on MNIST" if data == "mnist" else "TS below KDE on CIFAR-10")
                   + _stand_in_note(r, "all"))


def kde_second_on_ood(r: Mapping[str, Any]) -> Outcome:
    kde = grp(r, "kde", "logits", "ood")
    if r["setting"][1] == "cifar10":
        e = estimate(grp(r, "sb", "softmax", "ood") - kde)
        return Outcome(greater_than(e), {"SB - KDE OOD": e}, "on CIFAR-10 the SB beats the KDE on OOD sets")
    below = estimate(kde - np.max([grp(r, "sb", "softmax", "ood"), grp(r, "ts", "logits", "ood")], axis=0))
    above = estimate(grp(r, "nn", "logits", "ood") - kde)
    return Outcome(all_of([greater_than(below), greater_than(above)]),
                   {"KDE - best of SB, TS (OOD)": below, "NN - KDE (OOD)": above}, "second of four" + _stand_in_note(r, "ood"))


def logits_beat_softmax(r: Mapping[str, Any]) -> Outcome:
    nums, verdicts = {}, []
    for d in ("kde", "nn"):
        for g in GROUPS:
            e = estimate(grp(r, d, "logits", g) - grp(r, d, "softmax", g))
            nums[f"{d.upper()} logits - softmax, {g}"] = e
            # 000 section 4.5: the only exception is the KDE on CIFAR-10 OOD sets (WRN: 74.3 vs 76.0)
            exception = r["setting"] == ("wrn", "cifar10") and d == "kde" and g == "ood"
            verdicts.append(less_than(e) if exception else greater_than(e))
    return Outcome(all_of(verdicts), nums, f"{sum(v == HELD for v in verdicts)} of {len(verdicts)} cells as the paper says"
                   + _stand_in_note(r, "ood"))


def softmax_hurts_adversarial_more(r: Mapping[str, Any]) -> Outcome:
    gain = {g: grp(r, "nn", "logits", g) - grp(r, "nn", "softmax", g) for g in ("adversarial", "ood")}
    e = estimate(gain["adversarial"] - gain["ood"])
    return Outcome(greater_than(e), {"NN gain adversarial": estimate(gain["adversarial"]), "NN gain OOD": estimate(gain["ood"]),
                                     "difference": e}, "gain = AUROC logits - softmax" + _stand_in_note(r, "ood"))


def kde_logits_vs_nn_softmax(r: Mapping[str, Any]) -> Outcome:
    e = estimate(grp(r, "kde", "logits", "adversarial") - grp(r, "nn", "softmax", "adversarial"))
    if r["setting"] == ("custom", "mnist"):  # 000's stated exception (83.0 vs 86.6)
        return Outcome(less_than(e), {"KDE logits - NN softmax (adv.)": e}, "000's exception: KDE below here")
    return Outcome(greater_than(e), {"KDE logits - NN softmax (adv.)": e}, "KDE above in 000's other settings")


def kde_gains_more(r: Mapping[str, Any]) -> Outcome:
    rel = {d: 100 * (grp(r, d, "logits", "all") / grp(r, d, "softmax", "all") - 1) for d in ("kde", "nn")}
    e = estimate(rel["kde"] - rel["nn"])
    return Outcome(greater_than(e), {"KDE relative gain %": estimate(rel["kde"]), "NN relative gain %": estimate(rel["nn"]),
                                     "difference": e}, "relative All-AUROC gain of logits over softmax" + _stand_in_note(r, "all"))


def _g002(r: Mapping[str, Any], det: str, group: str) -> np.ndarray:
    return group_mean(r["auroc002"][det], _sets(r, group, "groups002"))


def intro_better_overall(r: Mapping[str, Any]) -> Outcome:
    others = np.max([_g002(r, "sb", "all"), _g002(r, "ts", "all")], axis=0)
    e = estimate(_g002(r, "proposed", "all") - others)
    return Outcome(greater_than(e), {"Introspection-Net - best of SB, TS (mean AUROC)": e}, "mean over 002's 8 sets"
                   + _stand_in_note(r, "ood"))


def intro_better_adversarial(r: Mapping[str, Any]) -> Outcome:
    others = np.max([_g002(r, "sb", "adversarial"), _g002(r, "ts", "adversarial")], axis=0)
    e = estimate(_g002(r, "proposed", "adversarial") - others)
    return Outcome(greater_than(e), {"Introspection-Net - best of SB, TS (adversarial)": e}, "mean over BIM, FGSM, DeepFool")


def errors_hardest(r: Mapping[str, Any]) -> Outcome:
    reps = r["auroc002"]["proposed"]
    others = [s for s in _sets(r, "all", "groups002") if s != "errors"]
    margin = np.min([reps[s] for s in others], axis=0) - reps["errors"]
    e = estimate(margin)
    return Outcome(greater_than(e), {"lowest other set - errors": e, "errors AUROC": estimate(reps["errors"])},
                   "errors below every other set")


def ood_close_to_perfect(r: Mapping[str, Any]) -> Outcome:
    reps = r["auroc002"]["proposed"]
    e = estimate(np.min([reps[s] for s in _sets(r, "ood", "groups002")], axis=0))
    return Outcome(at_least(e, CLOSE_TO_PERFECT), {"lowest OOD AUROC": e},
                   f"at least {CLOSE_TO_PERFECT}, the lowest value 002 calls close to perfect" + _stand_in_note(r, "ood"))


def _claim(id_: str, paper: str, section: str, quote: str, criterion: str, source: str, test: Any) -> Claim:
    return Claim(f"03.{id_}", CHAPTER, paper, section, quote, criterion, source, test)


CLAIMS: list[Claim] = [
    _claim("nn_best", "000", "section 4.4", "The NN detector outperforms the other methods for all settings.",
           "AUROC(NN, logits) > max(SB, TS, KDE) in each group (adversarial, OOD, All)", "000's own comparison (table 2)", nn_best),
    _claim("nn_over_99", "000", "section 4.4", "It achieves results close to perfection on the MNIST dataset, "
           "with average AUROC over 99% for both architectures.", "All-AUROC of the NN on logits > 99", "000's number (99%)", nn_over_99),
    _claim("ts_kde_comparable", "000", "section 4.4", "the Trust Score and the KDE solution achieve overall comparable performances.",
           f"|AUROC(TS) - AUROC(KDE)| on All < {COMPARABLE_GAP}", "000 calls gaps of 1.9 and 8.6 points slight", ts_kde_comparable),
    _claim("ts_above_kde", "000", "section 4.4", "the Trust Score achieves better results on MNIST (91.6% compared to 89.7%), "
           "but lower ones on CIFAR-10", "custom network: AUROC(TS) - AUROC(KDE) on All > 0 on MNIST (< 0 on CIFAR-10)",
           "000's own comparison", ts_above_kde),
    _claim("kde_second_ood", "000", "section 4.4", "the KDE obtain the second best results for OOD example detection on both "
           "architectures [MNIST]; on CIFAR-10 it is significantly outperformed by the Softmax Baseline",
           "MNIST: NN > KDE > max(SB, TS) on the OOD group; CIFAR-10: SB > KDE", "000's own ranking (table 2)", kde_second_on_ood),
    _claim("logits_beat_softmax", "000", "section 4.5", "Using the logits as inputs instead of softmax probabilities provides "
           "better results in the vast majority of settings, with the only exception of detecting OOD examples on CIFAR-10 "
           "with the KDE", "AUROC(logits) > AUROC(softmax) for KDE and NN in every group (reversed for 000's exception)",
           "000's own comparison (table 3)", logits_beat_softmax),
    _claim("softmax_hurts_adversarial_more", "000", "section 4.5", "If we consider the NN detector, the improvement obtained by "
           "using the logits is indeed higher for adversarial than for OOD examples.",
           "NN gain (logits - softmax AUROC) on adversarial > on OOD", "000's own comparison", softmax_hurts_adversarial_more),
    _claim("kde_logits_vs_nn_softmax", "000", "section 4.5", "for 3 out of the 4 settings, the logits KDE detector obtain better "
           "results than the softmax NN detector on adversarial examples. The only exception is on MNIST with the custom architecture",
           "custom network on MNIST: AUROC(KDE logits) < AUROC(NN softmax) on adversarial sets; elsewhere >",
           "000's own comparison (83.0 vs 86.6 in this setting)", kde_logits_vs_nn_softmax),
    _claim("kde_gains_more", "000", "section 4.5", "It is especially true for the KDE detector [...] Regarding the NN detector, "
           "we observe slightly lower relative improvements", "relative All-AUROC gain of logits: KDE > NN",
           "000's own comparison (+59% vs +9%, custom MNIST)", kde_gains_more),
    _claim("intro_better_overall", "002", "section 3.3", "our method provides overall significantly better confidence values "
           "than the other methods", "mean AUROC over the 8 sets: Introspection-Net > max(SB, TS)", "002's own comparison",
           intro_better_overall),
    _claim("intro_better_adversarial", "002", "section 3.3", "Our method also achieves overall better results for adversarial "
           "example detection.", "mean AUROC over BIM, FGSM, DeepFool: Introspection-Net > max(SB, TS)", "002's own comparison",
           intro_better_adversarial),
    _claim("errors_hardest", "002", "section 3.3", "It is the most challenging task for our method, as it achieves its worst "
           "performances [on errors]", "AUROC(errors) < AUROC of every other set, Introspection-Net", "002's own comparison",
           errors_hardest),
    _claim("ood_close_to_perfect", "002", "section 3.3", "we obtain close to perfect scores for all [OOD] datasets",
           f"lowest OOD AUROC of Introspection-Net >= {CLOSE_TO_PERFECT}", "002 table 2: the lowest OOD value it calls so",
           ood_close_to_perfect),
]


def results_for_claims(auroc: Mapping[Any, Any], groups: Mapping[str, list[str]], auroc002: Mapping[str, Any],
                       groups002: Mapping[str, list[str]], setting: tuple[str, str], stand_in: bool) -> dict[str, Any]:
    """The results mapping the tests above read (see the module docstring)."""
    return {"auroc": auroc, "groups": groups, "auroc002": auroc002, "groups002": groups002,
            "setting": setting, "stand_in": stand_in}




def auroc_table(r: Mapping[str, Any], keys: list[tuple[str, str]], paper_value: Any) -> Any:
    """Group-average AUROC of each (detector, feature): paper, ours, its 95% interval, diff.

    ``paper_value(group, detector, feature)`` returns the paper's number or NaN.
    """
    import pandas as pd

    rows = []
    for d, f in keys:
        if (d, f) not in r["auroc"]:
            continue
        for g in GROUPS:
            e = estimate(grp(r, d, f, g))
            p = float(paper_value(g, d, f))
            rows.append({"group": g, "detector": d, "feature": f, "paper": p, "ours": e.value,
                         "95% interval": f"[{e.low:.1f}, {e.high:.1f}]", "diff": e.value - p})
    return pd.DataFrame(rows)


def with_recorded(table: Any, run: Mapping[str, Any] | None) -> Any:
    """``table`` (from :func:`auroc_table`) with the recorded paper-settings AUROC and interval beside ours."""
    out = table.copy()
    rows = {(r["group"], r["detector"], r["feature"]): r for r in ((run or {}).get("numbers", {}).get("auroc_intervals") or [])}
    out["recorded (paper settings)"] = [rows.get(k, {}).get("ours", float("nan"))
                                        for k in zip(out["group"], out["detector"], out["feature"])]
    out["recorded interval"] = [rows.get(k, {}).get("95% interval", "")
                                for k in zip(out["group"], out["detector"], out["feature"])]
    return out
