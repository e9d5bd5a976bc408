"""The offline GPU-node kit: one folder with every wheel, the data and the source of a paper run.

GPU nodes often have PyTorch and no network. ``make wheelhouse`` (here, with network)
gathers into ``build/wheelhouse/`` (at most 60 MB):

- every wheel the book's notebook run needs *beyond* what such a node has (torch,
  torchvision, numpy, scipy, scikit-learn; see :data:`NODE_HAS`): papermill and its
  kernel stack, jupytext, pandas, matplotlib, seaborn, pillow, safetensors, torchattacks,
  ... for CPython 3.11 and 3.12 on manylinux x86_64, at the versions of the environment
  that built it. Wheels are zip files; the two Python versions share most of their files,
  so the kit stores them unzipped in one solid xz archive (``wheels.tar.xz``) and the
  installer zips them back (identical files: pip checks nothing else);
- MNIST and Fashion-MNIST, xz-compressed (``data.tar.xz``), restored into the data-root
  layout :mod:`softlib.data` expects and checked against its MD5s;
- this checkout's tracked files (``source.tar.xz``) and this script (``kit.py``).

On the node, one command (stdlib only, no network)::

    python3 KIT/kit.py run --dest DEST --out OUT --profile paper

installs once (``pip --no-index --target DEST/site``, data into ``DEST/data``), then runs the
chapters in order, each as ``python -m softlib.tooling.notebooks run --only NN`` in its own process,
for at most ``--step-minutes`` (10) minutes. A chapter whose recorded numbers
(``OUT/results/<profile>/<chapter>.json``) and executed notebook (``OUT/chapters/``) exist
is skipped, so the same command resumes: it exits 0 once every chapter is done, 75 when the
step's time ran out (run it again: models and sets already built are cached in
``OUT/cache``), 1 on an error. ``OUT/kit-state.json`` keeps per-chapter wall times and attempts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

#: What the node is assumed to have (the heavy, CUDA-specific part): not in the kit.
NODE_HAS = ("torch", "torchvision", "numpy", "scipy", "scikit-learn")

#: What the notebooks and softlib import beyond NODE_HAS (their dependencies come along).
KIT_ROOTS = ("papermill", "nbclient", "nbformat", "jupyter_client", "ipykernel", "ipython", "matplotlib-inline",
             "jupytext", "pandas", "matplotlib", "seaborn", "pillow", "tqdm", "safetensors", "filelock")

#: Installed with --no-deps (it pins requests~=2.25.1, see the Makefile): its real needs are above.
NO_DEPS = ("torchattacks==3.5.1",)

#: Left out of the kit although a dependency names them (installs are --no-deps): optional
#: at run time, and together ~10 MB of the 60 MB budget. ipykernel imports debugpy in a
#: try/except (``ipykernel/debugger.py``: no debugger, which a headless run never attaches);
#: IPython checks for jedi with ``find_spec`` (``IPython/core/completer.py``: no tab completion).
PRUNE = ("debugpy", "jedi", "parso")

#: Files inside wheels left out of the kit (path prefixes), ~7 MB of the budget together:
#: test suites and sample data a run never imports (``pandas.test()``, matplotlib's test
#: runner); Pillow's AVIF codec (``PIL.AvifImagePlugin`` disables itself when ``_avif`` is
#: missing; the book writes PNG); PyYAML's libyaml binding (``yaml`` falls back to its pure
#: Python parser when ``_yaml`` is missing). Checked: the kit test runs a chapter offline.
PRUNE_TESTS = ("pandas/tests/", "matplotlib/tests/", "matplotlib/mpl-data/sample_data/", "papermill/tests/",
               "jsonschema/tests/", "PIL/_avif.", "pillow.libs/libavif-", "yaml/_yaml.")

#: Taken as their pure-Python wheel (one for both Pythons): the compiled ones only add
#: optional speed-ups (fontTools' cython modules, wcwidth's C table lookup), ~11 MB.
PREFER_PURE = ("fonttools", "wcwidth")

#: The kit's Python version by default: the one running the build (CPython, manylinux x86_64).
#: One version per kit: each adds ~14 MB of compiled wheels (pandas, matplotlib, pillow...),
#: and two do not fit the 60 MB budget beside the data. A node with another Python gets its
#: own kit (``make wheelhouse KIT_PYTHON=3.12``).
PYTHONS = (f"{sys.version_info.major}.{sys.version_info.minor}",)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
MAX_MB = 60.0
DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}

#: Exit status of a step that ran out of time (EX_TEMPFAIL: run the same command again).
EXIT_AGAIN = 75


class KitError(Exception):
    """A kit build, install or run problem, with a message saying what to do."""


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _say(msg: str) -> None:
    print(f"[kit] {msg}", flush=True)


# ---------------------------------------------------------------------------- build (here, with network)


def _pip(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise KitError(f"pip failed ({' '.join(cmd[:6])} ...):\n{res.stderr[-3000:]}")
    return res


def _target_args(py: str) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", py, "--implementation", "cp"]
    for p in PLATFORMS:
        args += ["--platform", p]
    return args


def resolve(py: str, work: Path) -> list[str]:
    """Pinned ``name==version`` of everything KIT_ROOTS needs on CPython ``py``, minus NODE_HAS.

    Versions are those of the running environment where it has the package (a constraints
    file of its installed distributions), so the kit is what the tests ran with.
    """
    from importlib import metadata

    cons = work / "constraints.txt"
    seen: dict[str, str] = {}
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if name and _norm(name) not in seen and _norm(name) not in ("softlib", "torchattacks"):
            seen[_norm(name)] = f"{name}=={d.version}"
    cons.write_text("\n".join(sorted(seen.values())) + "\n")
    report = work / f"report-{py}.json"
    _pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), "-c", str(cons),
         "--target", str(work / "dry"), *_target_args(py), *KIT_ROOTS)
    pins = []
    for item in json.loads(report.read_text())["install"]:
        meta = item["metadata"]
        if _norm(meta["name"]) not in NODE_HAS + PRUNE:
            pins.append(f"{meta['name']}=={meta['version']}")
    return sorted(pins, key=str.lower) + list(NO_DEPS)


def _xz_tar(out: Path, members: list[tuple[str, Path]], *, dict_mb: int = 64, preset: int = 9) -> None:
    """A solid xz tar of the files ``(arcname, path)``; a file whose content came before is a hard link.

    The cp311 and cp312 wheels of a package share their Python files and vendored libraries:
    stored once. (xz preset 9 without "extreme": several times faster, ~1 % larger.)
    """
    filters = [{"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": dict_mb << 20}]
    first: dict[str, str] = {}
    with lzma.open(out, "wb", format=lzma.FORMAT_XZ, filters=filters) as fx, \
            tarfile.open(fileobj=fx, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arc, path in members:
            info = tar.gettarinfo(str(path), arcname=arc)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in first:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first[digest], 0
                tar.addfile(info)
                continue
            first[digest] = arc
            with open(path, "rb") as f:
                tar.addfile(info, f)


def _tracked_files(repo: Path) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    return [repo / p for p in out.decode().split("\0") if p and (repo / p).is_file()]


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(out: Path, pythons: tuple[str, ...] = PYTHONS, max_mb: float = MAX_MB) -> dict[str, Any]:
    """Build the kit folder ``out`` (needs network for pip; the data must be in softlib's data root)."""
    from softlib.data import _RAW_MD5, dataset_dir, verify
    from softlib.paths import repo_root

    repo = repo_root()

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="softlib-kit-") as tmp:
        work = Path(tmp)
        wheels = work / "wheels"
        pins: dict[str, list[str]] = {}
        for py in pythons:
            _say(f"resolving for CPython {py} ...")
            pins[py] = resolve(py, work)
            pure = [p for p in pins[py] if _norm(p.split("==")[0]) in PREFER_PURE]
            req = work / f"req-{py}.txt"
            req.write_text("\n".join(p for p in pins[py] if p not in pure) + "\n")
            _say(f"downloading {len(pins[py])} wheels for CPython {py} ...")
            _pip("download", "--quiet", "--no-deps", *_target_args(py), "-d", str(wheels), "-r", str(req))
            if pure:
                _pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", py,
                     "--implementation", "py", "--abi", "none", "--platform", "any", "-d", str(wheels), *pure)
        whl = sorted(wheels.glob("*.whl"))
        _say(f"{len(whl)} wheels, {sum(w.stat().st_size for w in whl) / 1e6:.1f} MB as downloaded; repacking ...")
        unz = work / "unzipped"
        members: list[tuple[str, Path]] = []
        # sorted by file name: a package's cp311 and cp312 wheels sit side by side in the stream
        for w in whl:
            with zipfile.ZipFile(w) as z:
                z.extractall(unz / w.name)
                names = [n for n in z.namelist() if not n.endswith("/") and not n.startswith(PRUNE_TESTS)]
                _prune_record(unz / w.name, z.namelist())
            members += [(f"{w.name}/{n}", unz / w.name / n) for n in names]
        _xz_tar(out / "wheels.tar.xz", members)
        data: dict[str, dict[str, str]] = {}
        dmembers = []
        for name, folder in DATASETS.items():
            verify(name)
            data[folder] = dict(_RAW_MD5[name])
            dmembers += [(f"{folder}/raw/{f}", dataset_dir(name) / f) for f in sorted(_RAW_MD5[name])]
        # the data never changes: compressed once (slow) and kept beside the kit
        key = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
        cached = out.parent / f".kit-data-{key}.tar.xz"
        if not cached.exists():
            _say("compressing the data (once) ...")
            _xz_tar(cached.with_suffix(".part"), dmembers)
            cached.with_suffix(".part").replace(cached)
        shutil.copy2(cached, out / "data.tar.xz")
        _xz_tar(out / "source.tar.xz", [(str(p.relative_to(repo)), p) for p in _tracked_files(repo)], dict_mb=8)
    shutil.copy2(Path(__file__), out / "kit.py")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True).stdout.strip())
    manifest = {"commit": commit + ("+dirty" if dirty else ""), "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "pythons": list(pythons), "platforms": list(PLATFORMS), "node_has": list(NODE_HAS),
                "requirements": pins, "wheels": [w.name for w in whl], "left_out": list(PRUNE), "data_md5": data,
                "archives": {p.name: _md5(p) for p in sorted(out.glob("*.tar.xz"))}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "README.txt").write_text(__doc__ or "")
    size = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    _say(f"kit: {out} = {size:.1f} MB ({', '.join(f'{p.name} {p.stat().st_size / 1e6:.1f}' for p in sorted(out.iterdir()))}) "
         f"in {time.perf_counter() - t0:.0f} s")
    if size > max_mb:
        (out / "manifest.json").unlink()  # not a usable kit: `kit.py run` and `make test-kit` refuse it
        raise KitError(f"the kit is {size:.1f} MB, over the {max_mb:.0f} MB limit (one Python per kit: --python)")
    return manifest


# ---------------------------------------------------------------------------- install (on the node, offline)


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:xz") as tar:
        for m in tar.getmembers():  # refuse paths leaving dest (the archive is ours, but be safe)
            bad_link = m.islnk() and (m.linkname.startswith("/") or ".." in Path(m.linkname).parts)
            if m.name.startswith("/") or ".." in Path(m.name).parts or bad_link or not (m.isfile() or m.islnk()):
                raise KitError(f"{archive.name}: unexpected member {m.name!r}")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links and modes leaving dest
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)


def _prune_record(folder: Path, names: list[str]) -> None:
    """Drop the :data:`PRUNE_TESTS` files from an unpacked wheel's RECORD (it lists what pip installs)."""
    for n in names:
        if n.endswith(".dist-info/RECORD"):
            rec = folder / n
            lines = rec.read_text().splitlines()
            rec.write_text("".join(f"{ln}\n" for ln in lines if not ln.startswith(PRUNE_TESTS)))


def _rezip(folder: Path, wheel: Path) -> None:
    """Zip an unpacked wheel back (files only; the .dist-info last, as the wheel spec recommends)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    files.sort(key=lambda p: ".dist-info/" in p.relative_to(folder).as_posix())
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for p in files:
            z.write(p, p.relative_to(folder).as_posix())


def _stamp(kit: Path) -> str:
    return json.loads((kit / "manifest.json").read_text())["archives"]["wheels.tar.xz"][:12]


def install(kit: Path, dest: Path, *, force: bool = False) -> None:
    """Install the kit into ``dest`` (``site/``, ``src/``, ``data/``) with pip and no network."""
    kit, dest = Path(kit).resolve(), Path(dest).resolve()
    manifest = json.loads((kit / "manifest.json").read_text())
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    if py not in manifest["requirements"]:
        raise KitError(f"this kit is for CPython {' / '.join(manifest['requirements'])}; this is {py}: "
                       f"build one for it with `python -m softlib.tooling.kit build --python {py}`")
    stamp = dest / f".installed-{_stamp(kit)}-py{py}"
    if stamp.exists() and not force:
        return
    from importlib import metadata

    missing = []
    for dist in NODE_HAS:  # by metadata: importing torchvision needs pillow, which the kit brings
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing.append(dist)
    if missing:
        raise KitError(f"this Python ({sys.executable}) lacks {', '.join(missing)}: the kit expects the node's "
                       f"{', '.join(NODE_HAS)} (e.g. a PyTorch module or container)")
    t0 = time.perf_counter()
    for name, md5 in manifest["archives"].items():
        if _md5(kit / name) != md5:
            raise KitError(f"{kit / name} is damaged (MD5 differs from manifest.json): copy the kit again")
    dest.mkdir(parents=True, exist_ok=True)
    for sub in ("site", "src", "wheels"):
        shutil.rmtree(dest / sub, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="kit-", dir=dest) as tmp:
        _say("unpacking the wheels ...")
        _extract(kit / "wheels.tar.xz", Path(tmp))
        (dest / "wheels").mkdir()
        for folder in sorted(Path(tmp).iterdir()):
            _rezip(folder, dest / "wheels" / folder.name)
    req = dest / f"requirements-py{py}.txt"
    req.write_text("\n".join(manifest["requirements"][py]) + "\n")
    _say(f"pip install --no-index ({len(manifest['requirements'][py])} packages) ...")
    # --isolated: no pip config or PIP_* variables (a configured index or find-links would leak in)
    cmd = [sys.executable, "-m", "pip", "--isolated", "install", "--no-index", "--no-deps", "--no-compile",
           "--disable-pip-version-check", "--find-links", str(dest / "wheels"), "--target", str(dest / "site"),
           "-r", str(req)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise KitError(f"pip install failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    shutil.rmtree(dest / "wheels")
    _say("unpacking the source and the data ...")
    _extract(kit / "source.tar.xz", dest / "src")
    _extract(kit / "data.tar.xz", dest / "data")
    for folder, files in manifest["data_md5"].items():
        for f, md5 in files.items():
            if _md5(dest / "data" / folder / "raw" / f) != md5:
                raise KitError(f"{dest / 'data' / folder / 'raw' / f}: MD5 differs from softlib's")
    (dest / "src" / "KIT_COMMIT").write_text(manifest["commit"] + "\n")
    env = node_env(dest, dest / "check")
    res = subprocess.run([sys.executable, "-c", "import papermill, ipykernel, torchattacks, pandas, seaborn, softlib.data as d;"
                          "[d.verify(n) for n in ('mnist', 'fashion_mnist')]"], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise KitError(f"the installed kit does not import:\n{res.stderr[-3000:]}")
    shutil.rmtree(dest / "check", ignore_errors=True)
    for old in dest.glob(".installed-*"):
        old.unlink()
    stamp.write_text(json.dumps({"commit": manifest["commit"], "python": sys.executable}) + "\n")
    _say(f"installed into {dest} in {time.perf_counter() - t0:.0f} s")


def node_env(dest: Path, out: Path) -> dict[str, str]:
    """The environment of a kit run: our packages first on the path, data / cache / results under dest and out."""
    env = dict(os.environ)
    paths = [str(dest / "src"), str(dest / "site")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(PYTHONPATH=os.pathsep.join(paths), SOFTLIB_DATA=str(dest / "data"), SOFTLIB_CACHE=str(out / "cache"),
               SOFTLIB_RESULTS=str(out / "results"), PYDEVD_DISABLE_FILE_VALIDATION="1",
               JUPYTER_PLATFORM_DIRS="1", PATH=os.pathsep.join([str(dest / "site" / "bin"), env.get("PATH", "")]))
    return env


# ---------------------------------------------------------------------------- run (on the node, resumable)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _cache_files(out: Path) -> int:
    return sum(1 for p in (out / "cache").rglob("*") if p.is_file()) if (out / "cache").exists() else 0


def run(dest: Path, out: Path, profile: str, *, step_minutes: float = 10.0, only: list[str] | None = None,
        max_stalls: int = 2) -> int:
    """One resumable step: run the chapters not yet done, for at most ``step_minutes``; return the exit status."""
    dest, out = Path(dest).resolve(), Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = node_env(dest, out)
    state_path = out / "kit-state.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("profile", profile) != profile:
        raise KitError(f"{out} holds a {state['profile']}-profile run; use another --out for profile {profile}")
    state["profile"] = profile
    chapters = state.setdefault("chapters", {})
    books = sorted((dest / "src" / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = [o.zfill(2) if o.isdigit() else o for o in only]
        books = [b for b in books if any(b.stem.startswith(w) for w in wanted)]
        if not books:
            raise KitError(f"--only {only}: no chapter matches")
    deadline = time.monotonic() + step_minutes * 60

    def save() -> None:
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        tmp.replace(state_path)

    for nb in books:
        ch = chapters.setdefault(nb.stem, {"done": False, "seconds": 0.0, "attempts": 0, "stalls": 0})
        if (out / "results" / profile / f"{nb.stem}.json").exists() and (out / "chapters" / nb.name).exists():
            if not ch["done"]:
                ch["done"] = True
                save()
            _say(f"{nb.stem}: done (recorded), skipped")
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            _say(f"step time used up before {nb.stem}: run the same command again to go on")
            save()
            return EXIT_AGAIN
        before = _cache_files(out)
        ch["attempts"] += 1
        _say(f"{nb.stem}: running (profile {profile}, at most {left / 60:.1f} min in this step) ...")
        t0 = time.monotonic()
        log = open(out / f"{nb.stem}.log", "a")
        proc = subprocess.Popen([sys.executable, "-m", "softlib.tooling.notebooks", "run", "--profile", profile,
                                 "--out", str(out / "chapters"), "--only", nb.stem[:2]],
                                cwd=dest / "src", env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # own process group: the kernel is stopped with it
        try:
            rc = proc.wait(timeout=max(left, 1))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rc = None
        finally:
            log.close()
        ch["seconds"] += time.monotonic() - t0
        if rc is None:
            progressed = _cache_files(out) > before
            ch["stalls"] = 0 if progressed else ch["stalls"] + 1
            save()
            if ch["stalls"] >= max_stalls:
                _say(f"{nb.stem}: {ch['stalls']} steps in a row cached nothing new: one piece of its work takes "
                     f"longer than a step; use a larger --step-minutes")
                return 1
            _say(f"{nb.stem}: step time used up ({'cached models/sets kept' if progressed else 'nothing new cached'}); "
                 f"run the same command again to go on")
            return EXIT_AGAIN
        if rc != 0 or not (out / "results" / profile / f"{nb.stem}.json").exists():
            save()
            _say(f"{nb.stem}: failed (exit {rc}); see {out / (nb.stem + '.log')}")
            return 1
        ch.update(done=True, stalls=0)
        save()
        _say(f"{nb.stem}: done in {ch['seconds']:.0f} s over {ch['attempts']} step(s)")
    _say(f"all {len(books)} chapters done: numbers in {out / 'results' / profile}, notebooks in {out / 'chapters'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python kit.py {build,install,run}`` (``python -m softlib.tooling.kit`` in the repository)."""
    ap = argparse.ArgumentParser(prog="kit.py", description="offline GPU-node kit of 'Beyond the softmax'")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="gather wheels, data and source into a kit folder (needs network)")
    b.add_argument("--out", type=Path, default=Path("build/wheelhouse"))
    b.add_argument("--python", nargs="+", default=list(PYTHONS))
    b.add_argument("--max-mb", type=float, default=MAX_MB)
    i = sub.add_parser("install", help="install the kit into DEST (offline)")
    i.add_argument("--dest", type=Path, required=True)
    i.add_argument("--force", action="store_true")
    r = sub.add_parser("run", help="install if needed, then run one resumable step of the chapters")
    r.add_argument("--dest", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--profile", default="paper", choices=("smoke", "quick", "paper"))
    r.add_argument("--step-minutes", type=float, default=10.0)
    r.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    kit = Path(__file__).resolve().parent
    try:
        if args.cmd == "build":
            if not args.python or any(p not in ("3.10", "3.11", "3.12") for p in args.python):
                raise KitError(f"--python: versions among 3.10, 3.11, 3.12, got {args.python}")
            build(args.out, tuple(args.python), args.max_mb)
            return 0
        if not (kit / "manifest.json").exists():
            raise KitError(f"{kit} is not a built kit (no manifest.json): run kit.py from the kit folder "
                           "(`make wheelhouse` builds it)")
        install(kit, args.dest, force=getattr(args, "force", False))
        if args.cmd == "install":
            return 0
        if not args.step_minutes > 0:
            raise KitError(f"--step-minutes must be > 0, got {args.step_minutes}")
        return run(args.dest, args.out, args.profile, step_minutes=args.step_minutes, only=args.only)
    except KitError as exc:
        print(f"kit error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
