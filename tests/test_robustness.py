"""Tests of softlib.chapters.ch05 (views, detection, outcomes, lambda_grid, embedding, tables) (chapter 05) and softlib.paper.detection_vs_robustness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from softlib.chapters.ch05 import detection, embedding, lambda_grid, outcomes, views
from softlib.losses import get_loss, predict_labels
from softlib.paper import detection_vs_robustness as p003
from softlib.profiles import get_profile
from softlib.validate import SoftlibError

# ---------------------------------------------------------------------------- paper numbers


def test_paper_numbers():
    assert p003.TABLE2 == {"ce": 93.13, "rce": 92.94, "ovm": 91.5}
    assert p003.TABLE3["ovm"] == {"fgsm": 73.1, "bim": 83.9, "pgd": 77.2}
    assert p003.TABLE3["ce"]["pgd"] == 99.9 and p003.TABLE3["rce"]["pgd"] == 98.4
    assert p003.GRID == (0.0, 0.1, 0.2, 0.4, 0.8, 1.0)
    assert detection.paper_bandwidth("ce") == pytest.approx(1 / 0.26)
    assert detection.paper_bandwidth("ovm") == pytest.approx(0.1 / 0.26)
    assert p003.TRAINING["batch_size"] == 256 and p003.TRAINING["epochs"] == 200
    assert len(p003.table3()) == 9 and set(p003.table2()["loss"]) == set(p003.LOSSES)
    # the claim behind table 3: OVM detects worst on every attack
    for att in p003.ATTACKS:
        assert p003.TABLE3["ovm"][att] == min(p003.TABLE3[k][att] for k in p003.LOSSES)
    with pytest.raises(SoftlibError, match="allowed"):
        detection.paper_bandwidth("hinge")


# ---------------------------------------------------------------------------- KDE


def test_kde_matches_eq2_by_hand():
    """003 eq. 2 up to one constant shared by every class (irrelevant for an AUC)."""
    rng = np.random.default_rng(0)
    fit = rng.normal(size=(30, 4))
    fy = np.repeat([0, 1, 2], [8, 10, 12])  # unequal class sizes: the 1/|X_c| factor matters
    x = rng.normal(size=(7, 4))
    cls = np.array([0, 1, 2, 0, 1, 2, 0])
    sigma = 0.7
    got = detection.make_kde(sigma).fit(fit, fy).score_samples(x, cls)
    ref = np.array([np.log(np.mean(np.exp(-((fit[fy == c] - xi) ** 2).sum(1) / sigma**2))) for xi, c in zip(x, cls)])
    assert np.ptp(got - ref) < 1e-9
    # tiny bandwidth: no underflow to -inf
    assert np.isfinite(detection.make_kde(1e-3).fit(fit, fy).score_samples(x, cls)).all()


def test_kde_auc_on_separated_clouds():
    rng = np.random.default_rng(1)
    centers = rng.normal(scale=10, size=(3, 8))
    fy = np.repeat(np.arange(3), 100)
    fit = centers[fy] + rng.normal(size=(300, 8))
    ty = np.repeat(np.arange(3), 50)
    legit = centers[ty] + rng.normal(size=(150, 8))
    adv = centers[ty] + 6 + rng.normal(size=(150, 8))  # off the class manifold
    kde = detection.make_kde(1.0).fit(fit, fy)
    auc = detection.fast_auc(kde.score_samples(legit, ty), kde.score_samples(adv, ty))
    assert auc > 0.99
    assert np.isnan(detection.fast_auc([], [1.0]))
    # and the wrong way round (adversarial points *on* the manifold) is near chance
    same = centers[ty] + rng.normal(size=(150, 8))
    assert 0.35 < detection.fast_auc(kde.score_samples(legit, ty), kde.score_samples(same, ty)) < 0.65


def test_kde_errors():
    with pytest.raises(SoftlibError):
        detection.make_kde(0.0)
    kde = detection.make_kde(1.0).fit(np.zeros((4, 3)), [0, 0, 1, 1])
    with pytest.raises(SoftlibError, match="no fit examples"):
        kde.score_samples(np.zeros((1, 3)), [5])


# ---------------------------------------------------------------------------- tiny trained models


class TinyNet(nn.Module):
    """Conv + dense; forward_with_features like softlib.models."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                                  nn.Linear(8 * 4 * 4, 16), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward_with_features(self, x):
        h = self.body(x)
        return h, self.head(h)

    def forward(self, x):
        return self.forward_with_features(x)[1]

    def features(self, x):
        return self.forward_with_features(x)[0]


def _toy_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4 classes = which quadrant of an 8x8 image is bright."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    for c, (r, s) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        m = y == c
        x[m, :, r:r + 4, s:s + 4] += 0.5
    return x.clamp(0, 1), y


def _train(loss: str, steps: int = 150) -> TinyNet:
    torch.manual_seed(0)
    model = TinyNet()
    x, y = _toy_data(256, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    fn = get_loss(loss)
    for _ in range(steps):
        opt.zero_grad()
        fn(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def rce_model():
    return _train("rce")


@pytest.fixture(scope="module")
def ce_model():
    return _train("ce")


def test_prediction_view_applies_rce_rule(rce_model):
    x, y = _toy_data(64, 1)
    view = views.PredictionView(rce_model, "rce")
    with torch.no_grad():
        z = rce_model(x)
        assert torch.equal(view(x), -z)
        assert torch.equal(view.features(x), rce_model.features(x))
    _, pred = views.hidden_and_predictions(rce_model, x, loss="rce")
    assert np.array_equal(pred, predict_labels("rce", z).numpy())
    assert (pred == y.numpy()).mean() > 0.9  # the RCE rule gives a good classifier
    assert (z.argmax(1) == y).float().mean() < 0.3  # the plain argmax does not
    with pytest.raises(SoftlibError, match="allowed"):
        views.PredictionView(rce_model, "mse")


def test_model_loss_reads_the_trained_model():
    from softlib.models import TrainedModel, model_loss

    m = nn.Linear(2, 2)
    assert model_loss(m) == "ce"
    assert model_loss(TrainedModel(m, "k", {}, loss="rce")) == "rce"
    assert model_loss(TrainedModel(m, "k", {}, loss="rce"), "ovm") == "ovm"
    assert model_loss(views.PredictionView(TrainedModel(m, "k", loss="rce"), "rce")) == "ce"  # never twice


def test_attacks_on_rce_model_need_the_rule(rce_model):
    """PGD through the RCE rule breaks the model; CE-attacking the raw logits barely does."""
    x, y = _toy_data(96, 2)
    fx, fy = _toy_data(200, 3)
    df = outcomes.rates_table(outcomes.example_outcomes(rce_model, x, y, fit_x=fx, fit_y=fy, loss="rce", attacks=("pgd",),
                            eps_list=(0.0, 0.3), steps=5, progress=False))
    clean, adv = df["accuracy"].tolist()
    assert clean > 0.9 and adv < clean - 0.3
    assert np.isnan(df["auc"].iloc[0]) and 0.0 <= df["auc"].iloc[1] <= 1.0
    assert df["bandwidth"].iloc[0] == pytest.approx(0.1 / 0.26)
    # without the view: a CE attack on the raw logits lowers Z_y, which the RCE rule reads as
    # *more* evidence for y, so the attack fails (why PredictionView exists)
    from softlib.attacks import run_attack

    x_raw, _ = run_attack("pgd", rce_model, x, y, eps=0.3, steps=5, step_size=0.06,
                          predict=lambda z: predict_labels("rce", z))
    with torch.no_grad():
        raw_acc = float((predict_labels("rce", rce_model(x_raw)) == y).float().mean())
    assert raw_acc > adv + 0.3


def test_rates_table_curves(ce_model):
    x, y = _toy_data(64, 4)
    fx, fy = _toy_data(200, 5)
    df = outcomes.rates_table(outcomes.example_outcomes(ce_model, x, y, fit_x=fx, fit_y=fy, loss="ce", attacks=outcomes.ATTACKS,
                            eps_list=(0.0, 0.1, 0.4), steps=4, progress=False))
    assert list(df.columns) == ["loss", "attack", "eps", "accuracy", "auc", "n_legit", "n_adv", "bandwidth"]
    assert len(df) == 9
    for att, sub in df.groupby("attack"):
        acc = sub.sort_values("eps")["accuracy"].to_numpy()
        assert acc[0] > 0.9, att
        assert acc[-1] <= acc[0] and acc[-1] < 0.5, att  # eps 0.4 wrecks a toy model
    # BIM/PGD (iterative) are at least as strong as FGSM at the largest eps, up to noise
    big = df[df.eps == 0.4].set_index("attack")["accuracy"]
    assert big["pgd"] <= big["fgsm"] + 0.1
    with pytest.raises(SoftlibError, match="allowed"):
        outcomes.rates_table(outcomes.example_outcomes(ce_model, x, y, fit_x=fx, fit_y=fy, attacks=("cw",)))
    with pytest.raises(SoftlibError, match="example_outcomes"):
        outcomes.rates_table(df)  # a rates table is not per-example rows


def test_example_outcomes_are_the_rates_per_example(ce_model):
    x, y = _toy_data(64, 4)
    fx, fy = _toy_data(200, 5)
    ex = outcomes.example_outcomes(ce_model, x, y, fit_x=fx, fit_y=fy, loss="ce", attacks=("fgsm",),
                              eps_list=(0.0, 0.4), progress=False)
    assert len(ex) == 128 and ex["example"].tolist() == list(range(64)) * 2
    big = ex[ex.eps == 0.4]
    # positives: attacks that succeeded on correctly classified images; negatives: correct clean images
    assert np.isfinite(big["adv_score"]).sum() == int((big.clean_correct & ~big.adv_correct).sum())
    assert np.isfinite(big["legit_score"]).sum() == int(big.clean_correct.sum())
    df = outcomes.rates_table(outcomes.example_outcomes(ce_model, x, y, fit_x=fx, fit_y=fy, loss="ce", attacks=("fgsm",), eps_list=(0.0, 0.4),
                            progress=False))
    r = outcomes.rates(big)
    assert df.iloc[1]["accuracy"] == r["accuracy"] and df.iloc[1]["n_adv"] == r["n_adv"]
    ok = np.isfinite(big["legit_score"]), np.isfinite(big["adv_score"])
    assert r["auc"] == pytest.approx(_sk_auc(big["legit_score"][ok[0]], big["adv_score"][ok[1]]))
    assert outcomes.correct_examples(ce_model, x, y, loss="ce").tolist() == ex[ex.eps == 0].clean_correct.tolist()


def _sk_auc(legit, adv) -> float:
    """The oracle: scikit-learn's ROC AUC, adversarial = positive, lower score = more adversarial."""
    from sklearn.metrics import roc_auc_score

    legit, adv = np.asarray(legit, float), np.asarray(adv, float)
    if not len(legit) or not len(adv):
        return float("nan")
    return float(roc_auc_score(np.r_[np.zeros(len(legit)), np.ones(len(adv))], -np.r_[legit, adv]))


def test_fast_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    legit = rng.normal(size=50)
    adv = rng.normal(-1.0, size=40)
    adv[:6] = legit[:6]  # ties across the two sides
    assert detection.fast_auc(legit, adv) == pytest.approx(_sk_auc(legit, adv))
    assert detection.fast_auc(np.r_[legit, np.nan], np.r_[np.nan, adv]) == pytest.approx(_sk_auc(legit, adv))
    assert np.isnan(detection.fast_auc([], [1.0])) and np.isnan(detection.fast_auc([1.0], [np.nan]))


def test_adversarial_outputs_cached(ce_model, tmp_cache):
    x, y = _toy_data(16, 6)
    from softlib.models import TrainedModel

    keyed = TrainedModel(ce_model, "toy-ce")
    a = outcomes.adversarial_outputs(keyed, x, y, attack="pgd", eps=0.2, steps=3, seed=0)
    assert any(tmp_cache.rglob("*.npz"))
    b = outcomes.adversarial_outputs(keyed, x, y, attack="pgd", eps=0.2, steps=3, seed=0)
    assert np.array_equal(a["pred"], b["pred"]) and np.array_equal(a["hidden"], b["hidden"])
    with pytest.raises(SoftlibError):
        outcomes.adversarial_outputs(ce_model, x, y, attack="pgd", eps=1.5)


def test_grid_correlation():
    df = pd.DataFrame({"robust_acc": [0.1, 0.2, 0.3, 0.4, 0.5], "auc": [0.9, 0.8, 0.7, 0.6, 0.5]})
    c = lambda_grid.grid_correlation(df)
    assert c["rho"] == pytest.approx(-1.0) and c["p_value"] < 0.05 and c["n"] == 5
    assert np.isnan(lambda_grid.grid_correlation(df.iloc[:2])["rho"])


def test_tsne_embedding(tmp_cache):
    rng = np.random.default_rng(0)
    feats = np.r_[rng.normal(size=(30, 5)), rng.normal(size=(30, 5)) + 20]
    labels = np.repeat([0, 1], 30)
    emb, lab = embedding.tsne_embedding(feats, labels, n=40, seed=0)
    assert emb.shape == (40, 2) and lab.shape == (40,)
    c0, c1 = emb[lab == 0].mean(0), emb[lab == 1].mean(0)
    spread = max(emb[lab == 0].std(0).max(), emb[lab == 1].std(0).max())
    assert np.linalg.norm(c0 - c1) > 2 * spread  # the two clouds stay apart
    emb2, _ = embedding.tsne_embedding(feats, labels, n=40, seed=0)
    assert np.array_equal(emb, emb2)


# ---------------------------------------------------------------------------- the grid (zoo, smoke)


def test_run_grid_smoke(monkeypatch):
    from softlib import data, zoo

    if not data.available("mnist"):
        pytest.skip("MNIST not in the data root")
    x_tr, y_tr = data.load_split("mnist", train=True)
    x_te, y_te = data.load_split("mnist", train=False)
    small = {True: (x_tr[:384], y_tr[:384]), False: (x_te[:64], y_te[:64])}

    def fake_load(name, train, **kw):
        return small[train]

    monkeypatch.setattr(data, "load_split", fake_load)
    monkeypatch.setattr(zoo, "load_split", fake_load)
    prof = get_profile("smoke", train_size=256, n_test=32, n_fit=96)
    df = lambda_grid.run_grid((0.0, 1.0), (0.0, 1.0), prof, dataset="mnist", seed=0, eps=0.3, progress=False)
    assert len(df) == 4
    assert set(zip(df.lambda1, df.lambda2)) == {(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)}
    assert df["cache_key"].nunique() == 4
    # eq. 3 with lambda1 = lambda2 = 0 is CE: that cell is the CE model itself
    ce = zoo.get_model("resnet", "mnist", prof, 0, loss="ce", depth=prof.resnet_depth, epochs=prof.resnet_grid_epochs)
    assert df.set_index(["lambda1", "lambda2"]).loc[(0.0, 0.0), "cache_key"] == ce.cache_key
    assert df["robust_acc"].between(0, 1).all() and df["clean_acc"].between(0, 1).all()
    assert (df["robust_acc"] <= df["clean_acc"] + 1e-9).all()
    assert df["auc"].dropna().between(0, 1).all()
    with pytest.raises(SoftlibError):
        lambda_grid.run_grid((), (0.0,), prof)
