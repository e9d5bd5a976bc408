"""Running the book's notebooks: execute with papermill, time, pair with jupytext.

``python -m softlib.tooling.notebooks run --profile quick --out book/chapters`` executes
every ``notebooks/NN_*.ipynb`` headless with ``-p profile <profile>``, writes the
executed copies where the Jupyter Book picks them up, prints a per-notebook
timing table and writes it to ``results/timings-<profile>.json``. A notebook
that fails stops the build with the notebook's name and the failing cell.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from softlib.paths import REPO_ENV, repo_root
from softlib.profiles import PROFILES
from softlib.validate import SoftlibError, check_choice


def notebooks_dir() -> Path:
    """``notebooks/`` of the repository (:func:`softlib.paths.repo_root`)."""
    return repo_root() / "notebooks"


def _chapter_key(name: str) -> str:
    """``3``, ``03``, ``03_detectors``, ``03_detectors.ipynb``, ``notebooks/03_detectors.py`` -> a stem prefix."""
    stem = Path(name).name
    for suffix in (".ipynb", ".py"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem.zfill(2) if stem.isdigit() else stem


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    """The chapter notebooks (``NN_*.ipynb``), optionally only those named in ``only``.

    A name is a chapter number (``3``, ``03``), a notebook's stem or file name; every
    name must match a notebook (a typo is refused, not skipped).
    """
    paths = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if only is None:
        return paths
    if isinstance(only, (str, bytes)) or not isinstance(only, (list, tuple)):
        raise SoftlibError(f"only must be a list of chapter numbers or names, got {only!r}")
    if not only:
        raise SoftlibError(f"--only needs at least one chapter number or name; available: {[p.stem for p in paths]}")
    chosen: list[Path] = []
    for o in only:
        if not isinstance(o, (str, int)) or isinstance(o, bool) or not str(o).strip():
            raise SoftlibError(f"--only got an empty or invalid chapter name {o!r}; available: {[p.stem for p in paths]}")
        key = _chapter_key(str(o).strip())
        match = [p for p in paths if p.stem == key or p.stem.startswith(key + "_")]
        if not match:
            raise SoftlibError(f"no notebook matches {o!r}; available: {[p.stem for p in paths]}")
        chosen += [p for p in match if p not in chosen]
    return sorted(chosen)


#: Folders the kernels read from the environment: made absolute before a kernel starts, since the
#: kernel runs in notebooks/ and would resolve a relative path there, not where the command was typed.
#: chapters whose verdicts pool training seeds, and the parameters of their seed replicates
#: (the replicates only need the claims: chapter 02 skips its other-models section, 03 the later detectors,
#: 06 its steps curve)
SEED_REPLICATED: dict[str, dict[str, Any]] = {
    "02_logit_distributions": {"other_models": False},
    "03_detectors": {"modern": []},
    "04_overoptimization_transferability": {},
    "06_adaptive_attacks": {"curve_detectors": []},
}


def replicate_key(chapter: str, params: dict[str, Any], profile: str, seed: int) -> str:
    """The key of the networks a seed-``seed`` run of ``chapter`` with ``params`` trains (nothing is trained):
    a recorded replicate is pooled only when it was recorded for these (:func:`recorded_replicate`)."""
    from softlib import zoo

    if chapter == "04_overoptimization_transferability":  # three networks per seed
        from softlib.chapters.ch04.settings import models_key

        return models_key(str(params.get("setting", "auto")), profile, seed)
    data_param = "in_distribution" if chapter == "03_detectors" else "dataset"  # chapter 06: 03's CNN, no parameters
    return zoo.model_key(str(params.get("arch", "cnn")), str(params.get(data_param, "mnist")), profile, seed)
PATH_VARS = ("SOFTLIB_DATA", "SOFTLIB_CACHE", "SOFTLIB_RESULTS", "SOFTLIB_RESCUE")
#: the chapters whose seed-0 run pools its replicates (their two-digit prefixes)
SEED_REPLICATED_KEYS = tuple(c[:2] for c in SEED_REPLICATED)


def absolutize_env() -> None:
    """Make every SOFTLIB_* folder variable absolute (relative to the current folder)."""
    for var in PATH_VARS:
        v = os.environ.get(var)
        if v:
            os.environ[var] = str(Path(v).expanduser().absolute())


@dataclass
class Timing:
    """Wall time of one executed notebook."""

    notebook: str
    seconds: float
    ok: bool


class NotebookFailed(SoftlibError):
    """A notebook raised: carries its name and the failing cell."""


def execute(path: Path, out: Path, parameters: dict[str, Any], *, cwd: Path | None = None,
            timeout: int | None = None, stderr: TextIO | None = None) -> float:
    """Execute one notebook with papermill; return its wall time in seconds.

    The kernel's stderr (progress bars, warnings) goes to ``stderr`` (default: this terminal's).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out.parent.mkdir(parents=True, exist_ok=True)
    absolutize_env()
    # the kernel inherits our environment: make `import softlib` and softlib.paths find this checkout
    root = repo_root()
    os.environ[REPO_ENV] = str(root)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(root) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(root), *[p for p in paths if p]])
    # figures must be captured as outputs: an inherited MPLBACKEND=Agg would silence plt.show()
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    t0 = time.perf_counter()
    try:
        # the kernel's stderr (tqdm bars, warnings) streams to this terminal as it comes ...
        pm.execute_notebook(str(path), str(out), parameters=parameters, kernel_name="python3",
                            cwd=str(cwd or path.parent), progress_bar=False, execution_timeout=timeout,
                            log_output=False, stderr_file=stderr or sys.stderr)
    except PapermillExecutionError as exc:
        raise NotebookFailed(
            f"notebook {path.name} failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
            f"the executed copy with the traceback is {out}"
        ) from None
    seconds = time.perf_counter() - t0
    tidy_outputs(out)  # ... and stays out of the page
    return seconds


#: Output types a reader's page does not show: text on stderr (progress bars, warnings,
#: which carry absolute paths) and widget progress bars (tqdm.auto when ipywidgets is installed).
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def tidy_outputs(path: Path) -> int:
    """Drop stderr and widget outputs from an executed notebook; hide papermill's injected cell.

    The terminal that ran the notebook has already shown them (``execute`` streams the
    kernel's stderr there). Papermill's ``injected-parameters`` cell gets the ``remove-cell``
    tag: the page says which profile ran in its own words. Returns the number of outputs dropped.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    dropped = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
        kept = [o for o in cell.get("outputs", [])
                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")
                and _WIDGET_MIME not in o.get("data", {})]
        dropped += len(cell.get("outputs", [])) - len(kept)
        cell.outputs = kept
    nbformat.write(nb, str(path))
    return dropped


def _previous_seconds(profile: str) -> tuple[dict[str, float], str]:
    """Per-notebook seconds of the last recorded build of ``profile`` (for an ETA), if any, and which build.

    With an empty model cache (a fresh clone) the recorded *cold* build (``timings-<profile>-cold.json``)
    is the better guess, when there is one: the last build recorded is usually a warm one.
    """
    from softlib.cache import cache_root
    from softlib.paths import results_dir

    def read(name: str) -> dict[str, float]:
        try:
            d = json.loads((results_dir() / name).read_text())
            return {t["notebook"]: float(t["seconds"]) for t in d.get("notebooks", []) if t.get("ok", True)}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    try:
        cold = not any((cache_root() / "models").glob("*.safetensors"))
    except (OSError, SoftlibError):
        cold = False
    if cold and (seconds := read(f"timings-{profile}-cold.json")):
        return seconds, f"the recorded cold {profile} build"
    return read(f"timings-{profile}.json"), f"last recorded {profile} build"


def _say(msg: str, log: Path | None) -> None:
    line = f"{time.strftime('%H:%M:%S')} {msg}"
    print(line, flush=True)
    if log is not None:
        with open(log, "a") as f:
            f.write(line + "\n")


def recorded_replicate(chapter: str, profile: str, seed: int, params: dict[str, Any]) -> str | None:
    """The commit of the recorded seed replicate of ``chapter`` for this recipe, or None if there is none.

    A replicate counts when ``results/<profile>/seeds/<chapter>-seed<k>.json`` holds claims and was
    recorded for the model these parameters train (its cache key: recipe, profile sizes, data set
    and seed); the chapter pools exactly those (:func:`softlib.tooling.record.seed_replicates`).
    """
    from softlib.tooling.record import read_replicate, replicate_matches

    try:  # an unreadable record is run again (and overwritten), not pooled
        run = read_replicate(chapter, profile, seed)
        key = replicate_key(chapter, params, profile, seed)
    except SoftlibError:
        return None
    return str(run.get("commit", "?")) if run is not None and replicate_matches(run, key) else None


def _jobs(paths: list[Path], profile: str, out_dir: Path, extra: dict[str, Any],
          seeds: int, fresh_seeds: bool = False,
          log: Path | None = None,
          replicates: list[int] | None = None) -> list[tuple[str, Path, Path, dict[str, Any]]]:
    """(label, notebook, output, parameters) in execution order: a chapter's seed replicates first.

    A replicate already recorded for the same recipe (:func:`recorded_replicate`) is not run again
    unless ``fresh_seeds``: the recorded runs are the book's cache of the other seeds' verdict inputs.
    ``replicates`` (seeds >= 1): only these replicates, and no seed-0 run (a GPU node recording the
    replicates of a seed 0 recorded elsewhere; several such runs can share one GPU).
    """
    base = {"profile": profile, **extra}
    jobs = []
    for path in paths:
        if replicates is not None and path.stem not in SEED_REPLICATED:
            raise SoftlibError(f"--replicate: chapter {path.stem} has no seed replicates; "
                               f"allowed: {sorted(SEED_REPLICATED)}")
        if path.stem in SEED_REPLICATED and int(base.get("seed", 0)) == 0:
            for k in (range(1, seeds) if replicates is None else replicates):
                params = {**base, **SEED_REPLICATED[path.stem], "seed": k}
                commit = None if fresh_seeds else recorded_replicate(path.stem, profile, k, params)
                if commit is not None:
                    _say(f"[{profile}] {path.stem} (seed {k}): recorded at commit {commit} for this recipe, "
                         "pooled as recorded (--fresh-seeds runs it again)", log)
                    continue
                jobs.append((f"{path.stem} (seed {k})", path, out_dir / "seeds" / f"{path.stem}-seed{k}.ipynb", params))
        if replicates is None:
            jobs.append((path.stem, path, out_dir / path.name, base))
    return jobs


def run_all(profile: str, out_dir: Path, only: list[str] | None = None,
            extra: dict[str, Any] | None = None, seeds: int | None = None,
            fresh_seeds: bool = False, replicates: list[int] | None = None, jobs: int = 1) -> list[Timing]:
    """Execute the chapters in order; stop at the first failure (re-raised after timings are written).

    ``jobs`` > 1 runs that many notebooks at a time, in the order :mod:`softlib.tooling.schedule`
    allows, each kernel on ``cores // jobs`` BLAS/OpenMP threads (unless ``OMP_NUM_THREADS`` is set)
    with its progress in ``<out_dir>/logs/``. On 2 cores two single-threaded chapters do more work
    than one on two threads (the chapters' small convolutions do not scale to a second thread).

    Chapters whose verdicts pool training seeds (:data:`SEED_REPLICATED`) first run as seed
    replicates, seeds 1 to ``seeds`` - 1 (default: the profile's ``cnn_seeds``), into
    ``<out_dir>/seeds/``; ``seeds=1`` skips them, and a replicate already recorded for the same
    recipe is pooled as recorded unless ``fresh_seeds`` (every seed trained on this machine). Progress goes to the terminal and to
    ``<out_dir>/run-<profile>.log`` (start and end of each
    chapter, elapsed time, an ETA from the last recorded build of this profile). Each chapter
    records its numbers when it ends, and models and sets are cached (training checkpoints every
    epoch), so an interrupted run started again resumes where it stopped.
    """
    from softlib.cache import ensure_dir
    from softlib.validate import check_environment, check_int

    check_choice("profile", profile, PROFILES)
    jobs = check_int("--jobs", jobs, low=1, high=MAX_JOBS)
    seeds = PROFILES[profile].cnn_seeds if seeds is None else check_int("seeds", seeds, low=1, high=100)
    if replicates is not None:
        if not replicates:
            raise SoftlibError("--replicate: give at least one seed")
        if seeds < 2:
            raise SoftlibError(f"--replicate {replicates[0]!r}: profile {profile!r} pools 1 seed (cnn_seeds / --seeds), "
                               "so it has no seed replicates to run; allowed: --seeds 2 or more")
        # a replicate the seed-0 run would not pool is wasted work: refused before any training
        replicates = [check_int("--replicate", k, low=1, high=seeds - 1) for k in dict.fromkeys(replicates)]
        only = [c[:2] for c in SEED_REPLICATED] if only is None else only
    paths = notebook_paths(only)
    absolutize_env()
    check_environment()  # SOFTLIB_RESULTS, SOFTLIB_DEVICE...: before hours of work, not after
    out_dir = ensure_dir(Path(out_dir).absolute(), "output", None)
    write_status_pages(out_dir)
    log = out_dir / f"run-{profile}.log"
    previous, eta_source = _previous_seconds(profile)
    timings: list[Timing] = []
    failure: Exception | None = None
    t_run = time.perf_counter()
    queue = _jobs(paths, profile, out_dir, extra or {}, seeds, bool(fresh_seeds), log, replicates)
    if jobs > 1:
        timings, failure = _run_parallel(queue, jobs, profile, out_dir, previous, eta_source, log)
    for i, (label, path, target, params) in enumerate(queue if jobs == 1 else []):
        left = [previous.get(j[0]) for j in queue[i:]]
        eta = (f"; ETA {sum(left) / 60:.0f} min ({eta_source})" if all(v is not None for v in left)
               else "; no ETA (no complete recorded timing for this profile yet)")
        _say(f"[{profile}] {i + 1}/{len(queue)} executing {label} (elapsed {(time.perf_counter() - t_run) / 60:.1f} min"
             f"{eta})", log)
        try:
            secs = execute(path, target, params)
            timings.append(Timing(label, secs, True))
            _say(f"[{profile}] {label}: {secs:.1f} s", log)
        except NotebookFailed as exc:
            timings.append(Timing(label, float("nan"), False))
            _say(f"[{profile}] {label} FAILED: {exc}", log)
            failure = exc
            break
    try:
        _report(profile, timings, jobs, time.perf_counter() - t_run)
    except SoftlibError as exc:
        if failure is None:
            raise
        # never let a reporting problem hide the notebook's own failure
        raise NotebookFailed(f"{failure} (and the timings could not be written: {exc})") from None
    if failure is not None:
        raise failure
    return timings


#: the most notebooks ``--jobs`` runs at a time (each holds a kernel, its models and its sets in memory)
MAX_JOBS = 16
#: the thread-count variables a kernel's BLAS and OpenMP read at start-up
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def threads_per_job(jobs: int) -> int | None:
    """BLAS/OpenMP threads for each of ``jobs`` kernels at once: the cores split evenly (at least 1).

    None when ``OMP_NUM_THREADS`` is already set: the user's choice is kept as it is.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // jobs)


def _execute_job(path: Path, target: Path, params: dict[str, Any], threads: int | None, log: Path) -> float:
    """One notebook in a worker process of :func:`_run_parallel`: ``threads`` threads, stderr to ``log``."""
    if threads is not None:
        os.environ.update({v: str(threads) for v in THREAD_VARS})
    with open(log, "w") as f:
        return execute(path, target, params, stderr=f)


def _last_line(log: Path, width: int = 70) -> str:
    """The last progress line a kernel wrote to ``log`` (a tqdm bar redraws with carriage returns)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 2048))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [x.strip() for x in tail.replace("\r", "\n").split("\n") if x.strip()]
    return lines[-1][:width] if lines else ""


def _run_parallel(queue: list[tuple[str, Path, Path, dict[str, Any]]], jobs: int, profile: str, out_dir: Path,
                  previous: dict[str, float], eta_source: str, log: Path,
                  worker: Callable[..., float] = _execute_job) -> tuple[list[Timing], Exception | None]:
    """Run ``queue`` ``jobs`` at a time in worker processes, in :mod:`softlib.tooling.schedule`'s order.

    After a failure no other job starts; the running ones finish (their records stand). The
    terminal shows one bar over the jobs, with the running kernels' last progress lines.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    from tqdm import tqdm

    from softlib.tooling import schedule

    by_label = {j[0]: j for j in queue}
    deps = schedule.dependencies([(j[0], j[1].stem[:2], int(j[3].get("seed", 0))) for j in queue], SEED_REPLICATED_KEYS)
    priority = schedule.critical_path(deps, previous)
    threads = threads_per_job(jobs)
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pending, done = [j[0] for j in queue], set()
    running: dict[Future[float], tuple[str, float, Path]] = {}
    timings: list[Timing] = []
    failure: Exception | None = None
    t_run = time.perf_counter()
    _say(f"[{profile}] {len(queue)} notebooks, {jobs} at a time, "
         f"{'threads as OMP_NUM_THREADS says' if threads is None else f'{threads} thread(s) each'}; "
         f"each one's progress: {logs}/", log)
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool, \
            tqdm(total=len(queue), desc=f"[{profile}] notebooks", unit="nb", mininterval=2, leave=True) as bar:
        while pending or running:
            free = schedule.ready(pending, done, deps, priority) if failure is None else []
            if pending and not free and not running:  # cannot happen with schedule.dependencies; never spin
                raise SoftlibError(f"jobs {pending} wait on jobs that never run")
            for label in free[: jobs - len(running)]:
                pending.remove(label)
                _, path, target, params = by_label[label]
                now = time.perf_counter()
                left = {lab: max(0.0, previous.get(lab, schedule.UNTIMED_S) - (now - t0)) for lab, t0, _ in running.values()}
                eta = ""
                if all(k in previous for k in [*pending, label]):
                    rest = schedule.makespan({k: deps[k] for k in [*pending, label, *left]}, previous, jobs, left)
                    eta = f"; ETA {rest / 60:.0f} min ({eta_source})"
                _say(f"[{profile}] {len(queue) - len(pending)}/{len(queue)} executing {label} "
                     f"(elapsed {(now - t_run) / 60:.1f} min{eta})", log)
                job_log = logs / f"{target.stem}.log"
                running[pool.submit(worker, path, target, params, threads, job_log)] = (label, now, job_log)
            finished, _ = wait(running, timeout=2.0, return_when=FIRST_COMPLETED)  # the timeout only redraws the bar
            for fut in finished:
                label, _, job_log = running.pop(fut)
                try:
                    secs = fut.result()
                    timings.append(Timing(label, secs, True))
                    done.add(label)
                    _say(f"[{profile}] {label}: {secs:.1f} s", log)
                except Exception as exc:  # noqa: BLE001 - any job's failure stops the others starting
                    timings.append(Timing(label, float("nan"), False))
                    failure = failure or (exc if isinstance(exc, NotebookFailed) else NotebookFailed(
                        f"notebook {label} could not run ({type(exc).__name__}: {exc}); its log is {job_log}"))
                    _say(f"[{profile}] {label} FAILED: {exc}", log)
                bar.update()
            if failure is not None and pending:
                _say(f"[{profile}] not started after the failure: {', '.join(pending)}", log)
                pending.clear()
            # "04 (seed 3): <its last progress line>" per running job
            bar.set_postfix_str(" | ".join(f"{lab[:2]}{lab[lab.find(' ('):] if ' (' in lab else ''}: {_last_line(lg)}"
                                           for lab, _, lg in running.values()), refresh=False)
    return timings, failure


def write_status_pages(out_dir: Path) -> None:
    """Markdown tables the intro page includes: the profiles, and which data sets are present."""
    from softlib.data import status_rows

    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["| profile | what it is for | shortcuts against the papers |", "|---|---|---|"]
    for p in PROFILES.values():
        lines.append(f"| `{p.name}` | {p.description} | {p.shortcuts} |")
    (out_dir / "profiles.md").write_text("\n".join(lines) + "\n")
    rows = status_rows()
    lines = ["| data set | state | how it is obtained |", "|---|---|---|"]
    lines += [f"| {r['data set']} | {r['state']} | {r['source']} |" for r in rows]
    (out_dir / "data_status.md").write_text("\n".join(lines) + "\n")
    (out_dir / "recorded_runs.md").write_text(recorded_runs_page())


def recorded_runs_page() -> str:
    """A page listing the recorded key numbers per profile (``results/<profile>/*.json``), with provenance.

    The paper profile is meant for a GPU: its files are recorded there and committed, and
    this page (built on any machine) says where each number came from, or that none exist yet.
    """
    lines = ["# Recorded runs", "",
             "Each chapter writes its key numbers to `results/<profile>/<chapter>.json` "
             "(`softlib.tooling.record`). The chapters of this copy were executed live in the profile "
             "named on each page; the files below are the runs recorded in the repository, with "
             "the commit, device and wall time that produced them.", ""]
    for profile in ("paper", "quick"):
        # the chapters' records only (results/paper/ also holds time-breakdown.json, which has its own page section)
        files = sorted(f for f in (repo_root() / "results" / profile).glob("[0-9][0-9]_*.json"))
        lines.append(f"## Profile `{profile}`")
        lines.append("")
        if not files:
            lines.append(f"No `{profile}`-profile run is recorded yet"
                         + (" (it needs a GPU: `make book PROFILE=paper`, then commit `results/paper/`)."
                            if profile == "paper" else "."))
            lines.append("")
            continue
        lines += ["| chapter | commit | device | when | wall time (s) |", "|---|---|---|---|---|"]
        for f in files:
            d = json.loads(f.read_text())
            wall = d.get("wall_s")
            lines.append(f"| {d.get('chapter', f.stem)} | `{d.get('commit', '?')}` | {d.get('device', '?')} | "
                         f"{d.get('when', '?')} | {'' if wall is None else f'{wall:.0f}'} |")
        lines.append("")
    timing = repo_root() / "results" / "timings-quick.json"
    if timing.exists():
        t = json.loads(timing.read_text())
        lines += [f"Latest recorded quick build: {t['total_s']:.0f} s of notebook execution on {t['device']} "
                  f"(commit `{t['commit']}`).", ""]
    return "\n".join(lines)


def _report(profile: str, timings: list[Timing], jobs: int = 1, wall: float | None = None) -> None:
    from softlib.cache import atomic_write_json
    from softlib.paths import results_dir
    from softlib.tooling.record import device_label, git_commit

    total = sum(t.seconds for t in timings if t.ok)
    print(f"\n{'notebook':40s} {'seconds':>9s}")
    for t in timings:
        print(f"{t.notebook:40s} {t.seconds:9.1f}" + ("" if t.ok else "  FAILED"))
    print(f"{'total':40s} {total:9.1f}" + ("" if wall is None or jobs == 1 else f"  ({wall:.1f} s of wall time, {jobs} at a time)")
          + "\n")
    # a run of some chapters keeps the others' last timings (each entry says when and where it ran)
    now, dev, commit = time.strftime("%Y-%m-%dT%H:%M:%S"), device_label(), git_commit()
    # "jobs": the notebooks run at a time (each then on its share of the cores), which its seconds depend on
    rows = {t.notebook: {**t.__dict__, "when": now, "device": dev, "commit": commit, "jobs": jobs} for t in timings}
    try:
        old = json.loads((results_dir() / f"timings-{profile}.json").read_text()).get("notebooks", [])
        rows = {**{o["notebook"]: o for o in old if isinstance(o, dict) and "notebook" in o}, **rows}
    except (OSError, ValueError, AttributeError):
        pass
    record = {"profile": profile, "commit": commit, "device": dev, "platform": platform.platform(),
              "when": now, "total_s": sum(r["seconds"] for r in rows.values() if r.get("ok")),
              **({} if wall is None else {"wall_s": wall, "jobs": jobs}),
              "notebooks": sorted(rows.values(), key=lambda r: r["notebook"])}
    atomic_write_json(results_dir() / f"timings-{profile}.json", record)


def sync() -> None:
    """Re-pair every ``notebooks/NN_*.py`` into an output-free ``.ipynb`` with the python3 kernelspec.

    Cell ids are derived from each cell's content (not random), and a notebook is rewritten
    only when it changes: regenerating an unchanged chapter leaves git (and merges) quiet.
    """
    import hashlib

    import jupytext
    import nbformat

    for py in sorted(notebooks_dir().glob("[0-9][0-9]_*.py")):
        nb = jupytext.read(py)
        nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
        seen: set[str] = set()
        for i, cell in enumerate(nb.cells):
            digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()
            cid = digest[:8] if digest[:8] not in seen else hashlib.sha1(f"{i}{digest}".encode()).hexdigest()[:8]
            seen.add(cid)
            cell["id"] = cid
            if cell.cell_type == "code":
                cell["outputs"], cell["execution_count"] = [], None
        text = nbformat.writes(nbformat.v4.upgrade(nb) if nb.nbformat < 4 else nb)
        target = py.with_suffix(".ipynb")
        if target.exists() and target.read_text() == text + "\n" or target.exists() and target.read_text() == text:
            continue
        target.write_text(text + "\n")
        print(f"paired {py.name} -> {target.name}")


def bench() -> None:
    """Run every ``benchmarks/bench_*.py`` (each prints its table and writes results/bench-<device>.json)."""
    root = repo_root()
    for script in sorted((root / "benchmarks").glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        subprocess.run([sys.executable, str(script)], check=True, cwd=root)


def main(argv: list[str] | None = None) -> int:
    """``python -m softlib.tooling.notebooks {run,sync,bench}``."""
    parser = argparse.ArgumentParser(prog="python -m softlib.tooling.notebooks")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the chapter notebooks with papermill")
    r.add_argument("--profile", default="quick")
    r.add_argument("--out", type=Path, default=None, help="default: book/chapters in the repository")
    r.add_argument("--only", nargs="*", default=None, help="chapter numbers or names (default: all)")
    r.add_argument("--seeds", type=int, default=None,
                   help="training seeds behind chapters 02, 03, 04 and 06's verdicts (default: the profile's cnn_seeds; "
                        "1 skips the seed replicates)")
    r.add_argument("--fresh-seeds", action="store_true",
                   help="run every seed replicate here, even one recorded for the same recipe in results/<profile>/seeds/")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help=f"notebooks run at a time, each on its share of the cores (1 to {MAX_JOBS}; default 1)")
    r.add_argument("--replicate", type=int, nargs="+", default=None, metavar="K",
                   help="run only the seed-K replicates (1 <= K < seeds) of the chosen chapters, not their seed 0: "
                        "e.g. one GPU process per seed, for a seed 0 recorded on another machine")
    sub.add_parser("sync", help="pair notebooks/*.py -> *.ipynb")
    sub.add_parser("bench", help="run the benchmarks")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "run":
            run_all(args.profile, args.out or repo_root() / "book" / "chapters", args.only, seeds=args.seeds,
                    fresh_seeds=args.fresh_seeds, replicates=args.replicate, jobs=args.jobs)
        elif args.cmd == "sync":
            sync()
        else:
            bench()
    except SoftlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
