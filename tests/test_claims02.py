"""Chapter 02's claims: each outcome on small synthetic tables."""

from __future__ import annotations

import numpy as np

from softlib.chapters.ch02 import claims as K
from softlib.claims import HELD, NOT_HELD, NOT_TESTABLE, UNDETERMINED

SETS = ["fgsm", "bim", "deepfool", "maxconf", "gaussian", "uniform", "natural", "fashion_mnist"]


def _normal(mean: float, n: int, seed: int, sd: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


def results(avg=None, mx=None, sep_gap=0.3, dev=1e-16, n=400):
    avg = avg or {}
    mx = mx or {}
    r = {"legit": "mnist", "sets000": SETS, "fig2_sets": ["gaussian", "natural", "fgsm", "maxconf"],
         "avg_logit": {"mnist": _normal(3, n, 0), **{s: _normal(avg.get(s, 0.0), n, i + 1) for i, s in enumerate(SETS)}},
         "max_logit": {"mnist": _normal(16, n, 50), **{s: _normal(mx.get(s, 8.0), n, 60 + i)
                                                       for i, s in enumerate(["bim", "fgsm", "deepfool"])}},
         "softmax_mean_dev": dev, "n_boot": 200, "seed": 0, "stand_in": True, "separation": {}}
    for i, s in enumerate(r["fig2_sets"]):
        y = np.r_[np.ones(n), np.zeros(n)]
        base = _normal(0, 2 * n, 100 + i)
        r["separation"][s] = {"y": y, "logits": base + 1.0 * y, "softmax": base + (1.0 - sep_gap) * y}
    return r


def verdict(cid, r):
    return next(c for c in K.CLAIMS if c.id == f"02.{cid}").evaluate(r).verdict


def test_avg_logit_highest_outcomes():
    assert verdict("avg_logit_highest", results()) == HELD
    assert verdict("avg_logit_highest", results(avg={"gaussian": 4.0})) == NOT_HELD
    # a positive difference short of p < 0.0001 is a matter of sample size: undetermined
    assert verdict("avg_logit_highest", results(avg={"uniform": 2.85})) == UNDETERMINED


def test_errors_claim_not_testable_without_errors():
    assert verdict("avg_logit_above_errors", results()) == NOT_TESTABLE
    r = results()
    r["avg_logit"]["errors"] = _normal(1.0, 400, 9)
    assert verdict("avg_logit_above_errors", r) == HELD


def test_softmax_mean():
    assert verdict("softmax_mean", results()) == HELD
    assert verdict("softmax_mean", results(dev=1e-6)) == NOT_HELD


def test_minmax_separation():
    assert verdict("minmax_logits", results(sep_gap=0.5)) == HELD
    assert verdict("minmax_logits", results(sep_gap=-0.5)) == NOT_HELD
    assert verdict("minmax_logits", results(sep_gap=0.0)) == UNDETERMINED  # identical scores: a tie


def test_max_logit():
    assert verdict("max_logit", results()) == HELD
    assert verdict("max_logit", results(mx={"deepfool": 17.0})) == NOT_HELD
    assert verdict("max_logit", results(mx={"fgsm": 15.85})) == UNDETERMINED
