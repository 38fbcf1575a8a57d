# `make run` and `make test` set themselves up: a .venv with the project and its test extras.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE := tests/data/sample

.PHONY: run test lint typecheck pytest bench clean

$(STAMP): setup.cfg pyproject.toml tests/plugin_pkg/setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' ./tests/plugin_pkg
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m pipeline run --config config/demo.yml --date 2026-11-24 --set extractor.options.path=$(SAMPLE)/2026-11-24
	$(PY) -m pipeline run --config config/demo.yml --date 2026-11-25 --set extractor.options.path=$(SAMPLE)/2026-11-25

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) lake
