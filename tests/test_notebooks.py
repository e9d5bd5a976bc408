"""The notebooks: paired and output-free, executed headless (smoke profile), rendered, opened in a browser.

Session fixtures build the book as ``make prebuild`` then ``make book`` do: the smoke
plan (:mod:`softlib.tooling.plan`) is built on a Dask ``LocalCluster`` of two workers into an
empty cache, then every chapter is executed with papermill (``profile=smoke``) on that cache
into a copy of ``book/`` and the HTML is built with Jupyter Book. A test checks that the
notebooks trained and attacked nothing (issue 17: a prebuilt cache leaves them cache hits
only), and the last test opens the book in headless Chromium (Debian's package): every
chapter's title, a figure that loads, no traceback, warning or absolute path in the text, no
table wider than the content column; the API pages.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import pytest

from softlib.cache import cache_root
from softlib.paths import repo_root, results_dir
from softlib.tooling import plan as P
from softlib.tooling.notebooks import run_all

REPO = repo_root()
NOTEBOOKS = REPO / "notebooks"

pytestmark = pytest.mark.slow
PYS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_there_are_six_chapters():
    assert [p.stem[:2] for p in PYS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("py", PYS, ids=lambda p: p.stem)
def test_pair_in_sync_and_output_free(py):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{py.name} has no paired {ipynb.name}: run `make sync`"
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "papermill needs the kernelspec"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{ipynb.name} has outputs"
    src = jupytext.read(py)
    strip = lambda cells: [(c.cell_type, c.source.strip()) for c in cells]  # noqa: E731
    assert strip(src.cells) == strip(nb.cells), f"{py.name} and {ipynb.name} differ: run `make sync`"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and 'profile = "quick"' in tagged[0].source
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {py.stem[:2]}")


#: Every cache folder where building (not reading) leaves a trace: the planned kinds (models, sets,
#: chapter 05's attacks, transferability), attack chunks and training checkpoints.
WATCHED = (*(folder for folder, _ in P.KINDS.values()), "set-chunks", "checkpoints")


def _watched_files(root: Path) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every file under the watched folders of the cache at ``root`` (locks left out)."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for w in WATCHED for p in (root / w).rglob("*")
            if p.is_file() and not p.name.endswith((".lock", ".owner"))}


def _merge_entries(src: Path, dst: Path) -> None:
    """Copy the cache entries of ``src`` that ``dst`` lacks into ``dst``: payload first, sidecar last.

    The book builds into its own cache; its entries then join the session's, where later tests
    (which used to find the book's models there) still find them. Keys hash what made an entry,
    so an entry of the same key is the same entry.
    """
    for folder in (f for f in src.iterdir() if f.is_dir() and f.name not in ("checkpoints", "set-chunks")):
        for sidecar in folder.glob("*.json"):
            target = dst / folder.name / sidecar.name
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            for payload in folder.glob(f"{sidecar.stem}.*"):
                if payload.suffix not in (".json", ".lock", ".owner", ".tmp"):
                    shutil.copyfile(payload, target.parent / payload.name)
            shutil.copyfile(sidecar, target)


@dataclass
class Prebuild:
    """``make prebuild`` done: the book's own cache, the plan and the prebuild's task reports."""

    root: Path
    plan: P.Plan
    reports: list[dict[str, Any]]


@dataclass
class PrebuiltBook:
    """Every chapter executed on the prebuilt cache: the book's folder and the watched cache files
    the notebooks created or changed (``written``: empty when they only read)."""

    book: Path
    written: list[str]


@pytest.fixture(scope="session")
def prebuilt_cache(tmp_path_factory) -> Prebuild:
    """``make prebuild`` at the smoke profile, into an empty cache of the book's own.

    The empty cache (not the session's, where other tests' entries could hide a task the plan
    lacks): the smoke plan runs on a LocalCluster of two worker processes with the shared-
    filesystem share; each task fails when its entry lands under another key than planned.
    """
    from softlib.tooling import prebuild as B

    root = tmp_path_factory.mktemp("book-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTLIB_CACHE", str(root))
        plan = P.build_plan("smoke")
        with B.local_client(2, memory_limit="4GiB") as client:
            reports = B.run_dask(plan, client=client, share="fs", progress=False)
    return Prebuild(root, plan, reports)


@pytest.fixture(scope="session")
def prebuilt_book(tmp_path_factory, prebuilt_cache) -> PrebuiltBook:
    """``make book`` after ``make prebuild``: every chapter (seed replicates included) executed
    into a copy of ``book/`` on the prebuilt cache, its watched folders listed before and after.

    The book's cache entries then join the session's cache (:func:`_merge_entries`).
    """
    book = tmp_path_factory.mktemp("book")
    for f in (REPO / "book").iterdir():
        if f.is_file():
            shutil.copy(f, book / f.name)
        elif f.name not in ("_build", "chapters"):  # api/, _static/
            shutil.copytree(f, book / f.name)
    session_cache, root = cache_root(), prebuilt_cache.root
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SOFTLIB_CACHE", str(root))
            before = _watched_files(root)
            timings = run_all("smoke", book / "chapters", jobs=2)  # as `make book` runs them: two at a time
            assert all(t.ok for t in timings)
            after = _watched_files(root)
    finally:
        _merge_entries(root, session_cache)
    written = sorted({*(set(after) - set(before)), *(k for k in before if after.get(k) != before[k])})
    return PrebuiltBook(book, written)


@pytest.fixture(scope="session")
def built_book(prebuilt_book) -> Path:
    """Every chapter executed in the smoke profile on a prebuilt cache, then the HTML book built from them."""
    book = prebuilt_book.book
    from softlib.tooling import claimspage  # the Claims page, as `make book` writes it

    claimspage.main(["--out", str(book / "chapters" / "claims.md")])
    r = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(book), "--quiet"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # docutils errors (an RST substitution read into a docstring's |x|) leave the build green but the page wrong
    assert "ERROR:" not in r.stdout + r.stderr, [ln for ln in (r.stdout + r.stderr).splitlines() if "ERROR:" in ln]
    html = book / "_build" / "html"
    assert (html / "index.html").exists()
    return book


def test_the_smoke_plan_prebuilds_on_dask(prebuilt_cache):
    """The plan holds the seed replicates the book runs (chapters 02-03, seeds 0 .. cnn_seeds - 1),
    and the prebuild put every keyed entry into the empty cache, building entries of every kind."""
    from softlib.profiles import get_profile

    plan = prebuilt_cache.plan
    cnn_seeds = {t.call["seed"] for t in plan.tasks if t.kind == "model" and t.call["arch"] == "cnn"}
    assert cnn_seeds == set(range(get_profile("smoke").cnn_seeds))
    for chapter in P.SEED_POOLED:  # each seed's sets (chapters 02-03) or transferability run (04)
        assert {t.call["seed"] for t in plan.tasks if chapter in t.chapters and t.kind in ("set", "transfer")} == cnn_seeds
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTLIB_CACHE", str(prebuilt_cache.root))
        missing = [t.label for t in plan.tasks if t.key is not None and t.entry().read_valid() is None]
    assert not missing, f"prebuilt but not in the cache: {missing}"
    assert {r["kind"] for r in prebuilt_cache.reports if r["built"]} == set(P.KINDS)


def test_a_prebuilt_cache_leaves_the_notebooks_no_training_or_attacks(prebuilt_book):
    """Issue 17: after ``make prebuild`` the chapters run from cache hits only.

    Executing the chapters created or changed no model, set, attack, transferability entry,
    attack chunk or training checkpoint. A file named here is a task the plan lacks (or keys
    differently): mirror the notebook's call in ``softlib/tooling/plan.py``.
    """
    assert not prebuilt_book.written, f"the notebooks built what the prebuild did not: {prebuilt_book.written}"


GLUE_REF = re.compile(r"\{glue(?::\w+)?\}(?:`([^`:]+)(?::[^`]*)?`| +(\w+))")  # role or directive


def glued_names(nb) -> set[str]:
    """Names glued by the executed notebook's cells (myst_nb.glue stores them in output metadata)."""
    return {o.get("metadata", {}).get("scrapbook", {}).get("name") for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", [])} - {None}


def test_every_glue_reference_is_glued(built_book):
    """Each {glue:text}`key` of a chapter's prose names a value the executed chapter glued."""
    for py in PYS:
        nb = nbformat.read(built_book / "chapters" / f"{py.stem}.ipynb", as_version=4)
        refs = {k for c in nb.cells if c.cell_type == "markdown" for m in GLUE_REF.findall(c.source) for k in m if k}
        assert not refs - glued_names(nb), f"{py.stem}: prose refers to unglued {sorted(refs - glued_names(nb))}"


def test_every_notebook_executes_in_smoke_profile(built_book):
    for py in PYS:
        nb = nbformat.read(built_book / "chapters" / f"{py.stem}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{py.stem}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
        images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {})]
        assert images, f"{py.stem} produced no figure"
    timings = json.loads((results_dir() / "timings-smoke.json").read_text())
    names = [n["notebook"] for n in timings["notebooks"]]
    assert [n for n in names if " (seed " not in n] == [p.stem for p in PYS]
    # chapters 02-03 also ran as seed replicates (seeds 1 .. cnn_seeds - 1), each without an error
    from softlib.profiles import get_profile
    from softlib.tooling.notebooks import SEED_REPLICATED

    seeds = range(1, get_profile("smoke").cnn_seeds)
    assert sorted(n for n in names if " (seed " in n) == sorted(f"{c} (seed {k})" for c in SEED_REPLICATED for k in seeds)
    for c in SEED_REPLICATED:
        for k in seeds:
            nb = nbformat.read(built_book / "chapters" / "seeds" / f"{c}-seed{k}.ipynb", as_version=4)
            assert not [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
                        if o.get("output_type") == "error"], f"{c} seed {k} failed"


def test_book_renders_offline_with_math(built_book):
    html = built_book / "_build" / "html"
    for py in PYS:
        page = html / "chapters" / f"{py.stem}.html"
        assert page.exists(), f"no page for {py.stem}"
    text = (html / "chapters" / f"{PYS[0].stem}.html").read_text()
    assert "mathjax" in text.lower()
    assert "cdn.jsdelivr.net/npm/mathjax" not in text, "MathJax must be served locally (sphinx-mathjax-offline)"


#: Text a reader must never see on a page: a traceback, a Python warning (its class name,
#: e.g. UserWarning or TqdmWarning), or an absolute path of the machine that built the book.
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
_WARNING = re.compile(r"\b[A-Z]\w*Warning\b|warnings\.warn")
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:home|root|tmp|work|usr|opt|var|srv|mnt|Users)/[\w.+-]+|site-packages")

# the content column and every table's right edge, in CSS pixels (a table that scrolls
# inside its own box is as wide as that box)
_TABLES_JS = """() => {
  const col = document.querySelector('article').getBoundingClientRect();
  const tables = [...document.querySelectorAll('article table')].map(t => {
    const r = t.getBoundingClientRect();
    return [t.innerText.slice(0, 60), r.left, r.right];
  });
  return {left: col.left, right: col.right, tables: tables,
          page: document.documentElement.scrollWidth, view: window.innerWidth};
}"""


def _check_page_text(name: str, text: str, roots: list[str]) -> None:
    assert not _TRACEBACK.search(text), f"{name}: a traceback on the page"
    m = _WARNING.search(text)
    assert not m, f"{name}: a warning on the page: ...{text[max(0, m.start() - 120):m.end() + 80]}..."
    m = _ABS_PATH.search(text)
    assert not m, f"{name}: an absolute path on the page: ...{text[max(0, m.start() - 80):m.end() + 80]}..."
    for root in roots:
        assert root not in text, f"{name}: the build machine's path {root} is on the page"


def _check_tables_fit(name: str, layout: dict) -> None:
    wide = [(t, round(right - layout["right"])) for t, left, right in layout["tables"]
            if right > layout["right"] + 1 or left < layout["left"] - 1]
    assert not wide, f"{name}: tables wider than the content column (text, px over): {wide[:3]}"
    assert layout["page"] <= layout["view"] + 1, f"{name}: the page scrolls sideways ({layout['page']} px)"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it as root)")
def test_book_in_headless_chromium(built_book):
    """Every chapter page as a reader sees it: its title, a figure that loads, and text free of
    tracebacks, warnings and absolute paths, with every table inside the content column.
    The API reference renders the docstrings."""
    from playwright.sync_api import sync_playwright

    html = built_book / "_build" / "html"
    roots = sorted({str(REPO), str(built_book), str(Path.home()), sys.prefix} - {"/"}, key=len, reverse=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync", "--disable-quic"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((html / "index.html").as_uri())  # Jupyter Book's index.html is a meta refresh to intro.html
        page.wait_for_url("**/intro.html", timeout=30_000)
        page.wait_for_load_state("load")
        assert "Beyond the softmax" in page.title()
        nav = " ".join(page.eval_on_selector_all("nav a", "links => links.map(a => a.textContent.trim())"))
        for title in ("01.", "02.", "03.", "04.", "05.", "06.", "API reference"):
            assert title in nav, f"{title} missing from the navigation: {nav[:500]}"
        for py in PYS:
            page.goto((html / "chapters" / f"{py.stem}.html").as_uri())
            page.wait_for_load_state("load")
            h1 = page.inner_text("h1")
            assert h1.startswith(py.stem[:2]), h1
            assert py.stem[:2] in page.title(), page.title()
            sizes = page.eval_on_selector_all("article img", "imgs => imgs.map(i => [i.src, i.complete && i.naturalWidth])")
            assert sizes, f"{py.stem}: no figure on the page"
            broken = [s for s, w in sizes if not w]
            assert not broken, f"{py.stem}: figures that do not load: {broken}"
            _check_page_text(py.stem, page.inner_text("article"), roots)
            _check_tables_fit(py.stem, page.evaluate(_TABLES_JS))
        page.goto((html / "api" / "ch01_lemmas.html").as_uri())
        page.wait_for_load_state("load")
        functions = page.eval_on_selector_all("dl.py.function > dt", "dts => dts.map(d => d.id)")
        assert "softlib.chapters.ch01.lemmas.saturation_table" in functions, functions
        assert "finite precision" in page.inner_text("article")  # the module docstring
        browser.close()


def _strip_times(obj):
    """Drop wall-time fields (``*_s``): everything else a chapter records must repeat exactly."""
    if isinstance(obj, dict):
        return {k: _strip_times(v) for k, v in obj.items() if not k.endswith("_s")}
    if isinstance(obj, list):
        return [_strip_times(v) for v in obj]
    return obj


def test_chapter_numbers_are_reproducible(built_book, tmp_path, monkeypatch):
    """Chapter 02 again, from an empty cache (seed 0 retrained, its sets regenerated), pooling the first run's
    seed replicates as recorded, as `make book` on a fresh clone does: identical numbers."""
    first = json.loads((results_dir() / "smoke" / "02_logit_distributions.json").read_text())
    recorded = sorted((results_dir() / "smoke" / "seeds").glob("02_logit_distributions-seed*.json"))
    assert recorded, "the first build recorded no seed replicate of chapter 02"
    monkeypatch.setenv("SOFTLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SOFTLIB_RESULTS", str(tmp_path / "results"))
    seeds = tmp_path / "results" / "smoke" / "seeds"
    seeds.mkdir(parents=True)
    for f in recorded:
        shutil.copy(f, seeds / f.name)
    timings = run_all("smoke", tmp_path / "chapters", only=["02"])
    assert [t.notebook for t in timings] == ["02_logit_distributions"]  # the replicates pooled, not run again
    second = json.loads((tmp_path / "results" / "smoke" / "02_logit_distributions.json").read_text())
    assert second["numbers"]["model"]["cache_key"] == first["numbers"]["model"]["cache_key"]
    assert _strip_times(second["numbers"]) == _strip_times(first["numbers"])
