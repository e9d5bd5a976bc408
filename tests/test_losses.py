"""Tests of softlib.losses: values on hand-made logits, RCE's prediction rule, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from softlib.losses import LOSSES, get_loss, predict_labels, prediction_logits
from softlib.validate import SoftlibError

LOGITS = torch.tensor(
    [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [1.0, 1.0, 1.0], [-2.0, 3.0, 0.5]], dtype=torch.float64
)
LABELS = torch.tensor([0, 1, 1, 2])


def _np_logp(z: np.ndarray) -> np.ndarray:
    """log softmax by hand."""
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_ce_matches_hand_computation():
    z = LOGITS.numpy()
    logp = _np_logp(z)
    expected = -np.mean(logp[np.arange(4), LABELS.numpy()])
    # first row by hand: -log(e^2 / (e^2 + 1 + e^-1))
    row0 = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-1)))
    assert logp[0, 0] == pytest.approx(-row0)
    assert float(get_loss("ce")(LOGITS, LABELS)) == pytest.approx(expected, rel=1e-12)


def test_rce_matches_hand_computation():
    logp = _np_logp(LOGITS.numpy())
    n = 3
    per = []
    for i, y in enumerate(LABELS.numpy()):
        r = np.full(n, 1.0 / (n - 1))
        r[y] = 0.0
        per.append(-(r * logp[i]).sum())
    assert float(get_loss("rce")(LOGITS, LABELS)) == pytest.approx(np.mean(per), rel=1e-12)
    # uniform logits: every -log p = log 3, so RCE = log 3
    z = torch.zeros(2, 3, dtype=torch.float64)
    assert float(get_loss("rce")(z, torch.tensor([0, 2]))) == pytest.approx(math.log(3))


def test_ovm_matches_hand_computation():
    logp = _np_logp(LOGITS.numpy())
    y = LABELS.numpy()
    ce = -np.mean(logp[np.arange(4), y])
    reg = 0.0
    for c in np.unique(y):
        rows = logp[y == c]
        reg += np.linalg.norm(rows - rows.mean(axis=0), axis=1).sum()  # L2, not squared
    reg /= len(y)
    for lam, kwargs in [(1.0, {}), (0.5, {"lambda_": 0.5}), (2.0, {"lambda": 2.0})]:
        got = float(get_loss("ovm", **kwargs)(LOGITS, LABELS))
        assert got == pytest.approx(ce + lam * reg, rel=1e-12)
    # classes 0 and 2 have one sample each: only class 1 (rows 1, 2) contributes
    d = logp[1] - logp[2]
    assert reg == pytest.approx(2 * np.linalg.norm(d / 2) / 4)


def test_ls_lsq_matches_eq3():
    logp = _np_logp(LOGITS.numpy())
    y = LABELS.numpy()
    ce = -logp[np.arange(4), y]
    rev = np.array([-(np.delete(logp[i], y[i])).sum() / 2 for i in range(4)])
    sq = np.linalg.norm(LOGITS.numpy(), axis=1)
    for l1, l2 in [(0.0, 0.0), (0.4, 0.0), (0.0, 0.8), (1.0, 0.1)]:
        got = float(get_loss("ls_lsq", lambda1=l1, lambda2=l2)(LOGITS, LABELS))
        assert got == pytest.approx(np.mean(ce + l1 * rev + l2 * sq), rel=1e-12)
    assert float(get_loss("ls_lsq")(LOGITS, LABELS)) == pytest.approx(float(get_loss("ce")(LOGITS, LABELS)))


def test_stable_for_huge_logits_and_finite_gradients():
    z = torch.tensor([[1000.0, -1000.0, 0.0], [0.0, 0.0, 0.0], [50.0, 50.0, -3000.0]], requires_grad=True)
    y = torch.tensor([0, 1, 2])  # every class once: zero OVM deviations
    for name, params in [("ce", {}), ("rce", {}), ("ovm", {}), ("ls_lsq", {"lambda1": 1.0, "lambda2": 1.0})]:
        z.grad = None
        loss = get_loss(name, **params)(z, y)
        assert torch.isfinite(loss), name
        loss.backward()
        assert torch.isfinite(z.grad).all(), name
    # ls_lsq at Z = 0 exactly: the norm's gradient is defined as 0
    z0 = torch.zeros(2, 3, requires_grad=True)
    get_loss("ls_lsq", lambda2=1.0)(z0, torch.tensor([0, 1])).backward()
    assert torch.isfinite(z0.grad).all()


def test_rce_prediction_rule():
    z = torch.tensor([[3.0, 0.0, 1.0], [-2.0, 1.0, 0.5]])
    assert predict_labels("ce", z).tolist() == [0, 1]
    assert predict_labels("ovm", z).tolist() == [0, 1]
    assert predict_labels("rce", z).tolist() == [1, 0]  # argmin of Z = argmax of -Z
    assert torch.equal(prediction_logits("rce", z), -z)
    assert prediction_logits("ce", z) is z
    assert predict_labels("rce", z).dtype == torch.int64


def test_rce_training_makes_true_class_least_likely():
    """003 section 3.1: after RCE training the true class has the minimal probability."""
    torch.manual_seed(0)
    x = torch.randn(200, 5)
    w_true = torch.randn(5, 4)
    y = (x @ w_true).argmax(dim=1)
    lin = torch.nn.Linear(5, 4)
    opt = torch.optim.SGD(lin.parameters(), lr=0.5)
    loss_fn = get_loss("rce")
    first = None
    for _ in range(150):
        opt.zero_grad()
        loss = loss_fn(lin(x), y)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    with torch.no_grad():
        z = lin(x)
    assert float(loss.detach()) < first
    assert (predict_labels("rce", z) == y).float().mean() > 0.7  # chance: 0.25
    assert (z.argmax(dim=1) == y).float().mean() < 0.3  # the usual argmax rule fails


def test_unknown_name_and_params():
    with pytest.raises(SoftlibError, match="allowed"):
        get_loss("hinge")
    with pytest.raises(SoftlibError, match="lambda1"):
        get_loss("ls_lsq", lambda3=1.0)
    with pytest.raises(SoftlibError, match="none"):
        get_loss("ce", lambda_=1.0)
    with pytest.raises(SoftlibError):
        get_loss("ovm", lambda_=-1.0)
    with pytest.raises(SoftlibError, match="allowed"):
        predict_labels("xent", torch.zeros(2, 3))
    with pytest.raises(SoftlibError, match="labels"):
        get_loss("ce")(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(SoftlibError, match="shape"):
        get_loss("rce")(torch.zeros(3), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("name", LOSSES)
def test_small_model_trains(name):
    """A tiny MLP trained 40 steps: loss finite and decreasing, accuracy (with the rule) above chance."""
    torch.manual_seed(1)
    x = torch.randn(256, 8)
    y = (x[:, :3]).argmax(dim=1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    params = {"lambda1": 0.4, "lambda2": 0.1} if name == "ls_lsq" else {}
    loss_fn = get_loss(name, **params)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < losses[0]
    with torch.no_grad():
        acc = (predict_labels(name, model(x)) == y).float().mean()
    assert acc > 0.6
