"""The claim machinery: intervals, verdict rules (ties are never a win), evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from softlib import claims as C
from softlib.validate import SoftlibError


def _auroc(y, s):
    return roc_auc_score(y, s)


def test_bootstrap_interval_contains_point_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = C.bootstrap(np.mean, rng.normal(size=50), n_boot=500)
    large = C.bootstrap(np.mean, rng.normal(size=5000), n_boot=500)
    assert small.low <= small.value <= small.high
    assert (large.high - large.low) < (small.high - small.low) / 5


def test_bootstrap_is_seeded():
    x = np.arange(100.0)
    assert C.bootstrap(np.mean, x, seed=3) == C.bootstrap(np.mean, x, seed=3)
    assert C.bootstrap(np.mean, x, seed=3) != C.bootstrap(np.mean, x, seed=4)


def test_stratified_bootstrap_keeps_both_classes():
    y = np.r_[np.zeros(5), np.ones(200)]
    s = np.r_[np.zeros(5), np.ones(200)] + np.random.default_rng(1).normal(0, 0.1, 205)
    e = C.bootstrap(_auroc, y, s, stratify=y, n_boot=200)  # unstratified would draw single-class samples
    assert e.finite and e.low > 0.9


def test_paired_diff_cancels_shared_noise():
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(300), np.ones(300)]
    base = y + rng.normal(0, 1.0, 600)
    a, b = base + 0.05 * y, base  # a is b plus a small, consistent improvement
    paired = C.paired_bootstrap_diff(_auroc, (y, a), (y, b), stratify=y)
    assert paired.low > 0  # detectable only because the pairing cancels the test set's luck
    ua, ub = C.bootstrap(_auroc, y, a, stratify=y), C.bootstrap(_auroc, y, b, stratify=y)
    assert ua.low < ub.high  # the separate intervals overlap


@pytest.mark.parametrize(("est", "thr", "verdict"), [
    (C.Estimate(1.0, 0.5, 1.5), 0.0, C.HELD),
    (C.Estimate(-1.0, -1.5, -0.5), 0.0, C.NOT_HELD),
    (C.Estimate(0.1, -0.2, 0.4), 0.0, C.UNDETERMINED),
    (C.Estimate(0.0, 0.0, 0.0), 0.0, C.UNDETERMINED),  # an exact tie is never a win
    (C.Estimate(0.5, 0.0, 1.0), 0.0, C.UNDETERMINED),  # touching the criterion
    (C.Estimate(float("nan"), float("nan"), float("nan")), 0.0, C.UNDETERMINED),
])
def test_greater_than(est, thr, verdict):
    assert C.greater_than(est, thr) == verdict


def test_less_than_mirrors_greater_than():
    assert C.less_than(C.Estimate(-1, -2, -0.5)) == C.HELD
    assert C.less_than(C.Estimate(1, 0.5, 2)) == C.NOT_HELD
    assert C.less_than(C.Estimate(0, 0, 0)) == C.UNDETERMINED


def test_at_least():
    assert C.at_least(C.Estimate(99.5, 99.2, 99.7), 99.0) == C.HELD
    assert C.at_least(C.Estimate(98.5, 98.2, 98.8), 99.0) == C.NOT_HELD
    assert C.at_least(C.Estimate(99.0, 98.8, 99.2), 99.0) == C.UNDETERMINED


def test_all_of():
    assert C.all_of([C.HELD, C.HELD]) == C.HELD
    assert C.all_of([C.HELD, C.NOT_HELD, C.UNDETERMINED]) == C.NOT_HELD
    assert C.all_of([C.HELD, C.UNDETERMINED]) == C.UNDETERMINED
    with pytest.raises(SoftlibError, match="unknown verdict"):
        C.all_of(["maybe"])


def test_seed_interval():
    e = C.seed_interval([0.99, 0.991, 0.989])
    assert e.low < 0.99 < e.high and e.n == 3
    one = C.seed_interval([0.5])
    assert one.low == one.high == 0.5
    with pytest.raises(SoftlibError):
        C.seed_interval([])


def test_evaluate_missing_table_is_not_testable_and_rows_record():
    claim = C.Claim("x.1", "03", "000", "table 2", "A beats B", "AUROC(A) > AUROC(B)", "000 table 2",
                    lambda r: C.Outcome(C.greater_than(r["diff"]), {"diff": r["diff"]}, "why"))
    table = C.evaluate([claim], {"diff": C.Estimate(2.0, 1.0, 3.0)})
    assert table.loc[0, "verdict"] == C.HELD and "2.00 [1.00, 3.00]" in table.loc[0, "numbers"]
    missing = C.evaluate([claim], {})
    assert missing.loc[0, "verdict"] == C.NOT_TESTABLE
    rec = C.for_record(table)
    assert rec[0]["numbers"]["diff"]["low"] == 1.0 and rec[0]["criterion"] == "AUROC(A) > AUROC(B)"


@pytest.mark.parametrize("bad", [
    dict(n_boot=0), dict(n_boot=10**9), dict(seed=-1), dict(n_boot="many"),
])
def test_bootstrap_refuses_bad_knobs(bad):
    with pytest.raises(SoftlibError):
        C.bootstrap(np.mean, np.arange(10.0), **bad)


def test_bootstrap_refuses_bad_arrays():
    with pytest.raises(SoftlibError, match="at least 2 rows"):
        C.bootstrap(np.mean, np.arange(1.0))
    with pytest.raises(SoftlibError, match="rows"):
        C.bootstrap(lambda a, b: 0.0, np.arange(5.0), np.arange(6.0))
    with pytest.raises(SoftlibError, match="complex"):
        C.bootstrap(np.mean, np.arange(5.0) + 1j)
    with pytest.raises(SoftlibError, match="one label per row"):
        C.bootstrap(np.mean, np.arange(5.0), stratify=np.arange(4))
    with pytest.raises(SoftlibError, match="verdict"):
        C.Outcome("probably")
    with pytest.raises(SoftlibError, match="reversed"):
        C.Estimate(1.0, 2.0, 0.0)


def test_display_table_shows_the_recorded_paper_verdict(tmp_path, monkeypatch):
    import json

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "softlib"\n')
    monkeypatch.setenv("SOFTLIB_REPO", str(tmp_path))
    claim = C.Claim("03.y", "03_detectors", "000", "s", "q", "crit", "src",
                    lambda r: C.Outcome(C.HELD, {"d": C.Estimate(1, 0.5, 2)}, ""))
    table = C.evaluate([claim], {})
    assert C.display_table(table)["verdict (papers' settings, recorded)"].tolist() == ["no run recorded"]
    assert "No run of this chapter" in C.recorded_note("03_detectors")
    (tmp_path / "results" / "paper").mkdir(parents=True)
    (tmp_path / "results" / "paper" / "03_detectors.json").write_text(json.dumps(
        {"commit": "abc", "device": "cpu (2 cores)", "when": "today", "wall_s": 600,
         "numbers": {"claims": [{"id": "03.y", "verdict": "not held"}]}}))
    assert C.display_table(table)["verdict (papers' settings, recorded)"].tolist() == ["not held"]
    assert "commit `abc`" in C.recorded_note("03_detectors") and "10 min" in C.recorded_note("03_detectors")
