"""A training run interrupted between epochs resumes where it stopped, with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

from softlib.models import build_model
from softlib.train import RECIPES, load_checkpoint, train_model


def _data(n=192):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def _model():
    torch.manual_seed(1)
    return build_model("cnn", num_classes=10, in_channels=1, image_size=28)


def _train(ckpt, epochs=3):
    x, y = _data()
    m = _model()
    h = train_model(m, x, y, epochs=epochs, recipe=RECIPES["cnn"], seed=5, checkpoint=ckpt)
    return m, h


def test_resumed_training_equals_uninterrupted(tmp_path, monkeypatch):
    ref, ref_hist = _train(None)
    ckpt = tmp_path / "run.pt"
    monkeypatch.setenv("SOFTLIB_TEST_STOP_AFTER_EPOCH", "1")
    try:
        _train(ckpt)
        raise AssertionError("the stop hook did not interrupt training")
    except KeyboardInterrupt:
        pass
    assert load_checkpoint(ckpt)["epoch"] == 1
    monkeypatch.delenv("SOFTLIB_TEST_STOP_AFTER_EPOCH")
    resumed, hist = _train(ckpt)
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert hist["loss"] == ref_hist["loss"]


def test_finished_but_unpublished_training_is_not_redone(tmp_path):
    ckpt = tmp_path / "run.pt"
    first, _ = _train(ckpt, epochs=1)
    assert load_checkpoint(ckpt)["epoch"] == 1  # kept until the caller publishes
    again, _ = _train(ckpt, epochs=1)  # loads the finished state, trains nothing
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_corrupt_checkpoint_is_removed_and_training_starts_over(tmp_path):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    import warnings

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert load_checkpoint(ckpt) is None
    assert not ckpt.exists() and any("unreadable" in str(x.message) for x in w)


def test_checkpoint_refuses_pickled_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"epoch": 1, "x": Evil()}, evil)
    assert load_checkpoint(evil) is None and not marker.exists()


def test_get_model_resumes_after_a_killed_process(tmp_path):
    """Through the cache: the first process stops after epoch 1, the second finishes from the checkpoint."""
    code = textwrap.dedent("""
        from softlib import zoo
        from softlib.profiles import get_profile
        prof = get_profile("smoke", test_eval_size=64)
        m = zoo.get_model("mlp", "mnist", prof, seed=0, epochs=2, train_size=256)
        print("TRAINED", m.cache_key)
    """)
    env = {**os.environ, "SOFTLIB_CACHE": str(tmp_path), "SOFTLIB_TEST_STOP_AFTER_EPOCH": "1"}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode != 0 and "TRAINED" not in first.stdout
    assert list((tmp_path / "checkpoints").glob("*.pt")), "no checkpoint after epoch 1"
    assert not list((tmp_path / "models").glob("*.safetensors")), "an unfinished model was published"
    env.pop("SOFTLIB_TEST_STOP_AFTER_EPOCH")
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "TRAINED" in second.stdout
    assert not list((tmp_path / "checkpoints").glob("*.pt")), "the checkpoint outlived the published entry"


def test_a_diverged_training_raises_and_checkpoints_nothing_of_that_epoch(tmp_path):
    """The loss is read back once per epoch (no per-step GPU sync): a non-finite epoch loss still stops
    the run with an error naming the run and the learning rate, before that epoch is checkpointed."""
    import dataclasses

    import pytest

    x, y = _data()
    bad = dataclasses.replace(RECIPES["cnn"], lr=1e12)  # RMSprop at this rate overflows within an epoch
    ckpt = tmp_path / "ck.pt"
    torch.manual_seed(0)
    with pytest.raises(FloatingPointError, match=r"tiny run: the loss of epoch 1 is .*diverged.*1e\+12"):
        train_model(build_model("cnn"), x, y, epochs=2, recipe=bad, seed=0, desc="tiny run", checkpoint=ckpt)
    assert not ckpt.exists()
