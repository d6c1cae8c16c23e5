# Continuum: `make run` starts the app on the offline demo model; `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT ?= 8501

.PHONY: run test check lint typecheck pytest chromium demo bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## Start the app on the offline demo model (no key, no network).
run: $(VENV)/.installed
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

## Start the demo model alone: an OpenAI-compatible server on http://127.0.0.1:8765/v1.
demo: $(VENV)/.installed
	$(PY) -m core demo --port 8765

## Debian's chromium for the browser tests (installed once, by name).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev-installed chromium
	$(VENV)/bin/pytest -n 2 --dist loadfile

## Set up everything and run every check: lint, types, unit, integration and browser tests.
test: lint typecheck pytest

bench: $(VENV)/.dev-installed chromium
	$(PY) bench/bench_stream.py
	$(PY) bench/bench_ui.py
	$(PY) bench/bench_batch.py
	$(PY) bench/bench_faults.py
	$(PY) bench/bench_load.py
	$(PY) bench/bench_bad_input.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
