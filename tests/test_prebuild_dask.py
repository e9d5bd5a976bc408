"""Prebuilding the cache on Dask (softlib.tooling.prebuild): a killed worker, two clients, two share modes.

A LocalCluster of two single-threaded worker processes, shared by the module's tests; each
test has its own empty cache (the ``tmp_cache`` fixture: fs-share tasks are told the client's
cache folder). Every synchronisation is on an event, never on a sleep: with
``softlib.tooling.prebuild.PAUSE_ENV`` set, a training pauses after its first optimizer step, holding
its entry's file lock, and writes its pid to a marker file; the test waits for that file, then
kills the process or creates the release file, and checks what follows.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from softlib.tooling import plan as P
from softlib.tooling import prebuild as B
from softlib.cache import cache_root

distributed = pytest.importorskip("distributed")

#: A hang guard only: every wait below ends on an event long before (a smoke CNN step is seconds).
HANG_S = 600


@pytest.fixture(scope="module")
def client():
    with B.local_client(2, memory_limit="4GiB") as c:
        c.run(B.warm_up)  # imports done once here, not inside the tests' tasks
        yield c


def _built(root: Path) -> list[str]:
    """Keys of the planned kinds' entries published into ``root`` (the log; intermediate set-chunks left out)."""
    f = root / B.LOG_NAME
    lines = [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []
    folders = {folder for folder, _ in P.KINDS.values()}
    return [r["key"] for r in lines if r.get("folder") in folders]


def _small_plan() -> P.Plan:
    """The smoke MLP (the cheapest model: a second of training) and two small sets, one of them attacking it."""
    b = P._Builder(P.get_profile("smoke"), "test")
    m = b.model("mlp", "mnist", 0)
    b.set("fgsm", m, n=16, part="test", dataset="mnist", seed=0)
    b.set("gaussian", None, n=16, part="test", dataset="mnist", seed=0)
    return P.Plan("smoke", (0,), list(b.tasks.values()))


def _model_plan() -> P.Plan:
    return P.Plan("smoke", (0,), [t for t in _small_plan().tasks if t.kind == "model"])


def _wait_for(what: str, ready, fut=None) -> None:
    """Poll ``ready()`` (a file, a scheduler state) until true; fail at once if ``fut`` ends first."""
    deadline = time.monotonic() + HANG_S
    while not ready():
        if fut is not None and fut.done():
            fut.result()  # raises the task's error
            pytest.fail(f"the task finished before {what}")
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


def test_worker_killed_mid_training_leaves_no_entry_and_the_task_reruns(client, tmp_cache, tmp_path):
    plan = _model_plan()
    marker = tmp_path / "paused.pid"
    client.run(B.set_env, B.PAUSE_ENV, str(marker))
    try:
        futures = B.submit(client, plan, share="fs", retries=0)  # no retries: a rerun is the scheduler's doing
        fut = futures[plan.tasks[0].id]
        _wait_for("training reach its first step", marker.exists, fut)
        pid = int(marker.read_text())
        entry = plan.tasks[0].entry()
        assert entry.read_valid() is None  # paused mid-training: nothing published yet
        os.kill(pid, signal.SIGKILL)
        report = fut.result(timeout=HANG_S)
    finally:
        client.run(B.set_env, B.PAUSE_ENV, None)
    meta = entry.read_valid()
    assert meta is not None and report["built"] and report["pid"] != pid
    assert meta["trained_by_pid"] == report["pid"]
    assert not list(cache_root().rglob("*.tmp"))  # the killed attempt left no partial file
    assert _built(cache_root()) == [plan.tasks[0].key]


def test_two_clients_submitting_the_same_graph_build_each_entry_once(client, tmp_cache):
    plan = _small_plan()
    other = distributed.Client(client.scheduler.address, set_as_default=False)
    try:
        fa = B.submit(client, plan, share="fs")
        fb = B.submit(other, plan, share="fs")
        ra = client.gather([fa[t.id] for t in plan.tasks])
        rb = other.gather([fb[t.id] for t in plan.tasks])
    finally:
        other.close()
    assert sorted(_built(cache_root())) == sorted(t.key for t in plan.tasks)  # every entry, each once
    assert [r["id"] for r in ra] == [r["id"] for r in rb] == [t.id for t in plan.tasks]
    assert all(r["built"] for r in ra)  # one Dask task per entry, its result shared by both clients
    assert all(t.entry().read_valid() is not None for t in plan.tasks)
    # a third submission finds everything cached: nothing runs
    assert B.run_dask(plan, client=client, progress=False) == []
    assert sorted(_built(cache_root())) == sorted(t.key for t in plan.tasks)


def test_two_schedulers_on_one_shared_cache_build_once_thanks_to_the_file_lock(client, tmp_cache, tmp_path):
    """Two independent Dask clusters (no shared scheduler): only the cache's file lock can stop a second build."""
    plan = _model_plan()
    tid = plan.tasks[0].id
    marker = tmp_path / "paused.pid"
    client.run(B.set_env, B.PAUSE_ENV, str(marker))
    try:
        # its own scheduler and worker (a thread of this process: this one has torch imported already)
        with B.local_client(1, memory_limit="2GiB", processes=False) as second:
            fa = B.submit(client, plan, share="fs")[tid]
            _wait_for("the first cluster's training hold the lock", marker.exists, fa)
            fb = B.submit(second, plan, share="fs")[tid]  # the same entry, while the first holds its lock
            _wait_for("the second cluster start the task",
                      lambda: second.run_on_scheduler(_task_state, tid) in ("processing", "memory", "erred"))
            B.release_path(marker).touch()  # the first trains on and publishes
            ra, rb = fa.result(timeout=HANG_S), fb.result(timeout=HANG_S)
    finally:
        client.run(B.set_env, B.PAUSE_ENV, None)
    assert ra["built"] and not rb["built"]  # the second waited for the lock (or found the entry) and reused it
    assert ra["pid"] != rb["pid"]
    assert _built(cache_root()) == [plan.tasks[0].key]
    assert plan.tasks[0].entry().read_valid()["trained_by_pid"] == ra["pid"]


def _task_state(key: str, dask_scheduler=None) -> str | None:
    ts = dask_scheduler.tasks.get(key)
    return None if ts is None else ts.state


def test_bytes_share_publishes_into_the_clients_cache_without_a_shared_folder(client, tmp_cache, tmp_path):
    plan = _small_plan()
    elsewhere = tmp_path / "not-shared"
    client.run(B.set_env, "SOFTLIB_CACHE", str(elsewhere))  # workers could not even see the client's folder
    try:
        reports = B.run_dask(plan, client=client, share="bytes", progress=False)
    finally:
        client.run(B.set_env, "SOFTLIB_CACHE", None)
    assert sorted(r["id"] for r in reports) == sorted(t.id for t in plan.tasks)
    assert all(r["published_by_client"] == 1 for r in reports)
    for t in plan.tasks:
        meta = t.entry().read_valid()  # payload hash checked against the sidecar
        assert meta is not None and meta["key"] == t.key
    assert not elsewhere.exists()
    f = tmp_cache / B.LOG_NAME
    lines = [json.loads(line) for line in f.read_text().splitlines()]
    assert sorted(r["task"] for r in lines if r.get("by") == "client") == sorted(t.id for t in plan.tasks)
    assert all(r.get("by") == "client" or r.get("record") == "task" for r in lines)  # no worker wrote here
    assert not (tmp_cache / "set-chunks").exists()  # only the planned entries travel


def test_bytes_share_refuses_a_damaged_entry(tmp_cache):
    files = {"folder": "sets", "key": "abc", "payload_name": "abc.npz", "payload": b"not what was hashed",
             "sidecar": json.dumps({"sha256": "0" * 64, "key": "abc"}).encode()}
    with pytest.raises(B.SoftlibError, match="damaged"):
        B._install(files, tmp_cache)
    assert not (tmp_cache / "sets" / "abc.npz").exists() and not (tmp_cache / "sets" / "abc.json").exists()


def test_cli_rejects_bad_arguments(capsys):
    for argv, name in [(["--share", "nfs"], "share"), (["--workers", "0"], "workers"),
                       (["--workers", "two"], "workers"), (["--scheduler", "head:8786"], "scheduler"),
                       (["--kinds", "tsne"], "kind"), (["--profile", "huge"], "profile"),
                       (["--seeds", "0"], "seeds"), (["--retries", "-1"], "retries"),
                       (["--chapters", "07"], "chapter"), (["--serial", "--scheduler", "tcp://h:1"], "serial")]:
        assert B.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert name in err and "Traceback" not in err, (argv, err)
