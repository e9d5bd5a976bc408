"""The package's shape: core / chapters / tooling layering, the repository root, the model handle,
and the cache key of the paper CNN (which a multi-hour training run depends on). Fast."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest
import torch
from torch import nn

import softlib
from softlib import paths, zoo
from softlib.cache import spec_key
from softlib.models import TrainedModel, model_device, model_loss, predict, prediction_rule
from softlib.validate import SoftlibError

PKG = Path(softlib.__file__).parent


def _imports(path: Path) -> set[str]:
    """softlib modules imported by ``path`` (absolute and relative imports, resolved)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG.parent).with_suffix("")
    pkg = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = pkg[: len(pkg) - node.level + 1] if node.level else []
            mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("softlib")}


def test_the_core_does_not_import_chapters_or_tooling():
    """The reusable core (softlib/*.py, softlib/paper) never reaches into a chapter or the build tooling."""
    core = [p for p in PKG.rglob("*.py") if not ({"chapters", "tooling"} & set(p.relative_to(PKG).parts))]
    assert len(core) > 15
    bad = {str(p.relative_to(PKG)): sorted(m for m in _imports(p) if m.startswith(("softlib.chapters", "softlib.tooling")))
           for p in core}
    assert not {k: v for k, v in bad.items() if v}


def test_chapters_do_not_import_tooling_except_recording():
    """Chapter analysis may not depend on the notebook runner, the page writers or the Dask build."""
    for p in (PKG / "chapters").rglob("*.py"):
        assert not [m for m in _imports(p) if m.startswith("softlib.tooling")], p


def test_every_module_sits_in_a_named_place():
    names = [m.name for m in pkgutil.walk_packages(softlib.__path__, "softlib.")]
    assert "softlib.chapters.ch04.runner" in names and "softlib.tooling.notebooks" in names
    assert not [n for n in names if n.startswith("softlib.claims0") or n in ("softlib.transfer", "softlib.robustness")]


def test_repo_root_from_a_subfolder_and_from_the_env(tmp_path, monkeypatch):
    root = paths.repo_root()
    assert (root / "pyproject.toml").is_file() and (root / "softlib").is_dir()
    monkeypatch.delenv(paths.REPO_ENV, raising=False)
    monkeypatch.chdir(root / "softlib" / "chapters")
    assert paths.repo_root() == root
    assert paths.repo_root(start=root / "notebooks") == root
    monkeypatch.setenv(paths.REPO_ENV, str(root))
    monkeypatch.chdir(tmp_path)
    assert paths.repo_root() == root


def test_repo_root_not_found_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.REPO_ENV, raising=False)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')  # another project's is not ours
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SoftlibError, match="SOFTLIB_REPO"):
        paths.repo_root()
    monkeypatch.setenv(paths.REPO_ENV, str(tmp_path))
    with pytest.raises(SoftlibError, match="SOFTLIB_REPO="):
        paths.repo_root()


def test_results_dir_follows_the_env(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.RESULTS_ENV, str(tmp_path / "r"))
    assert paths.results_dir() == tmp_path / "r"
    monkeypatch.delenv(paths.RESULTS_ENV)
    assert paths.results_dir() == paths.repo_root() / "results"


def test_paper_cnn_cache_key_is_unchanged():
    """The paper-profile CNN (results/paper/model_cnn_mnist.json, ~/.cache/softlib) must keep its key."""
    spec = zoo.model_spec("cnn", "mnist", "paper", 0)
    assert spec_key({"kind": "model", **spec}) == "c0adc34f99d2e99ecee4"


def test_trained_model_is_a_typed_module():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    m = TrainedModel(net, "k1", {"test_acc": 0.5}, loss="rce")
    x = torch.rand(5, 1, 2, 2)
    assert torch.equal(m(x), net(x)) and m.key == m.cache_key == "k1" and m.meta["test_acc"] == 0.5
    assert model_loss(m) == "rce" and model_loss(net) == "ce" and model_device(m).type == "cpu"
    z = torch.tensor([[1.0, 5.0, 0.0]])
    assert int(prediction_rule(m)(z)[0]) == 2 and int(prediction_rule(net)(z)[0]) == 1  # RCE: argmax(-Z)
    out = predict(m, x, batch_size=2, features=False)
    assert out["logits"].shape == (5, 3) and out["hidden"].shape == (5, 0)
    with pytest.raises(SoftlibError, match="hidden layer"):
        predict(m, x)
    with pytest.raises(SoftlibError, match="key"):
        TrainedModel(net, "")
    with pytest.raises(SoftlibError, match="loss"):
        TrainedModel(net, "k", loss="hinge")


def test_readme_layout_names_every_chapter_and_tooling_module():
    """The README's Layout section and the package agree (a new module is named there)."""
    readme = (paths.repo_root() / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    for m in pkgutil.walk_packages(softlib.__path__, "softlib."):
        parts = m.name.split(".")
        if m.ispkg or parts[1] not in ("chapters", "tooling"):
            continue
        assert parts[-1] in layout, f"{m.name} is not named in the README's Layout section"
