"""Shared test set-up: a private cache per test session, the real data root.

Tests never touch the reader's model cache (``SOFTLIB_CACHE`` points at a temp
folder) but do read the data root that ``make test`` fetched, so MNIST is not
copied per test. Torch uses one thread per test process: the suite runs on 2 cores.
"""

from __future__ import annotations

import os
import tempfile

import pytest

if "SOFTLIB_TEST_CACHE" not in os.environ:
    os.environ["SOFTLIB_TEST_CACHE"] = tempfile.mkdtemp(prefix="softlib-test-cache-")
os.environ["SOFTLIB_CACHE"] = os.environ["SOFTLIB_TEST_CACHE"]
# recorded numbers and timings of test runs go to a temp folder, not the repository's results/
os.environ.setdefault("SOFTLIB_RESULTS", tempfile.mkdtemp(prefix="softlib-test-results-"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
# notebook kernels and child processes import softlib from this checkout
_repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _repo not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_repo, os.environ.get("PYTHONPATH", "")) if p)

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch):
    """An empty cache folder for one test (for hit/miss/corruption tests)."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SOFTLIB_CACHE", str(root))
    return root
