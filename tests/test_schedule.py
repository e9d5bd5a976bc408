"""Chapters run several at a time (``make book JOBS=2``): softlib.tooling.schedule and the runner's parallel path."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from softlib.tooling import notebooks, schedule
from softlib.validate import SoftlibError

SEEDS3 = [("02 s1", "02", 1), ("02 s2", "02", 2), ("02", "02", 0), ("03 s1", "03", 1), ("03 s2", "03", 2),
          ("03", "03", 0), ("04", "04", 0), ("05", "05", 0), ("06 s1", "06", 1), ("06", "06", 0), ("01", "01", 0)]


def test_dependencies_follow_the_shared_entries_and_the_pooling() -> None:
    deps = schedule.dependencies(SEEDS3, pooled=("02", "03", "06"))
    assert deps["02 s1"] == deps["02 s2"] == deps["05"] == deps["01"] == frozenset()
    assert deps["02"] == {"02 s1", "02 s2"}  # seed 0 pools its replicates
    assert deps["03 s1"] == {"02 s1"} and deps["03 s2"] == {"02 s2"}  # the CNN of the same seed
    assert deps["03"] == {"02", "03 s1", "03 s2"}
    assert deps["04"] == {"02"}  # reads seed 0's CNN only
    assert deps["06 s1"] == {"03 s1"} and deps["06"] == {"03", "06 s1"}
    # a chapter not being run is not waited for (it was built before, or the cache's lock orders its reader)
    assert schedule.dependencies([("03", "03", 0), ("06", "06", 0)])["03"] == frozenset()
    with pytest.raises(SoftlibError, match="two jobs run chapter 02 at seed 0"):
        schedule.dependencies([("a", "02", 0), ("b", "02", 0)])


def test_after_covers_every_entry_two_chapters_share() -> None:
    """Each cache entry the plan lists for several chapters: its first chapter is an ancestor of the others
    in AFTER, so with JOBS=2 no chapter waits on another's lock (chapter 06 reads 03's sets: not in the plan)."""
    from softlib.tooling import plan as P

    def ancestors(c: str) -> set[str]:
        out = set(schedule.AFTER.get(c, ()))
        return out.union(*(ancestors(a) for a in out)) if out else out

    shared = {tuple(sorted(t.chapters)) for t in P.build_plan("smoke", seeds=2).tasks if len(t.chapters) > 1}
    assert shared, "the plan lists no shared entry: this test checks nothing"
    for chapters in shared:
        first, *rest = chapters
        for c in rest:
            assert first in ancestors(c), f"chapters {chapters} share an entry, but {c} does not run after {first}"
    assert "03" in schedule.AFTER["06"]


def test_critical_path_and_ready_order() -> None:
    deps = schedule.dependencies([("02", "02", 0), ("03", "03", 0), ("06", "06", 0), ("05", "05", 0), ("01", "01", 0)])
    secs = {"02": 500.0, "03": 150.0, "06": 180.0, "05": 600.0, "01": 20.0}
    cp = schedule.critical_path(deps, secs)
    assert cp == {"02": 830.0, "03": 330.0, "06": 180.0, "05": 600.0, "01": 20.0}
    assert schedule.ready(["01", "02", "03", "05", "06"], set(), deps, cp) == ["02", "05", "01"]
    assert schedule.ready(["01", "03", "05", "06"], {"02"}, deps, cp) == ["05", "03", "01"]
    # an untimed job counts UNTIMED_S; a tie keeps run order
    assert schedule.critical_path({"a": frozenset(), "b": frozenset()}, {}) == {"a": schedule.UNTIMED_S, "b": schedule.UNTIMED_S}
    assert schedule.ready(["b", "a"], set(), {"a": frozenset(), "b": frozenset()}, {"a": 1.0, "b": 1.0}) == ["b", "a"]
    with pytest.raises(SoftlibError, match="cycle"):
        schedule.critical_path({"a": frozenset({"b"}), "b": frozenset({"a"})}, {})


def test_makespan_of_the_quick_book() -> None:
    deps = schedule.dependencies([("01", "01", 0), ("02", "02", 0), ("03", "03", 0), ("04", "04", 0),
                                  ("05", "05", 0), ("06", "06", 0)])
    secs = {"01": 27.0, "02": 517.0, "03": 152.0, "04": 172.0, "05": 611.0, "06": 183.0}
    assert schedule.makespan(deps, secs, 1) == pytest.approx(sum(secs.values()))
    # two slots: 02 -> 03 -> 06 on one, 05 -> 04 -> 01 on the other
    assert schedule.makespan(deps, secs, 2) == pytest.approx(max(517 + 152 + 183, 611 + 172 + 27))
    assert schedule.makespan(deps, secs, 6) == pytest.approx(517 + 152 + 183)  # the longest chain
    # a running job holds its slot for the seconds it still needs
    assert schedule.makespan(deps, secs, 1, running={"02": 17.0}) == pytest.approx(sum(secs.values()) - 500)
    with pytest.raises(SoftlibError, match="slots must be >= 1"):
        schedule.makespan(deps, secs, 0)


def test_makespan_is_never_below_the_work_or_the_chain() -> None:
    """Any order the scheduler picks: at least total work / slots, at least the longest chain, at most the serial sum."""
    jobs = [(f"{c} s{s}", c, s) for c, s in itertools.product(("02", "03", "04", "05", "06"), range(3)) if c != "04" or s == 0]
    deps = schedule.dependencies(jobs, pooled=("02", "03", "06"))
    for k, slots in enumerate((1, 2, 3, 5)):
        secs = {label: float(10 + (7 * i + 13 * k) % 37) for i, (label, _, _) in enumerate(jobs)}
        span = schedule.makespan(deps, secs, slots)
        chain = max(schedule.critical_path(deps, secs).values())
        assert max(sum(secs.values()) / slots, chain) - 1e-9 <= span <= sum(secs.values()) + 1e-9


def test_threads_per_job_splits_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert [notebooks.threads_per_job(j) for j in (1, 2, 3, 32)] == [16, 8, 5, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice stands
    assert notebooks.threads_per_job(2) is None


def test_run_all_refuses_a_bad_jobs_count(tmp_path: Path) -> None:
    for bad in (0, -1, notebooks.MAX_JOBS + 1, 1.5, "2", True):
        with pytest.raises(SoftlibError, match="--jobs"):
            notebooks.run_all("smoke", tmp_path, ["01"], jobs=bad)
    assert notebooks.main(["run", "--only", "01", "--jobs", "0", "--out", str(tmp_path)]) == 1


# --- the parallel path, with a stand-in for papermill (it runs in the spawned worker processes) -----------------

def fake_notebook(path: Path, target: Path, params: dict, threads: int | None, log: Path) -> float:
    """Writes ``target``; refuses to start before the jobs it must wait for have written theirs."""
    seed, out = params.get("seed", 0), target.parent if params.get("seed", 0) == 0 else target.parent.parent
    ran = lambda stem, k: (out / f"{stem}.ipynb" if k == 0 else out / "seeds" / f"{stem}-seed{k}.ipynb").exists()  # noqa: E731
    after = {"03": "02_logit_distributions", "04": "02_logit_distributions", "06": "03_detectors"}
    if path.stem[:2] in after and not ran(after[path.stem[:2]], seed):
        raise notebooks.NotebookFailed(f"{path.stem} seed {seed} started before {after[path.stem[:2]]}")
    if seed == 0 and path.stem in notebooks.SEED_REPLICATED and not all(ran(path.stem, k) for k in (1, 2)):
        raise notebooks.NotebookFailed(f"{path.stem} started before its replicates")
    if params.get("fail_on") == path.stem:
        raise notebooks.NotebookFailed(f"notebook {path.name} failed in cell 3 (ValueError: boom)")
    log.write_text("progress 3/3\r")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"threads": threads, "pid": os.getpid()}))
    return 1.0


def _queue(tmp_path: Path, extra: dict | None = None) -> list:
    paths = notebooks.notebook_paths(["01", "02", "03", "04", "05", "06"])
    return notebooks._jobs(paths, "smoke", tmp_path, extra or {}, seeds=3, fresh_seeds=True)


def test_parallel_runner_keeps_the_order_and_runs_every_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    queue = _queue(tmp_path)
    timings, failure = notebooks._run_parallel(queue, 2, "smoke", tmp_path, {}, "", tmp_path / "run.log",
                                               worker=fake_notebook)
    assert failure is None and sorted(t.notebook for t in timings) == sorted(j[0] for j in queue)
    outs = [json.loads(j[2].read_text()) for j in queue]
    assert {o["threads"] for o in outs} == {1}  # two at a time on two cores: one thread each
    assert 1 <= len({o["pid"] for o in outs}) <= 2 and os.getpid() not in {o["pid"] for o in outs}  # in the workers
    assert (tmp_path / "logs" / "03_detectors.log").read_bytes() == b"progress 3/3\r"
    assert f"{len(queue)} notebooks, 2 at a time, 1 thread(s) each" in (tmp_path / "run.log").read_text()


def test_parallel_runner_stops_starting_after_a_failure(tmp_path: Path) -> None:
    queue = _queue(tmp_path, {"fail_on": "02_logit_distributions"})
    timings, failure = notebooks._run_parallel(queue, 2, "smoke", tmp_path, {}, "", tmp_path / "run.log",
                                               worker=fake_notebook)
    assert isinstance(failure, notebooks.NotebookFailed) and "boom" in str(failure)
    ran = {t.notebook for t in timings}
    # every seed-0 job of 02 failed or never started, and nothing that waits on a failure ran
    assert not (ran & {"03_detectors", "04_overoptimization_transferability", "06_adaptive_attacks"})
    assert [t.ok for t in timings if t.notebook == "02_logit_distributions (seed 1)"] == [False]
    assert "not started after the failure" in (tmp_path / "run.log").read_text()


def test_last_line_reads_a_progress_bar(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert notebooks._last_line(log) == ""  # not written yet
    log.write_text("warming up\ntrain:  10%|#  | 1/10\rtrain:  20%|## | 2/10\r")
    assert notebooks._last_line(log) == "train:  20%|## | 2/10"
    assert len(notebooks._last_line(log, width=5)) == 5
