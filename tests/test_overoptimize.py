"""Over-optimised and multi-class attacks of chapter 04 (004 appendix B) on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from softlib.chapters.ch04 import overoptimize as oo
from softlib.validate import SoftlibError

DEV = torch.device("cpu")


class Linear(nn.Module):
    """logits = W x + b on 1x8x8 images: gradient ascent on a logit is exactly monotone."""

    def __init__(self, seed: int = 0, classes: int = 10, scale: float = 3.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.randn(classes, 64, generator=g) * scale)
        self.b = nn.Parameter(torch.zeros(classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T + self.b


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()


def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.round(torch.rand(n, 1, 8, 8, generator=g) * 255) / 255


def test_step_size_is_the_chain_rule():
    # X = 255 x: X += alpha grad_X g  <=>  x += alpha / 255^2 grad_x f
    assert oo.step_size(0.15, 255.0) == pytest.approx(0.15 / 255**2)
    model, x = Linear(), images(2)
    target = torch.tensor([3, 5])
    out = oo.over_optimize(model, x, target, iters=1, pixel_scale=40.0, quantize=False, keep_steps=(1,),
                           device=DEV, progress=False)
    expected = (x + 0.15 / 40.0**2 * model.w[target].detach().view(2, 1, 8, 8)).clamp(0, 1)
    assert torch.allclose(torch.from_numpy(out["images"][:, 0]), expected, atol=1e-6)


def test_over_optimized_raises_target_logit_monotonically_to_softmax_one():
    model, x = Linear(scale=8.0), images(6)
    y = model(x).argmax(1)
    target = (y + 1) % 10
    out = oo.over_optimize(model, x, target, iters=40, pixel_scale=8.0, device=DEV, progress=False)
    t = out["target_act"][:, :, 0]
    assert out["top_act"].shape == (6, 41) and t.shape == (6, 41)
    assert (np.diff(t, axis=1) >= -1e-4).all(), "the target logit must never fall"
    assert (t[:, -1] > t[:, 0] + 100).all()
    assert (out["pred"][:, -1] == target.numpy()).all()
    assert (out["top_soft"][:, -1] == 1.0).all(), "float32 softmax should read exactly 1.0"
    # softmax stuck at 1.0 while the activation keeps growing (Lemma 2.1)
    first = (out["top_soft"] == 1.0).argmax(axis=1)
    assert all(out["top_act"][i, -1] > out["top_act"][i, first[i]] for i in range(6))


def test_over_optimized_on_a_cnn_raises_target_logit():
    model, x = tiny_cnn(), images(4)
    target = torch.tensor([1, 2, 3, 4])
    out = oo.over_optimize(model, x, target, iters=30, pixel_scale=1.0, device=DEV, progress=False)
    t = out["target_act"][:, :, 0]
    assert (t[:, -1] > t[:, 0]).all()
    assert (np.diff(t, axis=1) >= -1e-3).mean() > 0.9


@pytest.mark.parametrize("mode", [True, "round", False])
def test_images_stay_valid(mode):
    model, x = tiny_cnn(), images(3)
    out = oo.over_optimize(model, x, torch.tensor([0, 1, 2]), iters=5, pixel_scale=1.0, quantize=mode,
                           keep_steps=(0, 2, 5), device=DEV, progress=False)
    imgs = out["images"]
    assert imgs.shape == (3, 3, 1, 8, 8) and list(out["image_steps"]) == [0, 2, 5]
    assert imgs.min() >= 0.0 and imgs.max() <= 1.0
    on_grid = np.abs(imgs * 255 - np.round(imgs * 255)).max() < 1e-4
    assert on_grid == (mode is not False)
    np.testing.assert_allclose(imgs[:, 0], x.numpy(), atol=1e-6)  # step 0 is the original


def test_rounding_stalls_tiny_steps_but_latent_does_not():
    model, x = Linear(scale=0.05), images(2)
    target = torch.tensor([1, 2])
    kw = dict(iters=60, pixel_scale=20.0, keep_steps=(60,), device=DEV, progress=False)
    stalled = oo.over_optimize(model, x, target, quantize="round", **kw)
    moving = oo.over_optimize(model, x, target, quantize="latent", **kw)
    np.testing.assert_allclose(stalled["images"][:, 0], x.numpy(), atol=1e-7)  # every step rounded away
    assert np.abs(moving["images"][:, 0] - x.numpy()).max() >= 1 / 255 - 1e-6
    assert (moving["target_act"][:, -1, 0] > stalled["target_act"][:, -1, 0]).all()


def test_multiclass_keeps_confidence_below_one_and_raises_both_logits():
    model, x = Linear(seed=1), images(6, seed=1)
    with torch.no_grad():
        z = model(x)
    y = z.argmax(1)
    c = (y + 1) % 10
    d = oo.second_target(z, c, y)
    assert not bool(((d == c) | (d == y)).any())
    out = oo.multiclass_optimize(model, x, c, d, iters=200, pixel_scale=10.0, device=DEV, progress=False)
    ta = out["target_act"]
    assert ta.shape == (6, 201, 2) and out["targets"].shape == (6, 2)
    assert (ta[:, -1, 0] > ta[:, 0, 0] + 20).all() and (ta[:, -1, 1] > ta[:, 0, 1] + 20).all()
    late = slice(150, None)
    assert all(np.isin(out["pred"][i, late], out["targets"][i]).all() for i in range(6))
    soft = out["top_soft"][:, late]
    assert (soft >= 0.49).all() and (soft < 0.9).all()  # two dominant logits: just above 0.5
    # the over-optimised attack on the same images reaches exactly 1.0
    single = oo.over_optimize(model, x, c, iters=200, pixel_scale=10.0, device=DEV, progress=False)
    assert (single["top_soft"][:, -1] == 1.0).all()


def test_observers_are_recorded_every_k_steps():
    model, other = Linear(0), Linear(5)
    x = images(4)
    out = oo.over_optimize(model, x, [1, 2, 3, 4], iters=7, observers={"other": other}, eval_every=3,
                           pixel_scale=8.0, device=DEV, progress=False)
    assert list(out["eval_steps"]) == [0, 3, 6, 7]
    obs = out["observer/other"]
    assert obs.shape == (4, 4) and obs.dtype == np.int16
    with torch.no_grad():
        np.testing.assert_array_equal(obs[:, 0], other(x).argmax(1).numpy())


def test_bad_inputs_raise_softlib_errors():
    model, x = Linear(), images(2)
    with pytest.raises(SoftlibError, match="target"):
        oo.over_optimize(model, x, [1, 2, 3], iters=1, device=DEV, progress=False)
    with pytest.raises(SoftlibError, match="class indices"):
        oo.over_optimize(model, x, [1, 12], iters=1, device=DEV, progress=False)
    with pytest.raises(SoftlibError, match="quantize"):
        oo.over_optimize(model, x, [1, 2], iters=1, quantize="floor", device=DEV, progress=False)
    with pytest.raises(SoftlibError, match="pixels in"):
        oo.over_optimize(model, x * 2, [1, 2], iters=1, device=DEV, progress=False)
    with pytest.raises(SoftlibError, match="differ"):
        oo.multiclass_optimize(model, x, [1, 2], [1, 3], iters=1, device=DEV, progress=False)


def test_torchattacks_wrappers():
    model, x = Linear(), images(3)
    t = torch.tensor([1, 2, 3])
    adv = oo.OverOptimized(model, steps=40, pixel_scale=8.0)(x, t)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        rise = model(adv).gather(1, t[:, None]) - model(x).gather(1, t[:, None])
    assert (rise > 5).all()
    adv2 = oo.MultiClassOptimized(model, steps=5, pixel_scale=30.0)(x, t)
    assert adv2.shape == x.shape
