"""Which chapter notebooks may run at the same time, and which starts first (``make book JOBS=2``).

Two rules order the jobs (a job is one notebook run: a chapter at one training seed):

- a chapter that reads a cache entry an earlier chapter builds starts after that chapter, at the
  same seed (:data:`AFTER`, from :mod:`softlib.tooling.plan`: chapter 02 trains the CNN that 03 and
  04 read, and 06 reads 03's attack sets). It would be correct without the rule, since the cache's
  lock makes the reader wait, but it would hold a slot idle while it waits;
- a chapter's seed-0 run, which pools its seed replicates' records, starts after those replicates.

Among the jobs free to start, the one heading the longest chain of remaining work starts first
(list scheduling by critical path, lengths from the last recorded timings): the long
02 -> 03 -> 06 chain keeps one slot busy while chapters 05, 04 and 01 fill the other.

The order never changes a number: every job runs on the same thread count whichever slot it gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from softlib.validate import SoftlibError

#: chapter -> the chapters whose cache entries (same seed) it reads; tests/test_schedule.py checks it
#: against every entry the plan lists for more than one chapter
AFTER: dict[str, tuple[str, ...]] = {"03": ("02",), "04": ("02",), "06": ("03",)}
#: the length assumed for a job no recorded build has timed (seconds; only orders and estimates)
UNTIMED_S = 60.0


def dependencies(jobs: Sequence[tuple[str, str, int]], pooled: Iterable[str] = ()) -> dict[str, frozenset[str]]:
    """For each job ``(label, chapter, seed)``, the labels of the jobs it must wait for.

    ``chapter`` is the two-digit prefix (``"03"``); ``pooled`` names the chapters whose seed-0 run
    pools its replicates (every other job of that chapter). Only jobs in ``jobs`` are waited for: a
    chapter not being run was built before, or is built by its reader (the cache's lock orders them).
    """
    pooled = set(pooled)
    where: dict[tuple[str, int], str] = {}
    for label, chapter, seed in jobs:
        if (chapter, seed) in where:
            raise SoftlibError(f"two jobs run chapter {chapter} at seed {seed}: {where[chapter, seed]!r} and {label!r}")
        where[chapter, seed] = label
    deps: dict[str, frozenset[str]] = {}
    for label, chapter, seed in jobs:
        wait = {where[c, seed] for c in AFTER.get(chapter, ()) if (c, seed) in where}
        if seed == 0 and chapter in pooled:
            wait |= {lab for (c, s), lab in where.items() if c == chapter and s != 0}
        deps[label] = frozenset(wait)
    return deps


def critical_path(deps: Mapping[str, frozenset[str]], seconds: Mapping[str, float]) -> dict[str, float]:
    """Each job's own length plus the longest chain of jobs that wait on it (the list-scheduling priority)."""
    waiters: dict[str, list[str]] = {label: [] for label in deps}
    for label, wait in deps.items():
        for d in wait:
            waiters[d].append(label)
    out: dict[str, float] = {}

    def chain(label: str, seen: tuple[str, ...] = ()) -> float:
        if label in seen:
            raise SoftlibError(f"the jobs wait on each other in a cycle: {' -> '.join((*seen, label))}")
        if label not in out:
            tail = max((chain(w, (*seen, label)) for w in waiters[label]), default=0.0)
            out[label] = float(seconds.get(label, UNTIMED_S)) + tail
        return out[label]

    for label in deps:
        chain(label)
    return out


def ready(pending: Sequence[str], done: Iterable[str], deps: Mapping[str, frozenset[str]],
          priority: Mapping[str, float]) -> list[str]:
    """The pending jobs whose dependencies are all done, the longest chain first (ties: run order)."""
    done = set(done)
    free = [label for label in pending if deps[label] <= done]
    order = {label: i for i, label in enumerate(pending)}
    return sorted(free, key=lambda label: (-priority[label], order[label]))


def makespan(deps: Mapping[str, frozenset[str]], seconds: Mapping[str, float], slots: int,
             running: Mapping[str, float] | None = None) -> float:
    """Seconds until every job in ``deps`` is done, if each takes its recorded time, ``slots`` at a time.

    ``running`` maps the jobs already started to the seconds they still need (they hold a slot from
    the start). A dependency outside ``deps`` counts as done. The runner's ETA; orders nothing.
    """
    if slots < 1:
        raise SoftlibError(f"slots must be >= 1, got {slots!r}")
    running = dict(running or {})
    length = {label: float(seconds.get(label, UNTIMED_S)) for label in deps}
    inside = {label: frozenset(d for d in wait if d in deps) for label, wait in deps.items()}
    priority = critical_path(inside, length)
    now, done = 0.0, set()
    ends = dict(running)  # label -> time it ends
    pending = [label for label in deps if label not in running]
    while pending or ends:
        for label in ready(pending, done, inside, priority)[: max(0, slots - len(ends))]:
            pending.remove(label)
            ends[label] = now + length[label]
        if not ends:
            raise SoftlibError(f"jobs {pending} wait on jobs that never run")
        now = min(ends.values())
        for label in [lab for lab, t in ends.items() if t <= now]:
            del ends[label]
            done.add(label)
    return now
