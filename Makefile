# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test test-all lint docs typecheck dist venv bench stress clean landmark-detector spine-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/raoutcome demo --out $(DEMO_OUT)

# The default suite leaves out the tests marked `slow` (long end-to-end runs); `make test-all` runs them too.
# pytest-xdist runs one worker per core (each test file stays on one worker; tests/conftest.py gives each
# worker cores / workers torch threads); PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= auto
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
test: $(STAMP) lint
	$(PY) -m pytest -q $(XDIST) -m "not slow" tests

test-all: $(STAMP) lint
	$(PY) -m pytest -q $(XDIST) tests

# The docs site (MkDocs) into site/, every warning an error; tests/test_docs.py builds it too.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true PYTHONPATH=src $(PY) -m mkdocs build --strict

# Type checks of the public API (files listed in pyproject's [tool.mypy]); tests/test_typecheck.py runs it too.
typecheck: $(STAMP)
	$(PY) -m mypy

# Wheel and sdist into dist/.
dist: $(STAMP)
	$(PY) -m build

# ruff (lint; rules in pyproject.toml) and vulture (dead code) over the code and the tests.
lint: $(STAMP)
	$(PY) -m ruff check src tests analyses benchmarks
	$(PY) -m vulture

# Long property, fault and load runs (issue #27), fixed seed; the default suite runs short versions.
STRESS_SEED ?= 27
stress: $(STAMP)
	RAOUTCOME_STRESS=1 RAOUTCOME_STRESS_SEED=$(STRESS_SEED) $(PY) -m pytest -q -s -m stress tests
	RAOUTCOME_STRESS=1 RAOUTCOME_STRESS_SEED=$(STRESS_SEED) $(PY) -m pytest -q -s tests/test_hostile_properties.py
	$(PY) benchmarks/bench_validate_scale.py
	$(PY) benchmarks/bench_predict_100k.py

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Retrain the shipped landmark detector (src/raoutcome/data/landmark_detector.safetensors); docs/landmarks.md.
LANDMARK_WORK ?= landmark_work
landmark-detector: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) analyses/landmark_detector.py --work $(LANDMARK_WORK)

# mSASSS on simulated AS cohorts: spine landmarks, corner reader, totals and change (docs/dev/issue-24.md).
SPINE_WORK ?= spine_work
spine-check: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) analyses/spine_check.py --work $(SPINE_WORK)

clean:
	rm -rf $(VENV) $(DEMO_OUT) site dist
