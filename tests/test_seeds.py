"""Verdicts pooled over training seeds (issue 12): softlib.claims pooling, seed replicates on disk, the runner's order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from softlib import claims
from softlib.claims import HELD, NOT_HELD, NOT_TESTABLE, UNDETERMINED, Claim, Estimate, Outcome, greater_than
from softlib.tooling.record import record, replicate_path, seed_replicates
from softlib.validate import SoftlibError


def test_pool_estimates_one_seed_is_unchanged() -> None:
    e = Estimate(1.0, 0.5, 1.5)
    assert claims.pool_estimates([e]) is e


def test_pool_estimates_adds_seed_spread_to_the_bootstrap_width() -> None:
    es = [Estimate(v, v - 0.1, v + 0.2) for v in (1.0, 2.0, 3.0)]
    p = claims.pool_estimates(es)
    assert p.value == pytest.approx(2.0)
    from scipy import stats

    seed_half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # sd of (1, 2, 3) is 1
    assert p.low == pytest.approx(2.0 - np.hypot(0.1, seed_half))
    assert p.high == pytest.approx(2.0 + np.hypot(0.2, seed_half))
    assert p.n == 3 and "3 seeds" in p.method


def test_pool_estimates_identical_seeds_keep_the_bootstrap_interval() -> None:
    es = [Estimate(1.0, 0.8, 1.3)] * 3
    p = claims.pool_estimates(es)
    assert (p.low, p.high) == pytest.approx((0.8, 1.3))


def test_pool_estimates_not_finite_and_bad_input() -> None:
    p = claims.pool_estimates([Estimate(1.0, 0.0, 2.0), Estimate(float("nan"), float("nan"), float("nan"))])
    assert not p.finite and greater_than(p) == UNDETERMINED
    with pytest.raises(SoftlibError, match="pool_estimates"):
        claims.pool_estimates([])
    with pytest.raises(SoftlibError, match="pool_estimates"):
        claims.pool_estimates([1.0])  # type: ignore[list-item]


def _claim(test) -> Claim:  # type: ignore[no-untyped-def]
    return Claim("x.one", "99_test", "000", "section 1", "A is above B", "A - B > 0", "the paper's comparison", test)


def _above(r) -> Outcome:  # type: ignore[no-untyped-def]
    e = r["diff"]
    v = greater_than(e)
    return Outcome(v, {"A - B": e}, "A above B" if v == HELD else "not clearly")


def _replicate(values: list[Estimate]) -> list[dict]:
    return [{"id": "x.one", "rule_inputs": [v.as_dict() for v in values], "own_numbers": {"A - B": values[0].as_dict()}}]


def test_evaluate_without_replicates_records_the_rule_inputs() -> None:
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(0.3, 0.1, 0.5)})
    assert t.loc[0, "verdict"] == HELD and t.loc[0, "seeds"] == 1
    rec = claims.for_record(t)[0]
    # each rule input says which rule tested it, against what
    assert rec["rule_inputs"] == [{**Estimate(0.3, 0.1, 0.5).as_dict(), "rule": "greater_than", "threshold": 0.0}]
    assert rec["seeds"] == 1


def test_a_narrow_win_under_one_seed_is_undetermined_when_the_seeds_disagree() -> None:
    # seed 0 alone says held (interval above 0); the other seeds put A below B: pooled, it straddles 0
    own = Estimate(0.3, 0.1, 0.5)
    reps = [_replicate([Estimate(-0.2, -0.4, 0.0)]), _replicate([Estimate(0.1, -0.1, 0.3)])]
    t = claims.evaluate([_claim(_above)], {"diff": own}, reps)
    assert t.loc[0, "verdict"] == UNDETERMINED and t.loc[0, "seeds"] == 3
    assert "pooled over 3 training seeds" in t.loc[0, "why"]
    num = t.loc[0, "_numbers"]["A - B"]
    assert num["value"] == pytest.approx((0.3 - 0.2 + 0.1) / 3) and num["low"] < 0 < num["high"]
    # what a later run pools is this seed's own, not the pooled, numbers
    rec = claims.for_record(t)[0]
    assert rec["own_numbers"]["A - B"]["value"] == pytest.approx(0.3)
    assert rec["rule_inputs"][0]["value"] == pytest.approx(0.3)


def test_seeds_that_agree_keep_the_verdict() -> None:
    reps = [_replicate([Estimate(v, v - 0.2, v + 0.2)]) for v in (1.1, 0.9)]
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(1.0, 0.8, 1.2)}, reps)
    assert t.loc[0, "verdict"] == HELD
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(-1.0, -1.2, -0.8)},
                        [_replicate([Estimate(v, v - 0.2, v + 0.2)]) for v in (-1.1, -0.9)])
    assert t.loc[0, "verdict"] == NOT_HELD


def test_why_gives_each_seeds_own_verdict_when_the_records_have_them() -> None:
    # every seed alone says held, but three seeds this far apart leave the pooled interval across 0
    reps = [[{**_replicate([Estimate(v, v - 0.2, v + 0.2)])[0], "verdict": HELD}] for v in (3.0, 0.5)]
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(1.0, 0.8, 1.2)}, reps)
    assert t.loc[0, "verdict"] == UNDETERMINED
    assert t.loc[0, "why"].endswith("(pooled over 3 training seeds; each seed alone: 3 held)")
    reps[1][0]["verdict"] = UNDETERMINED
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(1.0, 0.8, 1.2)}, reps)
    assert "each seed alone: 2 held, 1 undetermined)" in t.loc[0, "why"]
    # a replicate recorded without its verdict: no per-seed line rather than a wrong one
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(1.0, 0.8, 1.2)}, [_replicate([Estimate(1.1, 0.9, 1.3)])])
    assert t.loc[0, "why"].endswith("(pooled over 2 training seeds)")


def test_a_replicate_with_a_not_finite_number_pools_without_error() -> None:
    # JSON records a not-finite estimate as null (chapter 06: no AUROC without two successful attacks)
    e = claims.estimate_from({"value": None, "low": None, "high": None, "n": None, "method": "no resamples"})
    assert not e.finite
    rep = [{"id": "x.one", "rule_inputs": [{"value": None, "low": None, "high": None}],
            "own_numbers": {"A - B": {"value": None, "low": None, "high": None}}}]
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(1.0, 0.8, 1.2)}, [rep])
    assert t.loc[0, "verdict"] == UNDETERMINED and t.loc[0, "seeds"] == 2


def test_seeds_that_tested_different_things_are_undetermined() -> None:
    def two_rules(r):  # type: ignore[no-untyped-def]
        return Outcome(claims.all_of([greater_than(r["diff"]), greater_than(r["diff"])]), {"A - B": r["diff"]}, "")

    reps = [_replicate([Estimate(1.0, 0.8, 1.2)])]  # one rule input where this run has two
    t = claims.evaluate([_claim(two_rules)], {"diff": Estimate(1.0, 0.8, 1.2)}, reps)
    assert t.loc[0, "verdict"] == UNDETERMINED and "cannot be pooled" in t.loc[0, "why"]


def test_a_replicate_without_the_claim_leaves_one_seed_and_says_so() -> None:
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(1.0, 0.8, 1.2)}, [[{"id": "other"}]])
    assert t.loc[0, "verdict"] == HELD and t.loc[0, "seeds"] == 1 and "lack this claim" in t.loc[0, "why"]


def test_not_testable_stays_not_testable() -> None:
    t = claims.evaluate([_claim(lambda r: r["missing"])], {}, [[{"id": "x.one", "rule_inputs": []}]])
    assert t.loc[0, "verdict"] == NOT_TESTABLE


def test_rules_outside_evaluate_are_not_pooled() -> None:
    assert greater_than(Estimate(1.0, 0.5, 1.5)) == HELD


def test_seed_replicates_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path))
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(0.3, 0.1, 0.5)})
    record("99_test", "smoke", {"model_key": "k1", "claims": claims.for_record(t)}, seed=1)
    assert replicate_path("99_test", "smoke", 1).exists()
    assert not (tmp_path / "smoke" / "99_test.json").exists()  # a replicate never replaces the book's run
    got, line = seed_replicates("99_test", "smoke", {1: "k1", 2: "k2"})
    assert len(got) == 1 and got[0][0]["id"] == "x.one"
    assert "seed(s) 1" in line and "seed 2 not run" in line
    got, line = seed_replicates("99_test", "smoke", {1: "another"})
    assert got == [] and "another model" in line and "one trained model" in line
    replicate_path("99_test", "smoke", 1).write_text("{not json")
    with pytest.raises(SoftlibError, match="not readable JSON"):
        seed_replicates("99_test", "smoke", {1: "k1"})


def test_record_refuses_a_bad_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path))
    with pytest.raises(SoftlibError, match="seed"):
        record("99_test", "smoke", {}, seed=-1)


def test_runner_runs_the_seed_replicates_first(tmp_path: Path) -> None:
    from softlib.tooling import notebooks

    paths = notebooks.notebook_paths(["02", "03", "04"])
    jobs = notebooks._jobs(paths, "quick", tmp_path, {}, seeds=3)
    labels = [j[0] for j in jobs]
    assert labels == ["02_logit_distributions (seed 1)", "02_logit_distributions (seed 2)", "02_logit_distributions",
                      "03_detectors (seed 1)", "03_detectors (seed 2)", "03_detectors",
                      "04_overoptimization_transferability (seed 1)", "04_overoptimization_transferability (seed 2)",
                      "04_overoptimization_transferability"]
    rep = jobs[0]
    assert rep[2] == tmp_path / "seeds" / "02_logit_distributions-seed1.ipynb"
    assert rep[3] == {"profile": "quick", "other_models": False, "seed": 1}
    assert jobs[2][3] == {"profile": "quick"}
    # one seed, or a run whose own seed is not 0: no replicates
    assert [j[0] for j in notebooks._jobs(paths, "quick", tmp_path, {}, seeds=1)] == [p.stem for p in paths]
    assert len(notebooks._jobs(paths, "quick", tmp_path, {"seed": 4}, seeds=3)) == 3
    assert jobs[6][3] == {"profile": "quick", "seed": 1}  # chapter 04's replicates: the whole chapter


def test_runner_pools_recorded_replicates_of_the_same_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replicate recorded for this recipe is not trained again; another recipe's, or --fresh-seeds, is."""
    from softlib import zoo
    from softlib.tooling import notebooks, record

    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path / "results"))
    paths = notebooks.notebook_paths(["02"])
    claims_ = [{"id": "02.x", "verdict": "held", "rule_inputs": []}]
    record.record("02_logit_distributions", "quick", {"model_key": zoo.model_key("cnn", "mnist", "quick", 1),
                                                      "claims": claims_}, seed=1)
    record.record("02_logit_distributions", "quick", {"model_key": "another-recipe", "claims": claims_}, seed=2)
    assert notebooks.recorded_replicate("02_logit_distributions", "quick", 1, {}) is not None
    assert notebooks.recorded_replicate("02_logit_distributions", "quick", 2, {}) is None
    # the same seed for another data set is another network
    assert notebooks.recorded_replicate("02_logit_distributions", "quick", 1, {"dataset": "fashion_mnist"}) is None
    labels = [j[0] for j in notebooks._jobs(paths, "quick", tmp_path, {}, seeds=3)]
    assert labels == ["02_logit_distributions (seed 2)", "02_logit_distributions"]
    labels = [j[0] for j in notebooks._jobs(paths, "quick", tmp_path, {}, seeds=3, fresh_seeds=True)]
    assert labels == ["02_logit_distributions (seed 1)", "02_logit_distributions (seed 2)", "02_logit_distributions"]


def test_runner_refuses_bad_seeds(tmp_path: Path) -> None:
    from softlib.tooling import notebooks

    with pytest.raises(SoftlibError, match="seeds"):
        notebooks.run_all("smoke", tmp_path, ["01"], seeds=0)


def test_runner_runs_only_the_replicates_asked_for(tmp_path: Path) -> None:
    """--replicate K: those seeds' replicates, no seed-0 run (a GPU node recording them for a seed 0 made elsewhere)."""
    from softlib.tooling import notebooks

    paths = notebooks.notebook_paths(["02", "03"])
    labels = [j[0] for j in notebooks._jobs(paths, "quick", tmp_path, {}, seeds=3, replicates=[2])]
    assert labels == ["02_logit_distributions (seed 2)", "03_detectors (seed 2)"]
    with pytest.raises(SoftlibError, match="--replicate: chapter 05_detection_vs_robustness has no seed"):
        notebooks._jobs(notebooks.notebook_paths(["05"]), "quick", tmp_path, {}, seeds=3, replicates=[1])
    # refused before any notebook runs: a seed the seed-0 run would not pool, none at all, or a profile of one seed
    for bad, match in (([3], "--replicate must be <= 2"), ([0], "--replicate must be >= 1"), ([], "at least one")):
        with pytest.raises(SoftlibError, match=match):
            notebooks.run_all("smoke", tmp_path, ["02"], seeds=3, replicates=bad)
    with pytest.raises(SoftlibError, match="pools 1 seed"):
        notebooks.run_all("smoke", tmp_path, ["02"], seeds=1, replicates=[1])


def test_profiles_seed_counts() -> None:
    from softlib.profiles import get_profile

    assert get_profile("quick").cnn_seeds == 10 and get_profile("paper").cnn_seeds == 3
    with pytest.raises(SoftlibError, match="cnn_seeds"):
        get_profile("quick", cnn_seeds=0)


def test_recorded_replicate_files_are_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path))
    path = record("99_test", "smoke", {"model_key": "k", "claims": []}, seed=2)
    assert json.loads(path.read_text())["numbers"]["model_key"] == "k"


# ---------------------------------------------------------------- how often a rebuild agrees


def _inputs(values: list[float], half: float = 0.1, rule: str = "greater_than", threshold: float = 0.0) -> list[list[dict]]:
    return [[{"value": v, "low": v - half, "high": v + half, "rule": rule, "threshold": threshold}] for v in values]


def test_rebuild_agreement_is_high_far_from_the_criterion_and_low_near_it() -> None:
    far = claims.rebuild_agreement(_inputs([5.0, 5.2, 4.9, 5.1, 5.05]), HELD)
    assert far is not None and far > 0.99
    # five seeds whose pooled interval (0.6 +- 0.4) only just clears 0: a rebuild often says undetermined
    near = claims.rebuild_agreement(_inputs([0.2, 0.9, 0.6, 1.2, 0.5]), HELD)
    assert near is not None and 0.5 < near < 0.9
    # seeds that straddle 0 (undetermined): a rebuild may land either side of the edge
    edge = claims.rebuild_agreement(_inputs([0.1, 0.9, 0.5, 1.3, -0.2]), UNDETERMINED)
    assert edge is not None and 0.3 < edge < 0.95
    # the same numbers, tested with less_than against 2: held far from the criterion again
    assert claims.rebuild_agreement(_inputs([0.2, 0.9, 0.6, 1.2, 0.5], rule="less_than", threshold=2.0), HELD) > 0.95


def test_a_fresh_clone_that_retrains_one_seed_agrees_more_often_than_a_full_rebuild() -> None:
    near = _inputs([0.2, 0.9, 0.6, 1.2, 0.5])
    full = claims.rebuild_agreement(near, HELD)
    clone = claims.rebuild_agreement(near, HELD, redraw=1)
    assert full is not None and clone is not None and full < clone < 1.0
    assert claims.rebuild_agreement(near, HELD, redraw=5) == full  # every seed redrawn: the full rebuild
    for bad in (0, 6, 1.5, True):
        with pytest.raises(SoftlibError, match="redraw"):
            claims.rebuild_agreement(near, HELD, redraw=bad)


def test_rebuild_agreement_needs_seeds_rules_and_a_consistent_verdict() -> None:
    assert claims.rebuild_agreement(_inputs([1.0]), HELD) is None  # one seed
    assert claims.rebuild_agreement([[{"value": 1.0, "low": 0.9, "high": 1.1}]] * 3, HELD) is None  # no rule recorded
    runs = _inputs([1.0, 1.1, 0.9])
    assert claims.rebuild_agreement([runs[0], runs[1] + runs[2]], HELD) is None  # seeds tested different things
    assert claims.rebuild_agreement(_inputs([5.0, 5.1, 4.9]), NOT_HELD) is None  # not what the rules give
    with pytest.raises(SoftlibError, match="rule"):
        claims.rebuild_agreement(_inputs([5.0, 5.1, 4.9], rule="between"), HELD)


def test_evaluate_reports_rebuild_agreement_when_seeds_are_pooled() -> None:
    reps = [_replicate([Estimate(v, v - 0.1, v + 0.1)]) for v in (0.35, 0.25, 0.3, 0.32)]
    t = claims.evaluate([_claim(_above)], {"diff": Estimate(0.3, 0.2, 0.4)}, reps)
    assert t.loc[0, "verdict"] == HELD and t.loc[0, "rebuild agrees"] > 0.9
    rec = claims.for_record(t)[0]
    assert rec["rebuild_agreement"] == pytest.approx(t.loc[0, "rebuild agrees"])
    assert rec["clone_agreement"] == pytest.approx(t.loc[0, "clone agrees"]) and rec["clone_agreement"] >= 0.9
    assert {"a rebuild agrees", "a fresh clone agrees"} <= set(claims.display_table(t).columns)
    one = claims.evaluate([_claim(_above)], {"diff": Estimate(0.3, 0.2, 0.4)})
    assert np.isnan(one.loc[0, "rebuild agrees"]) and claims.for_record(one)[0]["rebuild_agreement"] is None
    assert claims.for_record(one)[0]["clone_agreement"] is None
    assert claims.agreement_label(None) == "—" and claims.agreement_label(0.5) == "50% (borderline)"
    assert claims.agreement_label(0.97) == "97%"


def test_chapter04_replicates_are_keyed_by_all_three_networks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chapter 04 trains a CNN, a WRN and an MLP per seed: its replicate key changes when any of them would."""
    from dataclasses import replace

    from softlib import zoo
    from softlib.chapters.ch04 import settings
    from softlib.profiles import get_profile
    from softlib.tooling import notebooks, record

    quick = get_profile("quick")
    k1 = settings.models_key("mnist", quick, 1)
    assert k1 == notebooks.replicate_key("04_overoptimization_transferability", {"setting": "mnist"}, "quick", 1)
    assert k1 != settings.models_key("mnist", quick, 2)
    assert k1 != settings.models_key("mnist", replace(quick, wrn_epochs=3), 1)  # the CNN's key alone would not see it
    assert zoo.model_key("cnn", "mnist", quick, 1) == zoo.model_key("cnn", "mnist", replace(quick, wrn_epochs=3), 1)
    assert settings.models_key("imagenet", quick, 1) == settings.models_key("imagenet", quick, 2)  # pretrained weights
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path))
    claims_ = [{"id": "04.x", "verdict": "held", "rule_inputs": []}]
    record.record("04_overoptimization_transferability", "quick", {"model_key": k1, "claims": claims_}, seed=1)
    assert notebooks.recorded_replicate("04_overoptimization_transferability", "quick", 1, {"setting": "mnist"})
    record.record("04_overoptimization_transferability", "quick", {"model_key": zoo.model_key("cnn", "mnist", quick, 1),
                                                                   "claims": claims_}, seed=1)
    assert notebooks.recorded_replicate("04_overoptimization_transferability", "quick", 1, {"setting": "mnist"}) is None
