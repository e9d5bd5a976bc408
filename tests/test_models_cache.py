"""Models (shapes, the 4608 flatten, logits and hidden features), profiles, the cache and the zoo."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from softlib import cache, models, zoo
from softlib.profiles import PROFILES, get_profile
from softlib.validate import SoftlibError


@pytest.mark.parametrize(
    "arch,opts,hidden",
    [("cnn", {}, 128), ("wrn", {"depth": 10, "width": 2}, 128), ("resnet", {"depth": 8}, 64), ("mlp", {}, 256)],
)
def test_models_expose_logits_and_hidden(arch, opts, hidden):
    m = models.build_model(arch, **opts).eval()
    x = torch.rand(3, 1, 28, 28)
    h, z = m.forward_with_features(x)
    assert z.shape == (3, 10) and h.shape == (3, hidden)
    assert torch.allclose(m(x), z) and torch.allclose(m.features(x), h)
    out = models.predict(m, x, batch_size=2)
    assert out["logits"].shape == (3, 10) and out["hidden"].shape == (3, hidden)
    assert np.allclose(out["logits"], z.detach().numpy(), atol=1e-5)


def test_cnn_is_table1_of_000():
    m = models.build_model("cnn")
    assert m.flatten_dim == 4608  # 6x6x128, table 1 of 000
    shapes = []
    x = torch.rand(1, 1, 28, 28)
    for layer in m.body:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes[1] == (32, 26, 26) and shapes[3] == (32, 24, 24) and shapes[4] == (32, 12, 12)
    assert (64, 6, 6) in shapes and (128, 6, 6) in shapes and shapes[-1] == (4608,)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128]
    drops = [mod.p for mod in m.modules() if isinstance(mod, torch.nn.Dropout)]
    assert drops == [0.2, 0.25, 0.25, 0.25]


def test_cifar_shapes_and_resnet32_depth():
    m = models.build_model("resnet", in_channels=3, image_size=32, depth=32)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d) and mod.kernel_size == (3, 3)]
    assert len(convs) + 1 == 32  # 31 conv layers + the dense layer: ResNet-32
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    w = models.build_model("wrn", in_channels=3, image_size=32, depth=28, width=8)
    assert w.head.in_features == 512


def test_model_errors():
    with pytest.raises(SoftlibError, match="unknown architecture 'vgg'"):
        models.build_model("vgg")
    with pytest.raises(SoftlibError, match="WRN depth must be 6n\\+4"):
        models.build_model("wrn", depth=27)
    with pytest.raises(SoftlibError, match="unknown option"):
        models.build_model("cnn", depth=3)
    m = models.build_model("mlp")
    with pytest.raises(SoftlibError, match="pixels in \\[0, 1\\]"):
        models.predict(m, torch.full((2, 1, 28, 28), 2.0))
    with pytest.raises(SoftlibError, match="NaN"):
        models.predict(m, torch.full((2, 1, 28, 28), float("nan")))
    with pytest.raises(SoftlibError, match="shape"):
        models.predict(m, torch.rand(28, 28))


def test_profiles():
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    paper = get_profile("paper")
    # the papers' settings (000 section 3.1 / 4.3, 004 appendix B, 003)
    assert paper.cnn_epochs == 30 and paper.n_fit == 5000 and paper.n_test == 2000 and paper.n_figure == 1000
    assert (paper.wrn_depth, paper.wrn_width, paper.resnet_depth) == (28, 8, 32)
    assert (paper.transfer_images, paper.transfer_iters) == (2500, 500) and len(paper.grid) == 6
    with pytest.raises(SoftlibError, match="unknown profile 'fast'; allowed: 'smoke', 'quick', 'paper'"):
        get_profile("fast")
    with pytest.raises(SoftlibError, match="unknown profile field"):
        get_profile("quick", epochs=3)
    assert get_profile("quick", cnn_epochs=1).cnn_epochs == 1


def test_cache_arrays_hit_miss_and_corruption(tmp_cache):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5)}, {"note": "x"}

    a1, m1 = cache.cached_arrays("sets", {"k": 1}, build)
    a2, m2 = cache.cached_arrays("sets", {"k": 1}, build)
    assert len(calls) == 1 and np.array_equal(a1["a"], a2["a"]) and m2["note"] == "x"
    cache.cached_arrays("sets", {"k": 2}, build)
    assert len(calls) == 2  # another spec, another entry
    entry = tmp_cache / "sets" / f"{cache.spec_key({'kind': 'sets', 'k': 1})}.npz"
    entry.write_bytes(entry.read_bytes()[:-7])  # truncate
    with pytest.warns(UserWarning, match="corrupt"):
        a3, _ = cache.cached_arrays("sets", {"k": 1}, build)
    assert len(calls) == 3 and np.array_equal(a3["a"], np.arange(5))  # rebuilt, not loaded


def test_cache_refuses_pickled_payload(tmp_cache):
    """A planted .npz with an object array (pickle) is refused, even with a matching hash."""
    spec = {"k": "evil"}
    key = cache.spec_key({"kind": "sets", **spec})
    e = cache.Entry("sets", key, ".npz")

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, a=np.array([{"x": 1}], dtype=object))

    e.publish(write, {"spec": spec})
    with pytest.raises(SoftlibError, match="pickled objects"):
        cache.cached_arrays("sets", spec, lambda: ({"a": np.zeros(1)}, {}))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "f.bin"

    def boom(tmp):
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_cache_gives_clear_error(tmp_path, monkeypatch):
    """A cache root that cannot be created (here: below a plain file; works as root too)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SOFTLIB_CACHE", str(blocker / "cache"))
    with pytest.raises(SoftlibError, match="cannot create cache folder .* Set SOFTLIB_CACHE"):
        cache.cached_arrays("sets", {"k": 1}, lambda: ({"a": np.zeros(1)}, {}))


def test_full_disk_leaves_no_entry(tmp_cache, monkeypatch):
    """ENOSPC while writing the payload: a clear error, no entry, no temp file."""
    import errno

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", no_space)
    with pytest.raises(SoftlibError, match="No space left on device"):
        cache.cached_arrays("sets", {"k": 1}, lambda: ({"a": np.zeros(1)}, {}))
    assert [p.name for p in (tmp_cache / "sets").iterdir() if not p.name.endswith(".lock")] == []


def test_zoo_trains_caches_and_detects_corruption(tmp_cache):
    prof = get_profile("smoke", test_eval_size=200)
    m1 = zoo.get_model("mlp", "mnist", prof, seed=0, epochs=1, train_size=300)
    assert 0.0 <= m1.meta["test_acc"] <= 1.0 and m1.meta["test_acc_n"] == 200
    side = json.loads(next((tmp_cache / "models").glob("*.json")).read_text())
    assert side["spec"]["arch"] == "mlp" and "torch" in side["versions"] and side["sha256"]
    m2 = zoo.get_model("mlp", "mnist", prof, seed=0, epochs=1, train_size=300)  # hit
    assert m2.cache_key == m1.cache_key
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)
    m3 = zoo.get_model("mlp", "mnist", prof, seed=1, epochs=1, train_size=300)  # other seed, other key
    assert m3.cache_key != m1.cache_key
    # a bit flip in the weights: detected by hash, removed, retrained, never loaded
    w = tmp_cache / "models" / f"{m1.cache_key}.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-3] ^= 0xFF
    w.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt"):
        m4 = zoo.get_model("mlp", "mnist", prof, seed=0, epochs=1, train_size=300)
    for p1, p4 in zip(m1.parameters(), m4.parameters()):
        assert torch.equal(p1, p4)  # seeded: retraining reproduces the same weights


def test_zoo_key_covers_what_determines_weights():
    base = zoo.model_spec("cnn", "mnist", "quick", 0)
    assert base["recipe"]["optimizer"] == "rmsprop" and base["recipe"]["batch_size"] == 64  # 000 section 3.1
    variants = [zoo.model_spec("cnn", "mnist", "quick", 1), zoo.model_spec("cnn", "fashion_mnist", "quick", 0),
                zoo.model_spec("cnn", "mnist", "quick", 0, epochs=7), zoo.model_spec("cnn", "mnist", "paper", 0),
                zoo.model_spec("cnn", "mnist", "quick", 0, loss="rce")]
    keys = {cache.spec_key({"kind": "model", **s}) for s in [base, *variants]}
    assert len(keys) == 6
    with pytest.raises(SoftlibError, match="unknown loss"):
        zoo.model_spec("cnn", "mnist", "quick", 0, loss="hinge")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zoo.cached_meta("cnn", "mnist", "quick", 12345) is None
