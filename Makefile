# mlkit — the two set-up commands are `make course` and `make test`; both build .venv
# from requirements.lock first, so nothing depends on what was installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mlkit-installed
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: setup course test test-fast lab notebooks lock clean datasets

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

## Every test tier: unit, golden (nbval), smoke grid, CSV runs, parameter validation.
test: $(STAMP)
	$(BIN)/python -m pytest tests mlkit notebooks --doctest-modules --nbval \
	  --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

## Unit tests only (no notebook execution).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests mlkit --doctest-modules -m "not slow" -p no:nbval

## JupyterLab on the notebooks, on loopback.
lab: $(STAMP)
	$(BIN)/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks

## Re-execute every notebook in place with its defaults (regenerates the committed outputs).
notebooks: $(STAMP)
	$(BIN)/mlkit notebooks

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
