"""Faults and untrusted files: interrupted runs, concurrent builders, planted pickles, reproducibility."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from softlib import cache, zoo
from softlib.profiles import get_profile
from softlib.validate import CorruptEntryError

REPO = Path(__file__).resolve().parents[1]
# a model that takes a few seconds to train: long enough to be killed mid-way
TRAIN = (
    "import sys, json; from softlib import zoo; from softlib.profiles import get_profile\n"
    "m = zoo.get_model('mlp', 'mnist', get_profile('smoke', test_eval_size=100), seed=0, epochs={epochs}, train_size=2000)\n"
    "print(json.dumps({{'pid': m.meta['trained_by_pid'], 'key': m.cache_key}}))\n"
)


def _spawn(code: str, cache_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "SOFTLIB_CACHE": str(cache_dir), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _entries(cache_dir: Path) -> list[str]:
    folder = cache_dir / "models"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


# The child pauses at a known point (after its first epoch, inside the training loop, holding
# the entry lock) by a test-only patch in its own process: it touches a marker file and sleeps.
# The parent signals it only once the marker exists, so the outcome never depends on timing.
PAUSE = (
    "import pathlib, sys, time; import softlib.train as T\n"
    "_orig, _calls = T.augment_batch, [0]\n"
    "def _paused(x, kind, g):\n"
    "    _calls[0] += 1\n"
    "    if _calls[0] == {first_epoch_batches} + 1:  # first batch of epoch 2\n"
    "        pathlib.Path({marker!r}).touch()\n"
    "        time.sleep(600)\n"
    "        sys.exit(3)  # never signalled: the parent failed to interrupt\n"
    "    return _orig(x, kind, g)\n"
    "T.augment_batch = _paused\n"
)


def _wait_for_marker(marker: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the child exited ({proc.returncode}) before pausing: {proc.stderr.read()[-2000:]}")
        if time.time() > deadline:
            raise AssertionError("the child never reached the pause point")
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_training_leaves_no_entry(tmp_path, sig):
    marker = tmp_path / "paused"
    # 2000 images, batch 64 (the mlp recipe): 32 batches per epoch
    proc = _spawn(PAUSE.format(first_epoch_batches=32, marker=str(marker)) + TRAIN.format(epochs=3), tmp_path / "c")
    _wait_for_marker(marker, proc)
    assert [p.name for p in (tmp_path / "c" / "models").glob("*.lock")], "paused outside the entry lock"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    # which of the two it was: killed by the signal (not finished, not the pause's own exit 3)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-2000:])
    else:
        assert proc.returncode in (1, -signal.SIGINT) and "KeyboardInterrupt" in err, (proc.returncode, err[-2000:])
    assert not [n for n in _entries(tmp_path / "c") if n.endswith((".json", ".safetensors"))], _entries(tmp_path / "c")
    # the next run finds nothing half-written and trains afresh
    again = _spawn(TRAIN.format(epochs=1), tmp_path / "c")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["pid"] == again.pid


def test_two_processes_build_one_entry(tmp_path):
    """Two notebooks asking for the same model at once: one trains, the other waits and reuses it."""
    a = _spawn(TRAIN.format(epochs=2), tmp_path)
    b = _spawn(TRAIN.format(epochs=2), tmp_path)
    outs = [p.communicate(timeout=600) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert results[0] == results[1]  # same entry, trained by one of the two
    assert results[0]["pid"] in (a.pid, b.pid)
    assert len([n for n in _entries(tmp_path) if n.endswith(".safetensors")]) == 1


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_planted_pickle_checkpoint_is_refused(tmp_cache, tmp_path):
    """A pickle planted as a model's weights (with a matching sidecar) never runs: safetensors refuses it."""
    prof = get_profile("smoke")
    spec = zoo.model_spec("mlp", "mnist", prof, 0)
    key = cache.spec_key({"kind": "model", **spec})
    _Evil.marker = tmp_path / "pwned"
    entry = cache.Entry("models", key, ".safetensors")
    entry.publish(lambda p: p.write_bytes(pickle.dumps({"w": _Evil()})), {"spec": spec, "test_acc": 1.0})
    with pytest.raises(CorruptEntryError, match="could not be loaded"):
        zoo.get_model("mlp", "mnist", prof, 0)
    assert not _Evil.marker.exists()
    assert not entry.sidecar.exists()  # removed, so the next call retrains


def test_torch_load_of_planted_pickle_is_refused(tmp_path):
    """Where torch checkpoints are read (weights_only=True), arbitrary objects are refused too."""
    _Evil.marker = tmp_path / "pwned2"
    p = tmp_path / "ckpt.pt"
    torch.save({"w": _Evil()}, p)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(p, weights_only=True)
    assert not _Evil.marker.exists()


def test_training_is_reproducible(tmp_path, monkeypatch):
    """Same seed, two empty caches: bit-identical weights and accuracy."""
    prof = get_profile("smoke", test_eval_size=300)
    states = []
    for i in range(2):
        monkeypatch.setenv("SOFTLIB_CACHE", str(tmp_path / f"c{i}"))
        m = zoo.get_model("cnn", "mnist", prof, seed=3, train_size=256)
        states.append((m.meta["test_acc"], {k: v.clone() for k, v in m.state_dict().items()}))
    assert states[0][0] == states[1][0]
    for k in states[0][1]:
        assert torch.equal(states[0][1][k], states[1][1][k]), k
