"""softlib.sets and softlib.ood: set contents, noise distributions, the errors patch, caching.

The data sets are replaced by small synthetic ones (monkeypatched ``softlib.data``
loaders), the model by the toy CNN of test_attacks, so no network and no real data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy import stats
from test_attacks import make_toy, toy_data

import softlib.data
from softlib import ood, sets
from softlib.sets import ADVERSARIAL, LabeledSet, available_sets, get_set
from softlib.validate import MissingDataError, SoftlibError

SPLITS = {
    ("mnist", True): toy_data(1200, seed=10),
    ("mnist", False): toy_data(600, seed=11),
    ("fashion_mnist", True): (torch.rand(300, 1, 28, 28) * 0.5, torch.zeros(300, dtype=torch.long)),
    ("fashion_mnist", False): (torch.rand(300, 1, 28, 28) * 0.5 + 0.5, torch.ones(300, dtype=torch.long)),
    ("cifar10", True): toy_data(600, seed=12, size=32, channels=3),
    ("cifar10", False): toy_data(300, seed=13, size=32, channels=3),
}


@pytest.fixture()
def fake_data(monkeypatch, tmp_cache):
    """Synthetic splits instead of the real data; CIFAR-10 'absent' unless a test says otherwise."""
    present = {"mnist": True, "fashion_mnist": True, "cifar10": False}
    monkeypatch.setattr(softlib.data, "load_split", lambda name, train, **kw: SPLITS[(name, train)])
    monkeypatch.setattr(softlib.data, "available", lambda name, root=None: present[name])
    return present


@pytest.fixture(scope="module")
def model():
    return make_toy()


def test_noise_distributions():
    g = ood.gaussian_noise(200, 1, 28, seed=0)
    assert g.shape == (200, 1, 28, 28) and g.dtype == torch.float32
    v = g.flatten().numpy()
    p_clip = stats.norm.cdf(0.0, loc=0.5, scale=1.0)  # P(N(0.5, 1) < 0) = P(> 1) = 0.3085
    assert abs((v == 0.0).mean() - p_clip) < 0.01 and abs((v == 1.0).mean() - p_clip) < 0.01
    inner = v[(v > 0) & (v < 1)]  # the unclipped part is N(0.5, 1) truncated to (0, 1)
    truncated = stats.truncnorm(-0.5, 0.5, loc=0.5, scale=1.0)
    assert stats.kstest(inner[:5000], truncated.cdf).pvalue > 1e-3
    u = ood.uniform_noise(200, 3, 32, seed=0).flatten().numpy()
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u[:20000], "uniform").pvalue > 1e-3
    assert torch.equal(ood.gaussian_noise(3, 1, 28, seed=5), ood.gaussian_noise(3, 1, 28, seed=5))
    assert not torch.equal(ood.gaussian_noise(3, 1, 28, seed=5), ood.gaussian_noise(3, 1, 28, seed=6))


def test_natural_train_and_test_crops_are_disjoint(monkeypatch):
    # a photo whose every column holds its own index: a crop's values say where it was cut
    w = 640
    photo = np.broadcast_to((np.arange(w, dtype=np.float64) / (w - 1) * 255)[None, :, None], (427, w, 3)).copy()
    monkeypatch.setattr(ood, "_sample_photos", lambda: (photo.astype(np.uint8),) * 2)
    train = ood.natural_crops(200, 3, 48, seed=0, part="train")
    test = ood.natural_crops(200, 3, 48, seed=0, part="test")
    assert float(train.max()) <= 0.5 + 1 / 255 and float(test.min()) >= 0.5 - 1 / 255
    with pytest.raises(SoftlibError, match="part"):
        ood.natural_crops(2, 1, 28, seed=0, part="val")


def test_gaussian_noise_variants():
    wide = ood.gaussian_noise(50, 1, 28, seed=0, clip=False)
    assert float(wide.min()) < 0 < 1 < float(wide.max())
    assert abs(float(wide.mean()) - 0.5) < 0.02 and abs(float(wide.std()) - 1.0) < 0.02
    narrow = ood.gaussian_noise(50, 1, 28, seed=0, std=0.25)
    assert abs(float(narrow.std()) - 0.25) < 0.02
    assert torch.equal(ood.gaussian_noise(5, 1, 28, seed=3), ood.gaussian_noise(5, 1, 28, seed=3, mean=0.5, std=1.0))
    with pytest.raises(SoftlibError, match="std"):
        ood.gaussian_noise(2, 1, 28, seed=0, std=-1.0)


def test_noise_variants_are_the_readings_chapter_02_compares():
    imgs = ood.noise_variants(20, 1, 28, seed=4)
    assert list(imgs) == list(ood.NOISE_VARIANTS)
    first, *_, last = imgs
    assert torch.equal(imgs[first], ood.gaussian_noise(20, 1, 28, seed=4))  # the book's gaussian set
    assert torch.equal(imgs[last], ood.uniform_noise(20, 1, 28, seed=4))  # the book's uniform set
    wide = imgs["N(0.5, 1), unclipped"]
    assert float(wide.min()) < 0 and float(wide.max()) > 1
    with pytest.raises(SoftlibError, match="noise kind"):
        ood.noise_variants(2, 1, 28, seed=0, variants={"x": ("laplace", {})})


def test_average_logit_takes_pixels_outside_the_unit_range(model):
    x = ood.gaussian_noise(30, 1, 28, seed=0, clip=False)
    got = ood.average_logit(model, x, batch_size=7)
    with torch.no_grad():
        want = model(x).double().mean(1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    with pytest.raises(SoftlibError, match="NaN"):
        ood.average_logit(model, torch.full((2, 1, 28, 28), float("nan")))
    with pytest.raises(SoftlibError, match="batch_size"):
        ood.average_logit(model, x, batch_size=0)


def test_noise_reading_table_decides_the_claim_per_reading(model):
    legit_x, _ = SPLITS[("mnist", False)]
    ref = ood.average_logit(model, legit_x[:200])
    table = ood.noise_reading_table(model, ref, dataset="mnist", n=200, seed=0)
    assert list(table["set"]) == list(ood.NOISE_VARIANTS)
    clipped = table.set_index("set")["% pixels clipped"]
    assert 55 < clipped["N(0.5, 1), clipped (ODIN; our gaussian)"] < 70  # 2 * P(|Z| > 0.5) = 61.7%
    assert clipped["N(0.5, 1), unclipped"] == clipped["N(0.5, 1), clipped (ODIN; our gaussian)"]
    assert clipped["N(0.5, 0.1²), clipped"] < 0.01 and clipped["U[0, 1] (our uniform)"] == 0
    assert (table["legit higher"] == ((table["difference"] > 0) & table["significant"])).all()
    with pytest.raises(SoftlibError, match="n"):
        ood.noise_reading_table(model, ref, dataset="mnist", n=1, seed=0)
    with pytest.raises(SoftlibError, match="data set"):
        ood.noise_reading_table(model, ref, dataset="svhn", n=10, seed=0)


def test_black_patch_is_7x7_and_black():
    x = torch.full((50, 3, 32, 32), 0.8)
    out, pos = ood.add_black_patch(x, size=7, seed=0)
    assert torch.equal(x, torch.full_like(x, 0.8)), "input must not be modified"
    assert pos.shape == (50, 2) and int(pos.min()) >= 0 and int(pos.max()) <= 32 - 7
    for img, (r, c) in zip(out, pos.tolist()):
        assert float(img[:, r:r + 7, c:c + 7].abs().max()) == 0.0
        assert int((img == 0).sum()) == 3 * 49  # exactly one 7x7 square, every channel
    assert len({tuple(p) for p in pos.tolist()}) > 10  # positions vary
    with pytest.raises(SoftlibError):
        ood.add_black_patch(torch.zeros(2, 1, 5, 5), size=7, seed=0)


def test_convert_images_grey_colour_and_size():
    x = torch.rand(4, 3, 32, 32)
    g = ood.convert_images(x, 1, 28)
    assert g.shape == (4, 1, 28, 28) and 0 <= float(g.min()) and float(g.max()) <= 1
    flat = torch.full((2, 3, 32, 32), 0.5)
    flat[:, 0] = 1.0
    assert torch.allclose(ood.convert_images(flat, 1, 32), torch.full((2, 1, 32, 32), 0.299 + 0.5 * 0.701))
    c = ood.convert_images(torch.rand(2, 1, 28, 28), 3, 32)
    assert c.shape == (2, 3, 32, 32) and torch.equal(c[:, 0], c[:, 1])


def test_adversarial_set_is_misclassified_and_bounded(fake_data, model):
    s = get_set("fgsm", model, profile="smoke", n=40, part="test")
    assert isinstance(s, LabeledSet) and s.family == "adversarial" and len(s) == 40
    with torch.no_grad():
        assert bool((model(s.x).argmax(1) != s.y).all()), "kept adversarial examples must be misclassified"
    xs, ys = SPLITS[("mnist", False)]
    src = torch.from_numpy(s.meta["source_index"])
    assert torch.equal(ys[src], s.y)
    assert float((s.x - xs[src]).abs().max()) <= 0.3 + 1e-5 and float(s.x.min()) >= 0 and float(s.x.max()) <= 1
    assert 0 < s.meta["success_rate"] <= 1 and s.meta["n_tried"] >= 40 and s.meta["eps"] == pytest.approx(0.3)
    assert s.meta["stand_in"] is False and "FGSM" in s.meta["note"] and s.meta["wall_s"] >= 0


@pytest.mark.parametrize("name", ["bim", "deepfool", "maxconf", "pgd"])
def test_every_attack_set_builds(fake_data, model, name):
    s = get_set(name, model, profile="smoke", n=12, part="train")
    assert len(s) <= 12 and s.meta["attack"]["attack"] == name
    if len(s):
        with torch.no_grad():
            assert bool((model(s.x).argmax(1) != s.y).all())
        xs, _ = SPLITS[("mnist", True)]
        assert float((s.x - xs[torch.from_numpy(s.meta["source_index"])]).abs().max()) <= 0.3 + 1e-5


def test_set_cache_hits_on_second_call(fake_data, model, monkeypatch):
    calls = []
    real = sets._build_adversarial
    monkeypatch.setattr(sets, "_build_adversarial", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = get_set("fgsm", model, profile="smoke", n=20)
    b = get_set("fgsm", model, profile="smoke", n=20)
    assert len(calls) == 1 and not a.meta["from_cache"] and b.meta["from_cache"]
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    get_set("fgsm", model, profile="smoke", n=20, seed=1)  # a different key builds again
    assert len(calls) == 2


def test_parts_draw_from_their_own_split(fake_data):
    for part, train in (("train", True), ("test", False)):
        s = get_set("mnist", None, profile="smoke", n=30, part=part)
        xs, ys = SPLITS[("mnist", train)]
        idx = torch.from_numpy(s.meta["source_index"])
        assert s.family == "legit" and torch.equal(s.x, xs[idx]) and torch.equal(s.y, ys[idx])
    assert not torch.equal(get_set("mnist", None, profile="smoke", n=30, seed=1).x,
                           get_set("mnist", None, profile="smoke", n=30, seed=2).x)


def test_errors_set(fake_data, model):
    s = get_set("errors", model, profile="smoke", n=25)
    assert s.family == "errors" and 0 < len(s) <= 25 and s.meta["errors_rule"] == "strict"
    with torch.no_grad():
        assert bool((model(s.x).argmax(1) != s.y).all())
    for img, (r, c) in zip(s.x, s.meta["patch_pos"].tolist()):
        assert float(img[:, r:r + 7, c:c + 7].max()) == 0.0
    assert s.meta["patch"] == 7 and 0 < s.meta["success_rate"] <= 1


def test_errors_set_strict_follows_002(fake_data, model):
    # 002 section 2.2: a patch on images the model gets right, one position per image, keep the errors
    src_x, src_y = SPLITS[("mnist", False)]
    s = get_set("errors", model, profile="smoke", n=10_000)  # more than the split can give
    idx = torch.as_tensor(s.meta["source_index"])
    assert len(set(idx.tolist())) == len(idx), "each source image is patched once"
    with torch.no_grad():
        assert bool((model(src_x[idx]).argmax(1) == src_y[idx]).all()), "originals are correctly classified"
        assert bool((model(s.x).argmax(1) != s.y).all())
    for img, src, (r, c) in zip(s.x, src_x[idx], s.meta["patch_pos"].tolist()):
        outside = torch.ones_like(img, dtype=torch.bool)
        outside[:, r:r + 7, c:c + 7] = False
        assert torch.equal(img[outside], src[outside]), "only one 7x7 square differs from the source"
    assert s.meta["n_drawn"] == len(src_x) and s.meta["n_tried"] == len(src_x) - s.meta["source_errors"]
    assert s.meta["already_wrong_without_patch"] == 0.0


def test_errors_set_loose_rule_is_an_option(fake_data, model):
    loose = get_set("errors", model, profile="smoke", n=25, errors_rule="loose")
    strict = get_set("errors", model, profile="smoke", n=25)
    assert loose.meta["errors_rule"] == "loose" and loose.meta["cache_key"] != strict.meta["cache_key"]
    assert 0 <= loose.meta["already_wrong_without_patch"] <= 1
    with pytest.raises(SoftlibError, match="errors_rule"):
        get_set("errors", model, profile="smoke", n=5, errors_rule="lenient")


def test_ood_sets(fake_data, model):
    g = get_set("gaussian", None, profile="smoke", n=16)
    assert g.family == "ood" and bool((g.y == -1).all()) and g.x.shape == (16, 1, 28, 28)
    f = get_set("fashion_mnist", None, profile="smoke", n=16, part="test")
    assert float(f.x.min()) >= 0.5  # drawn from the (fake) Fashion test split
    nat = get_set("natural", None, profile="smoke", n=8)
    assert nat.meta["stand_in"] is True and "STAND-IN" in nat.meta["note"] and nat.x.shape == (8, 1, 28, 28)
    assert float(nat.x.std()) > 0.01
    nat_train = get_set("natural", None, profile="smoke", n=8, part="train")
    assert "train region" in nat_train.meta["note"] and not torch.equal(nat_train.x, nat.x)
    with pytest.raises(MissingDataError, match="natural"):
        get_set("cifar10", None, profile="smoke", n=8)
    assert "cifar10" not in available_sets("mnist") and "natural" in available_sets("mnist")
    fake_data["cifar10"] = True
    c = get_set("cifar10", None, profile="smoke", n=8)
    assert c.x.shape == (8, 1, 28, 28) and c.family == "ood"


def test_cifar_model_gets_mnist_as_colour_ood(fake_data):
    fake_data["cifar10"] = True
    m = get_set("mnist", None, profile="smoke", n=6, dataset="cifar10")
    assert m.family == "ood" and m.x.shape == (6, 3, 32, 32) and torch.equal(m.x[:, 0], m.x[:, 2])
    assert get_set("cifar10", None, profile="smoke", n=6, dataset="cifar10").family == "legit"
    assert set(available_sets("cifar10")) >= {"cifar10", "mnist", "fashion_mnist", *ADVERSARIAL, "errors"}


class Constant(nn.Module):
    """Ignores its input: always predicts class 0, zero gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([5.0] + [0.0] * 9))
        self.cache_key = "constant"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), 10) + 0 * x.flatten(1)[:, :1]


def test_set_smaller_than_n_warns(fake_data, monkeypatch):
    monkeypatch.setattr(sets, "MAX_TRY_FACTOR", 2)
    with pytest.warns(UserWarning, match="fewer than the 10"):
        s = get_set("fgsm", Constant(), profile="smoke", n=10)
    assert len(s) == 0 and s.meta["success_rate"] == 0.0 and s.meta["n_tried"] > 0


def test_bad_arguments(fake_data, model):
    with pytest.raises(SoftlibError, match="unknown set 'svhn'"):
        get_set("svhn", model, profile="smoke", n=5)
    with pytest.raises(SoftlibError, match="part"):
        get_set("mnist", model, profile="smoke", n=5, part="val")
    with pytest.raises(SoftlibError, match="n must be >= 1"):
        get_set("mnist", model, profile="smoke", n=0)
    with pytest.raises(SoftlibError, match="profile"):
        get_set("mnist", model, profile="huge", n=5)
    with pytest.raises(SoftlibError, match="cache_key"):
        get_set("fgsm", nn.Linear(2, 2), profile="smoke", n=5)
    with pytest.raises(SoftlibError, match="data set"):
        get_set("mnist", model, profile="smoke", n=5, dataset="svhn")
    assert math.isclose(sets.attack_settings("bim", dataset="cifar10", profile="paper")["eps"], 8 / 255)
    assert sets.attack_settings("deepfool", dataset="mnist", profile="paper")["steps"] == 50
    assert np.isclose(sets.attack_settings("pgd", dataset="mnist", profile="quick")["step_size"], 0.03)


def test_adversarial_set_build_resumes_from_cached_chunks(tmp_cache, monkeypatch):
    """An interrupted build keeps its finished chunks; the rebuild reuses them and gives the same set."""
    from softlib import attacks as A
    from softlib import sets as S
    from softlib import zoo
    from softlib.profiles import get_profile

    prof = get_profile("smoke", test_eval_size=64)
    model = zoo.get_model("mlp", "mnist", prof, seed=0, epochs=1, train_size=256)
    calls = {"n": 0}
    real = A.run_attack

    def counting(*args, **kw):
        calls["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(A, "run_attack", counting)
    first = S.get_set("fgsm", model, profile=prof, n=100, part="test")
    n_chunks = calls["n"]
    assert n_chunks >= 1 and len(list((tmp_cache / "set-chunks").glob("*.npz"))) == n_chunks
    # drop the finished set but keep its chunks (as if the process died before publishing it)
    for f in (tmp_cache / "sets").glob(f"{first.meta['cache_key']}.*"):
        f.unlink()
    calls["n"] = 0
    again = S.get_set("fgsm", model, profile=prof, n=100, part="test")
    assert calls["n"] == 0, "chunks were attacked again"
    assert torch.equal(first.x, again.x) and torch.equal(first.y, again.y)


@pytest.mark.parametrize("name, part, n, seed", [("mnist", "test", 20, 0), ("gaussian", "train", 16, 1),
                                                 ("fashion_mnist", "test", 12, 0), ("fgsm", "test", 10, 0),
                                                 ("errors", "train", 10, 2)])
def test_plan_keys_a_set_as_get_set_does(fake_data, model, name, part, n, seed):
    """softlib.tooling.plan and get_set both key a set by set_spec: the plan's key is the key get_set
    caches under, and the spec holds exactly what get_set's spec held before set_spec existed (so no
    existing cache key moved)."""
    from softlib import ood
    from softlib.cache import spec_key
    from softlib.tooling import plan as P

    family = sets.set_family(name, "mnist")
    expected = {"set": name, "dataset": "mnist", "part": part, "n": n, "seed": seed, "code": sets.CODE_VERSION,
                **({"model": model.cache_key} if family in ("adversarial", "errors") else {}),
                **({"errors_rule": "strict", "errors_code": sets.ERRORS_CODE_VERSION} if family == "errors" else {}),
                **({"attack": sets.attack_settings(name, dataset="mnist", profile="smoke")}
                   if family == "adversarial" else {}),
                **({"ood_code": ood.CODE_VERSION} if family == "ood" else {})}
    assert sets.set_spec(name, model.cache_key, profile="smoke", n=n, part=part, dataset="mnist", seed=seed) == expected
    b = P._Builder(P.get_profile("smoke"), "test")
    b.tasks["model-toy"] = P.Task("model-toy", "model", model.cache_key, {}, (), ("test",), "toy")
    b.flops["model-toy"] = 1e6  # the attack cost estimate's FLOPs per image (not what is tested here)
    task = b.tasks[b.set(name, "model-toy", n=n, part=part, dataset="mnist", seed=seed)]
    built = get_set(name, model, profile="smoke", n=n, part=part, dataset="mnist", seed=seed)
    assert task.key == built.meta["cache_key"] == spec_key({"kind": "sets", **expected})
    assert task.deps == (("model-toy",) if family in ("adversarial", "errors") else ())


def test_set_spec_needs_the_model_key_of_a_model_dependent_set():
    with pytest.raises(SoftlibError, match="model_key"):
        sets.set_spec("fgsm", None, profile="smoke", n=5)
    with pytest.raises(SoftlibError, match="errors_rule"):
        sets.set_spec("errors", "k", profile="smoke", n=5, errors_rule="lenient")
    assert "model" not in sets.set_spec("gaussian", "k", profile="smoke", n=5)
