# Beyond the softmax: the two commands are `make book` and `make test` (see README.md).
# VENV may live outside the tree (CI keeps one per hash of pyproject.toml under ~/.cache).

PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= quick
NB      ?=
WORKERS ?= 2
# chapters run at a time by `make book` (each on its share of the cores; 1 = one after another)
JOBS    ?= 2
BIN     := $(VENV)/bin
SPEC    := $(shell cat pyproject.toml environment.yml 2>/dev/null | sha256sum | cut -c1-16)
STAMP   := $(VENV)/.softlib-installed-$(SPEC)
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help env data book notebook test test-fast lab bench sync clean distclean verify-repro fuzz prebuild wheelhouse test-kit
help:
	@echo "make book [PROFILE=quick|paper|smoke]  build the whole book (env, data, models, notebooks, HTML)"
	@echo "          [SEEDS=1]                    training seeds behind chapters 02, 03, 04, 06 (default: the profile's cnn_seeds)"
	@echo "          [FRESH_SEEDS=1]              train those seeds here even where results/<profile>/seeds/ records them"
	@echo "          [JOBS=2]                     chapters run at a time, each on its share of the cores (1: one by one)"
	@echo "make test                              run the test suite (all of it: notebooks, book, browser)"
	@echo "make test-fast                         unit and property tests only (no papermill, no browser)"
	@echo "make fuzz [FUZZ_EXAMPLES=2000]         the property-based fuzz of the API and notebook parameters, many cases"
	@echo "make notebook NB=03 [PROFILE=...]      execute one chapter into book/chapters/"
	@echo "make verify-repro [NB=\"01 02 03\"]       run chapters twice (1 vs 2 threads), diff the verdicts"
	@echo "          [RECORDED=1]                 once (1 thread, every seed trained) against the committed results/"
	@echo "          [RECORDED=1 CLONE=1]         the same, as make book on a fresh clone: seed 0 trained, the others as recorded"
	@echo "make prebuild [PROFILE=...] [WORKERS=2] [SCHEDULER=tcp://host:8786] [SHARE=fs|bytes]"
	@echo "                                       build every model and set on Dask first (then make book only reads)"
	@echo "make lab                               JupyterLab (the .py notebooks open as notebooks)"
	@echo "make bench                             benchmarks against torchattacks / scipy / sklearn"
	@echo "make wheelhouse [KIT_PYTHON=3.12]      the offline GPU-node kit in build/wheelhouse/ (see softlib/kit.py)"
	@echo "make test-kit                          install that kit with the network off and run chapter 01 (smoke)"
	@echo "make sync                              re-pair notebooks/*.py -> *.ipynb (output-free)"
	@echo "make clean                             remove the built book and executed notebooks"

# The environment: created if absent, reinstalled from scratch whenever pyproject.toml changes.
# the stamp's name carries the hash of pyproject.toml + environment.yml: a changed spec is a new stamp
# (not the file's mtime, which is new in every fresh clone and would reinstall each time)
$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.softlib-installed-*
	@# --no-compile: pip byte-compiles every installed module (torch's thousands) up front; Python compiles
	@# what is imported on first import anyway (measured here: install 197 s -> 102 s, first import +6 s)
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-compile -e ".[dev]"
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-compile --no-deps torchattacks==3.5.1
	@touch $@

env: $(STAMP)
	@# the package itself is editable-installed from *this* checkout (cheap; a shared VENV may have seen another)
	@PYTHONPATH= $(BIN)/python -c "import softlib, pathlib, sys; sys.exit(pathlib.Path(softlib.__file__).resolve().parents[1] != pathlib.Path('$(CURDIR)').resolve())" \
		|| $(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .

data: env
	$(BIN)/python -m softlib.data fetch mnist fashion_mnist

book: data
	$(BIN)/python -m softlib.tooling.notebooks run --profile $(PROFILE) --out book/chapters --jobs $(JOBS) $(if $(NB),--only $(NB)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(FRESH_SEEDS),--fresh-seeds)
	$(BIN)/python -m softlib.tooling.claimspage --out book/chapters/claims.md
	$(BIN)/jupyter-book build book --quiet
	@echo "The book: file://$(CURDIR)/book/_build/html/index.html"

notebook: data
	$(BIN)/python -m softlib.tooling.notebooks run --profile $(PROFILE) --out book/chapters --only $(NB) $(if $(SEEDS),--seeds $(SEEDS))

test: data
	$(BIN)/python -m pytest -q --durations=15

# the chapters twice (1 and 2 BLAS threads, separate caches): verdicts must agree (results/repro-<profile>.json);
# RECORDED=1: once, on 1 thread with every seed trained here, against the committed results/<profile>/
# (CLONE=1: seed 0 trained here, the other seeds pooled from results/<profile>/seeds/, as make book does)
verify-repro: data
	$(BIN)/python -m softlib.tooling.repro --profile $(PROFILE) --only $(or $(NB),01 02 03) --threads 1 2 \
		$(if $(RECORDED),--against-recorded --work build/repro-recorded) $(if $(CLONE),--as-make-book)

# the development loop: everything but the tests marked `slow` (papermill, the book build, Chromium)
test-fast: data
	$(BIN)/python -m pytest -q -m "not slow"

FUZZ_EXAMPLES ?= 2000
fuzz: data
	SOFTLIB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -s --timeout 3600 tests/test_fuzz.py

lab: env
	$(BIN)/python -m pip install -q --disable-pip-version-check ".[lab]"
	$(BIN)/jupyter lab --notebook-dir=notebooks

# The book's cache entries as a Dask task graph (softlib.tooling.plan / softlib.tooling.prebuild): a LocalCluster of
# WORKERS processes, or a running cluster with SCHEDULER=tcp://host:8786 (README: "Running on a cluster");
# SERIAL=1: no Dask, the tasks one after the other in one process (the baseline). Prints its wall time.
prebuild: data
	$(BIN)/python -m softlib.tooling.prebuild --profile $(PROFILE) --workers $(WORKERS) $(if $(SERIAL),--serial) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(SHARE),--share $(SHARE)) $(if $(SEEDS),--seeds $(SEEDS)) \
		$(if $(REPORT),--report $(REPORT))

bench: data
	$(BIN)/python -m softlib.tooling.notebooks bench

# The offline GPU-node kit (wheels for one CPython, KIT_PYTHON, default this venv's; data, source; <= 60 MB): on the node,
# `python3 build/wheelhouse/kit.py run --dest DIR --out OUT --profile paper` (README "GPU node").
wheelhouse: data
	nice -n 10 $(BIN)/python -m softlib.tooling.kit build --out build/wheelhouse $(if $(KIT_PYTHON),--python $(KIT_PYTHON))

test-kit: data
	@test -f build/wheelhouse/manifest.json || $(MAKE) wheelhouse
	$(BIN)/python -m pytest -q -m slow tests/test_kit.py

sync: env
	$(BIN)/python -m softlib.tooling.notebooks sync

clean:
	rm -rf book/_build book/chapters

distclean: clean
	rm -rf $(VENV)
