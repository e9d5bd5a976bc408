"""Chapter 06's bootstrap intervals and claims (softlib.chapters.ch06.experiment), on synthetic scores: no model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from softlib import claims
from softlib.chapters.ch06 import experiment as C6
from softlib.metrics import detection_metrics, fpr_at_tpr
from softlib.validate import SoftlibError

COMBOS = [("kde", "logits"), ("kde", "softmax")]


def _fake(seed: int = 0, n_leg: int = 60, n_src: int = 25):
    """A context and raw outcomes as run_grid makes them, with ties in the scores."""
    rng = np.random.default_rng(seed)
    legit = {c: np.round(rng.normal(1.0, 1.0, n_leg), 1) for c in COMBOS}
    thr = {c: fpr_at_tpr(legit[c], legit[c][:1])[1] for c in COMBOS}
    ctx = SimpleNamespace(legit_scores=legit, thresholds=thr, x=np.zeros((n_src, 1)))
    raw = {}
    for eps in (0.3, 0.1):
        for a in C6.ATTACKS:
            for c in COMBOS:
                s = np.round(rng.normal(0.0 if c[1] == "logits" else 0.8, 1.0, n_src), 1)
                mis = rng.random(n_src) < (0.9 if eps == 0.3 else 0.4)
                raw[(eps, a, c)] = {"mis": mis, "score": s, "accepted": s >= thr[c]}
    return ctx, raw


def test_replicate_zero_is_the_table_and_intervals_contain_it():
    ctx, raw = _fake()
    reps = C6.replicates(ctx, raw, COMBOS, [0.3, 0.1], n_boot=200, seed=1)
    rows = []
    for (eps, a, c), r in reps.items():
        o = raw[(eps, a, c)]
        m = detection_metrics(ctx.legit_scores[c], o["score"][o["mis"]])
        assert r["auroc"][0] == pytest.approx(m["auroc"]) and r["fpr95"][0] == pytest.approx(m["fpr95"])
        summ = C6.summarize(ctx, c, o)
        for k in C6.METRICS:
            assert r[k][0] == pytest.approx(summ[k]) and r[k].shape == (201,)
        rows.append({"eps": eps, "attack": a, "detector": c[0], "feature": c[1], **summ})
    frame = C6.with_intervals(pd.DataFrame(rows), reps)
    for m in C6.METRICS:
        assert (frame[f"{m}_low"] <= frame[m] + 1e-12).all() and (frame[m] <= frame[f"{m}_high"] + 1e-12).all()
        assert (frame[f"{m}_high"] > frame[f"{m}_low"]).any()  # resampling moves the numbers
    table = C6.interval_table(frame, [0.3, 0.1])
    assert table.shape == (len(COMBOS) * 3, 2 * len(C6.METRICS))
    assert table.iloc[0, 0].count("[") == 1


def test_replicates_match_a_brute_force_resample(monkeypatch):
    """Each replicate equals the metrics recomputed on the resampled arrays (np.repeat of the counts)."""
    ctx, raw = _fake(seed=3)
    drawn = []
    real = C6._counts

    def spy(rng, n, n_boot):
        c = real(rng, n, n_boot)
        drawn.append(c)
        return c

    monkeypatch.setattr(C6, "_counts", spy)
    reps = C6.replicates(ctx, raw, COMBOS, [0.3], n_boot=5, seed=2)
    c_leg, w_src = drawn
    for b in range(1, 6):
        for a in C6.ATTACKS:
            c = COMBOS[0]
            o = raw[(0.3, a, c)]
            leg = np.repeat(ctx.legit_scores[c], c_leg[b].astype(int))
            src = np.repeat(np.arange(len(o["mis"])), w_src[b].astype(int))
            adv = o["score"][src][o["mis"][src]]
            m = detection_metrics(leg, adv)
            assert reps[(0.3, a, c)]["auroc"][b] == pytest.approx(m["auroc"])
            assert reps[(0.3, a, c)]["fpr95"][b] == pytest.approx(m["fpr95"])
            assert reps[(0.3, a, c)]["robust_acc"][b] == pytest.approx(
                100 * (1 - (o["mis"] & o["accepted"])[src].mean()))


def test_too_few_successes_give_nan_and_undetermined():
    ctx, raw = _fake()
    for a in C6.ATTACKS:
        for c in COMBOS:
            raw[(0.3, a, c)]["mis"][:] = False
            raw[(0.3, a, c)]["mis"][0] = True
    reps = C6.replicates(ctx, raw, COMBOS, [0.3], n_boot=50)
    assert np.isnan(reps[(0.3, "adaptive", COMBOS[0])]["auroc"][0])
    assert reps[(0.3, "adaptive", COMBOS[0])]["success"][0] == pytest.approx(4.0)
    e = C6.estimate_of(reps[(0.3, "adaptive", COMBOS[0])]["auroc"])
    assert not e.finite
    table = claims.evaluate(C6.claims(COMBOS, [0.3]), {"reps": reps})
    assert list(table["verdict"]) == ["undetermined"]
    with pytest.raises(SoftlibError, match="n_boot"):
        C6.replicates(ctx, raw, COMBOS, [0.3], n_boot=-1)


def test_claims_follow_the_interval():
    """Logit scores far from the adversarial ones and softmax scores mixed with them: held; swapped: not held."""
    ctx, raw = _fake()
    for eps in (0.3, 0.1):
        for c in COMBOS:
            raw[(eps, "adaptive", c)]["score"] = np.full(25, -10.0 if c[1] == "logits" else 1.0)
            raw[(eps, "adaptive", c)]["mis"][:] = True
    reps = C6.replicates(ctx, raw, COMBOS, [0.3, 0.1], n_boot=200)
    table = claims.evaluate(C6.claims(COMBOS, [0.3, 0.1]), {"reps": reps})
    assert list(table["id"]) == ["06-logits-kde", "06-logits-kde-eps0.1"]
    assert list(table["verdict"]) == ["held", "held"] and C6.overall_verdict(table) == "held"
    swapped = {k: v for k, v in raw.items()}
    for c, other in zip(COMBOS, COMBOS[::-1]):
        swapped[(0.3, "adaptive", c)] = dict(raw[(0.3, "adaptive", other)])
    reps = C6.replicates(ctx, swapped, COMBOS, [0.3], n_boot=200)
    table = claims.evaluate(C6.claims(COMBOS, [0.3]), {"reps": reps})
    assert list(table["verdict"]) == ["not held"] and C6.overall_verdict(table) == "not held"


def test_verdicts_line_names_each_detector():
    table = pd.DataFrame({"id": ["06-logits-kde", "06-logits-nn", "06-logits-kde-eps0.1"],
                          "verdict": ["held", "undetermined", "not held"]})
    assert C6.verdicts_line(table, 0.3) == "KDE held, NN undetermined"
    assert C6.verdicts_line(table, 0.1) == "KDE not held"
    assert C6.verdicts_line(table.iloc[:0], 0.3).startswith("no detector")
