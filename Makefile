# Beyond the softmax: the two commands are `make book` and `make test` (see README.md).
# VENV may live outside the tree (CI keeps one per hash of pyproject.toml under ~/.cache).

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= quick
NB      ?=
BIN     := $(VENV)/bin
SPEC    := $(shell cat pyproject.toml environment.yml 2>/dev/null | sha256sum | cut -c1-16)
STAMP   := $(VENV)/.softlib-installed-$(SPEC)
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help env data book notebook test lab bench sync clean distclean
help:
	@echo "make book [PROFILE=quick|paper|smoke]  build the whole book (env, data, models, notebooks, HTML)"
	@echo "make test                              run the test suite"
	@echo "make notebook NB=03 [PROFILE=...]      execute one chapter into book/chapters/"
	@echo "make lab                               JupyterLab (the .py notebooks open as notebooks)"
	@echo "make bench                             benchmarks against torchattacks / scipy / sklearn"
	@echo "make sync                              re-pair notebooks/*.py -> *.ipynb (output-free)"
	@echo "make clean                             remove the built book and executed notebooks"

# The environment: created if absent, reinstalled from scratch whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.softlib-installed-*
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps torchattacks==3.5.1
	@touch $@

env: $(STAMP)
	@# the package itself is editable-installed from *this* checkout (cheap; a shared VENV may have seen another)
	@PYTHONPATH= $(BIN)/python -c "import softlib, pathlib, sys; sys.exit(pathlib.Path(softlib.__file__).resolve().parents[1] != pathlib.Path('$(CURDIR)').resolve())" \
		|| $(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .

data: env
	$(BIN)/python -m softlib.data fetch mnist fashion_mnist

book: data
	$(BIN)/python -m softlib.notebooks run --profile $(PROFILE) --out book/chapters $(if $(NB),--only $(NB))
	$(BIN)/python -m softlib.claimspage --out book/chapters/claims.md
	$(BIN)/jupyter-book build book --quiet
	@echo "The book: file://$(CURDIR)/book/_build/html/index.html"

notebook: data
	$(BIN)/python -m softlib.notebooks run --profile $(PROFILE) --out book/chapters --only $(NB)

test: data
	$(BIN)/python -m pytest -q

lab: env
	$(BIN)/python -m pip install -q --disable-pip-version-check ".[lab]"
	$(BIN)/jupyter lab --notebook-dir=notebooks

bench: data
	$(BIN)/python -m softlib.notebooks bench

sync: env
	$(BIN)/python -m softlib.notebooks sync

clean:
	rm -rf book/_build book/chapters

distclean: clean
	rm -rf $(VENV)
