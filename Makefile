# mlkit — the two set-up commands are `make course` and `make test`; both build .venv
# from requirements.lock first, so nothing depends on what was installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mlkit-installed
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: setup system-deps course test test-fast lab mlflow-ui notebooks lock clean datasets bench

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## Every notebook executed with its defaults into build/, rendered to HTML, indexed in build/index.html.
course: $(STAMP)
	$(BIN)/mlkit course --out build

## System packages a test tier needs: Debian's chromium for the browser tier (tests/test_browser.py),
## Debian's postgresql for the services tier (tests/test_prediction_log.py starts its own server on
## loopback in a temporary folder, so the package's default cluster is not created: no service is
## left running). Installed with apt-get when missing and the machine allows it (root with apt-get,
## as on CI); elsewhere a loud message says how to enable the tier and `make test` goes on (the tier
## skips, and under CI=true a skip fails the run). A no-op when both are already there.
CHROMIUM := /usr/bin/chromium
APT_LOG  := $${TMPDIR:-/tmp}/mlkit-system-deps.log
PG_FOUND := { command -v initdb && command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl; } >/dev/null 2>&1
system-deps:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "system-deps: installing Debian's chromium for the browser tests (apt-get, log in $(APT_LOG))"; \
	  if DEBIAN_FRONTEND=noninteractive apt-get update -qq >$(APT_LOG) 2>&1 && \
	     DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >>$(APT_LOG) 2>&1 && \
	     [ -x $(CHROMIUM) ]; then \
	    echo "system-deps: $$($(CHROMIUM) --version 2>/dev/null)"; \
	  else \
	    tail -n 20 $(APT_LOG); \
	    echo "*** system-deps: apt-get could not install chromium: the BROWSER TIER WILL BE SKIPPED (see $(APT_LOG))." >&2; \
	  fi; \
	else \
	  echo "*** system-deps: $(CHROMIUM) is missing and this is not root with apt-get:" >&2; \
	  echo "*** the BROWSER TIER (tests/test_browser.py) WILL BE SKIPPED. To enable it:" >&2; \
	  echo "***   sudo apt-get install --no-install-recommends chromium   (Debian's package; no browser download)" >&2; \
	fi
	@if $(PG_FOUND); then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "system-deps: installing Debian's postgresql for the PostgreSQL tests (apt-get, log in $(APT_LOG))"; \
	  mkdir -p /etc/postgresql-common/createcluster.d && \
	  echo "create_main_cluster = off  # mlkit: the tests start their own server" \
	    > /etc/postgresql-common/createcluster.d/mlkit-no-main-cluster.conf; \
	  if DEBIAN_FRONTEND=noninteractive apt-get update -qq >>$(APT_LOG) 2>&1 && \
	     DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >>$(APT_LOG) 2>&1 && \
	     $(PG_FOUND); then \
	    echo "system-deps: $$($$(ls /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1) --version)"; \
	  else \
	    tail -n 20 $(APT_LOG); \
	    echo "*** system-deps: apt-get could not install postgresql: the POSTGRESQL TIER WILL BE SKIPPED (see $(APT_LOG))." >&2; \
	  fi; \
	else \
	  echo "*** system-deps: PostgreSQL's initdb/pg_ctl are missing and this is not root with apt-get:" >&2; \
	  echo "*** the POSTGRESQL TIER (tests/test_prediction_log.py) WILL BE SKIPPED. To enable it:" >&2; \
	  echo "***   sudo apt-get install --no-install-recommends postgresql   (Debian's package)" >&2; \
	  echo "*** or set MLKIT_TEST_POSTGRES_URL=postgresql+psycopg://USER@HOST:PORT/DB to use a running server." >&2; \
	fi

## Every test tier: unit, golden (nbval), smoke grid, CSV runs, parameter validation, browser.
## notebooks/ first: the golden tier runs while the smoke grid (started at collection) runs beside it.
test: $(STAMP) system-deps
	$(BIN)/python -m pytest notebooks tests mlkit --doctest-modules --nbval \
	  --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --durations=25

## Unit tests only (no notebook execution).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests mlkit --doctest-modules -m "not slow" -p no:nbval

## JupyterLab on the notebooks, on loopback (as root, e.g. in a container, with --allow-root).
lab: $(STAMP)
	$(BIN)/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

## Browse runs and registered models (MLFLOW_TRACKING_URI, else .mlkit/mlflow.db) on http://127.0.0.1:5000.
MLFLOW_STORE ?= $(or $(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/.mlkit/mlflow.db)
mlflow-ui: $(STAMP)
	mkdir -p .mlkit
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri $(MLFLOW_STORE) \
	  --default-artifact-root $(CURDIR)/.mlkit/artifacts

## Re-execute every notebook in place with its defaults (regenerates the committed outputs).
notebooks: $(STAMP)
	$(BIN)/mlkit notebooks

## Benchmarks, side by side with the anchor tools (see benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/batch.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/serving.py --rounds 3
	$(BIN)/python benchmarks/drift.py

## Rewrite datasets/ from the generators and refresh datasets/MANIFEST.
datasets: $(STAMP)
	$(BIN)/mlkit datasets --write

## Re-resolve the locked dependencies from pyproject.toml (needs the package registry).
lock:
	rm -rf /tmp/mlkit-lock && $(PYTHON) -m venv /tmp/mlkit-lock
	/tmp/mlkit-lock/bin/python -m pip install --quiet --upgrade pip
	/tmp/mlkit-lock/bin/python -m pip install --quiet -e '.[dev]'
	(echo "# Locked dependencies for mlkit (Python 3.11). Regenerate with: make lock"; \
	 /tmp/mlkit-lock/bin/python -m pip freeze --exclude-editable) > requirements.lock

clean:
	rm -rf build .pytest_cache
