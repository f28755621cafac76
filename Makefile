# Quick start: `make demo` runs the whole pipeline on the offline demo, `make test` runs the tests.
# Both create .venv (Python 3.11) on first use and install exactly what uv.lock pins (versions and
# hashes), so a package released tomorrow never changes what a fresh clone gets. `make lock` refreshes
# uv.lock after a change to the dependencies in pyproject.toml.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# uv uses this machine's Python, never one it downloads, and builds into .venv. It compiles every
# module to bytecode at install time: where PYTHONDONTWRITEBYTECODE is set (many containers), each of a
# pipeline's ~50 stage processes would otherwise recompile torch and DVC from source (~1.5 s each).
export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test params install lock check-lock docs

# uv itself comes from tools/bootstrap.txt, pinned with its hash.
$(UV): tools/bootstrap.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: need $(PYTHON) (or run: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --require-hashes -r tools/bootstrap.txt
	touch $@

check-lock: $(UV)
	@$(UV) lock --check --python $(PYTHON) --quiet || { \
	  echo "error: uv.lock does not match pyproject.toml (dependencies changed?): run 'make lock', review and commit uv.lock"; \
	  exit 1; }

$(BIN)/.installed: pyproject.toml uv.lock $(UV)
	@$(MAKE) --no-print-directory check-lock
	$(UV) sync --frozen --extra dev --python $(PYTHON) --quiet
	touch $@

install: $(BIN)/.installed

lock: $(UV)
	$(UV) lock --python $(PYTHON)

demo: $(BIN)/.installed
	dvc repro

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile --durations=15

params: $(BIN)/.installed
	$(BIN)/python -m stages.compose

docs: $(BIN)/.installed
	$(BIN)/python benchmarks/report.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
