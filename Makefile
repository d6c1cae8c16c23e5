# Continuum: `make run` starts the app on the offline demo model; `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PORT ?= 8501

.PHONY: run test check lint typecheck pytest test-peers chromium postgresql demo bench clean

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

## Debian's chromium for the browser tests (installed once, by name). When another apt or dpkg
## holds the package lock, wait for it: `install` through apt-get's DPkg::Lock::Timeout (seconds);
## `update`, whose lists lock ignores that option (apt 2.6), by asking again while apt says the
## lock is held, every APT_LOCK_PAUSE seconds, APT_LOCK_TRIES times.
APT_LOCK_TIMEOUT ?= 600
APT_LOCK_TRIES ?= 120
APT_LOCK_PAUSE ?= 5
APT_GET := apt-get -o DPkg::Lock::Timeout=$(APT_LOCK_TIMEOUT)
# $(call apt_install,PACKAGE): update the lists (asking again while their lock is held), then install.
apt_install = tries=0; \
	until out=$$($(SUDO) $(APT_GET) update -qq 2>&1); do \
	  tries=$$((tries + 1)); \
	  case "$$out" in *"Could not get lock"*) [ $$tries -lt $(APT_LOCK_TRIES) ] ;; *) false ;; esac \
	    || { echo "$$out" >&2; exit 1; }; \
	  sleep $(APT_LOCK_PAUSE); \
	done; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $(1) >/dev/null
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(call apt_install,chromium); }

## Debian's postgresql for the store tests on PostgreSQL (installed once, by name, waiting for the
## apt lock like chromium). The tests start their own throwaway cluster from its
## /usr/lib/postgresql/*/bin (tests/pg.py); the package's own cluster is not used.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(call apt_install,postgresql); }

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev-installed chromium postgresql
	CONTINUUM_PG_REQUIRED=1 $(VENV)/bin/pytest -n 2 --dist loadfile -m "not peers" --durations=15

## A real third-party server in the loop: llama-cpp-python (compiled from PyPI's source the first
## time: ~6 min on 2 cores, seconds once pip has cached the wheel) on a tiny random-weight model
## that tests/peers/make_model.py writes. The probe, the seam checks and the completions strategy
## are tested against it; tests/peers/test_llama_server.py pins what that server does.
test-peers: $(VENV)/.dev-installed
	bash tests/peers/setup.sh
	CONTINUUM_PEERS_REQUIRED=1 $(VENV)/bin/pytest -m peers tests/peers

## Set up everything and run every check: lint, types, unit, integration, browser and peer-server tests.
test: lint typecheck pytest test-peers

bench: $(VENV)/.dev-installed chromium postgresql
	$(PY) bench/bench_stream.py
	$(PY) bench/bench_ui.py
	$(PY) bench/bench_batch.py
	$(PY) bench/bench_faults.py
	$(PY) bench/bench_load.py
	$(PY) bench/bench_bad_input.py
	$(PY) bench/bench_seam.py
	$(PY) bench/bench_memory.py
	$(PY) bench/bench_serve.py
	$(PY) bench/bench_copy.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
