"""The adaptive attacks of chapter 06 (softlib.adaptive): BIM equivalence at lambda = 0, bounds,
the lambda search, strength against a detector, the logit-matching attack, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchattacks

from softlib import detectors as D
from softlib.adaptive import AdaptivePGD, LogitMatching, search_update
from softlib.attacks import check_bound
from softlib.data import load_split
from softlib.diffscore import features_of, torch_scorer
from softlib.metrics import fpr_at_tpr
from softlib.models import build_model
from softlib.validate import SoftlibError


@pytest.fixture(scope="module")
def setup():
    """A small MLP trained briefly on MNIST, 64 correctly classified test images, clean logits."""
    torch.manual_seed(0)
    x, y = load_split("mnist", train=True)
    model = build_model("mlp", hidden=(64,))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for i in range(0, 6000, 100):
        loss = torch.nn.functional.cross_entropy(model(x[i:i + 100]), y[i:i + 100])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt = load_split("mnist", train=False)
    with torch.no_grad():
        ok = model(xt[:200]).argmax(1) == yt[:200]
        fit_logits = model(x[6000:8000]).numpy()
    return model, xt[:200][ok][:64], yt[:200][ok][:64], fit_logits, y[6000:8000].numpy()


def test_lambda_zero_is_torchattacks_bim(setup):
    model, x, y, fit_logits, _ = setup
    eps, alpha, steps = 0.3, 0.05, 5
    want = torchattacks.BIM(model, eps=eps, alpha=alpha, steps=steps)(x, y)
    got = AdaptivePGD(model, loss="ce", lam=0.0, alpha=alpha, steps=steps, eps=eps, random_start=False,
                      keep_best=False)(x, y)
    assert torch.equal(got, want)
    # with a detector in the loss but lambda = 0 (and no search): still BIM, bit for bit
    kde = D.KDE().fit(fit_logits)
    thr = fpr_at_tpr(kde.score_samples(fit_logits), kde.score_samples(fit_logits)[:2])[1]
    got = AdaptivePGD(model, torch_scorer(kde), threshold=thr, loss="ce", lam=0.0, alpha=alpha, steps=steps,
                      eps=eps, random_start=False, keep_best=False)(x, y)
    assert torch.equal(got, want)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_bounds(setup, eps):
    model, x, y, fit_logits, fit_y = setup
    kde = D.KDE().fit(fit_logits)
    thr = float(np.quantile(kde.score_samples(fit_logits), 0.05))
    for atk in (AdaptivePGD(model, torch_scorer(kde), threshold=thr, eps=eps, steps=4, restarts=2, search_steps=1),
                LogitMatching(model, torch.zeros(10, 10), eps=eps, steps=4, restarts=2)):
        adv = atk(x[:16], y[:16])
        check_bound(x[:16], adv, eps, name=type(atk).__name__)  # raises if outside the ball or [0, 1]
        if eps == 0.0:
            assert torch.equal(adv, x[:16])


def test_undefended_model_falls_at_eps_03(setup):
    model, x, y, _, _ = setup
    adv = AdaptivePGD(model, eps=0.3, alpha=0.03, steps=20)(x, y)
    with torch.no_grad():
        assert bool((model(adv).argmax(1) != y).all())


def test_more_steps_never_worse_for_one_run(setup):
    """keep_best: the best iterate of a longer run (same random start) is at least as good."""
    model, x, y, _, _ = setup
    rates = []
    for steps in (1, 3, 9):
        torch.manual_seed(3)
        adv = AdaptivePGD(model, eps=0.1, alpha=0.01, steps=steps)(x, y)
        with torch.no_grad():
            rates.append(float((model(adv).argmax(1) != y).float().mean()))
    assert rates == sorted(rates)


def test_adaptive_beats_non_adaptive_against_a_logit_kde(setup):
    """Against a KDE on logits, putting the KDE in the loss evades it more often than lambda = 0."""
    model, x, y, fit_logits, _ = setup
    kde = D.KDE().fit(fit_logits)
    legit = kde.score_samples(fit_logits)
    thr = fpr_at_tpr(legit, legit[:2])[1]
    scorer = torch_scorer(kde)

    def undetected_success(atk):
        torch.manual_seed(0)
        adv = atk(x, y)
        with torch.no_grad():
            logits = model(adv)
        ok = (logits.argmax(1) != y).numpy() & (kde.score_samples(logits.numpy()) >= thr)
        return ok.mean()

    common = dict(threshold=thr, score_scale=float(legit.std()), eps=0.2, alpha=0.02, steps=20)
    base = undetected_success(AdaptivePGD(model, scorer, lam=0.0, **common))
    adaptive = undetected_success(AdaptivePGD(model, scorer, lam=1.0, search_steps=2, **common))
    assert adaptive >= base and adaptive > 0.5, (base, adaptive)


def test_search_update():
    lam = torch.tensor([1.0, 1.0, 1.0, 0.0, 4.0], dtype=torch.float64)
    lo = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    hi = torch.tensor([np.inf, np.inf, np.inf, np.inf, np.inf], dtype=torch.float64)
    status = torch.tensor([2, 1, 0, 1, 0])
    new, lo2, hi2 = search_update(lam, lo, hi, status)
    assert new.tolist() == [1.0, 10.0, 0.1, 1.0, 2.0]  # kept, x10, /10, 0 -> 1, bisect(1, 4) = 2
    assert lo2.tolist()[:2] == [0.0, 1.0] and hi2.tolist()[2] == 1.0 and hi2.tolist()[4] == 4.0


def test_logit_matching_moves_logits_toward_the_target_class(setup):
    model, x, y, fit_logits, fit_y = setup
    ok = fit_logits.argmax(1) == fit_y
    means = torch.tensor(np.stack([fit_logits[ok & (fit_y == c)].mean(0) for c in range(10)]))
    scales = torch.tensor(np.stack([fit_logits[ok & (fit_y == c)].std(0) for c in range(10)]))
    atk = LogitMatching(model, means, scales, eps=0.3, alpha=0.02, steps=30)
    with torch.no_grad():
        t = atk.targets(model(x), y)
    adv = atk(x, y)
    with torch.no_grad():
        before, after = atk._distance(model(x), t), atk._distance(model(adv), t)
        pred = model(adv).argmax(1)
    assert bool((after < before).all())
    assert float((pred == t).float().mean()) > 0.8


def test_input_checks(setup):
    model, x, y, fit_logits, _ = setup
    kde = D.KDE().fit(fit_logits)
    with pytest.raises(SoftlibError, match="loss"):
        AdaptivePGD(model, loss="hinge")
    with pytest.raises(SoftlibError, match="threshold"):
        AdaptivePGD(model, torch_scorer(kde))
    with pytest.raises(SoftlibError, match="reads 'logits'"):
        AdaptivePGD(model, torch_scorer(kde), feature="hidden", threshold=0.0)
    with pytest.raises(SoftlibError, match="eps"):
        AdaptivePGD(model, eps=2.0)
    with pytest.raises(SoftlibError, match="lam"):
        AdaptivePGD(model, lam=-1.0)
    with pytest.raises(SoftlibError, match="class_means"):
        LogitMatching(model, torch.zeros(10, 3))
    with pytest.raises(SoftlibError, match="target"):
        LogitMatching(model, torch.zeros(10, 10), target="random")
    with pytest.raises(SoftlibError, match="scorer"):
        AdaptivePGD(model, scorer=kde, threshold=0.0)


def test_hidden_feature_path(setup):
    """A Mahalanobis detector on the hidden layer: the attack reads forward_with_features."""
    model, x, y, _, _ = setup
    xf, yf = load_split("mnist", train=True)
    with torch.no_grad():
        hidden = model.features(xf[6000:7000]).numpy()
    maha = D.Mahalanobis().fit(hidden, yf[6000:7000].numpy())
    legit = maha.score_samples(hidden)
    thr = fpr_at_tpr(legit, legit[:2])[1]
    atk = AdaptivePGD(model, torch_scorer(maha), feature="hidden", threshold=thr, score_scale=float(legit.std()),
                      eps=0.3, alpha=0.03, steps=10, search_steps=1)
    adv = atk(x[:16], y[:16])
    check_bound(x[:16], adv, 0.3)
    _, h = features_of(model, adv, "hidden")
    assert h.shape == (16, 64) and atk.last_lambda.shape == (16,)


# ----------------------------------------------------------------------------- chapter 06 at the smoke profile
def test_chapter06_smoke(tmp_path):
    """The chapter's runner end to end at the smoke profile (the test session's private cache)."""
    from softlib import claims, zoo
    from softlib.chapters.ch06 import experiment as C6
    from softlib.profiles import get_profile

    prof = get_profile("smoke")
    combos = C6.parse_combos(["kde/logits", "kde/softmax", "sb/softmax"])
    model = zoo.get_model("cnn", "mnist", prof, 0)
    ctx = C6.load_context(model, prof, combos)
    # at most n_attack source images, all correctly classified (the 1-epoch smoke model gets few right)
    assert 0 < len(ctx.x) <= C6.sizes(prof).n_attack and bool((model(ctx.x).argmax(1) == ctx.y).all())
    check = C6.check_lambda0(ctx, combos)  # lambda = 0 rebuilds chapter 03's BIM set
    assert check.attrs["max_pixel_diff"] <= 1e-6 and (check["abs diff"] <= 1e-9).all()
    frame, raw = C6.run_grid(ctx, combos, [0.3])
    assert set(frame["attack"]) == set(C6.ATTACKS) and len(frame) == len(combos) * len(C6.ATTACKS)
    for _, r in frame.iterrows():
        out = raw[(0.3, r["attack"], (r["detector"], r["feature"]))]
        assert r["robust_acc"] == pytest.approx(100 * (1 - (out["mis"] & out["accepted"]).mean()))
        assert 0 <= r["robust_acc"] <= 100 and r["robust_acc"] >= 100 - r["success"] - 1e-9
    reps = C6.auroc_replicates(ctx, raw, combos, [0.3], n_boot=20)
    table = claims.evaluate(C6.claims(combos), {"auroc": reps, "eps": 0.3})
    assert list(table["id"]) == ["06-logits-kde"] and set(table["verdict"]) <= set(claims.VERDICTS)
    curve = C6.steps_curve(ctx, combos[:1], 0.3, [1, 2])
    assert set(curve["combo"]) == {"undefended", "KDE / logits"} and isinstance(curve.attrs["monotone"], bool)
    with pytest.raises(SoftlibError, match="detector/feature"):
        C6.parse_combos(["kde/probs"])
