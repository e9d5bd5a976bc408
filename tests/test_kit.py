"""The offline GPU-node kit (softlib/kit.py), installed with the network off, runs a chapter.

Needs the built kit (``make wheelhouse`` -> build/wheelhouse; ``make test-kit`` builds it and
runs this). The "node" is simulated: a fresh venv of this Python whose only extra packages are
torch, torchvision, numpy, scipy, scikit-learn and their own dependencies (linked from the
environment running the tests; pillow comes with torchvision), so anything else the run
imports must come from the kit. ``unshare -n`` (a new, empty network namespace) cuts the network off for the install
and the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KIT = Path(os.environ.get("SOFTLIB_KIT", REPO / "build" / "wheelhouse"))
NODE = ("torch", "torchvision", "numpy", "scipy", "scikit-learn")

pytestmark = pytest.mark.slow


def _closure(names: tuple[str, ...], leave_out: tuple[str, ...]) -> list[metadata.Distribution]:
    from packaging.requirements import Requirement

    todo, seen, out = list(names), set(), []
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen or name in leave_out:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        out.append(dist)
        for r in dist.requires or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return out


def _fake_node(root: Path) -> Path:
    """A venv that has only the node's packages (symlinked), like a GPU node's PyTorch install."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root / "venv")
    py = root / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    pkgs = root / "node-packages"
    pkgs.mkdir()
    for dist in _closure(NODE, ()):
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src = Path(dist.locate_file(top))
            if src.exists() and not (pkgs / top).exists() and not top.endswith(".pth") and top != "bin":
                (pkgs / top).symlink_to(src)
    (site / "node.pth").write_text(str(pkgs) + "\n")
    # pip itself: the node has one (a venv without pip has none)
    pip_dir = Path(metadata.distribution("pip").locate_file("pip"))
    (pkgs / "pip").symlink_to(pip_dir)
    return py


@pytest.mark.skipif(not (KIT / "manifest.json").exists(), reason="no built kit: run `make test-kit`")
@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare -n")
def test_kit_installs_offline_and_runs_a_chapter(tmp_path):
    py = _fake_node(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SOFTLIB_", "PYTHON"))}
    # the fake node really lacks what the kit brings
    probe = subprocess.run([str(py), "-c", "import papermill"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "papermill" in probe.stderr
    subprocess.run([str(py), "-c", "import torch, torchvision, numpy, scipy, sklearn"], env=env, check=True)
    # a new network namespace has no network, and its loopback is down until raised: the
    # kernel and papermill talk over 127.0.0.1, as on a real node without network
    offline = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']
    check_net = subprocess.run([*offline, str(py), "-c", "import socket; socket.create_connection(('1.1.1.1', 443), 3)"],
                               env=env, capture_output=True, text=True)
    assert check_net.returncode != 0  # the namespace has no network
    dest, out = tmp_path / "node", tmp_path / "run"
    cmd = [*offline, str(py), str(KIT / "kit.py"), "run", "--dest", str(dest), "--out", str(out),
           "--profile", "smoke", "--only", "01"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "pip install --no-index" in first.stdout
    rec = json.loads((out / "results" / "smoke" / "01_softmax_lemmas.json").read_text())
    assert rec["profile"] == "smoke" and rec["numbers"]
    nb = json.loads((out / "chapters" / "01_softmax_lemmas.ipynb").read_text())
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    assert json.loads((out / "kit-state.json").read_text())["chapters"]["01_softmax_lemmas"]["done"]
    # resumable: the same command again installs nothing and skips the recorded chapter
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "skipped" in again.stdout and "pip install" not in again.stdout
    # a step that runs out of time stops the chapter and asks to be run again (exit 75)
    short = subprocess.run([*cmd[:-1], "02", "--step-minutes", "0.05"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert short.returncode == 75, short.stdout[-2000:] + short.stderr[-2000:]
    state = json.loads((out / "kit-state.json").read_text())["chapters"]
    assert not state["02_logit_distributions"]["done"] and state["02_logit_distributions"]["attempts"] == 1
