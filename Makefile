# Quick start: `make demo` runs the whole pipeline on the offline demo, `make test` runs the tests.
# Both create .venv (Python 3.11) and install hawk into it on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test params install clean-demo

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (or run: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	dvc repro

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

params: $(BIN)/.installed
	$(BIN)/python -m stages.compose
