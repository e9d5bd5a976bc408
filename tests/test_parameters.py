"""Bad notebook parameters, as a reader would pass them to papermill: one clear line, no deep traceback.

Each case runs the real notebook headless and expects it to stop in its validation
cell with a ``SoftlibError`` whose message names the bad value (and, for names,
what is allowed) — before any model is trained.
"""

from __future__ import annotations

import pytest

from softlib.tooling.notebooks import notebooks_dir

NOTEBOOKS = notebooks_dir()

pytestmark = pytest.mark.slow

CASES = [
    # (notebook, parameters, text the message must contain)
    ("01_softmax_lemmas", {"profile": "fast"}, "unknown profile 'fast'; allowed: 'smoke', 'quick', 'paper'"),
    ("01_softmax_lemmas", {"dtypes": ["float8"]}, "float8"),
    ("01_softmax_lemmas", {"num_classes": 1}, "num_classes must be >= 2, got 1"),
    ("01_softmax_lemmas", {"num_classes": "ten"}, "num_classes must be an integer, got 'ten'"),
    ("02_logit_distributions", {"profile": "Quick"}, "unknown profile 'Quick'"),
    ("02_logit_distributions", {"arch": "vgg"}, "'vgg'"),
    ("02_logit_distributions", {"attacks": ["cw"]}, "'cw'"),
    ("02_logit_distributions", {"ood": ["svhn"]}, "'svhn'"),
    ("02_logit_distributions", {"seed": -1}, "seed must be >= 0, got -1"),
    ("03_detectors", {"profile": "fast"}, "unknown profile 'fast'"),
    ("03_detectors", {"detectors": ["lof"]}, "'lof'"),
    ("03_detectors", {"in_distribution": "imagenet"}, "'imagenet'"),
    ("04_overoptimization_transferability", {"setting": "moon"}, "'moon'"),
    ("04_overoptimization_transferability", {"n_images": -5}, "-5"),
    ("04_overoptimization_transferability", {"iterations": 0}, "iterations"),
    ("05_detection_vs_robustness", {"profile": "fast"}, "unknown profile 'fast'"),
    ("05_detection_vs_robustness", {"dataset": "svhn"}, "'svhn'"),
    ("05_detection_vs_robustness", {"grid_eps": 2.0}, "2.0"),
    # round 2 (issue 15)
    ("01_softmax_lemmas", {"num_clases": 3}, "unknown notebook parameter(s) 'num_clases'"),
    ("02_logit_distributions", {"attacks": "fgsm"}, "attacks must be a list of attacks, got the string 'fgsm'"),
    ("02_logit_distributions", {"seed": 2**64}, "seed must be <= 4294967295"),
    ("03_detectors", {"detectors": "nn"}, "got the string 'nn'"),
    ("04_overoptimization_transferability", {"iterations": 10**12}, "above the cap"),
    ("05_detection_vs_robustness", {"grid": "0.1"}, "got the string '0.1'"),
    ("06_adaptive_attacks", {"detectors": ["kde/probs"]}, "'kde/probs'"),
    ("06_adaptive_attacks", {"eps_list": [2.0]}, "2.0"),
]
if not __import__("softlib.data", fromlist=["available"]).available("cifar10"):
    # without CIFAR-10 the message names CIFAR-10 itself, not the default OOD list
    CASES.append(("02_logit_distributions", {"dataset": "cifar10"}, "dataset='cifar10' needs CIFAR-10 on disk"))


@pytest.mark.parametrize("name,params,expected", CASES, ids=[f"{c[0][:2]}-{list(c[1])[0]}={c[1][list(c[1])[0]]}" for c in CASES])
def test_bad_parameter_gives_clear_error(tmp_path, name, params, expected):
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as err:
        pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", **params}, kernel_name="python3",
                            cwd=str(NOTEBOOKS), progress_bar=False)
    e = err.value
    assert e.ename in ("SoftlibError", "MissingDataError", "CorruptEntryError"), f"{e.ename}: {e.evalue}"
    assert expected in e.evalue, e.evalue
    assert e.exec_count is not None and e.exec_count <= 4, f"failed late, in cell {e.exec_count}: {e.evalue}"
