"""softlib.detectors: separation, chance level, reference implementations, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import gaussian_kde
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KernelDensity

from softlib import detectors as D
from softlib.validate import SoftlibError

C, DIM = 4, 6


def _clouds(rng: np.random.Generator, n: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Legit: C class clusters with a positive margin on their own logit; other: shifted copies."""
    y = rng.integers(0, C, n)
    centres = np.zeros((C, DIM))
    centres[np.arange(C), np.arange(C)] = 6.0
    legit = centres[y] + rng.normal(size=(n, DIM))
    other = centres[rng.integers(0, C, n)] + rng.normal(size=(n, DIM)) - shift
    return legit, y, other


def _auroc(det: D.Detector, fit_x, fit_y, legit, other) -> float:
    s_l, s_o = det.score_samples(legit), det.score_samples(other)
    return roc_auc_score(np.r_[np.ones(len(s_l)), np.zeros(len(s_o))], np.r_[s_l, s_o])


def _fit(name: str, legit_fit, y_fit, other_fit):
    kw = {"feature": "logits"}  # the clouds play logits: one positive margin per class
    if name == "nn":
        kw.update(epochs=4, seed=0)
    if name == "class_kde":
        kw.update(bandwidth=1.0)
    det = D.make_detector(name, **kw)
    if det.fit_target == "legit":
        det.fit(np.r_[legit_fit, other_fit], np.r_[np.ones(len(legit_fit)), np.zeros(len(other_fit))].astype(int))
    elif det.fit_target == "class":
        det.fit(legit_fit, y_fit)
    else:
        det.fit(legit_fit)
    return det


@pytest.mark.parametrize("name", sorted(D.DETECTORS))
def test_separates_distant_clouds(name):
    rng = np.random.default_rng(1)
    # "other" = the same clusters pushed 8 units down every coordinate (lower logits); a shift
    # leaves the softmax unchanged, so the Softmax Baseline gets margin-free noise instead
    legit_fit, y_fit, other_fit = _clouds(rng, 600, 8.0)
    legit, _, other = _clouds(rng, 400, 8.0)
    if name == "sb":  # max softmax only sees the margin: make the other set ambiguous
        other = rng.normal(size=(400, DIM))
    det = _fit(name, legit_fit, y_fit, other_fit)
    assert _auroc(det, legit_fit, y_fit, legit, other) > 0.99


@pytest.mark.parametrize("name", sorted(D.DETECTORS))
def test_chance_on_identical_sets(name):
    rng = np.random.default_rng(2)
    legit_fit, y_fit, _ = _clouds(rng, 600, 0.0)
    other_fit = _clouds(rng, 600, 0.0)[0]
    legit, _, other = _clouds(rng, 1500, 0.0)
    det = _fit(name, legit_fit, y_fit, other_fit)
    assert abs(_auroc(det, legit_fit, y_fit, legit, other) - 0.5) < 0.1


def test_trust_score_brute_force():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    q = rng.normal(size=(25, 3))
    pred = rng.integers(0, 3, 25)
    # brute force, straight from the definition: 2nd nearest point of each class
    dist = np.linalg.norm(q[:, None, :] - x[None, :, :], axis=2)
    d = np.stack([np.sort(dist[:, y == c], axis=1)[:, 1] for c in range(3)], axis=1)
    expected = np.array([min(d[i, c] for c in range(3) if c != pred[i]) / (d[i, pred[i]] + 1e-12)
                         for i in range(25)])
    for algo in ("kd_tree", "brute"):
        ts = D.TrustScore(feature="hidden", alpha=0, algorithm=algo).fit(x, y)
        np.testing.assert_allclose(ts.score_samples(q, y_pred=pred), expected, rtol=1e-10)
    # density filtering drops the alpha fraction with the largest k-th neighbour radius per class
    ts = D.TrustScore(feature="hidden", alpha=0.25, k=3).fit(x, y)
    for c in range(3):
        pts = x[y == c]
        r = np.sort(np.linalg.norm(pts[:, None] - pts[None], axis=2), axis=1)[:, 2]  # k=3 incl. itself
        keep = pts[r <= np.percentile(r, 75)]
        np.testing.assert_array_equal(np.sort(ts.points_[c], axis=0), np.sort(keep, axis=0))


def _reference_trust_score(x, y, q, pred, *, k, alpha):
    """Jiang et al.'s reference algorithm re-expressed with plain KD-trees (google/TrustScore's
    ``filter_by_density`` + ``get_score``): per class, drop the points whose k-th neighbour
    radius (the point itself included) is above the (1 - alpha) percentile, then the ratio of
    the 2nd-neighbour distances, closest other class over predicted class."""
    from sklearn.neighbors import KDTree

    n_labels = int(y.max()) + 1
    d = np.empty((len(q), n_labels))
    for c in range(n_labels):
        pts = x[y == c]
        if alpha > 0:
            r = KDTree(pts).query(pts, k=k)[0][:, -1]
            pts = pts[r <= np.percentile(r, (1 - alpha) * 100)]
        d[:, c] = KDTree(pts).query(q, k=2)[0][:, -1]
    d_pred = d[np.arange(len(q)), pred]
    s = np.sort(d, axis=1)
    other = np.where(s[:, 0] != d_pred, s[:, 0], s[:, 1])
    return other / (d_pred + 1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.05, D.TRUST_ALPHA, 0.25, 0.5])
@pytest.mark.parametrize("algo", ["kd_tree", "brute"])
def test_trust_score_matches_reference_at_every_alpha(alpha, algo):
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(300, 4)), rng.integers(0, 3, 300)
    q, pred = rng.normal(size=(80, 4)), rng.integers(0, 3, 80)
    ref = _reference_trust_score(x, y, q, pred, k=10, alpha=alpha)
    ours = D.TrustScore(feature="hidden", k=10, alpha=alpha, algorithm=algo).fit(x, y).score_samples(q, y_pred=pred)
    np.testing.assert_allclose(ours, ref, rtol=1e-12 if algo == "brute" else 1e-14)


def test_trust_score_default_filters_like_the_papers():
    # 000 / 002 describe a filtered training set: the default drops a TRUST_ALPHA share per class
    assert D.TrustScore().alpha == D.TRUST_ALPHA > 0
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(400, 3)), np.repeat([0, 1], 200)
    ts = D.TrustScore(feature="hidden").fit(x, y)
    assert all(len(ts.points_[c]) == 180 for c in (0, 1))
    assert all(len(D.TrustScore(feature="hidden", alpha=0).fit(x, y).points_[c]) == 200 for c in (0, 1))


@pytest.mark.parametrize("offset", [1e3, 1e5, 1e7])
def test_trust_score_brute_is_exact_under_a_large_offset(offset):
    # the expanded |q|^2 - 2 q.p + |p|^2 loses digits when features share a large offset
    # (1.5e-3 relative error at 1e5 before the brute path centred its features)
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(200, 5)) + offset, rng.integers(0, 3, 200)
    q, pred = rng.normal(size=(40, 5)) + offset, rng.integers(0, 3, 40)
    exact = D.TrustScore(feature="hidden", alpha=0, algorithm="kd_tree").fit(x, y).score_samples(q, y_pred=pred)
    brute = D.TrustScore(feature="hidden", alpha=0, algorithm="brute").fit(x, y).score_samples(q, y_pred=pred)
    np.testing.assert_allclose(brute, exact, rtol=1e-9)


def test_kde_matches_scipy_and_sklearn():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    q = rng.normal(size=(50, 5)) * 2
    ours = D.KDE().fit(x)
    np.testing.assert_allclose(ours.score_samples(q), gaussian_kde(x.T).logpdf(q.T), rtol=1e-9, atol=1e-9)
    assert ours.ridge_ == 0.0
    y = rng.integers(0, 3, 300)
    ck = D.ClassConditionalKDE(bandwidth=0.7).fit(x, y)
    pred = rng.integers(0, 3, 50)
    ref = np.array([KernelDensity(bandwidth=0.7).fit(x[y == p]).score_samples(qi[None])[0] for qi, p in zip(q, pred)])
    np.testing.assert_allclose(ck.score_samples(q, y_pred=pred), ref, rtol=1e-9)


def test_kde_on_softmax_is_regularised():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(200, 4)) * 3
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)  # rows sum to 1: singular covariance
    kde = D.KDE(feature="softmax").fit(p)
    assert kde.ridge_ > 0
    assert np.isfinite(kde.score_samples(p[:10])).all()


def test_output_detectors_formulas():
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    e = np.exp(z)
    np.testing.assert_allclose(D.SoftmaxBaseline().fit(z).score_samples(z), (e / e.sum(1, keepdims=True)).max(1))
    np.testing.assert_allclose(D.MaxLogit().fit(z).score_samples(z), [3.0, 0.0])
    np.testing.assert_allclose(D.Energy(temperature=2.0).fit(z).score_samples(z),
                               2.0 * np.log(np.exp(z / 2.0).sum(1)))
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [12.0, 10.0]])
    m = D.Mahalanobis().fit(x, [0, 0, 1, 1])  # tied covariance diag(1, 0): pseudo-inverse diag(1, 0)
    np.testing.assert_allclose(m.score_samples(np.array([[1.0, 5.0], [4.0, 0.0]])), [-0.0, -9.0], atol=1e-12)


def test_against_pytorch_ood():
    torch = pytest.importorskip("torch")
    pood = pytest.importorskip("pytorch_ood.detector")
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(200, 8)), rng.integers(0, 4, 200)
    q = rng.normal(size=(30, 8)) * 2
    ours = D.Mahalanobis().fit(x, y).score_samples(q)
    ref = pood.Mahalanobis(None).fit_features(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
    theirs = ref.predict_features(torch.tensor(q, dtype=torch.float32)).double().numpy()
    # pytorch-ood: outlier score 0.5 * min d^2 with an un-normalised covariance (sum, not mean)
    np.testing.assert_allclose(ours, -2 * len(x) * theirs, rtol=1e-4)
    np.testing.assert_allclose(D.Energy().fit(q).score_samples(q), -pood.EnergyBased(None).score(torch.tensor(q)).numpy())
    np.testing.assert_allclose(D.MaxLogit().fit(q).score_samples(q), -pood.MaxLogit(None).score(torch.tensor(q)).numpy())


def test_nn_detector_is_seeded_and_keeps_best_epoch():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 5))
    t = (x[:, 0] > 0).astype(int)
    a = D.NNDetector(epochs=3, seed=1).fit(x, t)
    b = D.NNDetector(epochs=3, seed=1).fit(x, t)
    np.testing.assert_array_equal(a.score_samples(x), b.score_samples(x))
    assert len(a.history_) == 3 and a.val_loss_ == min(h["val_loss"] for h in a.history_)
    assert a.history_[a.best_epoch_ - 1]["val_loss"] == a.val_loss_
    assert D.introspection_net(epochs=2).get_params()["feature"] == "logits"


def test_bad_inputs():
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(SoftlibError, match="detector"):
        D.make_detector("odin")
    with pytest.raises(SoftlibError, match="bandwith"):
        D.make_detector("kde", bandwith=1.0)
    with pytest.raises(SoftlibError, match="feature"):
        D.make_detector("energy", feature="softmax")
    with pytest.raises(SoftlibError, match="not fitted"):
        D.KDE().score_samples(x)
    with pytest.raises(SoftlibError, match="columns"):
        D.KDE().fit(x).score_samples(x[:, :2])
    with pytest.raises(SoftlibError, match="NaN"):
        D.KDE().fit(np.r_[x, [[np.nan, 0, 0]]])
    with pytest.raises(SoftlibError, match=r"\(N, D\)"):
        D.MaxLogit().fit(x[:, 0])
    with pytest.raises(SoftlibError, match="probabilities"):
        D.SoftmaxBaseline(feature="softmax").fit(x)
    with pytest.raises(SoftlibError, match="y_pred"):
        D.TrustScore(feature="hidden").fit(x, np.arange(20) % 2).score_samples(x)
    with pytest.raises(SoftlibError, match="class labels"):
        D.TrustScore().fit(x)
    with pytest.raises(SoftlibError, match="both values"):
        D.NNDetector(epochs=1).fit(x, np.ones(20, dtype=int))
    with pytest.raises(SoftlibError, match="labels"):
        D.Mahalanobis().fit(x, np.arange(5))
    with pytest.raises(SoftlibError, match="absent from fit"):
        D.TrustScore(feature="hidden").fit(x, np.arange(20) % 2).score_samples(x, y_pred=np.full(20, 5))


def test_trust_score_filter_on_a_small_class_warns():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(26, 2)), np.r_[np.zeros(20, int), np.ones(6, int)]
    with pytest.warns(UserWarning, match="fewer than k=10"):
        ts = D.TrustScore(feature="hidden", k=10, alpha=0.5).fit(x, y)
    assert len(ts.points_[1]) == 3 and len(ts.points_[0]) == 10
