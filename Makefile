# `make run` and `make test` set themselves up in .venv, from the hash-locked locks in requirements/.
# `make run` installs the runtime dependencies only; `make test` adds the test extra (a run venv is upgraded).
# The installer is uv: on PATH, else bootstrapped into .tools/; plain venv + pip is the last resort
# (force it with `make test USE_UV=no`). The logic lives in requirements/deps.py.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DEPS := $(PYTHON) requirements/deps.py
RUN_STAMP := $(VENV)/.deps-run
TEST_STAMP := $(VENV)/.deps-test
export USE_UV
# Some machines (CI images, sandboxes) set PYTHONDONTWRITEBYTECODE. uv installs no .pyc, so every interpreter
# would compile pandas, botocore and the rest from source again (about 3 s per process) and pytest would rewrite
# every test module in every worker on every run. Our own .venv and tree keep their bytecode (git ignores it).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test e2e lint typecheck pytest docs-check lock clean mutation

$(RUN_STAMP): setup.cfg pyproject.toml requirements/runtime.lock requirements/deps.py
	$(DEPS) install run
	touch $@

# The test lock holds every runtime pin, so a test venv also satisfies `make run`.
$(TEST_STAMP): setup.cfg pyproject.toml requirements/test.lock requirements/deps.py tests/plugin_pkg/setup.cfg tests/plugin_pkg/*.py
	$(DEPS) install test
	touch $@ $(RUN_STAMP)

# The demo: 30 synthetic days (tests/data/series/, one missing on purpose) replayed into ./lake in one process,
# then the report (lake/LATEST_UPDATE.md, its rank chart) and the page (lake/site/index.html) of the last day.
# Optional extras, on a fresh clone too: `make run EXTRAS=parquet,notify` (setup.cfg lists them).
run: $(RUN_STAMP)
	$(if $(EXTRAS),$(DEPS) extras $(EXTRAS))
	$(PY) tools/demo.py

# ruff, then import-linter's contracts (setup.cfg [importlinter]): the layers and no import cycle.
lint: $(TEST_STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache

# The package (pyproject's [tool.mypy]), then the benchmark scripts, which nothing else runs: they must not rot.
typecheck: $(TEST_STAMP)
	$(PY) -m mypy
	$(PY) -m mypy benchmarks

# Two xdist workers with worksteal: a worker that runs out takes half of the other's queue (with `load`, one
# worker often ran a second or two alone at the end). The tests' scratch files go to tmpfs when it has room
# (1 GiB free; a run writes about 60 MB): the suite creates, renames, fsyncs and deletes thousands of small
# files, which cost about 3 s of a 29 s run on this VM's ext4. The code under test does the same either way.
# TEST_TMPDIR= (empty) keeps the default temp folder.
TEST_TMPDIR ?= $(shell test -w /dev/shm && df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 >= 1048576 { print "/dev/shm" }')

pytest: $(TEST_STAMP)
	$(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR) )$(PY) -m pytest -q -n auto --dist worksteal

test: lint typecheck pytest

# The dashboard page in a real browser (e2e/, outside `make test`'s pytest run): Debian's chromium, installed with
# apt-get when it is missing. The screenshot lands in e2e-artifacts/dashboard.png.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
e2e: $(TEST_STAMP)
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }
	$(PY) -m pytest -q -p no:xdist e2e
# Every install command of README.md and docs/ (make run, make run EXTRAS=..., python -m venv + pip, ...), run as
# written in scratch copies of the checkout against the package index: tests/test_install_docs.py. Minutes, so
# outside `make test` (the suite deselects the install_docs marker); .ci/run runs it after `make test`.
# Its scratch checkouts and venvs (up to about 1.5 GB at once) go to tmpfs when it has 4 GiB free.
DOCS_TMPDIR ?= $(shell test -w /dev/shm && df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 >= 4194304 { print "/dev/shm" }')

docs-check: $(TEST_STAMP)
	$(if $(DOCS_TMPDIR),TMPDIR=$(DOCS_TMPDIR) )$(PY) -m pytest -q -n 2 -m install_docs --durations=0 tests/test_install_docs.py

# Recompile both locks from setup.cfg (keeps current pins; `$(DEPS) lock --upgrade` moves them).
lock:
	$(DEPS) lock

# Mutation testing, module by module, outside `make test` (slow, CPU-heavy): tools/mutate.py, see docs/testing.md.
# MODULES="pipeline/redact.py stages/extractors/tmdb/extractor.py" picks modules; MUTATE_ARGS="--jobs 1" passes options.
mutation: $(TEST_STAMP)
	nice -n 10 $(PY) tools/mutate.py $(MUTATE_ARGS) $(MODULES)

clean:
	rm -rf $(VENV) .tools lake
