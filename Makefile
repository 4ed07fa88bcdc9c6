# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test venv bench clean landmark-detector

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/raoutcome demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Retrain the shipped landmark detector (src/raoutcome/data/landmark_detector.safetensors); docs/landmarks.md.
LANDMARK_WORK ?= landmark_work
landmark-detector: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) analyses/landmark_detector.py --work $(LANDMARK_WORK)

clean:
	rm -rf $(VENV) $(DEMO_OUT)
