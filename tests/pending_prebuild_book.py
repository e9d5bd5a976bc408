"""A prebuilt cache leaves the notebooks no training or attack work (smoke profile).

NOT YET COLLECTED (rename to tests/test_prebuild_book.py after one green run on an idle machine:
``pytest -q tests/pending_prebuild_book.py --durations=0``). On the loaded shared machine chapters
02, 03 and 04 passed; 05 failed on a real plan omission (the grid's plain-CE cell), since fixed
in softlib/tooling/plan.py with the exact keys the notebook built, but not re-run to the end in time.

The module's own empty cache (not the session's, where other tests' entries could hide a task
the plan lacks). Per chapter: ``softlib.tooling.prebuild`` runs that chapter's plan on a LocalCluster
of two worker processes (the ``make prebuild`` path: Dask, shared-filesystem share; every task
fails when its entry lands under another key than planned), then the chapter's notebook is
executed with papermill on that cache, and no model, set, attack, transferability entry,
attack chunk or training checkpoint may appear or change. Chapters share entries (the CNN,
chapter 03's sets): a later chapter's prebuild reuses them.
"""

from __future__ import annotations

import pytest

from softlib.tooling import plan as P
from softlib.tooling import prebuild as B
from softlib.cache import cache_root

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")

#: Every folder where building (not reading) leaves a trace: the planned kinds, attack chunks, training checkpoints.
WATCHED = (*(folder for folder, _ in P.KINDS.values()), "set-chunks", "checkpoints")


def _files() -> dict[str, tuple[float, int]]:
    root = cache_root()
    return {str(p.relative_to(root)): (p.stat().st_mtime, p.stat().st_size)
            for w in WATCHED for p in (root / w).glob("*") if p.is_file() and not p.name.endswith((".lock", ".owner"))}


@pytest.fixture(scope="module")
def book_cache(tmp_path_factory):
    """An empty cache for the module, and a LocalCluster whose workers are told to use it (fs share)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SOFTLIB_CACHE", str(tmp_path_factory.mktemp("prebuilt-cache")))
    try:
        with B.local_client(2, memory_limit="4GiB") as client:
            client.run(B.warm_up)
            yield client
    finally:
        mp.undo()


@pytest.mark.parametrize("chapter", P.CHAPTERS)
def test_notebook_on_a_prebuilt_cache_trains_and_attacks_nothing(book_cache, chapter, tmp_path):
    from softlib.tooling.notebooks import execute, notebook_paths

    plan = P.build_plan("smoke", 1, [chapter])
    B.run_dask(plan, client=book_cache, share="fs", progress=False)
    missing = [t.label for t in plan.tasks if t.key is not None and t.entry().read_valid() is None]
    assert not missing, f"prebuilt but not in the cache: {missing}"
    again = B.run_dask(plan, client=book_cache, share="fs", progress=False)  # only the unknown-key tasks rerun ...
    assert all(t.key is None for t in plan.tasks if t.id in {r["id"] for r in again})
    assert not any(r["built"] for r in again)  # ... and find their entry
    before = _files()
    (path,) = notebook_paths([chapter])
    execute(path, tmp_path / path.name, {"profile": "smoke"})
    after = _files()
    new = sorted(set(after) - set(before))
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not new and not changed, f"chapter {chapter}'s notebook built what the plan lacks: {new + changed}"
