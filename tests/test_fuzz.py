"""Property-based fuzz of the public API and of the notebooks' parameters (issue 15).

The property: for generated arguments of wrong types, shapes, dtypes, ranges and names,
every call either succeeds or raises :class:`softlib.validate.SoftlibError`; never another
exception type, never an unbounded allocation (the fuzz runs under a small
``SOFTLIB_MAX_ALLOC_GB``), never a hang (sizes come from edge values, not mid-size ones,
and pytest-timeout bounds each test).

``make test`` runs a few cases (``FUZZ_EXAMPLES``, default 30 per API test, 6 per notebook
in-process, 1 per notebook through papermill); ``make fuzz`` sets ``SOFTLIB_FUZZ_EXAMPLES``
to run many more. Each run prints how many generated cases it ran.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softlib import attacks, cache, data, detectors, metrics, models, runtime, sets, zoo
from softlib.chapters.ch04 import overoptimize
from softlib.profiles import PROFILES, get_profile
from softlib.tooling import notebooks, record
from softlib.validate import SoftlibError, check_environment, check_notebook_parameters

SCALE = int(os.environ.get("SOFTLIB_FUZZ_EXAMPLES", "0"))
API_EXAMPLES = SCALE or 30
NB_EXAMPLES = max(SCALE // 10, 6) if SCALE else 6
PM_EXAMPLES = max(SCALE // 100, 1)
FUZZ = settings(max_examples=API_EXAMPLES, deadline=None, derandomize=not SCALE, database=None,
                suppress_health_check=list(HealthCheck))
RAN: Counter[str] = Counter()

# ---------------------------------------------------------------- strategies of bad (and some good) values
EDGE_INTS = st.sampled_from([-(2**64), -(10**12), -1, 0, 1, 2, 3, 2**31, 2**63, 2**64, 10**12])
SMALL_INTS = st.integers(-3, 12)
NAMES = st.sampled_from(["", " ", "cpu", "CUDA", "tpu", "meta", "cuda:7", "fgsm", "bim", "mnist", "cifar10",
                         "smoke", "quick", "nn", "kde", "logits", "softmax", "hidden", "0.1", "10", "test", "train",
                         "01", "03_detectors.ipynb", "../x", "a/b", "f"])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool, torch.complex64]


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    ndim = draw(st.integers(0, 5))
    shape = [draw(st.sampled_from([0, 1, 2, 3])) for _ in range(ndim)]
    if ndim == 4:
        shape = draw(st.sampled_from([shape, [2, 1, 28, 28], [2, 3, 28, 28], [2, 1, 8, 8], [0, 1, 28, 28]]))
    dtype = draw(st.sampled_from(DTYPES))
    fill = draw(st.sampled_from(["rand", "zeros", "big", "nan", "neg"]))
    t = torch.rand(shape, dtype=torch.float64)
    t = {"rand": t, "zeros": t * 0, "big": t * 1e200, "nan": t / 0 * 0, "neg": -t}[fill]
    return t.to(dtype) if dtype != torch.complex64 else (t + 1j * t).to(dtype)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    t = draw(tensors())
    return t.numpy() if t.dtype != torch.float16 else t.float().numpy()


BAD = st.one_of(
    st.none(), st.booleans(), EDGE_INTS, SMALL_INTS, st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.5, 0.5, 1.0, 1.5, 1e-12, 1e300]), NAMES, st.text(max_size=6),
    st.lists(SMALL_INTS, max_size=4), st.lists(NAMES, max_size=3), st.tuples(st.floats(-1, 2)),
    st.dictionaries(st.text(max_size=3), SMALL_INTS, max_size=2), st.complex_numbers(max_magnitude=1e3),
    st.just(object()), tensors(), arrays(),
)


def _expect_softlib(target: str, call) -> None:
    """The fuzz property: the call returns, or raises SoftlibError (nothing else)."""
    RAN[target] += 1
    try:
        call()
    except SoftlibError:
        pass
    except Exception as exc:  # noqa: BLE001 - this is the property under test
        raise AssertionError(f"{target}: {type(exc).__name__}: {exc}") from exc


@pytest.fixture(autouse=True)
def _small_memory_cap(monkeypatch, tmp_path):
    """Successful calls stay cheap; a refused allocation proves the cap is checked first."""
    monkeypatch.setenv("SOFTLIB_MAX_ALLOC_GB", "0.25")
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SOFTLIB_RESCUE", str(tmp_path / "rescue"))


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build_model("mlp", hidden=(8,)).eval()


MLP = _mlp()
X = torch.rand(2, 1, 28, 28)
Y = torch.tensor([3, 7])


def _with(valid: dict, draw: st.DrawFn, names: list[str] | None = None) -> dict:
    """``valid`` with one argument replaced by a generated value (sometimes an unknown name added)."""
    kw = dict(valid)
    key = draw(st.sampled_from(names or list(valid)))
    kw[key] = draw(BAD)
    return kw


# ---------------------------------------------------------------- the API


@FUZZ
@given(st.data())
def test_profiles_and_models(data_):
    field = data_.draw(st.sampled_from(sorted(PROFILES["smoke"].as_dict())))
    value = data_.draw(BAD)
    _expect_softlib("get_profile", lambda: get_profile(data_.draw(st.sampled_from(["smoke", "Quick", "paper"])),
                                                       **{field: value}))
    arch = data_.draw(st.sampled_from(["cnn", "wrn", "resnet", "mlp", "vgg"]))
    opts = {"wrn": {"depth": 10, "width": 1}, "resnet": {"depth": 8}, "mlp": {"hidden": (8,)}}.get(arch, {})
    kw = _with({"num_classes": 10, "in_channels": 1, "image_size": 28, **opts}, data_.draw,
               ["num_classes", "in_channels", "image_size", "depth", "width", "dropout", "leaky", "hidden", "mean"])
    _expect_softlib("build_model", lambda: models.build_model(arch, **kw))
    kw = _with({"arch": "mlp", "dataset": "mnist", "profile": "smoke", "seed": 0, "epochs": 1, "train_size": 64},
               data_.draw)
    _expect_softlib("model_spec", lambda: zoo.model_spec(**kw))


@FUZZ
@given(BAD, BAD)
def test_runtime(seed, device):
    _expect_softlib("seed_everything", lambda: runtime.seed_everything(seed))
    _expect_softlib("generator", lambda: runtime.generator(seed))
    _expect_softlib("get_device", lambda: runtime.get_device(device))


@FUZZ
@given(st.data())
def test_metrics(data_):
    legit, other = np.random.default_rng(0).normal(1, 1, 20), np.random.default_rng(1).normal(0, 1, 20)
    kw = _with({"scores_legit": legit, "scores_other": other, "tpr": 0.95, "positive": "legit"}, data_.draw)
    _expect_softlib("detection_metrics", lambda: metrics.detection_metrics(**kw))


@FUZZ
@given(st.data())
def test_detectors(data_):
    name = data_.draw(st.sampled_from(sorted(detectors.DETECTORS) + ["lof"]))
    rng = np.random.default_rng(0)
    X_fit = rng.normal(size=(24, 4))
    y_fit = np.arange(24) % 2 if name == "nn" else np.arange(24) % 3
    opts = {"epochs": 1} if name == "nn" else {}
    if data_.draw(st.booleans()):
        opts[data_.draw(st.sampled_from(["feature", "k", "bandwidth", "temperature", "epochs", "seed", "device",
                                         "batch_size", "alpha", "unknown"]))] = data_.draw(BAD)
    fit = _with({"X": X_fit, "y": y_fit}, data_.draw)
    score = _with({"X": rng.normal(size=(5, 4)), "y_pred": np.array([0, 1, 0, 1, 0])}, data_.draw)

    def run():
        det = detectors.make_detector(name, **opts)
        if name in ("sb",) and det.feature == "softmax":
            return
        det.fit(fit["X"], fit["y"])
        det.score_samples(score["X"], y_pred=score["y_pred"])

    _expect_softlib("detectors", run)


@FUZZ
@given(st.data())
def test_attacks_and_overoptimization(data_):
    name = data_.draw(st.sampled_from(["fgsm", "bim", "pgd", "deepfool", "maxconf", "cw"]))
    kw = _with({"x": X, "y": Y, "eps": 0.1, "steps": None if name == "fgsm" else 2, "batch_size": 2, "seed": 0},
               data_.draw)
    _expect_softlib("run_attack", lambda: attacks.run_attack(name, MLP, **kw))
    kw = _with({"x": X, "target": [1, 2], "iters": 2, "pixel_scale": 255.0, "quantize": True, "eval_every": 1,
                "keep_steps": (0,), "batch_size": 2, "device": "cpu"}, data_.draw)
    _expect_softlib("over_optimize", lambda: overoptimize.over_optimize(MLP, progress=False, **kw))
    kw = _with({"x": X, "batch_size": 4, "device": None}, data_.draw)
    _expect_softlib("predict", lambda: models.predict(MLP, **kw))


@FUZZ
@given(st.data())
def test_sets_data_record_runner(data_):
    kw = _with({"name": "mnist", "model": None, "profile": "smoke", "n": 4, "part": "test", "dataset": "mnist",
                "seed": 0}, data_.draw)
    _expect_softlib("get_set", lambda: sets.get_set(**kw))
    kw = _with({"name": "mnist", "train": False}, data_.draw)
    _expect_softlib("load_split", lambda: data.load_split(**kw))
    kw = _with({"chapter": "fuzz", "profile": "smoke", "numbers": {"a": 1.0}, "wall_s": 1.0}, data_.draw)
    _expect_softlib("record", lambda: record.record(**kw))
    only = data_.draw(st.one_of(BAD, st.lists(NAMES, max_size=3)))
    _expect_softlib("notebook_paths", lambda: notebooks.notebook_paths(only))


ENV_VALUES = st.one_of(NAMES, st.text(st.characters(exclude_characters="\x00"), max_size=6), st.sampled_from(["-1", "0", "nan", "inf", "1e-9", "1", "64"]))


@FUZZ
@given(st.sampled_from(["SOFTLIB_DEVICE", "SOFTLIB_MAX_ALLOC_GB", "SOFTLIB_LOCK_TIMEOUT", "SOFTLIB_RESULTS"]),
       ENV_VALUES)
def test_environment(var, value):
    old = os.environ.get(var)
    with tempfile.TemporaryDirectory() as tmp:
        # a relative SOFTLIB_RESULTS would be created in the current folder: put it in tmp instead
        os.environ[var] = os.path.join(tmp, value) if var == "SOFTLIB_RESULTS" else value
        try:
            _expect_softlib("environment", check_environment)
            if var == "SOFTLIB_LOCK_TIMEOUT":
                _expect_softlib("lock_timeout", cache.lock_timeout)
        finally:
            if old is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = old


# ---------------------------------------------------------------- the notebooks' parameters

NOTEBOOK_NAMES = sorted(p.stem for p in notebooks.notebook_paths())


def _cells(stem: str) -> tuple[str, str]:
    """(parameters cell, validation cell: the first code cell after it) of a notebook."""
    nb = json.loads((notebooks.notebooks_dir() / f"{stem}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    i = next(i for i, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", []))
    return "".join(code[i]["source"]), "".join(code[i + 1]["source"])


def _declared(stem: str) -> list[str]:
    ns: dict = {}
    exec(_cells(stem)[0], ns)  # noqa: S102 - our own notebook's parameters cell
    return [k for k in ns if not k.startswith("__")]


@st.composite
def injections(draw: st.DrawFn, stem: str) -> dict:
    """A parameter set as papermill would inject it: profile smoke, one parameter generated (or a typo)."""
    declared = _declared(stem)
    name = draw(st.one_of(st.sampled_from(declared), st.sampled_from(["num_clases", "seeds", "Profile"])))
    value = draw(st.one_of(st.none(), st.booleans(), EDGE_INTS, SMALL_INTS, NAMES, st.floats(allow_nan=True),
                           st.lists(NAMES, max_size=3), st.lists(st.floats(-1, 2), max_size=3)))
    return {"profile": "smoke", name: value}


class _FakeKernel:
    def __init__(self, history: list[str]) -> None:
        self.user_ns = {"In": history}


@pytest.mark.parametrize("stem", NOTEBOOK_NAMES)
def test_notebook_validation_cell(stem, monkeypatch):
    """The validation cell, run in-process on papermill-style injected values."""
    import IPython
    from papermill.translators import PythonTranslator

    params_src, check_src = _cells(stem)

    @settings(max_examples=NB_EXAMPLES, deadline=None, derandomize=not SCALE, database=None,
              suppress_health_check=list(HealthCheck))
    @given(injections(stem))
    def run(params):
        injected = PythonTranslator.codify(params)
        monkeypatch.setattr(IPython, "get_ipython", lambda: _FakeKernel(["", params_src, injected]))
        ns: dict = {}

        def cell():
            exec(params_src, ns)  # noqa: S102
            exec(injected, ns)  # noqa: S102
            exec(check_src, ns)  # noqa: S102

        _expect_softlib(f"notebook {stem}", cell)
        if not set(params) <= set(_declared(stem)):
            with pytest.raises(SoftlibError, match="unknown notebook parameter"):
                check_notebook_parameters()

    run()


@pytest.mark.slow
@pytest.mark.parametrize("stem", NOTEBOOK_NAMES)
def test_notebook_parameters_through_papermill(stem, tmp_path):
    """The same, through papermill and a real kernel, on the notebook cut after its validation cell."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb = json.loads((notebooks.notebooks_dir() / f"{stem}.ipynb").read_text())
    code_idx = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    p = next(i for i in code_idx if "parameters" in nb["cells"][i].get("metadata", {}).get("tags", []))
    nb["cells"] = nb["cells"][: code_idx[code_idx.index(p) + 1] + 1]
    cut = tmp_path / f"{stem}.ipynb"
    cut.write_text(json.dumps(nb))

    @settings(max_examples=PM_EXAMPLES, deadline=None, derandomize=not SCALE, database=None,
              suppress_health_check=list(HealthCheck))
    @given(injections(stem))
    def run(params):
        RAN[f"papermill {stem}"] += 1
        try:
            pm.execute_notebook(str(cut), str(tmp_path / "out.ipynb"), parameters=params, kernel_name="python3",
                                cwd=str(notebooks.notebooks_dir()), progress_bar=False)
        except PapermillExecutionError as exc:
            assert exc.ename in ("SoftlibError", "MissingDataError", "CorruptEntryError"), \
                f"{stem} {params}: {exc.ename}: {exc.evalue}"
            return
        assert set(params) <= set(_declared(stem)), f"{stem} accepted undeclared parameters {params}"

    run()


def test_zz_report_cases_run():
    """Prints how many generated cases this session ran (collected last in this module)."""
    total = sum(RAN.values())
    print(f"\nfuzz: {total} generated cases run: " + ", ".join(f"{k} {v}" for k, v in sorted(RAN.items())))
    out = os.environ.get("SOFTLIB_FUZZ_REPORT")
    if out:
        Path(out).write_text(json.dumps({"total": total, **RAN}, indent=1))
