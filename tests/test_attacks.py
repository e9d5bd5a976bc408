"""softlib.attacks: bounds, effect, MaxConfidence vs FGSM, batched DeepFool vs torchattacks.

A tiny CNN is trained for a second on a synthetic, separable 10-class set (a bright
6x6 block whose position is the class, on noise), so nothing here needs a network
or the real data.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchattacks

from softlib import attacks
from softlib.attacks import ATTACKS, AttackBoundError, check_bound, make_attack, run_attack
from softlib.validate import SoftlibError

EPS = 0.3


def toy_data(n: int, *, seed: int, size: int = 28, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise in [0, 0.3] with a 6x6 block of 1s at a class-specific place (10 classes)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(10, (n,), generator=g)
    x = torch.rand((n, channels, size, size), generator=g) * 0.3
    for k in range(10):
        r, c = 2 + 5 * (k // 5) * 2, 2 + 5 * (k % 5)
        x[y == k, :, r:r + 6, c:c + 6] = 1.0
    return x, y


class ToyCNN(nn.Module):
    """One conv layer and a linear read-out: pixels in [0, 1] -> (N, 10) logits."""

    def __init__(self, channels: int = 1, size: int = 28) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 5, stride=2)
        side = (size - 5) // 2 + 1
        self.fc = nn.Linear(8 * side * side, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).flatten(1))


def make_toy(seed: int = 0, channels: int = 1, size: int = 28) -> ToyCNN:
    """A ToyCNN trained on 512 toy images (about a second on one core), eval mode, with a cache_key."""
    torch.manual_seed(seed)
    x, y = toy_data(512, seed=seed, size=size, channels=channels)
    model = ToyCNN(channels, size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(4):
        for s in range(0, len(x), 64):
            opt.zero_grad()
            F.cross_entropy(model(x[s:s + 64]), y[s:s + 64]).backward()
            opt.step()
    model.eval()
    model.cache_key = f"toy-cnn-{seed}-{channels}-{size}"  # type: ignore[attr-defined]
    return model


@pytest.fixture(scope="module")
def toy():
    model = make_toy()
    x, y = toy_data(64, seed=1)
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    assert acc > 0.9, f"toy model should learn the toy task, got accuracy {acc}"
    return model, x, y


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_respects_eps_and_range_and_raises_loss(toy, name):
    model, x, y = toy
    x_adv, success = run_attack(name, model, x, y, eps=EPS, steps=None if name != "deepfool" else 20, batch_size=32)
    assert x_adv.shape == x.shape and success.shape == (len(x),) and success.dtype == torch.bool
    assert float((x_adv - x).abs().max()) <= EPS + 1e-5
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        loss0 = F.cross_entropy(model(x), y)
        loss1 = F.cross_entropy(model(x_adv), y)
        pred = model(x_adv).argmax(1)
    assert float(loss1) > float(loss0) + 0.1, f"{name} did not raise the loss ({loss0:.3f} -> {loss1:.3f})"
    assert torch.equal(success, pred != y)
    assert float(success.float().mean()) > 0.2, f"{name} almost never succeeds on the toy model"


def test_make_attack_rejects_bad_arguments(toy):
    model, _, _ = toy
    with pytest.raises(SoftlibError, match="unknown attack 'cw'"):
        make_attack("cw", model, eps=EPS)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(SoftlibError, match="eps"):
            make_attack("bim", model, eps=bad)
    with pytest.raises(SoftlibError, match="steps must be >= 1"):
        make_attack("pgd", model, eps=EPS, steps=0)
    with pytest.raises(SoftlibError, match="single-step"):
        make_attack("fgsm", model, eps=EPS, steps=5)
    with pytest.raises(SoftlibError, match="model must be"):
        make_attack("fgsm", "not a model", eps=EPS)
    assert isinstance(make_attack("bim", model, eps=EPS), torchattacks.BIM)
    assert make_attack("bim", model, eps=EPS).alpha == pytest.approx(0.05)  # CleverHans eps_iter at eps 0.3
    assert make_attack("pgd", model, eps=EPS).alpha == pytest.approx(0.03)  # 003 section 4.3: eps / 10


def test_run_attack_validates_inputs(toy):
    model, x, y = toy
    with pytest.raises(SoftlibError, match="pixels in"):
        run_attack("fgsm", model, x * 2, y, eps=EPS)
    with pytest.raises(SoftlibError, match="one label per image"):
        run_attack("fgsm", model, x, y[:3], eps=EPS)


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_run_attack_without_the_success_mask_gives_the_same_images(toy, name):
    """success=False skips the extra forward pass only: the same adversarial images, no mask."""
    model, x, y = toy
    with_mask, mask = run_attack(name, model, x, y, eps=EPS, batch_size=32, seed=3)
    without, none = run_attack(name, model, x, y, eps=EPS, batch_size=32, seed=3, success=False)
    assert none is None and mask is not None and torch.equal(with_mask, without)
    with pytest.raises(SoftlibError, match="success must be True or False, got 'no'"):
        run_attack(name, model, x, y, eps=EPS, success="no")


def test_bound_violations_are_caught(toy, monkeypatch):
    model, x, y = toy

    class Cheater(torchattacks.attack.Attack):
        def __init__(self, model):
            super().__init__("Cheater", model)

        def forward(self, images, labels):
            return torch.clamp(images + 0.5, 0, 1)

    monkeypatch.setattr(attacks, "make_attack", lambda *a, **k: Cheater(model))
    with pytest.raises(AttackBoundError, match="exceeded its L-inf budget"):
        run_attack("fgsm", model, x, y, eps=EPS)
    with pytest.raises(AttackBoundError, match=r"left \[0, 1\]"):
        check_bound(x, x + 2.0, 5.0)


def test_random_start_is_seeded(toy):
    model, x, y = toy
    a, _ = run_attack("pgd", model, x, y, eps=EPS, steps=2, seed=3)
    b, _ = run_attack("pgd", model, x, y, eps=EPS, steps=2, seed=3)
    c, _ = run_attack("pgd", model, x, y, eps=EPS, steps=2, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_maxconfidence_is_more_confident_than_fgsm(toy):
    model, x, y = toy

    def wrong_confidence(x_adv):
        with torch.no_grad():
            p = F.softmax(model(x_adv), dim=1)
        p[torch.arange(len(y)), y] = 0.0
        return float(p.max(dim=1).values.mean())

    x_fgsm, _ = run_attack("fgsm", model, x, y, eps=EPS)
    x_mc, s_mc = run_attack("maxconf", model, x, y, eps=EPS, steps=10)
    assert wrong_confidence(x_mc) > wrong_confidence(x_fgsm) + 0.05
    assert float(s_mc.float().mean()) > 0.5


def test_batched_deepfool_agrees_with_torchattacks(toy):
    model, x, y = toy
    x, y = x[:24], y[:24]
    ref = torchattacks.DeepFool(model, steps=20, overshoot=0.02)(x, y)
    ours = make_attack("deepfool", model, eps=1.0, steps=20, project=False, variant="torchattacks")(x, y)
    assert float((ours - ref).abs().max()) < 1e-4
    with torch.no_grad():
        lr, lo = model(ref), model(ours)
    rows = torch.arange(len(y))
    other = lr.clone()
    other[rows, y] = -float("inf")
    clear = (other.max(1).values - lr[rows, y]).abs() > 1e-3  # ties at the boundary: rounding noise decides
    assert torch.equal((lr.argmax(1) != y)[clear], (lo.argmax(1) != y)[clear])
    n_ref = (ref - x).flatten(1).norm(dim=1)
    n_ours = (ours - x).flatten(1).norm(dim=1)
    assert torch.allclose(n_ours, n_ref, rtol=1e-3, atol=1e-4)


def test_deepfool_default_crosses_the_boundary_and_projection_is_honest(toy):
    model, x, y = toy
    free, s_free = run_attack("deepfool", model, x, y, eps=EPS, steps=50, project=False)
    assert float(s_free.float().mean()) > 0.9  # unbounded L2 DeepFool almost always succeeds
    with torch.no_grad():
        logits = model(free)
    rows = torch.arange(len(y))
    other = logits.clone()
    other[rows, y] = -float("inf")
    gap = other.max(1).values - logits[rows, y]
    assert float((gap[s_free] > 1e-4).float().mean()) > 0.9  # the box-aware step crosses, not ties
    boxed, s_box = run_attack("deepfool", model, x, y, eps=EPS, steps=50)
    assert float((boxed - x).abs().max()) <= EPS + 1e-5
    with torch.no_grad():
        assert torch.equal(s_box, model(boxed).argmax(1) != y)  # success is judged after projection
    small = (free - x).flatten(1).abs().amax(1) <= EPS
    assert torch.equal(boxed[small], free[small])  # projection leaves in-budget results alone
