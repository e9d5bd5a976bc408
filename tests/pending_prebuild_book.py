"""NOT YET COLLECTED (the file name keeps pytest away): the whole smoke plan, then the notebooks on it.

Written for issue 17 but not run to completion on the shared 2-core machine before the
deadline (a smoke CNN took minutes there). Rename to test_prebuild_book.py once it passes:
the prebuild checks every planned key against what get_model / get_set / ... really write,
and each chapter executed on the prebuilt cache must build no model, set, attack or
transferability entry.
"""

from __future__ import annotations

import pytest

from softlib.cache import cache_root
from softlib.tooling import plan as P
from softlib.tooling import prebuild as B

# ------------------------------------------------------------------ the whole smoke plan, then the notebooks

CHAPTER_KINDS = ("models", "sets", "robustness", "transfer")


def _entries() -> dict[str, float]:
    root = cache_root()
    return {str(p.relative_to(root)): p.stat().st_mtime for k in CHAPTER_KINDS for p in (root / k).glob("*.json")}


@pytest.fixture(scope="module")
def prebuilt_smoke():
    """The whole smoke plan built serially into the session cache (each task checks its planned key)."""
    plan = P.build_plan("smoke")
    B.run_serial(plan, progress=False)
    return plan


def test_every_planned_entry_is_under_its_planned_key(prebuilt_smoke):
    for t in prebuilt_smoke.tasks:
        if t.key is not None:
            assert t.entry().read_valid() is not None, f"{t.label}: planned key {t.key} not in the cache"
    assert P.build_plan("smoke").select(kinds=("model", "set", "robustness")).tasks
    assert all(t.is_cached() for t in prebuilt_smoke.tasks if t.key is not None)


@pytest.mark.slow
@pytest.mark.parametrize("chapter", P.CHAPTERS)
def test_notebooks_on_a_prebuilt_cache_train_and_attack_nothing(prebuilt_smoke, chapter, tmp_path):
    from softlib.tooling.notebooks import execute, notebook_paths

    before = _entries()
    (path,) = notebook_paths([chapter])
    execute(path, tmp_path / path.name, {"profile": "smoke"})
    after = _entries()
    new = sorted(set(after) - set(before))
    rebuilt = sorted(k for k in before if after.get(k) != before[k])
    assert not new and not rebuilt, f"chapter {chapter} built entries the plan lacks: {new + rebuilt}"
