"""Chapter 05's claims (softlib.chapters.ch05.claims) on small synthetic result tables: every outcome of every claim."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from softlib.chapters.ch05 import claims as c5
from softlib.paper import detection_vs_robustness as p003
from softlib.validate import SoftlibError

N = 400
EPS = (0.1, 0.3)


def acc_examples(acc: dict[str, float], n: int = 2000) -> pd.DataFrame:
    """Exact accuracies; the first examples are the correct ones (so models are nested: paired diffs are clean)."""
    return pd.concat([pd.DataFrame({"loss": k, "example": np.arange(n), "correct": (np.arange(n) < round(a * n))})
                      for k, a in acc.items()], ignore_index=True)


def outcomes(loss: str, sep: dict[str, float] | float, robust: dict[str, float] | float, *, seed: int = 0,
             eps_list=EPS, attacks=p003.ATTACKS) -> pd.DataFrame:
    """example_outcomes-like rows: legit scores N(0, 1), adversarial N(-sep, 1) (lower = adversarial)."""
    rng = np.random.default_rng(seed)
    base_l = rng.normal(size=N)
    base_a = rng.normal(size=N)
    u = rng.random(N)
    frames = []
    for attack in attacks:
        for eps in eps_list:
            s = sep[attack] if isinstance(sep, dict) else sep
            r = robust[attack] if isinstance(robust, dict) else robust
            adv_ok = u < r
            frames.append(pd.DataFrame({
                "loss": loss, "attack": attack, "eps": eps, "example": np.arange(N), "clean_correct": True,
                "adv_correct": adv_ok, "legit_score": base_l, "adv_score": np.where(adv_ok, np.nan, base_a - s),
                "bandwidth": 1.0}))
    return pd.concat(frames, ignore_index=True)


def results(acc=None, sep=None, robust=None, **extra) -> dict:
    acc = acc or {"ce": 0.98, "rce": 0.975, "ovm": 0.97}
    sep = sep or {"ce": 2.0, "rce": 2.0, "ovm": 0.5}
    robust = robust or {"ce": 0.2, "rce": 0.2, "ovm": 0.5}
    ex = pd.concat([outcomes(k, sep[k], robust[k]) for k in p003.LOSSES], ignore_index=True)
    return {"dataset": "mnist", "acc_examples": acc_examples(acc), "examples": ex, "n_boot": 100, **extra}


def test_combine():
    assert c5.combine(["held", "held"]) == "held"
    assert c5.combine(["held", "not held"]) == "not held"
    assert c5.combine(["held", "undetermined"]) == "undetermined"
    assert c5.combine([]) == "undetermined"


def test_accuracy_lower_all_outcomes():
    assert c5.check_accuracy_lower(results()).verdict == "held"
    assert c5.check_accuracy_lower(results(acc={"ce": 0.97, "rce": 0.97, "ovm": 0.99})).verdict == "not held"
    tie = c5.check_accuracy_lower(results(acc={"ce": 0.98, "rce": 0.98, "ovm": 0.98}))
    assert tie.verdict == "undetermined"  # an exact tie is never a win
    low = c5.check_accuracy_lower(results(acc={"ce": 0.98, "rce": 0.84, "ovm": 0.97}))
    assert low.verdict == "undetermined" and "RCE" in low.why and "95%" in low.why
    assert c5.excluded(results(acc={"ce": 0.98, "rce": 0.84, "ovm": 0.97})) .keys() == {"rce"}


def test_accuracy_drop_all_outcomes():
    small = results(acc={"ce": 0.98, "rce": 0.98, "ovm": 0.975})  # drop 0.5 points < 1.63 / 1.44
    assert c5.check_accuracy_drop(small).verdict == "held"
    big = results(acc={"ce": 0.99, "rce": 0.99, "ovm": 0.95})  # drop 4 points
    assert c5.check_accuracy_drop(big).verdict == "not held"
    edge = results(acc={"ce": 0.9863, "rce": 0.984, "ovm": 0.97})  # drop 1.63 / 1.4: straddles
    assert c5.check_accuracy_drop(edge).verdict == "undetermined"
    assert c5.check_accuracy_drop(results(acc={"ce": 0.98, "rce": 0.98, "ovm": 0.5})).verdict == "undetermined"


def test_detection_worst_all_outcomes():
    assert c5.check_detection_worst(results()).verdict == "held"
    rev = results(sep={"ce": 0.5, "rce": 0.5, "ovm": 2.0})
    assert c5.check_detection_worst(rev).verdict == "not held"
    same = results(sep={"ce": 1.0, "rce": 1.0, "ovm": 1.0})  # identical scores: tie
    assert c5.check_detection_worst(same).verdict == "undetermined"
    sat = c5.check_detection_worst(results(sep={"ce": 8.0, "rce": 8.0, "ovm": 7.0}))
    assert sat.verdict == "undetermined" and "saturated" in sat.why
    none = c5.check_detection_worst(results(robust={"ce": 0.99, "rce": 0.99, "ovm": 0.99}))
    assert none.verdict == "undetermined" and "no eps" in none.why
    assert c5.check_detection_worst(results(acc={"ce": 0.5, "rce": 0.98, "ovm": 0.97})).verdict == "undetermined"


def test_verdict_eps_prefers_unsaturated():
    ex = pd.concat([outcomes(k, 1.0, 0.2, eps_list=(0.1,)) for k in p003.LOSSES]
                   + [outcomes(k, 6.0, 0.2, eps_list=(0.3,)) for k in p003.LOSSES], ignore_index=True)
    assert c5.verdict_eps(ex, "pgd") == pytest.approx(0.1)
    tab = c5.auc_table({"examples": ex, "n_boot": 50})
    assert set(tab.loc[tab["verdict eps"], "eps"]) == {0.1}
    assert (tab["low"] <= tab["ours"]).all() and (tab["ours"] <= tab["high"]).all()


def test_robustness_best_all_outcomes():
    assert c5.check_robustness_best(results()).verdict == "held"
    assert c5.check_robustness_best(results(robust={"ce": 0.5, "rce": 0.5, "ovm": 0.2})).verdict == "not held"
    mixed = results(robust={"ce": {"fgsm": 0.2, "bim": 0.2, "pgd": 0.2}, "rce": 0.2,
                            "ovm": {"fgsm": 0.5, "bim": 0.5, "pgd": 0.2}})
    assert c5.check_robustness_best(mixed).verdict == "undetermined"  # PGD: a tie


def grid(sign: int, bad_cells: int = 0) -> pd.DataFrame:
    frames = []
    k = 0
    for l1 in (0.0, 0.5, 1.0):
        for l2 in (0.0, 0.5, 1.0):
            r = 0.1 + 0.08 * k
            s = 0.5 + 0.25 * (k if sign > 0 else 8 - k)
            o = outcomes("ls_lsq", s, r, seed=k, attacks=("pgd",), eps_list=(0.1,))
            acc = 0.8 if k < bad_cells else 0.98
            frames.append(o.assign(lambda1=l1, lambda2=l2, test_acc=acc))
            k += 1
    return pd.concat(frames, ignore_index=True)


def test_inverse_correlation_all_outcomes():
    held = c5.check_inverse_correlation({"grid_examples": grid(-1), "n_boot": 60})
    assert held.verdict == "held"
    assert c5.check_inverse_correlation({"grid_examples": grid(+1), "n_boot": 60}).verdict == "not held"
    few = c5.check_inverse_correlation({"grid_examples": grid(-1, bad_cells=7), "n_boot": 50})
    assert few.verdict == "undetermined" and "only 2" in few.why and "80.0%" in few.why
    g = grid(-1)
    g["adv_correct"] = True  # every cell fully robust: nothing attacked, no AUC anywhere
    g["adv_score"] = np.nan
    assert c5.check_inverse_correlation({"grid_examples": g, "n_boot": 50}).verdict == "undetermined"
    kept, out = c5.grid_cells({"grid_examples": grid(-1, bad_cells=2)})
    assert len(kept) == 7 and len(out) == 2


def hidden(spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), 50)
    centers = np.eye(4, 6) * 10
    return centers[y] + spread * rng.normal(size=(200, 6)), y


def test_compactness_claims_all_outcomes():
    base = results()
    ok = {**base, "hidden": {"ce": hidden(3.0), "ls1": hidden(2.0), "rce": hidden(1.0), "ovm": hidden(1.0)}}
    assert c5.check_ovm_compact(ok).verdict == "held"
    assert c5.check_ls_compact(ok).verdict == "held"
    bad = {**base, "hidden": {"ce": hidden(1.0), "ls1": hidden(2.0), "rce": hidden(3.0), "ovm": hidden(3.0)}}
    assert c5.check_ovm_compact(bad).verdict == "not held"
    assert c5.check_ls_compact(bad).verdict == "not held"
    same = {**base, "hidden": {k: hidden(1.0) for k in ("ce", "ls1", "rce", "ovm")}}
    assert c5.check_ovm_compact(same).verdict == "undetermined"
    mixed = {**base, "hidden": {"ce": hidden(3.0), "ls1": hidden(1.0), "rce": hidden(2.0), "ovm": hidden(1.0)}}
    assert c5.check_ls_compact(mixed).verdict == "not held"
    with pytest.raises(SoftlibError, match="same images"):
        c5.compactness_estimate({"hidden": {"ce": hidden(1.0), "ovm": (np.zeros((3, 6)), np.arange(3))}}, "ce", "ovm")


def test_cifar_levels():
    assert c5.check_cifar_levels(results()).verdict == "not testable here"
    on = results(acc={"ce": 0.9313, "rce": 0.9294, "ovm": 0.915}, dataset="cifar10")
    assert c5.check_cifar_levels(on).verdict == "held"
    off = results(acc={"ce": 0.80, "rce": 0.9294, "ovm": 0.915}, dataset="cifar10")
    assert c5.check_cifar_levels(off).verdict == "not held"


def test_evaluate_table_and_missing_inputs():
    r = results(grid_examples=grid(-1), hidden={k: hidden(1.0 + i) for i, k in enumerate(("ovm", "rce", "ls1", "ce"))})
    tab = c5.evaluate(r)
    assert list(tab["id"]) == [c.id for c in c5.CLAIMS]
    assert set(tab["verdict"]) <= {"held", "not held", "undetermined", "not testable here"}
    for c in c5.CLAIMS:
        assert c.paper == c5.PAPER and c.quote and c.criterion and c.source
    missing = {c.id: c.evaluate({"dataset": "mnist"}).verdict for c in c5.CLAIMS}
    assert missing["05.robustness_best"] == "not testable here"
