"""softlib.metrics against hand-computed examples, in both conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from softlib.metrics import detection_metrics, fpr_at_tpr, roc_points
from softlib.validate import SoftlibError


def test_perfect_and_reversed_separation():
    m = detection_metrics([5.0, 6.0, 7.0], [1.0, 2.0])
    assert m["auroc"] == 100.0 and m["aupr_in"] == 100.0 and m["aupr_out"] == 100.0
    assert m["fpr95"] == 0.0 and m["threshold"] == 5.0 and m["tpr_at_threshold"] == 100.0
    r = detection_metrics([1.0, 2.0], [5.0, 6.0, 7.0])
    assert r["auroc"] == 0.0 and r["fpr95"] == 100.0


def test_hand_computed_legit_positive():
    # 20 legit scores 1..20; 95% of 20 = 19 accepted exactly at threshold 2 (accept score >= 2)
    legit = np.arange(1, 21, dtype=float)
    other = np.array([0.0, 1.5, 2.0, 10.0, 25.0])
    m = detection_metrics(legit, other)
    assert m["threshold"] == 2.0 and m["tpr_at_threshold"] == pytest.approx(95.0)
    assert m["fpr95"] == pytest.approx(60.0)  # 2.0 (tie at the threshold), 10, 25 accepted: 3 of 5
    # AUROC: P(legit > other) + P(tie)/2, counted by hand
    wins = sum((lv > o) + 0.5 * (lv == o) for lv in legit for o in other)
    assert m["auroc"] == pytest.approx(100 * wins / (20 * 5))


def test_hand_computed_ood_positive():
    # OOD positive (OpenOOD): flag score <= t so that >= 95% of OOD are flagged
    legit = [1.0, 1.0, 2.0]
    other = [0.0, 1.0]
    m = detection_metrics(legit, other, positive="ood")
    assert m["threshold"] == 1.0 and m["tpr_at_threshold"] == 100.0
    assert m["fpr95"] == pytest.approx(200 / 3)  # two legit inputs tied at 1.0 flagged
    # AUPR by hand (step-wise average precision): In = 1/3*1 + 2/3*3/4, Out = 1/2*1 + 1/2*1/2
    assert m["aupr_in"] == pytest.approx(100 * (1 / 3 + 1 / 2))
    assert m["aupr_out"] == pytest.approx(75.0)
    legit_conv = detection_metrics(legit, other, positive="legit")
    for k in ("auroc", "aupr_in", "aupr_out"):  # convention-independent
        assert legit_conv[k] == m[k]
    assert legit_conv["fpr95"] == 50.0  # legit positive: t = 1 accepts the other input tied at 1.0


def test_conventions_differ_and_swap():
    rng = np.random.default_rng(0)
    legit, other = rng.normal(1, 1, 400), rng.normal(0, 1, 300)
    a = detection_metrics(legit, other, positive="legit")
    b = detection_metrics(legit, other, positive="ood")
    assert a["fpr95"] != b["fpr95"]
    # OOD-positive on (legit, other) == legit-positive on the negated, swapped sets
    c = detection_metrics(-other, -legit, positive="legit")
    assert b["fpr95"] == pytest.approx(c["fpr95"]) and b["auroc"] == pytest.approx(c["auroc"])
    assert b["threshold"] == pytest.approx(-c["threshold"])


def test_all_equal_scores():
    m = detection_metrics(np.ones(10), np.ones(7))
    assert m["auroc"] == 50.0 and m["fpr95"] == 100.0 and m["threshold"] == 1.0
    assert m["aupr_in"] == pytest.approx(100 * 10 / 17) and m["aupr_out"] == pytest.approx(100 * 7 / 17)


def test_95_percent_falls_inside_a_tie():
    # 18 legit at 5, 2 legit at 1: 90% at threshold 5 < 95%, so the threshold drops to 1 (TPR 100%)
    legit = [5.0] * 18 + [1.0] * 2
    other = [0.0, 1.0, 3.0, 6.0]
    fpr, thr, tpr = fpr_at_tpr(legit, other)
    assert (fpr, thr, tpr) == (0.75, 1.0, 1.0)


def test_torch_inputs_and_roc_points():
    m = detection_metrics(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0]))
    assert m["auroc"] == 100.0
    fpr, tpr = roc_points([2.0, 3.0], [0.0, 2.5])
    assert fpr[0] == 0.0 and tpr[-1] == 1.0 and len(fpr) == len(tpr)


@pytest.mark.parametrize(
    "legit, other, match",
    [
        ([], [1.0], "empty"),
        ([1.0, np.nan], [1.0], "NaN"),
        ([[1.0, 2.0]], [1.0], "1-D"),
        (["a"], [1.0], "numeric"),
    ],
)
def test_bad_inputs(legit, other, match):
    with pytest.raises(SoftlibError, match=match):
        detection_metrics(legit, other)


def test_bad_options():
    with pytest.raises(SoftlibError, match="positive"):
        detection_metrics([1.0], [0.0], positive="in")
    with pytest.raises(SoftlibError, match="tpr"):
        detection_metrics([1.0], [0.0], tpr=1.5)


def test_tables_group_means_and_side_by_side():
    import pandas as pd

    from softlib import tables

    rng = np.random.default_rng(0)
    groups = {"adversarial": ["a1", "a2"], "ood": ["o1", "o2"]}
    scores = {("kde", "logits"): {"legit": rng.normal(1, 1, 50), **{s: rng.normal(0, 1, 40) for s in ["a1", "a2", "o1", "o2"]}}}
    per_set = tables.metrics_frame(scores, "legit", groups)
    assert len(per_set) == 4 * 4 and set(per_set["group"]) == {"adversarial", "ood"}
    g = tables.group_means(per_set)
    a1 = tables.value(per_set, set="a1", metric="auroc")
    a2 = tables.value(per_set, set="a2", metric="auroc")
    assert tables.value(g, group="adversarial", metric="auroc") == pytest.approx((a1 + a2) / 2)
    all_ = tables.value(g, group="all", metric="auroc")
    assert all_ == pytest.approx(per_set[per_set["metric"] == "auroc"]["value"].mean())
    paper = pd.DataFrame([{"group": "all", "detector": "kde", "metric": "auroc", "value": 50.0}])
    wide = tables.side_by_side(g, paper, rows=["group", "detector"])
    assert wide.loc[("all", "kde"), ("AUROC", "paper")] == 50.0
    assert wide.loc[("all", "kde"), ("AUROC", "diff")] == pytest.approx(round(all_ - 50.0, 1), abs=0.051)
    assert np.isnan(wide.loc[("ood", "kde"), ("AUROC", "paper")])
    with pytest.raises(SoftlibError, match="lack the legitimate"):
        tables.metrics_frame({("kde", "logits"): {"a1": np.ones(3)}}, "legit", groups)
    # OpenOOD's trapezoid AUPR on request, the rest unchanged
    trap = tables.metrics_frame(scores, "legit", groups, aupr="trapezoid")
    want = detection_metrics(scores[("kde", "logits")]["legit"], scores[("kde", "logits")]["a1"], aupr="trapezoid")
    assert tables.value(trap, set="a1", metric="aupr_in") == pytest.approx(want["aupr_in"])
    assert tables.value(trap, set="a1", metric="aupr_in") != pytest.approx(tables.value(per_set, set="a1", metric="aupr_in"))
    assert tables.value(trap, set="a1", metric="auroc") == a1
    with pytest.raises(SoftlibError, match="aupr"):
        tables.metrics_frame(scores, "legit", groups, aupr="riemann")
    assert tables.paper_sets("mnist", ["fgsm", "bim", "deepfool", "maxconf", "gaussian", "uniform", "natural",
                                       "fashion_mnist"])["ood"][2] == "natural"
    with pytest.raises(SoftlibError, match="not available"):
        tables.paper_sets("mnist", ["cifar10", "gaussian"])


def test_aupr_trapezoid_option_matches_openood_and_differs_from_ap():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    legit, other = rng.normal(1.0, 1.0, 10), rng.normal(0.0, 1.0, 10)
    ap = detection_metrics(legit, other)
    tr = detection_metrics(legit, other, aupr="trapezoid")
    y = np.r_[np.ones(10), np.zeros(10)]
    s = np.r_[legit, other]
    p_in, r_in, _ = skm.precision_recall_curve(y, s)  # OpenOOD's formula
    assert tr["aupr_in"] == pytest.approx(100 * skm.auc(r_in, p_in))
    p_out, r_out, _ = skm.precision_recall_curve(1 - y, -s)
    assert tr["aupr_out"] == pytest.approx(100 * skm.auc(r_out, p_out))
    assert tr["aupr_in"] != pytest.approx(ap["aupr_in"], abs=0.1)
    assert (tr["auroc"], tr["fpr95"]) == (ap["auroc"], ap["fpr95"])
    # all-equal scores: AP = prevalence, the trapezoid joins (0, 1) to (1, prevalence): a 30-point gap
    eq_ap, eq_tr = detection_metrics(np.ones(10), np.ones(7)), detection_metrics(np.ones(10), np.ones(7), aupr="trapezoid")
    assert eq_tr["aupr_in"] - eq_ap["aupr_in"] == pytest.approx(100 * (1 + 10 / 17) / 2 - 100 * 10 / 17)
    with pytest.raises(SoftlibError, match="aupr"):
        detection_metrics(legit, other, aupr="interpolated")


def test_auroc_rows_is_sklearns_auroc_with_ties():
    """The bootstraps' Mann-Whitney AUROC (ties count one half) equals sklearn's, row by row."""
    from sklearn.metrics import roc_auc_score

    from softlib.chapters.ch02.claims import _auroc
    from softlib.metrics import auroc_rows

    rng = np.random.default_rng(0)
    pos, neg = np.round(rng.normal(0.5, 1, (5, 40)), 1), np.round(rng.normal(0, 1, (5, 30)), 1)  # many ties
    want = [100 * roc_auc_score(np.r_[np.ones(40), np.zeros(30)], np.r_[p, q]) for p, q in zip(pos, neg)]
    assert auroc_rows(pos, neg) == pytest.approx(want, abs=1e-12)
    assert auroc_rows(np.array([[3.0, 4.0]]), np.array([[1.0, 2.0]]))[0] == 100.0
    assert auroc_rows(np.array([[1.0]]), np.array([[1.0]]))[0] == 50.0  # a tie counts one half
    y = np.r_[np.zeros(30), np.ones(40)].astype(int)  # chapter 02's labels: 1 = legitimate, in any order
    assert _auroc(y, np.r_[neg[0], pos[0]]) == pytest.approx(want[0], abs=1e-12)
