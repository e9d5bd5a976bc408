"""The book's plumbing, without executing anything: cell tags, the runner's output tidying,
the figure style and the API reference pages (fast: part of ``make test-fast``)."""

from __future__ import annotations

import pkgutil
import re

import jupytext
import nbformat
import pytest

import softlib
from softlib.paths import repo_root
from softlib.tooling.notebooks import tidy_outputs

REPO = repo_root()
NOTEBOOKS = REPO / "notebooks"

PYS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
BOOK = REPO / "book"


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


@pytest.mark.parametrize("py", PYS, ids=lambda p: p.stem)
def test_plumbing_cells_are_tagged(py):
    """The setup cell (imports, parameter checks) shows at most its output; recording never shows."""
    code = [c for c in jupytext.read(py).cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in _tags(c)]
    assert len(params) == 1 and "hide-cell" in _tags(params[0]), "the parameters cell is folded (hide-cell)"
    setup = code[code.index(params[0]) + 1]
    assert "import" in setup.source
    assert {"remove-input", "remove-cell"} & set(_tags(setup)), f"{py.name}: setup cell is not tagged"
    assert "use_book_style()" in setup.source, f"{py.name}: the setup cell applies the book's figure style"
    for c in code:
        if re.search(r"^record\(", c.source, flags=re.M):
            assert "remove-cell" in _tags(c), f"{py.name}: a recording cell is shown: {c.source[:60]!r}"


def test_tidy_outputs_drops_stderr_and_widgets(tmp_path):
    nb = nbformat.v4.new_notebook()
    injected = nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["injected-parameters"]})
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="/venv/lib/tqdm/auto.py:21: TqdmWarning: IProgress\n"),
        nbformat.v4.new_output("stream", name="stdout", text="kept\n"),
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                                     "text/plain": "  0%|"}),
        nbformat.v4.new_output("display_data", data={"text/markdown": "kept too"}),
    ]
    nb.cells = [injected, cell]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert tidy_outputs(path) == 2
    back = nbformat.read(path, as_version=4)
    assert "remove-cell" in _tags(back.cells[0])
    assert [o.get("name", o.output_type) for o in back.cells[1].outputs] == ["stdout", "display_data"]
    assert "TqdmWarning" not in nbformat.writes(back)
    assert tidy_outputs(path) == 0  # idempotent


def test_book_style_applies():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softlib.plots import BOOK_STYLE, use_book_style

    with plt.rc_context():
        use_book_style()
        for key in ("figure.dpi", "font.size", "axes.spines.top"):
            assert plt.rcParams[key] == BOOK_STYLE[key]


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(softlib.__path__, "softlib.") if not m.ispkg)


def test_every_module_has_an_api_page_in_the_toc():
    """A new softlib module without a page in book/api/ (and in _toc.yml) fails here."""
    documented = {}
    for page in (BOOK / "api").glob("*.md"):
        for mod in re.findall(r"automodule:: (softlib[\w.]*)", page.read_text()):
            documented[mod] = page
    missing = [m for m in _modules() if m not in documented]
    assert not missing, f"no API page (book/api/*.md with an automodule) for {missing}"
    toc = (BOOK / "_toc.yml").read_text()
    for page in (BOOK / "api").glob("*.md"):
        assert f"file: api/{page.stem}\n" in toc, f"book/api/{page.name} is not in book/_toc.yml"
    index = (BOOK / "api" / "index.md").read_text()
    for mod, page in documented.items():
        assert f"({page.name})" in index, f"{mod} is not listed on the API index page"


def test_config_keeps_stderr_out_and_loads_autodoc():
    import yaml

    cfg = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert cfg["sphinx"]["config"]["nb_output_stderr"] == "remove"
    assert {"sphinx.ext.autodoc", "sphinx.ext.napoleon"} <= set(cfg["sphinx"]["extra_extensions"])
    assert (BOOK / "_static" / "book.css").exists()


def test_cited_keys_exist():
    """Every {cite}`key` in the chapters' Markdown and the book's pages is in references.bib."""
    bib = set(re.findall(r"^@\w+\{([^,]+),", (BOOK / "references.bib").read_text(), flags=re.M))
    texts = [p.read_text() for p in PYS] + [p.read_text() for p in BOOK.glob("*.md")]
    cited = {k.strip() for t in texts for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", t)
             for k in group.split(",")}
    assert cited, "no citation found"
    assert not cited - bib, f"cited but not in references.bib: {sorted(cited - bib)}"


def test_display_path_hides_the_home_folder(tmp_path):
    from pathlib import Path

    from softlib.imagenet import missing
    from softlib.runtime import display_path

    assert display_path(Path.home() / ".cache" / "x") == str(Path("~") / ".cache" / "x")
    assert display_path("/opt/x") == "/opt/x"
    lines = missing(weights_dir=Path.home() / "no-such-dir-softlib", root=tmp_path)
    assert lines and all(str(Path.home()) + "/" not in line for line in lines[:-1]), lines


#: Chapters whose longest code cell is still over the limit (their owners are reworking them).
LONG_CELLS_PENDING: set[str] = set()


@pytest.mark.parametrize("py", PYS, ids=lambda p: p.stem)
def test_code_cells_are_short(py, request):
    """No code cell over 40 lines: what does not teach belongs in the chapter's module (softlib.chapters)."""
    if py.stem in LONG_CELLS_PENDING:
        request.applymarker(pytest.mark.xfail(reason="setup cell over 40 lines, being reworked", strict=False))
    lengths = [len(c.source.splitlines()) for c in jupytext.read(py).cells if c.cell_type == "code"]
    assert max(lengths) <= 40, f"{py.name}: a code cell of {max(lengths)} lines"
