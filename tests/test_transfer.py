"""Chapter 04's experiment: cleaning, aggregation, correlations, caching, the ImageNet path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from softlib import imagenet
from softlib.chapters.ch04 import aggregation, correlations, runner, settings
from softlib.validate import MissingDataError, SoftlibError

DEV = torch.device("cpu")
T_975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (from tables)
T_975_3 = 3.182446305284263  # ... 3 degrees of freedom


def test_mean_ci_is_student_t():
    v = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])
    mean, lo, hi = aggregation.mean_ci(v)
    np.testing.assert_allclose(mean, [3.0, 2.0])
    half = T_975_2 * 2.0 / np.sqrt(3)  # sd of (1, 3, 5) is 2
    np.testing.assert_allclose(lo, [3.0 - half, 2.0])
    np.testing.assert_allclose(hi, [3.0 + half, 2.0])
    m1, lo1, _ = aggregation.mean_ci(np.array([[4.0]]))
    assert m1[0] == 4.0 and np.isnan(lo1[0])


def test_flags_cleaning_and_aggregation_on_a_hand_made_table():
    # 5 examples x 4 evaluated steps; other model's predictions; targets; labels
    y = np.array([0, 0, 1, 1, 2])
    tgt = np.array([3, 3, 4, 4, 5])
    pred = np.array([
        [0, 3, 3, 3],  # transfers from step 1
        [0, 0, 3, 3],  # from step 2
        [1, 1, 1, 4],  # at step 3 only
        [1, 4, 1, 4],  # step 1, lost at 2, back at 3 -> cumulative from 1
        [2, 7, 7, 2],  # never targeted; untargeted at steps 1-2; dropped (not at last step)
    ])
    flags = aggregation.transfer_flags(pred, y, tgt, "target")
    assert flags.sum(axis=1).tolist() == [3, 2, 1, 2, 0]
    unt = aggregation.transfer_flags(pred, y, tgt, "untargeted")
    assert unt[4].tolist() == [False, True, True, False]
    assert aggregation.cumulative(flags)[3].tolist() == [False, True, True, True]
    keep = aggregation.clean(flags, "last")
    assert keep.tolist() == [True, True, True, True, False]
    assert aggregation.clean(unt, "ever")[4] and not aggregation.clean(unt, "last")[4]

    act = np.array([[1.0, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [4, 5, 6, 7], [100, 100, 100, 100]])
    soft = np.full((5, 4), 1.0)
    agg = aggregation.aggregate({"act": act, "soft": soft}, flags)
    np.testing.assert_allclose(agg["pct"], [0.0, 50.0, 75.0, 100.0])
    np.testing.assert_allclose(agg["act_mean"], [2.5, 3.5, 4.5, 5.5])  # the dropped example is out
    sd = np.std([1, 2, 3, 4], ddof=1)
    np.testing.assert_allclose(agg["act_hi"] - agg["act_mean"], T_975_3 * sd / 2.0)
    np.testing.assert_allclose(agg["soft_lo"], 1.0)
    assert int(agg["n"]) == 4

    multi = aggregation.transfer_flags(pred, y, np.stack([tgt, np.array([9, 9, 9, 9, 7])], 1), "target")
    assert multi[4].tolist() == [False, True, True, False]


def synthetic_arrays() -> dict[str, np.ndarray]:
    """Two sources; activation rises with transfer, softmax constant at 1.0 (over-optimised)."""
    rng = np.random.default_rng(0)
    n, steps = 40, 21
    y = np.zeros(n, np.int64)
    targets = np.ones(n, np.int64)
    out: dict[str, np.ndarray] = {"y": y, "targets": targets}
    for src, dst in (("A", "B"), ("B", "A")):
        speed = rng.uniform(0.5, 2.0, n)
        act = np.outer(speed, np.arange(steps)).astype(np.float32)
        first = (10 / speed).astype(int)  # faster-rising examples transfer earlier
        pred = np.where(np.arange(steps)[None] >= first[:, None], 1, 0).astype(np.int16)
        pre = f"overoptimized/{src}"
        out[f"{pre}/top_act"] = act
        out[f"{pre}/top_soft"] = np.ones((n, steps), np.float32)
        out[f"{pre}/second_act"] = act - 20
        out[f"{pre}/eval_steps"] = np.arange(steps)
        out[f"{pre}/targets"] = targets[:, None]
        out[f"{pre}/observer/{dst}"] = pred
    return out


def test_pair_curves_and_rank_correlations():
    arrays = synthetic_arrays()
    assert aggregation.model_names(arrays) == ["A", "B"]
    curves = aggregation.pair_curves(arrays, "overoptimized")
    assert set(zip(curves["source"], curves["other"])) == {("A", "B"), ("B", "A")}
    d = curves[curves["source"] == "A"]
    assert d["pct"].is_monotonic_increasing and d["pct"].iloc[-1] == 100.0
    corr = correlations.rank_correlations(arrays, "overoptimized")
    row = corr.iloc[0]
    assert row["curve_act_rho"] > 0.9 and row["curve_act_p"] < 1e-3
    assert row["ex_act_rho"] > 0.5 and row["ex_act_p"] < 0.01
    assert np.isnan(row["curve_soft_rho"]) and np.isnan(row["ex_soft_rho"]) and row["soft_constant"]
    sat = aggregation.softmax_saturation(arrays, "overoptimized", "A")
    assert sat["fraction"] == 1.0 and sat["gap_median"] == pytest.approx(20.0)


class Linear(nn.Module):
    def __init__(self, seed: int, scale: float = 6.0) -> None:
        super().__init__()
        base = torch.randn(4, 64, generator=torch.Generator().manual_seed(100))
        noise = torch.randn(4, 64, generator=torch.Generator().manual_seed(seed))
        self.w = nn.Parameter((base + 0.3 * noise) * scale)  # related models: most images agree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T


def test_run_select_and_cache(tmp_cache, monkeypatch):
    models = {"P": Linear(0), "Q": Linear(1), "R": Linear(2)}
    g = torch.Generator().manual_seed(0)
    xs = torch.round(torch.rand(200, 1, 8, 8, generator=g) * 255) / 255
    with torch.no_grad():
        ys = models["P"](xs).argmax(1)
    ds = torch.utils.data.TensorDataset(xs, ys)
    x, y, idx = settings.select_correct(models, ds, 5, seed=1, device=DEV, progress=False)
    with torch.no_grad():
        for m in models.values():
            assert (m(x).argmax(1) == y).all()
    np.testing.assert_array_equal(xs[idx].numpy(), x.numpy())
    with pytest.raises(SoftlibError, match="correctly classified"):
        settings.select_correct(models, ds, 10_000, device=DEV, progress=False)
    # strict=False (smoke profile): all-correct images first, then those most models get right
    xa, ya, ia = settings.select_correct(models, ds, 60, device=DEV, progress=False, strict=False, max_scan=80)
    with torch.no_grad():
        right = sum((m(xa).argmax(1) == ya).long() for m in models.values())
    assert len(ia) == 60 and len(set(ia.tolist())) == 60 and (np.diff(right.numpy()) <= 0).all()
    with pytest.raises(SoftlibError, match="looked at"):
        settings.select_correct(models, ds, 90, device=DEV, progress=False, strict=False, max_scan=80)

    setting = settings.Setting("toy", models, x, y, idx, num_classes=4)
    calls = []
    real = runner.run_transfer
    monkeypatch.setattr(runner, "run_transfer", lambda *a, **k: calls.append(1) or real(*a, **k))
    arrays, meta = runner.transfer_experiment(setting, iters=6, pixel_units=8.0, eval_every=2, progress=False)
    assert (arrays["targets"] != arrays["y"]).all()
    for a in runner.ATTACKS:
        for src in models:
            assert arrays[f"{a}/{src}/top_act"].shape == (5, 7)
            assert arrays[f"{a}/{src}/eval_steps"].tolist() == [0, 2, 4, 6]
            others = [k for k in arrays if k.startswith(f"{a}/{src}/observer/")]
            assert len(others) == 2
    assert arrays["multiclass/P/targets"].shape == (5, 2)
    again, meta2 = runner.transfer_experiment(setting, iters=6, pixel_units=8.0, eval_every=2, progress=False)
    assert len(calls) == 1 and meta2["key"] == meta["key"]
    np.testing.assert_array_equal(again["overoptimized/Q/top_act"], arrays["overoptimized/Q/top_act"])
    curves = aggregation.pair_curves(arrays, "multiclass", criterion="untargeted", rule="ever")
    assert len(set(zip(curves["source"], curves["other"]))) == 6


def test_parameters_are_validated(monkeypatch, tmp_path):
    with pytest.raises(SoftlibError, match="setting"):
        settings.resolve_setting("cifar")
    with pytest.raises(SoftlibError, match="pixel_units"):
        runner.pixel_scale("pixels")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SOFTLIB_DATA", str(tmp_path / "data"))
    assert settings.resolve_setting("auto") == "mnist"
    assert not imagenet.available()
    with pytest.raises(MissingDataError, match="resnet50-0676ba61.pth"):
        imagenet.paper_models()
    t = settings.random_targets(np.array([0, 1, 2, 3] * 25), 4, seed=3)
    assert (t != np.array([0, 1, 2, 3] * 25)).all() and set(t) == {0, 1, 2, 3}


def test_imagenet_path_on_synthetic_data(tmp_path, monkeypatch):
    """Random-init torchvision models saved under torchvision's file names + a PNG ImageFolder."""
    from PIL import Image

    archs = {"R18": "resnet18", "MNv3": "mobilenet_v3_small"}
    wdir = tmp_path / "checkpoints"
    wdir.mkdir()
    torch.manual_seed(0)
    nets = {}
    for name, arch in archs.items():
        import torchvision

        net = torchvision.models.get_model(arch, weights=None, num_classes=4).eval()
        head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():  # random nets predict one class for everything: make it class 2 for both
            head.bias.copy_(torch.tensor([0.0, 0.0, 50.0, 0.0]))
        torch.save(net.state_dict(), imagenet.weights_path(arch, wdir))
        nets[name] = imagenet.Normalized(net).eval()
    # images both random models classify alike, written into the folder of that class
    g = torch.Generator().manual_seed(0)
    raw = (torch.rand(48, 3, 64, 64, generator=g) * 255).round().to(torch.uint8)
    x = raw.float() / 255
    with torch.no_grad():
        preds = [m(x).argmax(1) for m in nets.values()]
    assert (preds[0] == 2).all() and (preds[1] == 2).all()
    root = tmp_path / "data"
    for c in range(4):
        (root / "imagenet" / "val" / f"n{c:08d}").mkdir(parents=True)
    # 6 images labelled 2 (correct for both models), one mislabelled image in each other class
    labels = [2] * 6 + [0, 1, 3]
    for i, c in enumerate(labels):
        Image.fromarray(raw[i].permute(1, 2, 0).numpy()).save(root / "imagenet" / "val" / f"n{c:08d}" / f"{i}.png")

    assert imagenet.available(tuple(archs.values()), weights_dir=wdir, root=root)
    models = imagenet.paper_models(archs=archs, num_classes=4, weights_dir=wdir, device=DEV)
    assert all(m.cache_key.startswith("imagenet-") for m in models.values())
    ds = imagenet.val_dataset(root=root, num_classes=4, resize=64, crop=64)
    assert len(ds) == 9
    xs, ys, idx = settings.select_correct(models, ds, 3, batch_size=4, device=DEV, progress=False)
    assert xs.shape == (3, 3, 64, 64) and xs.min() >= 0 and xs.max() <= 1 and (ys == 2).all()
    np.testing.assert_allclose(xs[0].numpy(), ds[int(idx[0])][0].numpy())  # PNG, no resize: exact pixels
    targets = settings.random_targets(ys, 4, seed=0)
    arrays, meta = runner.run_transfer(models, xs, ys, targets, iters=2, pixel_units="unit", device=DEV,
                                         progress=False)
    assert arrays["overoptimized/R18/observer/MNv3"].shape == (3, 3)
    assert set(meta["wall_s"]) == {f"{a}/{s}" for a in runner.ATTACKS for s in archs}
    with pytest.raises(SoftlibError, match="class folders"):
        imagenet.val_dataset(root=root, num_classes=1000)
    with pytest.raises(MissingDataError, match="validation images"):
        imagenet.val_dataset(root=tmp_path / "nowhere")


def test_paper_reference_numbers():
    from softlib.paper import misleading_softmax as p

    f1, f2 = p.figure_table(1), p.figure_table(2)
    assert f1["ca1"].tolist() == [20.0, 1e2, 5e2, 4e3] and (f1["confidence"].iloc[1:] == 1.0).all()
    assert f2["confidence"].is_monotonic_decreasing and f2["ca1"].is_monotonic_increasing
    assert (p.NATURAL_MAX_ACTIVATION, p.NATURAL_MAX_TARGET_ACTIVATION) == (52.0, 23.0)
    assert (p.N_IMAGES, p.N_ITERATIONS, p.ALPHA, p.ALPHA_BETA_RANGE) == (2500, 500, 0.15, (0.05, 0.1))
    with pytest.raises(SoftlibError, match="figure"):
        p.figure_table(3)
