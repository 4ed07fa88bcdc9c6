# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test lint venv bench stress clean landmark-detector

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/raoutcome demo --out $(DEMO_OUT)

test: $(STAMP) lint
	$(PY) -m pytest -q tests

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

clean:
	rm -rf $(VENV) $(DEMO_OUT)
