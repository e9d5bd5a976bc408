"""Build the book's cache entries as a Dask task graph, from one laptop to a GPU cluster.

``python -m softlib.tooling.prebuild --profile quick --workers 2`` runs :func:`softlib.tooling.plan.build_plan`'s
graph on a ``LocalCluster`` (one single-threaded worker process each); ``--scheduler
tcp://host:8786`` uses a running cluster instead (README, "Running on a cluster"); ``--serial``
runs the same tasks one after the other in this process (the baseline). The notebooks then only
read the cache (``make book``).

Two ways to share results:

- ``--share fs`` (default): workers read and write the cache folder, a shared filesystem on a
  cluster. Each entry is published atomically under its file lock (:mod:`softlib.cache`), so
  two clients (or two graphs) asking for the same entry build it once.
- ``--share bytes``: no shared filesystem. A worker builds into a private cache folder of its
  own, returns the entry's bytes (payload and sidecar) with its result, and the client checks
  the payload's SHA-256 against the sidecar and publishes both atomically into its cache.
  Dependencies travel the same way: a set task receives its model's bytes from the model task.

Faults: a worker that dies mid-task has published nothing (the sidecar is written last);
Dask's scheduler reruns the task on another worker, and ``--retries`` reruns a task that raised.
The Dask key of a task is its plan id (``model-<cache key>``...), so two clients submitting the
same graph to one scheduler share the tasks, and the file lock covers two schedulers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from softlib import cache
from softlib.cache import Entry, atomic_write, atomic_write_json, cache_root, entry_lock, sha256_file
from softlib.profiles import PROFILES
from softlib.tooling.plan import CHAPTERS, KINDS, CliParser, Plan, Task, build_plan, cli_int, device_name
from softlib.validate import SoftlibError, check_choice

SHARES = ("fs", "bytes")
#: Env var, tests only: the path of a marker file. A model task's training writes its pid there
#: after its first optimizer step and then blocks until killed; later attempts (marker present) train on.
PAUSE_ENV = "SOFTLIB_PREBUILD_PAUSE"
#: Log of publications by workers (fs share) or the client (bytes share), one JSON line each.
LOG_NAME = "prebuild-log.jsonl"


# ------------------------------------------------------------------ executing one task (on a worker)


def execute(task: Task, profile: str) -> str | None:
    """Build ``task``'s entry with the same calls the notebooks make (cache hits are no-ops).

    Returns the entry's cache key when the plan could not know it (transfer), else None.
    """
    from softlib import sets, zoo
    from softlib.chapters.ch04 import runner, settings
    from softlib.chapters.ch05 import lambda_grid, outcomes

    c = task.call

    def model(call: dict[str, Any] | None) -> Any:
        return None if call is None else zoo.get_model(call["arch"], call["dataset"], profile, call["seed"],
                                                       **call["kw"])

    if task.kind == "model":
        model(c)
    elif task.kind == "set":
        sets.get_set(c["name"], model(c["model"]), profile=profile, n=c["n"], part=c["part"], dataset=c["dataset"],
                     seed=c["seed"])
    elif task.kind == "robustness":
        x, y = lambda_grid.eval_subset(c["dataset"], c["n"], train=False, seed=c["seed"])
        from softlib.profiles import get_profile

        outcomes.adversarial_outputs(model(c["model"]), x, y, attack=c["attack"], eps=c["eps"], loss=c["loss"],
                                steps=c["steps"], seed=c["seed"], batch_size=get_profile(profile).eval_batch)
    elif task.kind == "transfer":
        st = settings.load_setting(c["setting"], profile, seed=c["seed"], n=c["n"], progress=False)
        _, meta = runner.transfer_experiment(st, iters=c["iters"], seed=c["seed"], pixel_units=c["pixel_units"],
                                               eval_every=c["eval_every"], progress=False)
        return str(meta["key"])
    else:  # pragma: no cover - plan.KINDS is closed
        raise SoftlibError(f"unknown task kind {task.kind!r}")
    return None


@contextlib.contextmanager
def _record_publications() -> Iterator[list[dict[str, Any]]]:
    """Every :meth:`Entry.publish` in this process while inside (what this task really built)."""
    published: list[dict[str, Any]] = []
    original = cache.Entry.publish

    def publish(self: Entry, write_payload: Any, meta: dict[str, Any]) -> dict[str, Any]:
        out = original(self, write_payload, meta)
        published.append({"folder": self.kind, "key": self.key, "payload": self.payload.name})
        return out

    cache.Entry.publish = publish  # type: ignore[method-assign]
    try:
        yield published
    finally:
        cache.Entry.publish = original  # type: ignore[method-assign]


def warm_up() -> None:
    """Import what tasks use (torch, its deterministic-mode machinery, softlib's builders) in this process.

    ``client.run(warm_up)``: a cold worker spends seconds on imports in its first task (tests
    warm their workers so that what they time and wait for is the task itself).
    """
    import torch

    from softlib import sets, zoo  # noqa: F401
    from softlib.chapters.ch04 import runner, settings  # noqa: F401
    from softlib.chapters.ch05 import lambda_grid, outcomes  # noqa: F401

    torch.use_deterministic_algorithms(torch.are_deterministic_algorithms_enabled())  # imports torch._inductor


def set_env(name: str, value: str | None) -> None:
    """Set (or, with None, unset) an environment variable in this process: ``client.run(set_env, ...)``."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def release_path(marker: Path) -> Path:
    """The file a test creates to let a training paused by :data:`PAUSE_ENV` go on (``<marker>.release``)."""
    return marker.with_name(marker.name + ".release")


@contextlib.contextmanager
def _pause_hook() -> Iterator[None]:
    """Tests: pause after the first optimizer step when :data:`PAUSE_ENV` names a marker not yet written.

    The paused process has written its pid to the marker and holds the entry's file lock; it
    waits until it is killed or :func:`release_path` appears (then it trains on), at most 2 minutes.
    """
    marker = os.environ.get(PAUSE_ENV)
    if not marker:
        yield
        return
    from torch.optim.optimizer import register_optimizer_step_post_hook

    marker_path = Path(marker)
    if not marker_path.parent.is_dir():
        raise SoftlibError(f"{PAUSE_ENV}={marker!r}: its folder does not exist")

    def hook(opt: Any, args: Any, kwargs: Any) -> None:
        if marker_path.exists():
            return
        atomic_write(marker_path, lambda tmp: tmp.write_text(str(os.getpid())))
        for _ in range(1200):  # a hang guard: the test kills or releases this process long before
            if release_path(marker_path).exists():
                return
            time.sleep(0.1)
        raise SoftlibError(f"{PAUSE_ENV}: paused training was neither killed nor released within 2 minutes")

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _log(root: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOG_NAME, "a") as f:  # O_APPEND: one short line per write, lines do not interleave
        for r in records:
            f.write(json.dumps(r) + "\n")


def _entry_files(folder: str, key: str, payload: str) -> dict[str, bytes]:
    base = cache_root() / folder
    return {"folder": folder, "key": key, "payload_name": payload,  # type: ignore[dict-item]
            "payload": (base / payload).read_bytes(), "sidecar": (base / f"{key}.json").read_bytes()}


def _install(files: dict[str, Any], root: Path) -> bool:
    """Publish an entry's bytes into the cache at ``root``: hash-checked, payload then sidecar, atomic, locked.

    Returns True when it was written, False when a valid copy was already there.
    """
    meta = json.loads(files["sidecar"])
    with _env("SOFTLIB_CACHE", str(root)):
        suffix = files["payload_name"][len(files["key"]):]
        entry = Entry(files["folder"], files["key"], suffix)
        if entry.read_valid() is not None:
            return False
        with entry_lock(files["folder"], files["key"]):
            if entry.read_valid() is not None:
                return False
            entry.sidecar.unlink(missing_ok=True)
            atomic_write(entry.payload, lambda tmp: tmp.write_bytes(files["payload"]))
            if sha256_file(entry.payload) != meta.get("sha256"):
                entry.remove()
                raise SoftlibError(f"entry {files['folder']}/{files['key']} arrived damaged (SHA-256 mismatch)")
            atomic_write(entry.sidecar, lambda tmp: tmp.write_bytes(files["sidecar"]))
    return True


def _private_root() -> str:
    """Bytes share: this worker's own cache folder (the Dask worker's local directory, removed with it)."""
    try:
        from distributed import get_worker

        base = get_worker().local_directory
    except (ImportError, ValueError):  # not on a Dask worker (a test calling run_task directly)
        base = tempfile.gettempdir()
    return os.path.join(base, f"softlib-prebuild-{os.getpid()}")


def run_task(task: Task, profile: str, share: str, root: str, *deps: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: build ``task`` into the cache at ``root`` (fs) or a private one (bytes); a small report.

    ``deps`` are the reports of the tasks it depends on (bytes share: they carry their entries).
    The report's ``published`` lists every entry this run wrote, its intermediate ones too
    (an attack's resumable ``set-chunks``); ``entries`` (bytes share) carries only the task's own
    entry, the one its dependants and the notebooks read.
    """
    t0 = time.perf_counter()
    if share == "bytes":  # a private cache per worker process: nothing shared but what travels with results
        root = _private_root()
        for d in deps:
            for files in d.get("entries", []):
                _install(files, Path(root))
    with _env("SOFTLIB_CACHE", root), _record_publications() as published, _pause_hook():
        key = execute(task, profile) or task.key
        entry = None if key is None else Entry(task.folder, key, KINDS[task.kind][1])
        if entry is None or entry.read_valid() is None:
            raise SoftlibError(f"task {task.id} ({task.label}) ran but its planned entry {task.folder}/{key} "
                               "is not in the cache: softlib.tooling.plan and the code that builds it disagree on the key")
        report = {"id": task.id, "kind": task.kind, "key": key, "built": any(p["key"] == key for p in published),
                  "published": published, "pid": os.getpid(), "host": socket.gethostname(),
                  "wall_s": time.perf_counter() - t0, "device": device_name()}
        if share == "fs":
            _log(Path(root), [{**p, "pid": os.getpid(), "host": report["host"], "task": task.id} for p in published]
                 + [_task_record(report)])
        else:  # its own entry, built or found in the private cache: the client may not have it
            report["entries"] = [_entry_files(task.folder, key, entry.payload.name)]
    return report


def _task_record(report: dict[str, Any]) -> dict[str, Any]:
    """The log line of one finished task: its wall time and device (``softlib.tooling.plan`` reads H100 ones as costs)."""
    return {"record": "task", "task": report["id"], "kind": report["kind"], "built": report["built"],
            "wall_s": round(report["wall_s"], 3), "device": report["device"], "host": report["host"],
            "pid": report["pid"]}


def _cached_report(task: Task, share: str) -> dict[str, Any]:
    """The report of a task whose entry the client already has (bytes share: with its bytes)."""
    rep: dict[str, Any] = {"id": task.id, "kind": task.kind, "built": False, "published": [], "cached": True}
    if share == "bytes":
        e = task.entry()
        assert e is not None
        rep["entries"] = [_entry_files(task.folder, task.key or "", e.payload.name)]
    return rep


def submit(client: Any, plan: Plan, *, share: str = "fs", retries: int = 2,
           resources: dict[str, float] | None = None) -> dict[str, Any]:
    """Submit ``plan`` to a ``distributed.Client``; return ``{task id: future}``.

    Tasks whose entry the client's cache already holds are not submitted (their reports are
    scattered when a dependent task needs them, bytes share).
    """
    check_choice("share", share, SHARES)
    root = str(cache_root())
    futures: dict[str, Any] = {}
    for t in plan.tasks:
        if t.key is not None and t.entry().read_valid() is not None:  # type: ignore[union-attr]
            if share == "bytes" and any(t.id in u.deps for u in plan.tasks):
                futures[t.id] = client.scatter(_cached_report(t, share), hash=False)
            continue
        deps = [futures[d] for d in t.deps if d in futures]
        futures[t.id] = client.submit(run_task, t, plan.profile, share, root, *deps, key=t.id, retries=retries,
                                      pure=False, resources=resources if t.kind != "set" or t.deps else None)
    return futures


def run_dask(plan: Plan, *, client: Any, share: str = "fs", retries: int = 2,
             resources: dict[str, float] | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run ``plan`` on ``client``; publish bytes-share entries as they arrive; the task reports."""
    from distributed import as_completed

    futures = submit(client, plan, share=share, retries=retries, resources=resources)
    ids = {t.id for t in plan.tasks}
    mine = [f for k, f in futures.items() if k in ids and hasattr(f, "key") and f.key == k]
    reports = []
    root = cache_root()
    done = 0
    for fut in as_completed(mine):
        rep = fut.result()
        if share == "bytes":
            written = [_install(files, root) for files in rep.pop("entries", [])]
            rep["published_by_client"] = sum(written)
            _log(root, ([{"task": rep["id"], "by": "client", "pid": os.getpid(), "host": socket.gethostname()}]
                        if any(written) else []) + [_task_record(rep)])
        reports.append(rep)
        done += 1
        if progress:
            print(f"[{done}/{len(mine)}] {rep['id']} {'built' if rep['built'] else 'hit'} "
                  f"on {rep['host']} in {rep['wall_s']:.1f} s", flush=True)
    return reports


def run_serial(plan: Plan, *, progress: bool = True) -> list[dict[str, Any]]:
    """The same tasks in this process, dependencies first (the baseline of the measured ratio)."""
    reports = []
    root = str(cache_root())
    for i, t in enumerate(plan.tasks, 1):
        if t.key is not None and t.entry().read_valid() is not None:  # type: ignore[union-attr]
            continue
        rep = run_task(t, plan.profile, "fs", root)
        reports.append(rep)
        if progress:
            print(f"[{i}/{len(plan.tasks)}] {rep['id']} {'built' if rep['built'] else 'hit'} in {rep['wall_s']:.1f} s",
                  flush=True)
    return reports


@contextlib.contextmanager
def local_client(workers: int, *, memory_limit: str = "auto", processes: bool = True) -> Iterator[Any]:
    """A ``LocalCluster`` of ``workers`` single-threaded worker processes (torch threads: 1 each).

    ``processes=False``: worker threads in this process (tests: no start-up imports).
    """
    from distributed import Client, LocalCluster

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the worker processes
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes, memory_limit=memory_limit,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def main(argv: list[str] | None = None) -> int:
    ap = CliParser(prog="python -m softlib.tooling.prebuild", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick", help=f"one of {sorted(PROFILES)}")
    ap.add_argument("--seeds", default="1", help="seeds 0..N-1 (default 1)")
    ap.add_argument("--chapters", nargs="*", default=None, help=f"subset of {list(CHAPTERS)}")
    ap.add_argument("--kinds", nargs="*", default=None, help=f"only these kinds (and their deps): {list(KINDS)}")
    ap.add_argument("--workers", default="2", help="LocalCluster worker processes (ignored with --scheduler)")
    ap.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://head:8786")
    ap.add_argument("--share", default="fs", help=f"how results reach the client's cache: {list(SHARES)}")
    ap.add_argument("--retries", default="2", help="reruns of a task that raised (Dask retries)")
    ap.add_argument("--gpu-resource", action="store_true",
                    help="ask for resource GPU=1 per model / attack task (start workers with --resources GPU=1)")
    ap.add_argument("--serial", action="store_true", help="no Dask: run the tasks one by one in this process")
    ap.add_argument("--report", default=None, help="write a JSON summary (wall time, tasks built) to this file")
    try:
        args = ap.parse_args(argv)
        check_choice("--share", args.share, SHARES)
        check_choice("--profile", args.profile, PROFILES)
        seeds = cli_int("--seeds", args.seeds, low=1, high=100)
        workers = cli_int("--workers", args.workers, low=1, high=1024)
        retries = cli_int("--retries", args.retries, low=0, high=100)
        for k in args.kinds or []:
            check_choice("--kinds", k, KINDS)
        if args.scheduler is not None and "://" not in args.scheduler:
            raise SoftlibError(f"--scheduler must be an address like tcp://host:8786, got {args.scheduler!r}")
        if args.serial and args.scheduler:
            raise SoftlibError(f"--serial runs in this process: it cannot also use --scheduler {args.scheduler!r}")
        if args.report and not Path(args.report).expanduser().absolute().parent.is_dir():
            raise SoftlibError(f"--report {args.report!r}: its folder does not exist")
        plan = build_plan(args.profile, seeds, args.chapters)
        if args.kinds:
            plan = plan.select(kinds=tuple(args.kinds))
    except SoftlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"prebuild: profile {plan.profile!r}, {len(plan.tasks)} tasks {plan.counts()}, cache {cache_root()}",
          flush=True)
    t0 = time.perf_counter()
    resources = {"GPU": 1} if args.gpu_resource else None
    if args.serial:
        import torch

        reports, how = run_serial(plan), f"serial, torch threads {torch.get_num_threads()}"
    elif args.scheduler:
        from distributed import Client

        with Client(args.scheduler) as client:
            reports, how = run_dask(plan, client=client, share=args.share, retries=retries,
                                    resources=resources), f"scheduler {args.scheduler}"
    else:
        with local_client(workers) as client:
            reports, how = run_dask(plan, client=client, share=args.share, retries=retries,
                                    resources=resources), f"LocalCluster, {workers} worker{'s' * (workers > 1)} x 1 thread"
    wall = time.perf_counter() - t0
    built = Counter(r["kind"] for r in reports if r["built"])
    summary = {"profile": plan.profile, "seeds": list(plan.seeds), "how": how, "share": args.share,
               "tasks": len(plan.tasks), "ran": len(reports), "built": dict(built), "wall_s": wall}
    print(f"prebuild done: wall time {wall:.1f} s ({how}, share {args.share if not args.serial else '-'}): "
          f"built {dict(built)}, {len(reports)} of {len(plan.tasks)} tasks ran (the others were cached)", flush=True)
    if args.report:
        atomic_write_json(Path(args.report), summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
