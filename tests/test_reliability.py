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
# A process started in the background (CI under `nohup ... &`, a non-interactive shell's `&`)
# inherits SIGINT as *ignored*, and Python then installs no KeyboardInterrupt handler: the child
# restores the default a terminal user's Ctrl-C meets, so the test does not depend on how it was launched.
PAUSE = (
    "import pathlib, signal, sys, time; import softlib.train as T\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
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


# ============================================================== round 2 (issue 15): one case per fault found
# Each case plants one bad input and expects a SoftlibError naming it, before any expensive work.
# CASES[class] lists them; the before/after counts of the report come from this table.

import errno  # noqa: E402

import numpy as np  # noqa: E402

from softlib import attacks, detectors, metrics, models, paths, runtime, sets  # noqa: E402
from softlib.chapters.ch04 import overoptimize  # noqa: E402
from softlib.tooling import notebooks  # noqa: E402
from softlib.validate import SoftlibError, check_alloc, check_list, check_notebook_parameters  # noqa: E402


def _mlp():
    torch.manual_seed(0)
    return models.build_model("mlp", hidden=(16,)).eval()


def _cnn():
    torch.manual_seed(0)
    return models.build_model("cnn").eval()


X1 = torch.rand(4, 1, 28, 28)
Y1 = torch.tensor([0, 1, 2, 3])


def _env(**kv):
    """Run ``fn`` with environment variables set (restored afterwards)."""
    def wrap(fn):
        def run():
            old = {k: os.environ.get(k) for k in kv}
            os.environ.update(kv)
            try:
                return fn()
            finally:
                for k, v in old.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        return run
    return wrap


CASES = {
    "knobs": [
        ("n_figure=-5", lambda: get_profile("smoke", n_figure=-5), "n_figure must be >= 1, got -5"),
        ("eval_batch=0", lambda: get_profile("smoke", eval_batch=0), "eval_batch"),
        ("test_eval_size=0", lambda: get_profile("smoke", test_eval_size=0), "test_eval_size"),
        ("grid=[0.1]", lambda: get_profile("smoke", grid=[0.1]), "grid"),
        ("grid_lambda2=[]", lambda: get_profile("smoke", grid_lambda2=[]), "grid_lambda2 needs at least 1"),
        ("grid_lambda2=[-1]", lambda: get_profile("smoke", grid_lambda2=[-1.0]), "grid_lambda2 entry"),
        ("grid_lambda2='0'", lambda: get_profile("smoke", grid_lambda2="0"), "grid_lambda2 must be a list"),
        ("wrn depth='10'", lambda: models.build_model("wrn", depth="10"), "depth must be an integer, got '10'"),
        ("mlp hidden='12'", lambda: models.build_model("mlp", hidden="12"), "hidden"),
        ("seed 2**64", lambda: runtime.seed_everything(2**64), "seed must be <= 4294967295"),
        ("generator seed -1", lambda: runtime.generator(-1), "seed must be >= 0"),
        ("model seed 2**64", lambda: zoo.model_spec("mlp", "mnist", "smoke", 2**64), "seed"),
        ("device tpu", lambda: runtime.get_device("tpu"), "unknown device 'tpu'"),
        ("SOFTLIB_DEVICE=CUDA", _env(SOFTLIB_DEVICE="CUDA")(runtime.get_device), "SOFTLIB_DEVICE"),
        ("SOFTLIB_DEVICE=meta", _env(SOFTLIB_DEVICE="meta")(runtime.get_device), "unknown device 'meta'"),
        ("SOFTLIB_MAX_ALLOC_GB=lots", _env(SOFTLIB_MAX_ALLOC_GB="lots")(lambda: check_alloc("x", 1)), "SOFTLIB_MAX_ALLOC_GB"),
        ("SOFTLIB_LOCK_TIMEOUT=-1", _env(SOFTLIB_LOCK_TIMEOUT="-1")(cache.lock_timeout), "SOFTLIB_LOCK_TIMEOUT"),
    ],
    "tensors": [
        ("labels out of range", lambda: attacks.run_attack("fgsm", _mlp(), X1, torch.tensor([0, 1, 2, 10]), eps=0.1),
         "class labels in [0, 9]"),
        ("labels negative", lambda: attacks.run_attack("fgsm", _mlp(), X1, torch.tensor([0, -1, 2, 3]), eps=0.1), ">= 0"),
        ("labels float", lambda: attacks.run_attack("fgsm", _mlp(), X1, Y1.float(), eps=0.1), "integer class labels"),
        ("3 channels into an MNIST model", lambda: attacks.run_attack("fgsm", _cnn(), torch.rand(4, 3, 28, 28), Y1, eps=0.1),
         "expects 1"),
        ("predict wrong channels", lambda: models.predict(_cnn(), torch.rand(2, 3, 28, 28)), "channel"),
        ("float targets", lambda: overoptimize.over_optimize(_mlp(), X1, [1.5, 2, 3, 4], iters=1, device="cpu",
                                                             progress=False), "integer class indices"),
        ("complex scores", lambda: metrics.detection_metrics(np.array([1 + 1j, 2]), np.array([0.0, 1.0])), "real-valued"),
        ("complex features", lambda: detectors.KDE().fit(np.ones((4, 2)) * (1 + 1j)), "real-valued"),
        ("zero-width features", lambda: detectors.MaxLogit().fit(np.zeros((5, 0))), "zero columns"),
        ("overflowing features", lambda: detectors.KDE().fit(np.random.default_rng(0).normal(size=(20, 3)) * 1e200),
         "overflow"),
        ("one-row Mahalanobis", lambda: detectors.Mahalanobis().fit(np.ones((1, 3)), [0]), "at least 2 rows"),
        ("one row per class", lambda: detectors.Mahalanobis().fit(np.eye(3)[:2], [0, 1]), "zero covariance"),
        ("one-row class KDE", lambda: detectors.ClassConditionalKDE().fit(np.ones((1, 3)), [0]), "at least 2 rows"),
    ],
    "memory": [
        ("set n=10**12", lambda: sets.get_set("mnist", None, profile="smoke", n=10**12), "above the cap"),
        ("iterations=10**12", lambda: overoptimize.over_optimize(_mlp(), X1, [1, 2, 3, 4], iters=10**12, device="cpu",
                                                                 progress=False), "above the cap"),
        ("WRN-1000004-100", lambda: models.build_model("wrn", depth=10**6 + 4, width=100), "above the cap"),
        ("cap from SOFTLIB_MAX_ALLOC_GB", _env(SOFTLIB_MAX_ALLOC_GB="0.001")(lambda: check_alloc("a buffer", 2 << 20)),
         "cap of 0.001 GiB (SOFTLIB_MAX_ALLOC_GB)"),
    ],
    "lists": [
        ("attacks='fgsm'", lambda: check_list("attacks", "fgsm", sets.ADVERSARIAL), "got the string 'fgsm'"),
        ("grid='0.1'", lambda: check_list("grid", "0.1"), "got the string '0.1'"),
        ("undeclared num_clases", lambda: check_notebook_parameters(
            history=["", 'profile = "quick"\nnum_classes = 10\n', '# Parameters\nprofile = "smoke"\nnum_clases = 3\n']),
         "unknown notebook parameter(s) 'num_clases'"),
    ],
    "messages": [
        ("--only ''", lambda: notebooks.notebook_paths([""]), "empty"),
        ("--only with no name", lambda: notebooks.notebook_paths([]), "at least one"),
        ("--only unknown among known", lambda: notebooks.notebook_paths(["01", "zz"]), "no notebook matches 'zz'"),
        ("SOFTLIB_RESULTS a file", _env(SOFTLIB_RESULTS=__file__)(paths.check_results_dir), "SOFTLIB_RESULTS"),
    ],
}
ALL_CASES = [(cls, *c) for cls, cases in CASES.items() for c in cases]


@pytest.mark.parametrize("cls,name,call,expected", ALL_CASES, ids=[f"{c[0]}:{c[1]}" for c in ALL_CASES])
def test_bad_input_is_refused(cls, name, call, expected, tmp_cache):
    with pytest.raises(SoftlibError) as err:
        call()
    assert expected in str(err.value), str(err.value)


def test_tiny_tpr_is_reached():
    """tpr=1e-12 used to return threshold +inf and TPR 0, below the level asked for."""
    fpr, thr, reached = metrics.fpr_at_tpr(np.arange(10.0), np.arange(5.0), tpr=1e-12)
    assert reached >= 1e-12 and np.isfinite(thr)


def test_notebook_file_names_are_accepted():
    assert [p.stem for p in notebooks.notebook_paths(["notebooks/03_detectors.ipynb", "3", "03_detectors.py"])] \
        == ["03_detectors"]


def test_relative_paths_are_resolved_before_kernels_start(tmp_path, monkeypatch):
    from softlib.data import data_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOFTLIB_DATA", "rel/data")
    assert data_root() == tmp_path / "rel" / "data"
    notebooks.absolutize_env()
    assert os.environ["SOFTLIB_DATA"] == str(tmp_path / "rel" / "data")


def test_missing_idx_file_is_named(tmp_path):
    from softlib import data

    folder = data.dataset_dir("mnist", tmp_path)
    rng = np.random.default_rng(0)
    data.write_mnist_idx(folder, rng.integers(0, 255, (5, 28, 28)), rng.integers(0, 9, 5), prefix="train")
    data.write_mnist_idx(folder, rng.integers(0, 255, (5, 28, 28)), rng.integers(0, 9, 5), prefix="t10k")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(SoftlibError, match="t10k-labels-idx1-ubyte is missing"):
        data.load_split("mnist", False, root=tmp_path, check=False)


def test_runner_checks_results_before_work_and_keeps_the_notebook_failure(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(notebooks, "execute", lambda *a, **k: calls.append(a) or 1.0)
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder")
    assert notebooks.main(["run", "--profile", "smoke", "--out", str(tmp_path / "out"), "--only", "01"]) == 1
    err = capsys.readouterr().err
    assert "SOFTLIB_RESULTS" in err and "SOFTLIB_CACHE" not in err and not calls
    # a notebook fails and the timings cannot be written: the notebook's failure is what is reported
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path / "results"))

    def fail(path, *a, **k):
        raise notebooks.NotebookFailed(f"notebook {path.name} failed in cell 3 (ValueError: boom)")

    def no_report(*a, **k):
        raise SoftlibError("could not write the timings")

    monkeypatch.setattr(notebooks, "execute", fail)
    monkeypatch.setattr(notebooks, "_report", no_report)
    with pytest.raises(notebooks.NotebookFailed, match="boom.*could not write the timings"):
        notebooks.run_all("smoke", tmp_path / "out", ["01"])
    assert notebooks.main(["run", "--only", "", "--out", str(tmp_path / "out")]) == 1


# -------------------------------------------------------------- cache faults, planted


def _tiny_set(**kw):
    return sets.get_set("mnist", None, profile="smoke", n=8, **kw)


@pytest.mark.parametrize("which", ["sidecar", "payload", "lock"])
def test_directory_planted_where_a_cache_file_belongs(tmp_cache, which):
    first = _tiny_set()
    key = first.meta["cache_key"]
    folder = tmp_cache / "sets"
    target = {"sidecar": folder / f"{key}.json", "payload": folder / f"{key}.npz", "lock": folder / f"{key}.lock"}[which]
    for f in (folder / f"{key}.json", folder / f"{key}.npz"):
        f.unlink(missing_ok=True)
    target.unlink(missing_ok=True)
    (target / "inside").mkdir(parents=True)
    with pytest.warns(UserWarning, match="is a folder where a cache file belongs"):
        again = _tiny_set()
    assert torch.equal(first.x, again.x)
    assert not again.meta["from_cache"]
    assert _tiny_set().meta["from_cache"]  # and the run after that is a plain hit


def test_corrupt_entry_in_a_read_only_cache(tmp_cache, monkeypatch):
    """Removing the corrupt entry fails (read-only folder): the error names the files to delete."""
    first = _tiny_set()
    payload = tmp_cache / "sets" / f"{first.meta['cache_key']}.npz"
    payload.write_bytes(b"garbage")
    real_unlink = Path.unlink

    def read_only(self, missing_ok=False):
        if self.parent == payload.parent:
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.raises(SoftlibError, match=r"is corrupt .* cannot be removed: Read-only file system.*Delete"):
        _tiny_set()


LOCK_HOLDER = (
    "import sys, time; from softlib import cache\n"
    "with cache.entry_lock('sets', 'k' * 20):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)


@pytest.mark.parametrize("stopped", [True, False], ids=["stopped-holder", "timeout"])
def test_lock_held_by_a_stopped_or_slow_process(tmp_cache, monkeypatch, stopped):
    holder = _spawn(LOCK_HOLDER, tmp_cache)
    try:
        assert holder.stdout.readline().strip() == "locked"  # holds the lock (and wrote its PID) by now
        if stopped:
            os.kill(holder.pid, signal.SIGSTOP)
            monkeypatch.setattr(cache, "STOPPED_GRACE_S", 0.0)
        with pytest.raises(SoftlibError) as err:
            with cache.entry_lock("sets", "k" * 20, timeout=3600 if stopped else 0.5):
                pass
        msg = str(err.value)
        assert f"process {holder.pid}" in msg and str(tmp_cache / "sets" / ("k" * 20 + ".lock")) in msg
        assert (f"kill -CONT {holder.pid}" in msg) and ("is stopped" in msg) == stopped
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        holder.kill()
        holder.wait()


def test_disk_full_while_saving_weights_keeps_the_model(tmp_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTLIB_RESCUE", str(tmp_path / "rescue"))
    prof = get_profile("smoke", test_eval_size=100)
    real_save = zoo.save_file

    def full_disk(state, path):
        if str(path).startswith(str(tmp_cache)):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_save(state, path)

    monkeypatch.setattr(zoo, "save_file", full_disk)
    with pytest.raises(SoftlibError, match="no space left on device.*kept in .*rescue.*without being recomputed"):
        zoo.get_model("mlp", "mnist", prof, seed=0, train_size=64)
    monkeypatch.setattr(zoo, "save_file", real_save)
    monkeypatch.setattr(zoo, "train_model", lambda *a, **k: pytest.fail("retrained"))
    with pytest.warns(UserWarning, match="restored cache entry"):
        m = zoo.get_model("mlp", "mnist", prof, seed=0, train_size=64)
    assert m.meta["test_acc_n"] == 100 and not list((tmp_path / "rescue").rglob("*.safetensors"))
    assert zoo.get_model("mlp", "mnist", prof, seed=0, train_size=64).cache_key == m.cache_key


def test_disk_full_everywhere_says_the_result_is_lost(tmp_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTLIB_RESCUE", str(tmp_path / "rescue"))

    def full_disk(tmp):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    entry = cache.Entry("sets", "f" * 20, ".npz")
    with pytest.raises(SoftlibError, match="nor keep it in the rescue folder.*lost.*Free some space"):
        entry.publish(full_disk, {"spec": {}})
    assert entry.read_valid() is None


def test_scale_check_of_float32_features_is_silent_and_float64_overflow_is_refused():
    """A float32 array must not warn (numpy casting 1e150 to float32 overflowed into the rendered book)."""
    import warnings

    import numpy as np

    from softlib.validate import FEATURE_MAX, SoftlibError, check_finite_scale

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_finite_scale("features", np.full((4, 3), 3e38, dtype=np.float32))
    with pytest.raises(SoftlibError, match="features has values of magnitude"):
        check_finite_scale("features", np.array([FEATURE_MAX * 10]))


def test_runner_eta_uses_the_cold_build_record_when_the_cache_is_empty(tmp_path, monkeypatch):
    from softlib.tooling.notebooks import _previous_seconds

    results, cache = tmp_path / "results", tmp_path / "cache"
    results.mkdir()
    monkeypatch.setenv("SOFTLIB_RESULTS", str(results))
    monkeypatch.setenv("SOFTLIB_CACHE", str(cache))
    assert _previous_seconds("quick") == ({}, "last recorded quick build")  # nothing recorded: no ETA
    (results / "timings-quick.json").write_text(json.dumps({"notebooks": [{"notebook": "02", "seconds": 50, "ok": True}]}))
    (results / "timings-quick-cold.json").write_text(json.dumps({"notebooks": [{"notebook": "02", "seconds": 500}]}))
    assert _previous_seconds("quick") == ({"02": 500.0}, "the recorded cold quick build")
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "abc.safetensors").write_bytes(b"")
    assert _previous_seconds("quick") == ({"02": 50.0}, "last recorded quick build")
    (results / "timings-quick.json").write_text("{not json")
    assert _previous_seconds("quick") == ({}, "last recorded quick build")
